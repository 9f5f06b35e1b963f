//! Every command and flag of `cargo xtask`; the doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use stockcast::config::Approval;
use stockcast::ids::{Symbol, VersionId};
use stockcast::models::ModelKind;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "Operate stockcast: backtest, train, render and deploy"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Ablation(Ablation),
    Backtest(Backtest),
    Bench(Bench),
    Ci(Ci),
    Local(Local),
    Models(Models),
    Mlflow(Mlflow),
    Rollback(Rollback),
    Tools(Tools),
    Serve(Serve),
    BenchApi(BenchApi),
    Render(Render),
    Check(Check),
    Cost(Cost),
    Ingest(Ingest),
    Simulate(Simulate),
    Step(Step),
    Package(Package),
    Bootstrap(Bootstrap),
    Deploy(Deploy),
    Run(Run),
    Status(Status),
    /// Approves the candidates of a training run waiting for approval.
    Approve(Answer),
    /// Rejects the candidates of a training run waiting for approval.
    Reject(Answer),
    Destroy(Destroy),
    Resume(Resume),
}

impl Command {
    /// Whether the command talks to AWS (needs the `aws` feature).
    pub fn needs_aws(&self) -> bool {
        matches!(
            self,
            Command::Bootstrap(_)
                | Command::Deploy(_)
                | Command::Run(_)
                | Command::Status(_)
                | Command::Destroy(_)
                | Command::Resume(_)
        ) || matches!(self, Command::Approve(a) | Command::Reject(a) if a.root.is_none())
            || matches!(self, Command::Rollback(r) if r.store.env.is_some())
            || matches!(self, Command::Mlflow(m) if m.store.env.is_some())
    }
}

/// Runs both state machines, as rendered, in a Step Functions interpreter
/// with every Task bound to the real step code, over the success and
/// failure scenarios, and prints each scenario's path of states. Installs
/// the interpreter (Node 22 and aws-local-stepfunctions) on first use.
#[derive(Debug, Args)]
#[command(mut_arg("env", |env| env.help("The environment whose rendered stacks are run")))]
pub struct Simulate {
    #[command(flatten)]
    pub env: EnvName,
    /// Run only these scenarios, comma separated (see --list).
    #[arg(long, value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
}

/// `--root`: the store a command reads and writes.
#[derive(Debug, Clone, Args)]
pub struct StoreRoot {
    /// The store: a folder or s3://bucket.
    #[arg(long, default_value = ".stockcast", env = "STOCKCAST_ROOT")]
    pub root: String,
}

/// `--sample`: the folder the sample source reads price files from.
#[derive(Debug, Clone, Args)]
pub struct SampleDir {
    /// Folder of the sample source's price files.
    #[arg(
        id = "sample",
        long = "sample",
        value_name = "SAMPLE",
        default_value = "data/sample"
    )]
    pub dir: PathBuf,
}

/// `--env`: the environment a command renders, checks or deploys.
#[derive(Debug, Clone, Args)]
pub struct EnvName {
    /// The environment: a file in stacks/environments/.
    #[arg(id = "env", long = "env", value_name = "ENV", default_value = "dev")]
    pub name: String,
}

