//! What each workflow task does with its event, shared by the deployed
//! binaries (functions/*, jobs/train) and `cargo xtask step`, which runs
//! the same code against a local store for `cargo xtask simulate`.
//!
//! An event is the task's input exactly as the ASL builds it; the result is
//! the JSON the task returns, or a [`StepError`] whose name the workflow's
//! Retry/Catch match. Only what needs an AWS service beyond storage (sending
//! a task token, publishing metrics) stays in the deployed binaries.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::approval;
use crate::config::PipelineConfig;
use crate::ingest::{IngestContext, ingest};
use crate::mlflow::{MirrorTarget, mirror_step};
use crate::monitor::{self, MonitorPolicy};
use crate::promotion;
use crate::registry::Registry;
use crate::secrets::SecretSource;
use crate::steps::{
    ApprovalResult, ErrorName, GateInput, GateRequest, GateSummary, IngestRequest, MonitorInput,
    MonitorOutput, MovedCount, RunDefaults, StepError,
};
use crate::store::Store;
use crate::train;
use crate::vendors::VendorClient;

/// Everything a task needs besides its event; built once per process.
#[derive(Debug, Clone)]
pub struct StepEnv {
    pub store: Store,
    pub config: PipelineConfig,
    pub monitor: MonitorPolicy,
    /// The bundled sample prices (`source: sample`).
    pub sample_dir: PathBuf,
    /// `None`: only the sample source is available.
    pub vendors: Option<VendorClient>,
    /// The MLflow server the mirror step writes to, if the environment names one.
    pub mlflow: Option<MirrorTarget>,
    /// The environment's run defaults (`STOCKCAST_RUN_DEFAULTS`), which
    /// the plan step needs: set on the ingest function only.
    pub run_defaults: Option<RunDefaults>,
}

impl StepEnv {
    /// The deployed environment, from the variables the templates set:
    /// `STOCKCAST_BUCKET`, the gate's `STOCKCAST_GATE_*` and
    /// `STOCKCAST_MLFLOW_*`, and the monitor's `STOCKCAST_DRIFT_MASE_RATIO`.
    /// Vendors are left to the ingest function.
    pub fn from_env() -> Result<StepEnv, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let bucket = required_var("STOCKCAST_BUCKET")?;
        let store = Store::s3(&bucket).map_err(|e| e.to_string())?;
        let mut config = PipelineConfig::default();
        config.gate = crate::config::GatePolicy::from_vars(var)?;
        let mut monitor = MonitorPolicy::default();
        if let Some(ratio) = var("STOCKCAST_DRIFT_MASE_RATIO") {
            monitor.drift_mase_ratio = ratio
                .parse()
                .map_err(|e| format!("STOCKCAST_DRIFT_MASE_RATIO={ratio:?} is invalid: {e}"))?;
        }
        Ok(StepEnv {
            store,
            config,
            monitor,
            sample_dir: PathBuf::from("data/sample"),
            vendors: None,
            mlflow: MirrorTarget::from_vars(var),
            run_defaults: run_defaults_from_env()?,
        })
    }
}

/// The run defaults the stacks render into `STOCKCAST_RUN_DEFAULTS` (JSON);
/// `None` where the variable is not set.
pub fn run_defaults_from_env() -> Result<Option<RunDefaults>, String> {
    match std::env::var("STOCKCAST_RUN_DEFAULTS") {
        Ok(text) if !text.is_empty() => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("STOCKCAST_RUN_DEFAULTS is not valid: {e}")),
        _ => Ok(None),
    }
}

/// A variable the stacks always set on a deployed function or job; its
/// absence is a wiring error, named, never a default.
pub fn required_var(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is not set: the stacks set it on every deployed function"))
}

/// A step error as a Lambda reports it: the name is the `errorType` that
/// the workflow's Retry/Catch match.
#[cfg(feature = "lambda")]
impl From<StepError> for lambda_runtime::Diagnostic {
    fn from(e: StepError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.name.as_str().to_owned(),
            error_message: e.message,
        }
    }
}

