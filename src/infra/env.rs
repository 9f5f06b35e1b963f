//! Environment files (stacks/environments/<env>.yaml): the typed, validated
//! settings every template is rendered with. Unknown keys are rejected and
//! every error names the file and the key.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::file::{self, FileError};
use crate::config::{GatePolicy, QualityPolicy};
use crate::ids::Symbol;
use crate::models::ModelKind;
use crate::steps::{RunDefaults, SentimentSource, Source};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub name: String,
    pub region: String,
    /// The symbols inline (`symbols: [AAPL, "^GSPC"]`), checked as they are
    /// read: a bad one is an error naming its place (`symbols[2]: symbol
    /// "../x" has characters …`). Exactly one of `symbols` and `universe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<Symbol>>,
    /// A universe file, `stacks/universes/<universe>.txt` (one symbol per
    /// line), uploaded to the data bucket by `cargo xtask deploy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub universe: Option<String>,
    /// The symbols the environment runs, from `symbols` or the universe
    /// file (filled by [`Environment::load`]).
    #[serde(skip)]
    pub members: Vec<Symbol>,
    pub source: Source,
    /// Where news sentiment comes from, whatever `source` is; absent or
    /// `null`: no news sentiment is fetched.
    #[serde(default)]
    pub sentiment: Option<SentimentSource>,
    pub schedules: Schedules,
    pub ingest: IngestSettings,
    pub budget: Budget,
    pub alarms: Alarms,
    pub lambda: LambdaSettings,
    pub batch: BatchSettings,
    pub api: ApiSettings,
    pub gate: GatePolicy,
    /// The data checks' thresholds, rendered into the ingest function.
    pub quality: QualityPolicy,
    pub log_retention_days: u32,
    pub data: DataSettings,
    pub dashboard: bool,
    /// A customer managed KMS key (the data stack's DataKey, $1.00 a month
    /// plus requests) for the data bucket, the log groups, the alert topic
    /// and the vendor secret. Without it: SSE-S3 for the bucket, the
    /// services' own encryption for logs and secrets, an unencrypted topic.
    pub customer_managed_key: bool,
    pub mlflow: MlflowSettings,
}

/// The MLflow server every training run is mirrored into at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowSettings {
    /// `https://…`; `None`: no mirror step does anything.
    pub tracking_uri: Option<String>,
    pub credentials: MlflowCredentials,
}

/// Where the mirror's MLflow credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MlflowCredentials {
    /// The server needs none (an authenticating proxy in front of it is
    /// not supported: it could not tell the function from the Internet).
    None,
    /// The stack creates the secret `stockcast/<env>/mlflow`, which only the
    /// gate function may read; the operator sets `{"username","password"}`
    /// or `{"token"}` with `put-secret-value`.
    Secret,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedules {
    pub ingestion: String,
    pub training: String,
}