/// How a command reaches AWS, beyond the SDK's default chain (profiles,
/// SSO, environment variables), which gives the credentials.
#[derive(Debug, Clone, Args)]
pub struct AwsConnection {
    /// A named profile of ~/.aws/config (SSO profiles work).
    #[arg(long, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint (an emulator such as moto).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

/// Where and as whom the AWS commands work. Credentials and region come
/// from the AWS SDK's default chain (profiles, SSO, environment variables).
#[derive(Debug, Clone, Args)]
pub struct Aws {
    #[command(flatten)]
    pub env: EnvName,
    #[command(flatten)]
    pub connection: AwsConnection,
}

/// Creates the small artifact stack deploy needs (an encrypted, versioned,
/// private bucket and the training image repository), like CDK's bootstrap.
#[derive(Debug, Args)]
pub struct Bootstrap {
    #[command(flatten)]
    pub aws: Aws,
    /// Apply without asking.
    #[arg(long)]
    pub yes: bool,
}

/// Packages and uploads the artifacts (skipping those already uploaded),
/// then for each stack in order (data, app, monitoring, orchestration)
/// previews a change set, asks, executes it and follows its events.
#[derive(Debug, Args)]
pub struct Deploy {
    #[command(flatten)]
    pub aws: Aws,
    /// Apply every change set without asking.
    #[arg(long)]
    pub yes: bool,
    /// Use the artifacts already in this folder instead of packaging.
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Push the training image here instead of the bootstrap stack's ECR
    /// repository (e.g. a registry on 127.0.0.1 for tests).
    #[arg(long)]
    pub image_registry: Option<String>,
    /// The AWS Parameters and Secrets Lambda Extension layer (arm64) of the
    /// environment's region: AWS publishes it under another account in each
    /// region. Known for us-east-1; elsewhere it must be given.
    #[arg(long)]
    pub secrets_extension_layer: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Pipeline {
    Training,
    Daily,
}

/// Starts a pipeline run (a named Step Functions execution) with the
/// environment's symbols, and with --follow prints its states as they go.
#[derive(Debug, Args)]
pub struct Run {
    #[command(flatten)]
    pub aws: Aws,
    #[arg(long, value_enum, default_value = "training")]
    pub pipeline: Pipeline,
    /// Follow the execution until it ends.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: how long to follow before giving up (the execution
    /// carries on). A training run that waits for approval can take a day.
    #[arg(long, value_name = "MINUTES", default_value_t = 120)]
    pub wait_minutes: u64,
    /// Symbols, comma separated (default: the environment's).
    #[arg(long, value_delimiter = ',', value_parser = parse_symbol)]
    pub symbols: Vec<Symbol>,
}

/// Stacks, the last executions and the training job's children, production
/// models, alarms and the budget.
#[derive(Debug, Args)]
pub struct Status {
    #[command(flatten)]
    pub aws: Aws,
    /// Print the report as JSON (the same fields) instead of text.
    #[arg(long)]
    pub json: bool,
    /// List every child of the training job, not only those that failed
    /// or were retried (the JSON always has them all).
    #[arg(long)]
    pub verbose: bool,
}

/// A person's answer to a training run waiting for approval: a deployed
/// environment's execution (--env), or a run of `cargo xtask local` whose
/// candidates are staged in a store (--root).
#[derive(Debug, Args)]
pub struct Answer {
    #[command(flatten)]
    pub aws: Aws,
    /// The execution: its name (the run id) or ARN; with --root, the run id.
    pub execution: String,
    #[arg(long)]
    pub reason: Option<String>,
    /// Answer a local run in this store (a folder or s3://bucket) instead of
    /// a deployed environment: approving promotes the staged candidates,
    /// rejecting clears their staging.
    #[arg(long, conflicts_with_all = ["profile", "endpoint_url"])]
    pub root: Option<String>,
}

/// Lifts the spend cap's stop: enables the environment's schedules again
/// and gives its API the environment file's throttle. Spending starts again,
/// so it asks first.
#[derive(Debug, Args)]
pub struct Resume {
    #[command(flatten)]
    pub aws: Aws,
    /// Resume without asking.
    #[arg(long)]
    pub yes: bool,
}

/// Deletes the environment's stacks (newest first). The data bucket and its
/// key are kept unless --purge-data, which also removes the bootstrap stack.
#[derive(Debug, Args)]
pub struct Destroy {
    #[command(flatten)]
    pub aws: Aws,
    /// Delete without asking.
    #[arg(long)]
    pub yes: bool,
    /// Also delete every object of the data and artifact buckets, the
    /// buckets, and schedule the key's deletion.
    #[arg(long)]
    pub purge_data: bool,
}

/// Runs one workflow task's code, as its Lambda does, on the event read
/// from stdin, against a store; prints the task's JSON result. A step
/// failure prints `{"error":"<name>","cause":"…"}` and exits 1: the error
/// name is what the workflow's Retry/Catch match. `cargo xtask simulate`
/// binds the state machines' tasks to this.
#[derive(Debug, Args)]
#[command(mut_arg("root", |root| root.alias("store").help(
    "The store: a folder or s3://bucket (give folders as absolute paths: xtask runs from the project root)"
)))]
pub struct Step {
    /// The function: ingest, gate or monitor.
    #[arg(value_enum)]
    pub function: StepFunction,
    #[command(flatten)]
    pub store: StoreRoot,
    #[command(flatten)]
    pub sample: SampleDir,
    /// The pipeline settings as JSON (`stockcast::config::PipelineConfig`);
    /// the library defaults otherwise.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The monitor's drift threshold (realised model error over naive error).
    #[arg(long)]
    pub drift_mase_ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StepFunction {
    Ingest,
    Gate,
    Monitor,
}

/// Builds every deployable artifact: each Lambda as an arm64 `bootstrap`
/// zip for provided.al2023, the training job as an amd64 OCI image (no
/// Docker: a static binary and CA certificates in one layer), and
/// `manifest.json` (artifact → SHA-256 → S3 key) for deploy. Cross-compiles
/// with cargo-zigbuild (installed under target/tools/).
#[derive(Debug, Args)]
pub struct Package {
    /// Where the artifacts go.
    #[arg(long, default_value = "target/package")]
    pub out: PathBuf,
    /// Also push the image to this repository, e.g.
    /// `123456789012.dkr.ecr.us-east-1.amazonaws.com/stockcast-train:TAG` or
    /// `127.0.0.1:5000/stockcast-train:TAG` (plain HTTP for loopback).
    #[arg(long)]
    pub push: Option<String>,
    /// Push what `--out` holds instead of building (with --push).
    #[arg(long, requires = "push")]
    pub no_build: bool,
    /// The registry user for --push (ECR: `AWS`).
    #[arg(long, env = "STOCKCAST_REGISTRY_USER")]
    pub registry_user: Option<String>,
    /// The registry password for --push (ECR: `aws ecr get-login-password`).
    #[arg(long, env = "STOCKCAST_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
}

/// Fetches prices for symbols from a source into the store (raw response
/// first, then merged into curated data), and prints what was added.
/// `alpha-vantage` needs ALPHA_VANTAGE_API_KEY; base URLs can be pointed
/// elsewhere with STOCKCAST_ALPHA_VANTAGE_URL and STOCKCAST_YAHOO_URL.
#[derive(Debug, Args)]
pub struct Ingest {
    /// alpha-vantage, yahoo or sample.
    #[arg(long, value_parser = parse_source)]
    pub source: stockcast::steps::Source,
    /// Also fetch news sentiment from here (alpha-vantage), whatever the
    /// price source is, into curated/<symbol>.sentiment.csv.
    #[arg(long, value_parser = parse_sentiment)]
    pub sentiment: Option<stockcast::steps::SentimentSource>,
    /// Symbols, comma separated (indices like ^GSPC work with yahoo).
    #[arg(long, value_delimiter = ',', value_parser = parse_symbol, required = true)]
    pub symbols: Vec<Symbol>,
    #[command(flatten)]
    pub store: StoreRoot,
    #[command(flatten)]
    pub sample: SampleDir,
}

pub fn parse_source(s: &str) -> Result<stockcast::steps::Source, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("unknown source {s:?}; use alpha-vantage, yahoo or sample"))
}

