//! A workload file (stacks/workloads/*.yaml): what one environment does in a
//! month that the templates cannot say: API demand, how long each call
//! takes, how much is stored and logged, which custom metrics the code
//! publishes.
//!
//! How often the pipelines run is deliberately absent: it comes from the
//! rendered schedules, and how many Lambda calls, state transitions, child
//! executions and Batch tasks a run makes comes from the state machine
//! definitions (see `path.rs` and `usage.rs`). So is the number of symbols:
//! it is the universe the estimate is made for, and what grows with it is
//! given here per symbol (CPU per fit and model, stored GB, S3 requests per
//! symbol in a run). Resources are named by their logical ids; a name the
//! templates do not have, or a resource the workload does not describe, is
//! an error.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CostError;
use crate::infra::file;
use crate::models::ModelKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub description: String,
    pub api: ApiWorkload,
    /// Average billed duration of one invocation, ms, by function logical id.
    pub lambda_ms: BTreeMap<String, f64>,
    /// Billed ms a call adds for each symbol of its run, by function logical
    /// id and the call's `action` (its payload's): the calls that handle
    /// every symbol of a run at once (the data checks, the monitor, the
    /// gate), which take longer as the universe grows.
    #[serde(default)]
    pub lambda_ms_per_symbol: BTreeMap<String, BTreeMap<String, f64>>,
    pub training: TrainingWorkload,
    pub storage: StorageWorkload,
    pub logs: LogsWorkload,
    /// Metrics the code publishes (the templates only alarm on them).
    pub custom_metrics: Vec<CustomMetric>,
    /// SNS publishes a month (pipeline notifications and alarm state changes).
    pub notifications_per_month: f64,
    /// Requests to the customer managed KMS key, if the templates have one.
    pub kms_requests_per_month: f64,
    /// What one vendor request adds to the call that sends it, beyond the
    /// price request that `lambda_ms` and `storage` count. Needed only
    /// where the templates send such requests (news sentiment).
    #[serde(default)]
    pub vendor_requests: BTreeMap<ExtraRequest, ExtraRequestWorkload>,
    /// The file it was read from, for error messages.
    #[serde(skip)]
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiWorkload {
    pub requests_per_month: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingWorkload {
    /// CPU milliseconds of one fit and forecast on one thread, by model:
    /// a training task spends this for every fit of the protocol (the
    /// backtest origins and the latest window) of every symbol it trains,
    /// for every model of the run and naive; its wall time is the sum
    /// divided by the job definition's vCPUs.
    pub cpu_ms_per_fit: BTreeMap<ModelKind, f64>,
    /// Discount of Spot capacity from the on-demand list price, percent.
    pub spot_discount_pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageWorkload {
    /// By bucket logical id.
    pub s3: BTreeMap<String, BucketWorkload>,
    /// GB stored, by repository logical id.
    pub ecr_gb: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketWorkload {
    /// GB in S3 Standard (current and noncurrent versions).
    #[serde(default)]
    pub standard_gb: f64,
    /// GB the bucket's lifecycle rules have moved to their storage class.
    #[serde(default)]
    pub archived_gb: f64,
    #[serde(default)]
    pub put_requests: f64,
    #[serde(default)]
    pub get_requests: f64,
    /// Objects moved by lifecycle rules a month.
    #[serde(default)]
    pub lifecycle_transitions: f64,
    /// What each symbol of the universe adds to the figures above.
    #[serde(default)]
    pub per_symbol: SymbolBucketWorkload,
}

/// What one symbol of the universe adds to a bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolBucketWorkload {
    #[serde(default)]
    pub standard_gb: f64,
    #[serde(default)]
    pub archived_gb: f64,
    /// What one symbol adds to one execution of a state machine, by its
    /// logical id: the requests of the steps that handle it (the ingest
    /// Map's child, the data checks, the training task, the gate), and the
    /// objects it leaves for the lifecycle to move.
    #[serde(default)]
    pub per_run: BTreeMap<String, SymbolRunRequests>,
}

/// Requests and archived objects of one symbol in one execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolRunRequests {
    #[serde(default)]
    pub put_requests: f64,
    #[serde(default)]
    pub get_requests: f64,
    #[serde(default)]
    pub lifecycle_transitions: f64,
}

/// KB written to CloudWatch Logs per event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsWorkload {
    pub kb_per_lambda_invocation: f64,
    pub kb_per_api_request: f64,
    pub kb_per_batch_job: f64,
    pub kb_per_execution: f64,
}