/// The vendors' limits, which set how ingestion fans out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Requests a minute the slower vendor allows (Alpha Vantage's premium
    /// plans start at 75; Yahoo publishes none).
    pub requests_per_minute: u32,
    /// Requests a day Alpha Vantage allows (its free plan: 25), counting
    /// prices where it is the source and news where it is the sentiment;
    /// `null`: a premium plan, no daily quota.
    pub alpha_vantage_daily_quota: Option<u32>,
    /// The share of symbols, in %, that may fail at the vendor before a run
    /// fails; the others go on, and the failed are reported by name.
    pub tolerated_failure_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub monthly_usd: f64,
    pub actual_alert_pct: f64,
    pub forecast_alert_pct: f64,
    pub emails: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alarms {
    /// The API's p99 latency alarm threshold; `null` renders no latency alarm.
    pub api_p99_latency_ms: Option<f64>,
    pub function_errors: u32,
    pub drift_mase_ratio: f64,
    /// A Throttles alarm per function. Every alarm costs $0.10 a month, and
    /// the pipelines retry throttled calls and notify if they still fail.
    pub function_throttles: bool,
    /// An ExecutionsFailed alarm per state machine, beside the failure
    /// notifications the workflows publish themselves.
    pub pipeline_failures: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaSettings {
    pub ingest_memory_mb: u32,
    pub predict_memory_mb: u32,
    pub gate_memory_mb: u32,
    pub monitor_memory_mb: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capacity {
    FargateSpot,
    Ec2Spot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSettings {
    pub capacity: Capacity,
    pub max_vcpus: u32,
    pub job_vcpus: f64,
    pub job_memory_mb: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    pub throttle_rate: f64,
    pub throttle_burst: u32,
    pub quota_per_month: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub raw_to_glacier_days: u32,
    pub noncurrent_version_expiry_days: u32,
}

/// CloudWatch Logs accepts only these retention periods.
const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

impl Environment {
    /// Whether anything the environment runs calls Alpha Vantage (prices or
    /// news), which needs its API key: the vendor secret.
    pub fn uses_alpha_vantage(&self) -> bool {
        self.source == Source::AlphaVantage || self.sentiment == Some(SentimentSource::AlphaVantage)
    }

    /// Reads `stacks/environments/<name>.yaml` and its universe file
    /// (`stacks/universes/<universe>.txt`, beside the environments folder).
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let universes = path
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
            .join("universes");
        Self::load_with(path, &universes)
    }

    /// Reads an environment file, with universe files from `universes`.
    pub fn load_with(path: &Path, universes: &Path) -> Result<Self, FileError> {
        let (file, text) = file::read(path)?;
        Self::parse(&file, &text, universes)
    }

    /// Parses an environment file's text; a `universe` is read from
    /// `universes/<universe>.txt`.
    pub fn parse(file: &str, text: &str, universes: &Path) -> Result<Self, FileError> {
        let mut env: Environment = file::parse_yaml(file, text, Environment::validate)?;
        env.members = match (&env.symbols, &env.universe) {
            (Some(symbols), None) => {
                // The same rule as a universe file: no symbol twice.
                crate::universe::parse(&crate::universe::render(symbols))
                    .map_err(|e| FileError::invalid(file, format!("symbols: {e}")))?
            }
            (None, Some(name)) => {
                let path = universes.join(format!("{name}.txt"));
                let (universe_file, text) = file::read(&path)?;
                crate::universe::parse(&text)
                    .map_err(|e| FileError::invalid(&universe_file, e.to_string()))?
            }
            _ => {
                return Err(FileError::invalid(
                    file,
                    "give the symbols inline (symbols: [...]) or as a universe file (universe: <name> for stacks/universes/<name>.txt), one of the two",
                ));
            }
        };
        env.validate_members()
            .map_err(|message| FileError::invalid(file, message))?;
        Ok(env)
    }

    /// The symbols the environment runs.
    pub fn symbols(&self) -> &[Symbol] {
        &self.members
    }

    /// Requests one run makes to Alpha Vantage: a price series per symbol
    /// where it is the source, the news of every company ticker where it
    /// is the sentiment.
    pub fn alpha_vantage_requests_per_run(&self) -> usize {
        let prices = match self.source {
            Source::AlphaVantage => self.members.len(),
            _ => 0,
        };
        let news = match self.sentiment {
            Some(SentimentSource::AlphaVantage) => self
                .members
                .iter()
                .filter(|s| crate::ingest::has_news(s))
                .count(),
            None => 0,
        };
        prices + news
    }

    /// How many symbols ingest at once: at most the vendor's rate limit
    /// when each child execution makes its requests no faster than one a
    /// second (a throttle beyond that is retried with backoff).
    pub fn ingest_concurrency(&self) -> u32 {
        let per_symbol = if self.sentiment.is_some() { 2 } else { 1 };
        (self.ingest.requests_per_minute / 60 / per_symbol).max(1)
    }

    /// Batch jobs that run at once: the compute environment's vCPUs over
    /// one job's.
    pub fn max_parallel_jobs(&self) -> usize {
        (f64::from(self.batch.max_vcpus) / self.batch.job_vcpus)
            .floor()
            .max(1.0) as usize
    }

    /// What a run of this environment does unless its input says otherwise
    /// (the plan step's defaults, rendered into the ingest function).
    pub fn run_defaults(&self) -> RunDefaults {
        RunDefaults {
            env: self.name.clone(),
            universe_key: crate::layout::universe(&self.name),
            models: ModelKind::ALL.to_vec(),
            horizons: crate::backtest::Protocol::default().horizons,
            source: self.source,
            sentiment: self.sentiment,
            ingest_concurrency: self.ingest_concurrency(),
            tolerated_failure_percent: self.ingest.tolerated_failure_percent,
            max_parallel_jobs: self.max_parallel_jobs(),
        }
    }

    /// Checks what the types cannot: ranges, formats, consistency.
    fn validate(&self) -> Result<(), String> {
        self.validate_name()?;
        self.validate_universe_name()?;
        self.validate_ingest()?;
        self.validate_schedules()?;
        self.validate_budget()?;
        self.validate_sizes()?;
        self.validate_limits()?;
        self.validate_mlflow()
    }

    /// The name is part of every stack and resource name.
    fn validate_name(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 16
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !name_ok {
            return Err(format!(
                "name: should be 1-16 lowercase letters or digits, but is {:?}",
                self.name
            ));
        }
        Ok(())
    }

    /// A universe name that is a file name and nothing else.
    fn validate_universe_name(&self) -> Result<(), String> {
        match &self.universe {
            Some(name)
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') =>
            {
                Err(format!(
                    "universe: should be the name of a file in stacks/universes/ (lowercase letters, digits, -), but is {name:?}"
                ))
            }
            _ => Ok(()),
        }
    }

    /// A rate limit and a failure share that mean something.
    fn validate_ingest(&self) -> Result<(), String> {
        if self.ingest.requests_per_minute == 0 {
            return Err("ingest.requests_per_minute: should be positive".into());
        }
        if self.ingest.alpha_vantage_daily_quota == Some(0) {
            return Err(
                "ingest.alpha_vantage_daily_quota: should be positive, or null for no quota".into(),
            );
        }
        let pct = self.ingest.tolerated_failure_percent;
        if !(0.0..=100.0).contains(&pct) {
            return Err(format!(
                "ingest.tolerated_failure_percent: should be in range [0, 100], but is {pct}"
            ));
        }
        Ok(())
    }

    /// At least one symbol, and news only where a symbol has any.
    fn validate_members(&self) -> Result<(), String> {
        if self.members.is_empty() {
            return Err("symbols: should list at least one symbol".into());
        }
        if let Some(sentiment) = self.sentiment
            && !self.members.iter().any(|s| crate::ingest::has_news(s))
        {
            return Err(format!(
                "sentiment: {sentiment} has news for company tickers only, and every symbol is an index or a currency (set sentiment: null)"
            ));
        }
        Ok(())
    }

    /// Schedules in EventBridge Scheduler's syntax.
    fn validate_schedules(&self) -> Result<(), String> {
        for (key, expr) in [
            ("schedules.ingestion", &self.schedules.ingestion),
            ("schedules.training", &self.schedules.training),
        ] {
            if !(expr.starts_with("cron(") || expr.starts_with("rate(")) || !expr.ends_with(')') {
                return Err(format!(
                    "{key}: should be a cron(...) or rate(...) expression, but is {expr:?}"
                ));
            }
        }
        Ok(())
    }

    /// A positive budget, alert percentages in range and someone to tell.
    fn validate_budget(&self) -> Result<(), String> {
        if self.budget.monthly_usd.is_nan() || self.budget.monthly_usd <= 0.0 {
            return Err(format!(
                "budget.monthly_usd: should be positive, but is {}",
                self.budget.monthly_usd
            ));
        }
        for (key, v) in [
            ("budget.actual_alert_pct", self.budget.actual_alert_pct),
            ("budget.forecast_alert_pct", self.budget.forecast_alert_pct),
        ] {
            if !(v > 0.0 && v <= 1000.0) {
                return Err(format!("{key}: should be in range (0, 1000], but is {v}"));
            }
        }
        if self.budget.emails.iter().any(|e| !e.contains('@')) || self.budget.emails.is_empty() {
            return Err("budget.emails: should list at least one email address".into());
        }
        Ok(())
    }

    /// Function memory and job sizes AWS accepts.
    fn validate_sizes(&self) -> Result<(), String> {
        for (key, mb) in [
            ("lambda.ingest_memory_mb", self.lambda.ingest_memory_mb),
            ("lambda.predict_memory_mb", self.lambda.predict_memory_mb),
            ("lambda.gate_memory_mb", self.lambda.gate_memory_mb),
            ("lambda.monitor_memory_mb", self.lambda.monitor_memory_mb),
        ] {
            if !(128..=10240).contains(&mb) {
                return Err(format!(
                    "{key}: should be in range [128, 10240], but is {mb}"
                ));
            }
        }
        if self.batch.max_vcpus == 0
            || self.batch.job_vcpus <= 0.0
            || self.batch.job_vcpus > f64::from(self.batch.max_vcpus)
        {
            return Err(format!(
                "batch.job_vcpus: should be positive and at most batch.max_vcpus ({}), but is {}",
                self.batch.max_vcpus, self.batch.job_vcpus
            ));
        }
        Ok(())
    }

    /// Log retention, the gate's horizon, the latency alarm and the API's throttle.
    fn validate_limits(&self) -> Result<(), String> {
        if !LOG_RETENTION_DAYS.contains(&self.log_retention_days) {
            return Err(format!(
                "log_retention_days: CloudWatch accepts {LOG_RETENTION_DAYS:?}, not {}",
                self.log_retention_days
            ));
        }
        if self.gate.horizon == 0 || self.gate.horizon > crate::models::MAX_HORIZON {
            return Err(format!(
                "gate.horizon: should be in range [1, 21], but is {}",
                self.gate.horizon
            ));
        }
        if let Some(ms) = self.alarms.api_p99_latency_ms
            && (ms.is_nan() || ms <= 0.0)
        {
            return Err(format!(
                "alarms.api_p99_latency_ms: should be positive (or null for no latency alarm), but is {ms}"
            ));
        }
        if self.api.throttle_rate <= 0.0 || self.api.quota_per_month == 0 {
            return Err("api: throttle_rate and quota_per_month should be positive".into());
        }
        Ok(())
    }

    /// An MLflow server reached over https, and a secret only with a server.
    fn validate_mlflow(&self) -> Result<(), String> {
        match &self.mlflow.tracking_uri {
            // The gate function reaches the server over the Internet:
            // credentials and models never travel in clear text.
            Some(uri) if !uri.starts_with("https://") || uri.len() <= "https://".len() => {
                Err(format!(
                    "mlflow.tracking_uri: should be an https:// URL (or null for no mirror), but is {uri:?}"
                ))
            }
            None if self.mlflow.credentials == MlflowCredentials::Secret => Err(
                "mlflow.credentials: a secret needs mlflow.tracking_uri (or set credentials: none)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_text() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/environments/dev.yaml"),
        )
        .expect("dev.yaml")
    }

    fn universes() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/universes")
    }

    /// dev.yaml with the seed universe inline.
    fn inline(text: &str, symbols: &str) -> String {
        text.replace("universe: seed ", &format!("symbols: {symbols} "))
    }

    const SEED: &str = "[AAPL, GOOGL, MSFT, TSLA, AMZN, \"^GSPC\", \"^IXIC\", \"^DJI\"]";

    fn check_err(edit: impl Fn(&str) -> String, expected: &str) {
        let err =
            Environment::parse("dev.yaml", &edit(&dev_text()), &universes()).expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains(expected),
            "{text:?} should contain {expected:?}"
        );
        assert!(text.starts_with("dev.yaml: "), "{text}");
    }

    #[test]
    fn every_environment_loads() {
        for name in ["dev", "prod", "scale"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("stacks/environments/{name}.yaml"));
            let env = Environment::load(&path).expect("loads");
            assert_eq!(env.name, name);
        }
    }

    #[test]
    fn errors_name_the_key() {
        check_err(
            |t| t.replace("  monthly_usd: 50", "  monthly_usd: 50\n  monthly_eur: 40"),
            "budget: unknown field `monthly_eur`",
        );
        check_err(
            |t| t.replace("capacity: fargate_spot", "capacity: on_demand"),
            "batch.capacity: unknown variant `on_demand`",
        );
        check_err(
            |t| t.replace("log_retention_days: 14", "log_retention_days: 15"),
            "log_retention_days: CloudWatch accepts",
        );
        check_err(
            |t| t.replace("ingest_memory_mb: 256", "ingest_memory_mb: 64"),
            "lambda.ingest_memory_mb: should be in range",
        );
        check_err(
            |t| t.replace("metric: mase", "metric: rmse"),
            "gate.metric: unknown variant `rmse`",
        );
        check_err(
            |t| t.replace("\"cron(0 9 ? * MON-FRI *)\"", "\"every day\""),
            "schedules.ingestion: should be a cron",
        );
        check_err(
            |t| t.replace("max_vcpus: 4", "max_vcpus: ten"),
            "batch.max_vcpus: invalid type",
        );
        check_err(
            |t| t.replace("api_p99_latency_ms: null", "api_p99_latency_ms: -5"),
            "alarms.api_p99_latency_ms: should be positive (or null for no latency alarm), but is -5",
        );
        check_err(
            |t| t.replace("function_throttles: false", "function_throttles: no way"),
            "alarms.function_throttles: invalid type",
        );
        check_err(
            |t| t.replace("tracking_uri: null", "tracking_uri: http://10.0.0.5:5000"),
            "mlflow.tracking_uri: should be an https:// URL",
        );
        check_err(
            |t| t.replace("credentials: none", "credentials: secret"),
            "mlflow.credentials: a secret needs mlflow.tracking_uri",
        );
        check_err(
            |t| inline(t, "[AAPL, ../sample/IBM, MSFT]"),
            "symbols[1]: symbols: symbol \"../sample/IBM\" has characters other than letters, digits and ^ . - = at line 5",
        );
        check_err(
            |t| inline(t, "[AAPL, MSFT, AAPL]"),
            "symbols: line 3: AAPL is already on line 1",
        );
        check_err(
            |t| format!("{}\nsymbols: [AAPL]\n", t),
            "give the symbols inline (symbols: [...]) or as a universe file",
        );
        check_err(
            |t| t.replace("universe: seed ", "universe: ../seed "),
            "universe: should be the name of a file in stacks/universes/",
        );
        check_err(
            |t| {
                t.replace(
                    "tolerated_failure_percent: 10",
                    "tolerated_failure_percent: 150",
                )
            },
            "ingest.tolerated_failure_percent: should be in range [0, 100], but is 150",
        );
        check_err(
            |t| t.replace("sentiment: null", "sentiment: yahoo"),
            "sentiment: unknown variant `yahoo`, expected `alpha-vantage`",
        );
        check_err(
            |t| {
                inline(
                    &t.replace("sentiment: null", "sentiment: alpha-vantage"),
                    "[\"^GSPC\", \"EURUSD=X\"]",
                )
            },
            "sentiment: alpha-vantage has news for company tickers only",
        );
    }

    /// `sentiment:` may be left out (no news), and either vendor key of an
    /// environment makes it use Alpha Vantage, which needs the secret.
    #[test]
    fn sentiment_is_optional_and_alpha_vantage_is_used_for_prices_or_news() {
        let dev = dev_text();
        let parse =
            |text: &str| Environment::parse("dev.yaml", text, &universes()).expect("parses");
        let without = parse(
            &dev.lines()
                .filter(|l| !l.starts_with("sentiment:"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        assert_eq!(without.sentiment, None);
        assert_eq!(without, parse(&dev), "absent is null");
        assert!(!without.uses_alpha_vantage());
        let news = parse(&dev.replace("sentiment: null", "sentiment: alpha-vantage"));
        assert_eq!(news.sentiment, Some(SentimentSource::AlphaVantage));
        assert_eq!(news.source, Source::Yahoo);
        assert!(news.uses_alpha_vantage());
        let prices = parse(&dev.replace("source: yahoo ", "source: alpha-vantage "));
        assert!(prices.uses_alpha_vantage());
    }

    /// A universe file and the same list inline are the same environment
    /// to everything that runs it.
    #[test]
    fn a_universe_file_resolves_to_its_symbols() {
        let parse =
            |text: &str| Environment::parse("dev.yaml", text, &universes()).expect("parses");
        let from_file = parse(&dev_text());
        let from_list = parse(&inline(&dev_text(), SEED));
        assert_eq!(from_file.symbols(), from_list.symbols());
        assert_eq!(from_file.symbols().len(), 8);
        let missing = Environment::parse(
            "dev.yaml",
            &dev_text().replace("universe: seed ", "universe: nasdaq "),
            &universes(),
        )
        .expect_err("no such file");
        assert!(
            missing.to_string().contains("nasdaq.txt: cannot read"),
            "{missing}"
        );
    }

    #[test]
    fn the_sp500_universe_is_valid_and_complete() {
        let text = std::fs::read_to_string(universes().join("sp500.txt")).expect("sp500.txt");
        let symbols = crate::universe::parse(&text).expect("valid");
        assert!((500..=505).contains(&symbols.len()), "{}", symbols.len());
    }
}