pub fn parse_sentiment(s: &str) -> Result<stockcast::steps::SentimentSource, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("unknown sentiment source {s:?}; use alpha-vantage"))
}

/// Renders an environment's CloudFormation templates to plain JSON (short
/// tags resolved, byte-for-byte deterministic) and its workflow definitions.
#[derive(Debug, Args)]
pub struct Render {
    #[command(flatten)]
    pub env: EnvName,
    /// Where to write `<env>/<stack>.json`.
    #[arg(long, default_value = "target/rendered")]
    pub out: PathBuf,
}

/// Renders and checks the stacks: the project's own wiring checks, then
/// cfn-lint, checkov and asl-validator (installed on first use). Fails with
/// every finding named.
#[derive(Debug, Args)]
pub struct Check {
    /// Check one environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Check every environment (the default).
    #[arg(long)]
    pub all: bool,
    /// Only the project's own checks (no external validators).
    #[arg(long)]
    pub skip_external: bool,
    /// A project-shaped folder with stacks/ and workflows/ (for fixtures).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
}

/// Estimates an environment's monthly cost from its rendered templates, a
/// workload and the dated price table of its region (stacks/prices/), and
/// prints every line, largest first, the total and the cost per symbol. No
/// free tier is counted unless asked.
#[derive(Debug, Args)]
pub struct Cost {
    #[command(flatten)]
    pub env: EnvName,
    /// Price the environment running a universe of N symbols (its own, cut
    /// to N or grown with made-up company tickers); default: its universe.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub symbols: Option<u32>,
    /// What the environment does in a month (API demand, durations, volumes).
    #[arg(long, default_value = "stacks/workloads/reference.yaml")]
    pub workload: PathBuf,
    /// Also show the free-tier allowances and the totals after them.
    #[arg(long)]
    pub free_tier: bool,
    /// A project-shaped folder with stacks/ and workflows/.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
}