/// A vendor request an ingest call sends besides its prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraRequest {
    /// News sentiment (`sentiment:` in the environment file).
    NewsSentiment,
}

impl std::fmt::Display for ExtraRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExtraRequest::NewsSentiment => "news_sentiment",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraRequestWorkload {
    /// Billed ms the request adds to the call (the request, its parse, the writes).
    pub lambda_ms: f64,
    /// S3 writes per request (the raw response, the merged file).
    pub s3_put_requests: f64,
    /// S3 reads per request (the merged file, before its compare-and-swap).
    pub s3_get_requests: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomMetric {
    pub namespace: String,
    pub name: String,
    /// The function (logical id) that publishes it, once per invocation:
    /// the metric is billed for the hours in which that function runs.
    pub published_by: String,
}

impl Workload {
    pub fn load(path: &Path) -> Result<Self, CostError> {
        let (file, text) = file::read(path)?;
        Self::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Self, CostError> {
        let mut workload: Workload = file::parse_yaml(file, text, Workload::validate)?;
        workload.file = file.to_owned();
        Ok(workload)
    }

    /// Every number is finite and non-negative; percentages are percentages.
    fn validate(&self) -> Result<(), String> {
        let mut numbers: Vec<(String, f64)> = vec![
            ("api.requests_per_month".into(), self.api.requests_per_month),
            (
                "logs.kb_per_lambda_invocation".into(),
                self.logs.kb_per_lambda_invocation,
            ),
            (
                "logs.kb_per_api_request".into(),
                self.logs.kb_per_api_request,
            ),
            ("logs.kb_per_batch_job".into(), self.logs.kb_per_batch_job),
            ("logs.kb_per_execution".into(), self.logs.kb_per_execution),
            (
                "notifications_per_month".into(),
                self.notifications_per_month,
            ),
            ("kms_requests_per_month".into(), self.kms_requests_per_month),
        ];
        numbers.extend(
            self.lambda_ms
                .iter()
                .map(|(id, ms)| (format!("lambda_ms.{id}"), *ms)),
        );
        for (id, actions) in &self.lambda_ms_per_symbol {
            numbers.extend(
                (actions.iter())
                    .map(|(action, ms)| (format!("lambda_ms_per_symbol.{id}.{action}"), *ms)),
            );
        }
        numbers.extend(
            self.storage
                .ecr_gb
                .iter()
                .map(|(id, gb)| (format!("storage.ecr_gb.{id}"), *gb)),
        );
        numbers.extend(
            (self.training.cpu_ms_per_fit.iter())
                .map(|(model, ms)| (format!("training.cpu_ms_per_fit.{}", model.name()), *ms)),
        );
        for (id, b) in &self.storage.s3 {
            for (field, v) in [
                ("standard_gb", b.standard_gb),
                ("archived_gb", b.archived_gb),
                ("put_requests", b.put_requests),
                ("get_requests", b.get_requests),
                ("lifecycle_transitions", b.lifecycle_transitions),
                ("per_symbol.standard_gb", b.per_symbol.standard_gb),
                ("per_symbol.archived_gb", b.per_symbol.archived_gb),
            ] {
                numbers.push((format!("storage.s3.{id}.{field}"), v));
            }
            for (machine, r) in &b.per_symbol.per_run {
                for (field, v) in [
                    ("put_requests", r.put_requests),
                    ("get_requests", r.get_requests),
                    ("lifecycle_transitions", r.lifecycle_transitions),
                ] {
                    let key = format!("storage.s3.{id}.per_symbol.per_run.{machine}.{field}");
                    numbers.push((key, v));
                }
            }
        }
        for (request, w) in &self.vendor_requests {
            for (field, v) in [
                ("lambda_ms", w.lambda_ms),
                ("s3_put_requests", w.s3_put_requests),
                ("s3_get_requests", w.s3_get_requests),
            ] {
                numbers.push((format!("vendor_requests.{request}.{field}"), v));
            }
        }
        for (key, v) in numbers {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "{key}: should be a non-negative number, but is {v}"
                ));
            }
        }
        let discount = self.training.spot_discount_pct;
        if !(0.0..100.0).contains(&discount) {
            return Err(format!(
                "training.spot_discount_pct: should be in range [0, 100), but is {discount}"
            ));
        }
        Ok(())
    }
}