/// Sends a person's answer to the waiting workflow (`SendTaskSuccess` /
/// `SendTaskFailure` in AWS).
pub trait ApprovalSender {
    fn send(
        &self,
        task_token: &str,
        result: &ApprovalResult,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// Answers a waiting workflow through the Step Functions API.
#[cfg(feature = "sfn")]
#[derive(Debug, Clone)]
pub struct StepFunctions(aws_sdk_sfn::Client);

#[cfg(feature = "sfn")]
impl StepFunctions {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        StepFunctions(client)
    }
}

#[cfg(feature = "sfn")]
impl ApprovalSender for StepFunctions {
    async fn send(&self, task_token: &str, result: &ApprovalResult) -> Result<(), StepError> {
        let unavailable = |e: &dyn std::error::Error| {
            StepError::new(
                ErrorName::ServiceUnavailable,
                format!("Step Functions did not take the answer: {}", error_chain(e)),
            )
        };
        if result.approved {
            let output = serde_json::to_string(result)
                .map_err(|e| StepError::new(ErrorName::InvalidInput, e.to_string()))?;
            self.0
                .send_task_success()
                .task_token(task_token)
                .output(output)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
        } else {
            self.0
                .send_task_failure()
                .task_token(task_token)
                .error(ErrorName::GateApprovalRejected.as_str())
                .cause(result.rejection_cause())
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
        }
        Ok(())
    }
}

/// An error with its sources, which is where the SDK says what went wrong
/// (its outermost error says only "service error").
#[cfg(any(feature = "sfn", feature = "spend-cap"))]
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// For places with no AWS services (local runs, `cargo xtask step`).
#[derive(Debug, Clone, Copy)]
pub struct NoAws;

impl ApprovalSender for NoAws {
    async fn send(&self, _: &str, _: &ApprovalResult) -> Result<(), StepError> {
        Err(StepError::new(
            ErrorName::InvalidInput,
            "answering an approval needs the deployed workflow: use `cargo xtask approve`",
        ))
    }
}

impl SecretSource for NoAws {
    async fn secret(&self, id: &str) -> Result<String, StepError> {
        Err(StepError::new(
            ErrorName::MlflowRefused,
            format!(
                "the secret {id} is read from AWS Secrets Manager; here, leave STOCKCAST_MLFLOW_SECRET unset and set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            ),
        ))
    }
}

fn parse<T: DeserializeOwned>(event: Value, what: &str) -> Result<T, StepError> {
    serde_json::from_value(event).map_err(|e| {
        StepError::new(
            ErrorName::InvalidInput,
            format!("the event is not a valid {what}: {e}"),
        )
    })
}

fn reply<T: Serialize>(value: &T) -> Result<Value, StepError> {
    serde_json::to_value(value).map_err(|e| StepError::new(ErrorName::InvalidInput, e.to_string()))
}

/// The ingest function: an `IngestInput` fetches one symbol;
/// `{"action":"quality",…}` runs the data checks.
pub async fn ingest_event(env: &StepEnv, mut event: Value) -> Result<Value, StepError> {
    if let Some(map) = event.as_object_mut() {
        map.entry("action").or_insert_with(|| Value::from("ingest"));
    }
    match parse::<IngestRequest>(event, "ingest request")? {
        IngestRequest::Quality(input) => {
            let found = crate::quality::check(
                &env.store,
                &input,
                &env.config.quality,
                env.config.protocol.used_rows(),
                chrono::Utc::now().date_naive(),
            )
            .await?;
            reply(&crate::quality::for_state(found, &input.run_id))
        }
        IngestRequest::Plan(input) => {
            let defaults = env.run_defaults.as_ref().ok_or_else(|| {
                StepError::new(
                    ErrorName::InvalidInput,
                    "STOCKCAST_RUN_DEFAULTS is not set: the stacks set it on the ingest function",
                )
            })?;
            reply(&crate::plan::plan(&env.store, defaults, &input).await?)
        }
        IngestRequest::Ingest(input) => {
            let context = IngestContext {
                store: env.store.clone(),
                sample_dir: env.sample_dir.clone(),
                vendors: env.vendors.clone(),
            };
            reply(&ingest(&context, &input).await?)
        }
    }
}

/// The gate function: evaluate, promote, withdraw, keep an approval's token,
/// answer it, mirror into MLflow. `aws` sends answers and reads secrets.
pub async fn gate_event(
    env: &StepEnv,
    event: Value,
    aws: &(impl ApprovalSender + SecretSource),
) -> Result<Value, StepError> {
    let registry = Registry::new(env.store.clone());
    let event = with_recorded_decisions(&env.store, event).await?;
    match parse::<GateRequest>(event, "gate request")? {
        GateRequest::Evaluate { run_id } => {
            let trained = train::recorded_output(&env.store, &run_id)
                .await?
                .ok_or_else(|| {
                    StepError::new(
                        ErrorName::InvalidInput,
                        format!(
                            "run {run_id} has no {}: the train step has not finished",
                            crate::layout::run_train(&run_id)
                        ),
                    )
                })?;
            let input = GateInput {
                run_id,
                candidates: trained.candidates,
            };
            let decided = promotion::evaluate(&registry, &env.config.gate, &input).await?;
            reply(&GateSummary {
                any_promote: decided.any_promote,
                needs_approval: decided.needs_approval,
                decisions: decided.decisions.len(),
                promote: decided
                    .decisions
                    .iter()
                    .filter(|d| d.decision == crate::steps::Verdict::Promote)
                    .count(),
                decisions_key: crate::layout::decisions(&input.run_id),
            })
        }
        GateRequest::Merge { run_id, shards } => {
            reply(&train::merge(&env.store, &run_id, shards).await?)
        }
        GateRequest::Promote(input) => reply(&MovedCount {
            count: promotion::promote(&registry, &input).await?.promoted.len(),
        }),
        GateRequest::Withdraw(input) => reply(&MovedCount {
            count: promotion::withdraw(&registry, &input)
                .await?
                .withdrawn
                .len(),
        }),
        GateRequest::Mirror { run_id } => {
            reply(&mirror_step(&registry, env.mlflow.as_ref(), aws, &run_id).await?)
        }
        GateRequest::RequestApproval(request) => {
            approval::request(&env.store, &request).await?;
            Ok(Value::Object(Default::default()))
        }
        GateRequest::Answer(answer) => reply(
            &approval::answer(
                &env.store,
                &answer,
                async |token: &str, result: &ApprovalResult| aws.send(token, result).await,
            )
            .await?,
        ),
    }
}

/// Gives a promote, withdraw or request_approval event that has no
/// `decisions` (what the workflows send) the decisions of the gate's record
/// of its run.
async fn with_recorded_decisions(store: &Store, mut event: Value) -> Result<Value, StepError> {
    let needs = matches!(
        event.get("action").and_then(Value::as_str),
        Some("promote" | "withdraw" | "request_approval")
    ) && event.get("decisions").is_none();
    let run_id = event
        .get("run_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (true, Some(run_id), Some(map)) = (needs, run_id, event.as_object_mut()) else {
        return Ok(event);
    };
    let run_id = crate::ids::RunId::new(run_id)
        .map_err(|e| StepError::new(ErrorName::InvalidInput, e.to_string()))?;
    let key = crate::layout::decisions(&run_id);
    let record = store.get(&key).await?.ok_or_else(|| {
        StepError::new(
            ErrorName::RegistryInvalid,
            format!("{key} does not exist: the gate has not evaluated run {run_id}"),
        )
    })?;
    let decided: crate::steps::GateOutput = serde_json::from_slice(&record.bytes).map_err(|e| {
        StepError::new(
            ErrorName::RegistryInvalid,
            format!("{key} is not a decisions record: {e}"),
        )
    })?;
    map.insert(
        "decisions".into(),
        serde_json::to_value(decided.decisions).unwrap_or_default(),
    );
    Ok(event)
}

/// The monitor function: record today's served forecasts, score past ones.
pub async fn monitor_event(env: &StepEnv, event: Value) -> Result<Value, StepError> {
    reply(&monitor_step(env, event).await?)
}

/// The monitor's typed output, for the Lambda that also publishes it.
pub async fn monitor_step(env: &StepEnv, mut event: Value) -> Result<MonitorOutput, StepError> {
    if let Some(map) = event.as_object_mut() {
        map.remove("action");
    }
    let input: MonitorInput = parse(event, "monitor input")?;
    monitor::monitor(
        &env.store,
        &env.config.gate,
        &env.monitor,
        &input,
        chrono::Utc::now().date_naive(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_symbol_that_is_a_path_is_refused_before_anything_is_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sample = dir.path().join("sample");
        std::fs::create_dir_all(&sample).expect("sample folder");
        // A file outside the sample folder that a path-like symbol would reach.
        std::fs::write(
            dir.path().join("IBM.csv"),
            "date,open,high,low,close,adj_close,volume\n",
        )
        .expect("writes");
        let env = StepEnv {
            store: Store::local(&dir.path().join("store")).expect("store"),
            config: PipelineConfig::default(),
            monitor: MonitorPolicy::default(),
            sample_dir: sample,
            vendors: None,
            mlflow: None,
            run_defaults: None,
        };
        let event = serde_json::json!({"run_id": "r", "symbol": "../IBM", "source": "sample"});
        let refused = ingest_event(&env, event).await.expect_err("a path");
        assert_eq!(refused.name, ErrorName::InvalidInput, "{}", refused.message);
        assert!(
            refused
                .message
                .contains("symbol \"../IBM\" has characters other"),
            "{}",
            refused.message
        );
        assert!(env.store.list("raw/").await.expect("lists").is_empty());
    }
}