/// Measures the prediction API over loopback: cold start, then p50/p99
/// latency at a fixed request rate (run it with `--release` for real figures).
#[derive(Debug, Args)]
pub struct BenchApi {
    /// Requests per second, in total.
    #[arg(long, default_value_t = 500)]
    pub rps: u32,
    /// How long to keep the rate up.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Keep-alive connections the rate is spread over.
    #[arg(long, default_value_t = 8)]
    pub connections: u32,
    /// The model trained and asked for.
    #[arg(long, default_value = "arima", value_parser = parse_model)]
    pub model: ModelKind,
    /// While the load runs, promote and roll back the model every second in
    /// the served store, and check every answer's version against what was
    /// production within the revalidation interval before it; any error or
    /// stale answer fails the run.
    #[arg(long)]
    pub promotions: bool,
    /// Seconds the server trusts its cache (`serve --revalidate-secs`):
    /// by default 60, as deployed, or 0.25 with --promotions.
    #[arg(long, value_parser = parse_seconds)]
    pub revalidate_secs: Option<f64>,
}

/// Serves the prediction API (the same router as the Lambda) on
/// 127.0.0.1, over the local store or S3.
#[derive(Debug, Args)]
pub struct Serve {
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    #[command(flatten)]
    pub store: StoreRoot,
    /// Seconds a cached model or price series is trusted before
    /// revalidation (fractions allowed: 0.25).
    #[arg(long, default_value_t = 60.0, value_parser = parse_seconds)]
    pub revalidate_secs: f64,
    /// Require this key in `x-api-key` on every route, as API Gateway does
    /// in AWS (a missing or wrong key is its 403 `{"message":"Forbidden"}`).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
}

/// Installs the pinned external tools the tests need (the AWS emulator,
/// validators) into `<target dir>/tools/` and prints where they are.
#[derive(Debug, Args)]
pub struct Tools {}

/// Runs the whole pipeline on this machine (ingest → quality → train →
/// gate → promote) on the bundled sample data, and prints a summary, the
/// wall time, CPU time and peak memory.
#[derive(Debug, Args)]
#[command(mut_arg("root", |root| root.help(
    "The store: a folder (the embedded default) or s3://bucket"
)))]
pub struct Local {
    /// Symbols to run, comma separated (default: every file in --sample).
    #[arg(long, value_delimiter = ',', value_parser = parse_symbol)]
    pub symbols: Vec<Symbol>,
    /// The symbols as a universe instead of --symbols: `synthetic:N` for N
    /// seeded synthetic series (SYN0001…, 4,000 trading days each, ending
    /// today), or a file of one symbol per line whose prices are in --sample.
    #[arg(long, value_name = "synthetic:N|FILE", value_parser = parse_universe, conflicts_with = "symbols")]
    pub universe: Option<Universe>,
    /// The seed of a synthetic universe: the same seed, the same prices.
    #[arg(long, requires = "universe")]
    pub seed: Option<u64>,
    /// Models to train, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = ModelKind::ALL.to_vec(), value_parser = parse_model)]
    pub models: Vec<ModelKind>,
    #[command(flatten)]
    pub store: StoreRoot,
    #[command(flatten)]
    pub sample: SampleDir,
    /// `manual`: a run whose learned candidates pass the gate stages them
    /// and promotes nothing (as the training workflow) until `cargo xtask
    /// approve --root …` promotes every passing candidate or `reject`.
    #[arg(long, default_value = "automatic", value_parser = parse_approval)]
    pub approval: Approval,
    /// Mirror the store into this MLflow tracking server at the end (as
    /// `cargo xtask mlflow` does); a failure is reported, never fatal.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub mlflow: Option<String>,
}

/// Mirrors the store into an MLflow tracking server: one run per pipeline
/// run with a child run per (symbol, model) version (params, metrics per
/// horizon, artifacts, the gate's decision), a registered model
/// `stockcast.<symbol>.<model>` with one version per registry version, and
/// the aliases (production, previous, staging) as the store has them. A
/// second sync writes nothing. Credentials: MLFLOW_TRACKING_USERNAME and
/// MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN.
#[derive(Debug, Args)]
pub struct Mlflow {
    /// The tracking server, e.g. http://127.0.0.1:5000.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: String,
    /// The MLflow experiment (default: stockcast-<env>, or stockcast-local).
    #[arg(long)]
    pub experiment: Option<String>,
    #[command(flatten)]
    pub store: StoreFlags,
}

/// Lists the production version of every (symbol, model) with its backtest
/// metrics beside naive's, and the staged version waiting for approval.
#[derive(Debug, Args)]
pub struct Models {
    #[command(flatten)]
    pub store: StoreRoot,
}

/// Moves a model's production alias back to its previous version (or to
/// --to) and records why.
#[derive(Debug, Args)]
pub struct Rollback {
    #[arg(long, value_parser = parse_symbol)]
    pub symbol: Symbol,
    #[arg(long, value_parser = parse_model)]
    pub model: ModelKind,
    /// The version to go back to (default: the previous production version).
    #[arg(long, value_parser = parse_version)]
    pub to: Option<VersionId>,
    /// Why, recorded with the alias move.
    #[arg(long, default_value = "manual rollback")]
    pub reason: String,
    #[command(flatten)]
    pub store: StoreFlags,
}

/// Where a command finds the store: a folder or bucket (`--root`), or a
/// deployed environment's data bucket (`--env`, reached as the AWS
/// commands reach it).
#[derive(Debug, Args)]
#[command(
    mut_arg("profile", |profile| profile
        .requires("env")
        .help("With --env: a named profile of ~/.aws/config")),
    mut_arg("endpoint_url", |endpoint| endpoint
        .requires("env")
        .help("With --env: send every AWS call to this endpoint (an emulator)")),
)]
pub struct StoreFlags {
    #[command(flatten)]
    pub store: StoreRoot,
    /// A deployed environment instead of --root: its data bucket, with the
    /// AWS credentials of the other AWS commands (profiles, SSO).
    #[arg(long, conflicts_with = "root")]
    pub env: Option<String>,
    #[command(flatten)]
    pub connection: AwsConnection,
}

/// Runs the walk-forward benchmark of PROTOCOL.md on a folder of price files
/// and prints one table per horizon, each model beside the naive baseline.
#[derive(Debug, Args)]
pub struct Backtest {
    /// Folder of `*.csv` price files (date,open,high,low,close,adj_close,volume).
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    /// Models to run, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = ModelKind::ALL.to_vec(), value_parser = parse_model)]
    pub models: Vec<ModelKind>,
    /// Write every forecast here, in the columns of the reference forecasts.csv.
    #[arg(long)]
    pub forecasts: Option<PathBuf>,
    /// Write the metrics, aggregates and timing here as JSON (PROTOCOL §7).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Worker threads; 1 gives the protocol's reference timing.
    #[arg(long)]
    pub threads: Option<usize>,
    /// A reference forecasts.csv whose models are shown beside ours.
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

/// Backtests the feature models offered every feature and only the lagged
/// returns, beside naive: whether the features carry anything.
#[derive(Debug, Args)]
pub struct Ablation {
    /// Folder of `*.csv` price files (and `<name>.sentiment.csv` files).
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    /// Feature models to compare, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![ModelKind::RidgeFeatures, ModelKind::Lstm], value_parser = parse_model)]
    pub models: Vec<ModelKind>,
}

/// Times fit + forecast of every model on 1000-value windows of the sample
/// data and prints a table (one thread).
#[derive(Debug, Args)]
pub struct Bench {
    /// Folder of price files to cut windows from.
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    /// Windows per model.
    #[arg(long, default_value_t = 200)]
    pub windows: usize,
}

/// Runs everything CI runs: formatting, clippy with warnings denied, the
/// stacks' checks, actionlint on .github/workflows, every test and the
/// workflow simulation.
#[derive(Debug, Args)]
pub struct Ci {}

pub fn parse_approval(s: &str) -> Result<Approval, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_owned()))
        .map_err(|_| format!("{s:?} is not automatic or manual"))
}

/// A duration in seconds: finite and not negative, so that
/// `Duration::from_secs_f64` cannot panic on it.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "seconds should be a number in range [0, 86400], but is {s:?}"
        )),
    }
}

/// A symbol flag is checked by the one symbol rule before anything runs.
/// What `--universe` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Universe {
    /// `synthetic:N`: N seeded synthetic series (`stockcast::synthetic`).
    Synthetic { count: usize },
    /// A file of one symbol per line.
    File(PathBuf),
}

/// `synthetic:N` with N ≥ 1, or any other text as a file's path.
pub fn parse_universe(s: &str) -> Result<Universe, String> {
    let Some(count) = s.strip_prefix("synthetic") else {
        return Ok(Universe::File(PathBuf::from(s)));
    };
    let form = "a synthetic universe is synthetic:N, N the number of series (synthetic:50)";
    match count.strip_prefix(':').map(|n| n.trim().parse::<usize>()) {
        Some(Ok(0)) => Err(format!("{form}, but N is 0")),
        Some(Ok(count)) => Ok(Universe::Synthetic { count }),
        _ => Err(format!("{form}, but is {s:?}")),
    }
}

pub fn parse_symbol(s: &str) -> Result<Symbol, String> {
    Symbol::new(s).map_err(|e| e.to_string())
}

pub fn parse_version(s: &str) -> Result<VersionId, String> {
    VersionId::new(s).map_err(|e| e.to_string())
}

pub fn parse_model(s: &str) -> Result<ModelKind, String> {
    s.trim()
        .parse()
        .map_err(|e: stockcast::models::ModelError| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// clap's own consistency checks, which also fail on a `mut_arg` that
    /// names a flag a shared group no longer has.
    #[test]
    fn the_flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_shared_group_keeps_each_commands_own_help_and_alias() {
        let step = Cli::try_parse_from(["xtask", "step", "gate", "--store", "/tmp/s"])
            .expect("--store is --root's alias for step");
        let Command::Step(step) = step.command else {
            panic!("parsed as step");
        };
        assert_eq!(step.store.root, "/tmp/s");
        assert_eq!(step.sample.dir, PathBuf::from("data/sample"));
        let mut cli = Cli::command();
        let local = cli.find_subcommand_mut("local").expect("local");
        let root = local
            .get_arguments()
            .find(|a| a.get_id() == "root")
            .expect("--root");
        assert_eq!(
            root.get_help().map(ToString::to_string).as_deref(),
            Some("The store: a folder (the embedded default) or s3://bucket")
        );
    }

    #[test]
    fn a_universe_is_synthetic_n_or_a_file() {
        assert_eq!(
            parse_universe("synthetic:500"),
            Ok(Universe::Synthetic { count: 500 })
        );
        assert_eq!(
            parse_universe("stacks/universes/sp500.txt"),
            Ok(Universe::File(PathBuf::from("stacks/universes/sp500.txt")))
        );
        for (bad, says) in [
            ("synthetic:0", "but N is 0"),
            ("synthetic:", r#"but is "synthetic:""#),
            ("synthetic:-3", r#"but is "synthetic:-3""#),
            ("synthetic:ten", r#"but is "synthetic:ten""#),
            ("synthetic", r#"but is "synthetic""#),
            ("synthetic50", r#"but is "synthetic50""#),
        ] {
            let error = parse_universe(bad).expect_err(bad);
            assert!(
                error.starts_with("a synthetic universe is synthetic:N") && error.ends_with(says),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn a_universe_excludes_symbols_and_a_seed_needs_a_universe() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["xtask", "local"], args].concat()).map(|cli| match cli.command {
                Command::Local(local) => (local.universe, local.seed),
                _ => unreachable!("parsed as local"),
            })
        };
        assert_eq!(
            parse(&["--universe", "synthetic:10", "--seed", "7"]).expect("parses"),
            (Some(Universe::Synthetic { count: 10 }), Some(7))
        );
        let both =
            parse(&["--universe", "synthetic:10", "--symbols", "AAPL"]).expect_err("refused");
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
        let seed_alone = parse(&["--seed", "7"]).expect_err("refused");
        assert_eq!(
            seed_alone.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }
}
