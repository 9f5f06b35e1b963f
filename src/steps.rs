//! The step contracts: the JSON that passes between workflow states.
//!
//! These types are a wire format shared by the Step Functions definitions,
//! the Lambdas, the Batch job and the local runner. Every state receives the
//! run's object and writes its result under its own key (ResultPath
//! `$.<step>`), so the run id and the symbol list flow through untouched.
//! Fields are only ever added, with defaults; unknown fields are rejected
//! where a person writes the JSON (the run input), and tolerated elsewhere
//! so that Step Functions can pass the whole state object.
//! docs/STEPS.md shows an example of each.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ids::{RunId, Symbol, VersionId};
use crate::models::ModelKind;

/// Where prices come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    AlphaVantage,
    Yahoo,
    /// The bundled files of data/sample (the local default).
    Sample,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::AlphaVantage => "alpha-vantage",
            Source::Yahoo => "yahoo",
            Source::Sample => "sample",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where news sentiment comes from, whatever the price source is
/// (`sentiment:` in an environment file). `None` where it is optional: no
/// news sentiment is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SentimentSource {
    /// Alpha Vantage `NEWS_SENTIMENT`, aggregated per day into
    /// `curated/<symbol>.sentiment.csv`.
    AlphaVantage,
}

impl SentimentSource {
    pub fn name(self) -> &'static str {
        match self {
            SentimentSource::AlphaVantage => "alpha-vantage",
        }
    }
}

impl fmt::Display for SentimentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// EventBridge Scheduler's placeholder for a firing's time, which the
/// schedules of the orchestration stack put in the run id.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

/// A schedule's input as the scheduler sends it when it fires at `at`
/// (`2026-11-27T09:00:00Z`): what the cost model and the tests read.
pub fn as_fired(input: &str, at: &str) -> String {
    input.replace(SCHEDULED_TIME, at)
}

/// The input of a pipeline run (either state machine, or `cargo xtask local`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    pub run_id: RunId,
    pub env: String,
    pub symbols: Vec<Symbol>,
    pub models: Vec<ModelKind>,
    #[serde(default = "default_horizons")]
    pub horizons: Vec<usize>,
    #[serde(default = "default_source")]
    pub source: Source,
    /// Where news sentiment comes from; `null` (or absent): none. Always
    /// present in what the tools build, because the workflows read it by
    /// path.
    #[serde(default)]
    pub sentiment: Option<SentimentSource>,
}

fn default_horizons() -> Vec<usize> {
    vec![1, 5, 21]
}

fn default_source() -> Source {
    Source::Sample
}

/// What a workflow execution is asked to do, as its input says it: every
/// field is optional and overrides the environment's default
/// ([`RunDefaults`]); fields it does not know (the console's `"Comment"`)
/// are ignored. `{}` runs the environment's universe with its defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// Default: the execution's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// Default: the environment's universe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<Symbol>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<ModelKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizons: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Absent: the environment's; `null`: no news sentiment.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub sentiment: Option<Option<SentimentSource>>,
}

/// A field that is present, even as `null`, is `Some` (absent is the
/// `default`, `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// An environment's defaults for a run, rendered from its file into the
/// ingest function (`STOCKCAST_RUN_DEFAULTS`), which plans every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDefaults {
    pub env: String,
    /// `universes/<env>.txt` in the data bucket, written by deploy.
    pub universe_key: String,
    pub models: Vec<ModelKind>,
    pub horizons: Vec<usize>,
    pub source: Source,
    pub sentiment: Option<SentimentSource>,
    /// Symbols ingested at once (from the vendor's rate limit).
    pub ingest_concurrency: u32,
    /// The share of symbols, in %, that may fail at the vendor.
    pub tolerated_failure_percent: f64,
    /// Training jobs the compute environment runs at once.
    pub max_parallel_jobs: usize,
}

/// The plan step's input: the execution's input as it came, and its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    pub execution_name: String,
    #[serde(default)]
    pub request: serde_json::Value,
}

/// A run with every default filled in: what the plan step returns, and
/// the object every later state of both workflows reads. The symbols are in
/// the store (`symbols_key`), never in the state, whatever their number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    pub run_id: RunId,
    pub env: String,
    pub models: Vec<ModelKind>,
    pub horizons: Vec<usize>,
    pub source: Source,
    pub sentiment: Option<SentimentSource>,
    /// `runs/<run_id>/symbols.json`: a JSON array the ingest Map reads.
    pub symbols_key: String,
    pub symbol_count: usize,
    /// The ingest Map's `MaxConcurrencyPath`.
    pub ingest_concurrency: u32,
    /// The ingest Map's `ToleratedFailurePercentagePath`.
    pub tolerated_failure_percent: f64,
    /// Symbols per training shard (one Batch array child each).
    pub shard_size: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestInput {
    pub run_id: RunId,
    pub symbol: Symbol,
    pub source: Source,
    /// Also fetch the symbol's news sentiment from here; absent in inputs
    /// written before the field existed, which fetched none.
    #[serde(default)]
    pub sentiment: Option<SentimentSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestOutput {
    pub symbol: Symbol,
    pub source: Source,
    /// New trading days added to the curated series.
    pub rows_added: usize,
    /// Existing days whose values the vendor corrected.
    pub rows_corrected: usize,
    pub last_date: Option<NaiveDate>,
    /// Where the unparsed response was stored.
    pub raw_key: String,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The data checks' input: the run's symbols inline (the local runner) or
/// by key (the workflows), and which of them failed to ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityInput {
    pub run_id: RunId,
    #[serde(default)]
    pub symbols: Vec<Symbol>,
    /// `runs/<run_id>/symbols.json`, read where `symbols` is empty.
    #[serde(default)]
    pub symbols_key: Option<String>,
    /// The ingest Map's ResultWriter manifest: its FAILED files name the
    /// symbols whose ingestion failed.
    #[serde(default)]
    pub ingest_manifest: Option<String>,
    /// Symbols whose ingestion failed (the local runner's, inline).
    #[serde(default)]
    pub ingest_failed: Vec<IngestFailure>,
    /// Symbols per training shard; the output's `shards` follows from it.
    #[serde(default)]
    pub shard_size: Option<usize>,
}

/// A symbol that could not be ingested, with the error it failed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestFailure {
    pub symbol: Symbol,
    pub error: String,
    #[serde(default)]
    pub cause: String,
}

/// The data checks run before training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityCheck {
    Missing,
    Unreadable,
    Freshness,
    DuplicateDates,
    Order,
    Gaps,
    NonPositive,
    HighLow,
    UnexplainedJump,
    TooShort,
    /// The price has not changed for longer than the policy allows.
    Unchanged,
    /// The vendor did not deliver this run (after the Map's retries).
    IngestFailed,
}

/// What a finding does to its symbol.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// In the rows the models use (the training window and the backtest
    /// region), or about the series as a whole: the symbol is skipped.
    #[default]
    Error,
    /// In older history no model reads: reported, the symbol trains.
    Warning,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityIssue {
    pub symbol: Symbol,
    pub check: QualityCheck,
    pub detail: String,
    #[serde(default)]
    pub severity: Severity,
}

/// The checks' verdict per symbol. A symbol with an error is skipped and
/// the others go on; the run stops only where no symbol passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityOutput {
    /// Every symbol passed (the workflows alert on the skipped otherwise).
    pub ok: bool,
    /// At least one symbol passed: training (or monitoring) goes on with
    /// `passed`; where none did, the run stops.
    #[serde(default)]
    pub any_passed: bool,
    /// The symbols the next steps use, in input order.
    #[serde(default)]
    pub passed: Vec<Symbol>,
    /// The symbols with an error, in input order.
    #[serde(default)]
    pub skipped: Vec<Symbol>,
    /// Every finding (not just the first); in the workflow state, the
    /// errors only, with the warnings counted in `warnings` and listed in
    /// the report at `report_key`.
    pub issues: Vec<QualityIssue>,
    #[serde(default)]
    pub warnings: usize,
    /// `runs/<run_id>/quality.json`: every finding of the run.
    #[serde(default)]
    pub report_key: Option<String>,
    /// How many passed (the state keeps the count and the key, not the list).
    #[serde(default)]
    pub passed_count: usize,
    /// `runs/<run_id>/passed.json`: `passed` as a JSON array, which
    /// training and the monitor read.
    #[serde(default)]
    pub passed_key: Option<String>,
    /// Training shards for the passed symbols (the Batch array's size).
    #[serde(default = "one")]
    pub shards: usize,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainInput {
    pub run_id: RunId,
    /// This shard's symbols.
    pub symbols: Vec<Symbol>,
    pub models: Vec<ModelKind>,
    /// Which shard of the run this is; its output is
    /// `runs/<run_id>/train/shard-<index>.json`.
    #[serde(default = "whole")]
    pub shard: crate::universe::Shard,
}

fn whole() -> crate::universe::Shard {
    crate::universe::Shard::WHOLE
}

/// What the merge step leaves in the state; the candidates themselves are
/// in `runs/<run_id>/train.json`, which the gate reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeOutput {
    pub shards: usize,
    pub candidates: usize,
    pub failures: usize,
    pub train_key: String,
}

/// A version written to the registry, waiting for the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub version: VersionId,
    pub metrics_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainFailure {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutput {
    pub candidates: Vec<Candidate>,
    pub failures: Vec<TrainFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateInput {
    pub run_id: RunId,
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Promote,
    Reject,
    NeedsApproval,
}

/// The gate's decision on one candidate, with the reasons a person reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub version: VersionId,
    pub decision: Verdict,
    pub reasons: Vec<String>,
    /// The candidate's primary metric, naive's and production's on the same origins.
    pub metric: Option<f64>,
    pub naive: Option<f64>,
    pub production: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutput {
    pub decisions: Vec<Decision>,
    pub any_promote: bool,
    pub needs_approval: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromoteInput {
    pub run_id: RunId,
    pub decisions: Vec<Decision>,
    /// Promote `needs_approval` decisions too (after a manual approval).
    #[serde(default)]
    pub approved: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub version: VersionId,
    pub previous: Option<VersionId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromoteOutput {
    pub promoted: Vec<Promotion>,
}

/// What the workflow state keeps of the gate's answers: counts, and where
/// the decisions are. A universe of 500 symbols makes thousands of
/// decisions, past what a state (256 KB) may hold; the next steps read
/// them from `decisions/<run_id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSummary {
    pub any_promote: bool,
    pub needs_approval: bool,
    /// Decisions made, and how many of them promote (or wait for approval).
    pub decisions: usize,
    pub promote: usize,
    pub decisions_key: String,
}

/// How many versions a promote or withdraw step moved (the versions are in
/// each alias's history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedCount {
    pub count: usize,
}

/// Clear the staging of a run's candidates that waited for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithdrawInput {
    pub run_id: RunId,
    pub decisions: Vec<Decision>,
    /// Why, recorded in the cleared staging record (`rejected`, `timed out`).
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithdrawOutput {
    /// The versions whose staging was cleared (those still staged).
    pub withdrawn: Vec<VersionId>,
}

/// What the mirror step did: `mirrored: false` where the environment names
/// no MLflow server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorOutput {
    pub mirrored: bool,
    /// The sync's counts, or why nothing was mirrored.
    pub summary: String,
    /// The MLflow UI page of the run, where there is one.
    pub run_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyInput {
    pub run_id: RunId,
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyOutput {
    pub key: String,
}

/// The ingest Lambda's requests, told apart by `action`; the ingest Map's
/// states send an `IngestInput` without one, which is `ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum IngestRequest {
    Ingest(IngestInput),
    /// The data checks of the run's symbols.
    Quality(QualityInput),
    /// The first state of both workflows: fill the defaults, write the
    /// run's symbol list.
    Plan(PlanInput),
}

/// The gate Lambda's requests, told apart by `action`. The workflows send
/// promote, withdraw and request_approval without `decisions`: the function
/// reads them from the gate's record of the run (`decisions/<run_id>.json`),
/// and answers evaluate, promote and withdraw with counts
/// ([`GateSummary`], [`MovedCount`]), so the state stays small whatever the
/// universe's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum GateRequest {
    /// Decide on the candidates that the run's train step recorded in
    /// `runs/<run_id>/train.json` (the workflow passes only the run id).
    Evaluate {
        run_id: RunId,
    },
    /// Gather the training shards' outputs into `runs/<run_id>/train.json`.
    Merge {
        run_id: RunId,
        shards: usize,
    },
    Promote(PromoteInput),
    /// Clear staging after a rejection or an approval timeout.
    Withdraw(WithdrawInput),
    /// Mirror the store into the environment's MLflow server, if it names one.
    Mirror {
        run_id: RunId,
    },
    /// Keep the workflow's task token until a person answers.
    RequestApproval(ApprovalRequest),
    /// A person's answer, sent to Step Functions with the kept token.
    Answer(ApprovalAnswer),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub run_id: RunId,
    pub task_token: String,
    pub decisions: Vec<Decision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalAnswer {
    pub run_id: RunId,
    pub approve: bool,
    #[serde(default)]
    pub reason: Option<String>,
    /// Who answered, for the record.
    #[serde(default)]
    pub by: Option<String>,
}

/// What the approval state outputs when a person approves
/// (`SendTaskSuccess`); a rejection fails it with `Gate.ApprovalRejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalResult {
    pub approved: bool,
    pub by: Option<String>,
    pub reason: Option<String>,
}

impl ApprovalResult {
    /// The cause a rejection reaches the workflow with (`SendTaskFailure`).
    pub fn rejection_cause(&self) -> String {
        let by = self.by.as_ref().map(|b| format!(" by {b}"));
        let reason = self.reason.as_ref().map(|r| format!(": {r}"));
        format!(
            "rejected{}{}",
            by.unwrap_or_default(),
            reason.unwrap_or_default()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorInput {
    pub run_id: RunId,
    #[serde(default)]
    pub symbols: Vec<Symbol>,
    /// `runs/<run_id>/passed.json`, read where `symbols` is empty.
    #[serde(default)]
    pub symbols_key: Option<String>,
}

/// What the monitor publishes to CloudWatch; a ratio that cannot be
/// computed yet (nothing realised, prices that did not move) is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonitorMetrics {
    pub scored_points: usize,
    /// Model error over naive error on the same points: above 1,
    /// production is worse than doing nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mase_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directional_accuracy: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorOutput {
    /// Whether served forecasts have drifted past the threshold: the daily
    /// workflow then starts a training run.
    pub drift: bool,
    /// Aggregates over every realised forecast in the lookback window.
    pub metrics: MonitorMetrics,
    /// Why drift is or is not declared.
    #[serde(default)]
    pub reason: String,
    /// The forecasts recorded today, one per symbol with a production model.
    #[serde(default)]
    pub recorded: Vec<String>,
}

/// The error names Retry/Catch match, shared by the ASL and the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorName {
    #[serde(rename = "Vendor.Throttled")]
    VendorThrottled,
    #[serde(rename = "Vendor.Unavailable")]
    VendorUnavailable,
    #[serde(rename = "Vendor.UnknownSymbol")]
    VendorUnknownSymbol,
    #[serde(rename = "Vendor.BadResponse")]
    VendorBadResponse,
    #[serde(rename = "Data.QualityFailed")]
    DataQualityFailed,
    #[serde(rename = "Storage.Conflict")]
    StorageConflict,
    /// Storage failed in a way that passes by itself (throttling, a 5xx,
    /// a timeout), after the store's own retries.
    #[serde(rename = "Storage.Unavailable")]
    StorageUnavailable,
    /// Storage refused in a way retrying cannot fix (access denied, no
    /// such bucket, an invalid key).
    #[serde(rename = "Storage.Refused")]
    StorageRefused,
    #[serde(rename = "Train.Interrupted")]
    TrainInterrupted,
    #[serde(rename = "Train.Failed")]
    TrainFailed,
    #[serde(rename = "Gate.ApprovalRejected")]
    GateApprovalRejected,
    #[serde(rename = "Gate.ApprovalTimeout")]
    GateApprovalTimeout,
    /// An AWS service other than storage failed or could not be reached.
    #[serde(rename = "Service.Unavailable")]
    ServiceUnavailable,
    /// The step's input is not what its contract says (a wiring error).
    #[serde(rename = "Step.InvalidInput")]
    InvalidInput,
    /// The MLflow server refused the mirror (credentials, a name over its
    /// limits, an answer that is not MLflow's); retrying cannot help.
    #[serde(rename = "Mlflow.Refused")]
    MlflowRefused,
    /// The store's records do not allow the operation: a version that does
    /// not exist, a record (metrics, a run's train output, an approval, a
    /// served forecast) that cannot be read, nothing to roll back to. A
    /// person has to look; retrying reads the same objects.
    #[serde(rename = "Registry.Invalid")]
    RegistryInvalid,
    /// A stored model could not be loaded or could not forecast.
    #[serde(rename = "Model.Failed")]
    ModelFailed,
    /// A training shard left no output: the run cannot be judged whole.
    #[serde(rename = "Train.Incomplete")]
    TrainIncomplete,
}

impl ErrorName {
    pub const ALL: [ErrorName; 18] = [
        ErrorName::VendorThrottled,
        ErrorName::VendorUnavailable,
        ErrorName::VendorUnknownSymbol,
        ErrorName::VendorBadResponse,
        ErrorName::DataQualityFailed,
        ErrorName::StorageConflict,
        ErrorName::StorageUnavailable,
        ErrorName::StorageRefused,
        ErrorName::TrainInterrupted,
        ErrorName::TrainFailed,
        ErrorName::GateApprovalRejected,
        ErrorName::GateApprovalTimeout,
        ErrorName::ServiceUnavailable,
        ErrorName::InvalidInput,
        ErrorName::MlflowRefused,
        ErrorName::RegistryInvalid,
        ErrorName::ModelFailed,
        ErrorName::TrainIncomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::VendorThrottled => "Vendor.Throttled",
            ErrorName::VendorUnavailable => "Vendor.Unavailable",
            ErrorName::VendorUnknownSymbol => "Vendor.UnknownSymbol",
            ErrorName::VendorBadResponse => "Vendor.BadResponse",
            ErrorName::DataQualityFailed => "Data.QualityFailed",
            ErrorName::StorageConflict => "Storage.Conflict",
            ErrorName::StorageUnavailable => "Storage.Unavailable",
            ErrorName::StorageRefused => "Storage.Refused",
            ErrorName::TrainInterrupted => "Train.Interrupted",
            ErrorName::TrainFailed => "Train.Failed",
            ErrorName::GateApprovalRejected => "Gate.ApprovalRejected",
            ErrorName::GateApprovalTimeout => "Gate.ApprovalTimeout",
            ErrorName::ServiceUnavailable => "Service.Unavailable",
            ErrorName::InvalidInput => "Step.InvalidInput",
            ErrorName::MlflowRefused => "Mlflow.Refused",
            ErrorName::RegistryInvalid => "Registry.Invalid",
            ErrorName::ModelFailed => "Model.Failed",
            ErrorName::TrainIncomplete => "Train.Incomplete",
        }
    }

    /// Whether the workflow retries a step that failed with this error.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorName::VendorThrottled
                | ErrorName::VendorUnavailable
                | ErrorName::StorageConflict
                | ErrorName::StorageUnavailable
                | ErrorName::ServiceUnavailable
                | ErrorName::TrainInterrupted
        )
    }
}

/// The workflow tasks that run stockcast code, and the error names each
/// can return: the ASL's Retry lists exactly the retryable ones, and a
/// Catch takes the rest (a test checks both workflows against this table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// The ingest function with `"action": "plan"`.
    Plan,
    /// The ingest function with an `IngestInput`.
    Ingest,
    /// The ingest function with `"action": "quality"`.
    Quality,
    /// The training job on Batch: its names are in its log and its exit
    /// code; the job definition's RetryStrategy retries an interruption.
    Train,
    /// The gate function with `"action": "merge"`.
    GateMerge,
    GateEvaluate,
    GatePromote,
    GateWithdraw,
    GateMirror,
    GateRequestApproval,
    Monitor,
}

impl Task {
    pub const ALL: [Task; 11] = [
        Task::Plan,
        Task::Ingest,
        Task::Quality,
        Task::Train,
        Task::GateMerge,
        Task::GateEvaluate,
        Task::GatePromote,
        Task::GateWithdraw,
        Task::GateMirror,
        Task::GateRequestApproval,
        Task::Monitor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::Plan => "plan",
            Task::Ingest => "ingest",
            Task::Quality => "quality",
            Task::Train => "train (Batch job)",
            Task::GateMerge => "gate merge",
            Task::GateEvaluate => "gate evaluate",
            Task::GatePromote => "gate promote",
            Task::GateWithdraw => "gate withdraw",
            Task::GateMirror => "gate mirror",
            Task::GateRequestApproval => "gate request_approval",
            Task::Monitor => "monitor",
        }
    }

    /// Every error name the task can return.
    pub fn errors(self) -> &'static [ErrorName] {
        use ErrorName::*;
        match self {
            // The vendor's answers; the Alpha Vantage key is read through
            // the secrets extension (Service.Unavailable when it is down).
            Task::Ingest => &[
                InvalidInput,
                VendorThrottled,
                VendorUnavailable,
                VendorUnknownSymbol,
                VendorBadResponse,
                ServiceUnavailable,
                StorageConflict,
                StorageUnavailable,
                StorageRefused,
            ],
            // Reads the universe, writes the run's symbol list; like every
            // write below that a re-run repeats, a compare-and-swap that
            // retries itself on a conflict (`Store::update_with`).
            Task::Plan => &[InvalidInput, StorageUnavailable, StorageRefused],
            // Reads the series and the ingest Map's results; writes its
            // report and the passed list.
            Task::Quality => &[
                InvalidInput,
                RegistryInvalid,
                StorageUnavailable,
                StorageRefused,
            ],
            Task::Train => &[
                InvalidInput,
                RegistryInvalid,
                TrainInterrupted,
                TrainFailed,
                StorageConflict,
                StorageUnavailable,
                StorageRefused,
            ],
            // A shard without output fails the run; production is untouched.
            Task::GateMerge => &[
                InvalidInput,
                RegistryInvalid,
                TrainIncomplete,
                StorageConflict,
                StorageUnavailable,
                StorageRefused,
            ],
            // A candidate whose metrics cannot be read is rejected, not an
            // error; staging and the decisions record are compare-and-swap.
            Task::GateEvaluate => &[
                InvalidInput,
                RegistryInvalid,
                StorageConflict,
                StorageUnavailable,
                StorageRefused,
            ],
            Task::GatePromote | Task::GateWithdraw => &[
                InvalidInput,
                RegistryInvalid,
                StorageConflict,
                StorageUnavailable,
                StorageRefused,
            ],
            // Reads the store, writes only to MLflow.
            Task::GateMirror => &[
                InvalidInput,
                MlflowRefused,
                ServiceUnavailable,
                RegistryInvalid,
                StorageUnavailable,
                StorageRefused,
            ],
            // The state also fails with the answer a person sends back with
            // the token (SendTaskFailure).
            Task::GateRequestApproval => &[
                InvalidInput,
                RegistryInvalid,
                GateApprovalRejected,
                StorageConflict,
                StorageUnavailable,
                StorageRefused,
            ],
            // CloudWatch takes the metrics (Service.Unavailable when it
            // does not); a production model that cannot forecast.
            // Curated prices that cannot be read stop the scoring.
            Task::Monitor => &[
                InvalidInput,
                RegistryInvalid,
                DataQualityFailed,
                ModelFailed,
                ServiceUnavailable,
                StorageConflict,
                StorageUnavailable,
                StorageRefused,
            ],
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step's failure as the workflow sees it: a stable name and a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{name}: {message}")]
pub struct StepError {
    pub name: ErrorName,
    pub message: String,
}

impl StepError {
    pub fn new(name: ErrorName, message: impl Into<String>) -> Self {
        StepError {
            name,
            message: message.into(),
        }
    }
}

impl From<crate::store::StoreError> for StepError {
    fn from(e: crate::store::StoreError) -> Self {
        let name = if e.is_conflict() {
            ErrorName::StorageConflict
        } else if e.is_transient() {
            ErrorName::StorageUnavailable
        } else {
            ErrorName::StorageRefused
        };
        StepError::new(name, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("valid date")
    }

    /// An example's JSON, and whether that JSON reads back as the value.
    struct Example {
        json: String,
        reads_back: bool,
    }

    fn to<T>(value: &T) -> Example
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq,
    {
        let json = serde_json::to_string_pretty(value).unwrap_or_default();
        let reads_back = serde_json::from_str::<T>(&json).is_ok_and(|back| back == *value);
        Example { json, reads_back }
    }

    /// One example of every contract, in workflow order: the source of docs/STEPS.md.
    fn examples() -> Vec<(&'static str, Example)> {
        let candidate = Candidate {
            symbol: Symbol::from_static("AAPL"),
            model: ModelKind::Arima,
            version: VersionId::from_static("20261127T090312.114Z-3fa2c1"),
            metrics_key: "models/AAPL/arima/versions/20261127T090312.114Z-3fa2c1/metrics.json"
                .into(),
        };
        let decision = Decision {
            symbol: Symbol::from_static("AAPL"),
            model: ModelKind::Arima,
            version: candidate.version.clone(),
            decision: Verdict::Promote,
            reasons: vec![
                "MASE h5 2.7100 < naive 2.8000 by 3.21 %".into(),
                "beats production 20261120T090301.002Z-aa01b2 (MASE h5 2.7500) by 1.45 %".into(),
            ],
            metric: Some(2.71),
            naive: Some(2.8),
            production: Some(2.75),
        };
        vec![
            (
                "run input (state machine input, `cargo xtask local`)",
                to(&RunInput {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    env: "dev".into(),
                    symbols: vec![Symbol::from_static("AAPL"), Symbol::from_static("^GSPC")],
                    models: vec![ModelKind::Naive, ModelKind::Drift, ModelKind::LinregLag5, ModelKind::Arima],
                    horizons: vec![1, 5, 21],
                    source: Source::Yahoo,
                    sentiment: Some(SentimentSource::AlphaVantage),
                }),
            ),
            (
                "plan input (the first state of both workflows: the execution's input as it came)",
                to(&PlanInput {
                    execution_name: "2026-11-27T09-00-00Z-training".into(),
                    request: serde_json::json!({"Comment": "Insert your JSON here"}),
                }),
            ),
            (
                "run request (what an execution's input may say; every field optional, unknown fields ignored)",
                to(&RunRequest {
                    symbols: Some(vec![Symbol::from_static("AAPL"), Symbol::from_static("^GSPC")]),
                    models: Some(vec![ModelKind::Naive, ModelKind::Arima]),
                    sentiment: Some(None),
                    ..RunRequest::default()
                }),
            ),
            (
                "run defaults (STOCKCAST_RUN_DEFAULTS on the ingest function, from the environment file)",
                to(&RunDefaults {
                    env: "dev".into(),
                    universe_key: "universes/dev.txt".into(),
                    models: vec![ModelKind::Naive, ModelKind::Drift, ModelKind::Arima],
                    horizons: vec![1, 5, 21],
                    source: Source::Yahoo,
                    sentiment: None,
                    ingest_concurrency: 1,
                    tolerated_failure_percent: 10.0,
                    max_parallel_jobs: 4,
                }),
            ),
            (
                "run plan (the plan's output: the state every later step reads)",
                to(&RunPlan {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    env: "dev".into(),
                    models: vec![ModelKind::Naive, ModelKind::Drift, ModelKind::Arima],
                    horizons: vec![1, 5, 21],
                    source: Source::Yahoo,
                    sentiment: None,
                    symbols_key: "runs/2026-11-27T09-00-00Z-training/symbols.json".into(),
                    symbol_count: 503,
                    ingest_concurrency: 1,
                    tolerated_failure_percent: 10.0,
                    shard_size: 126,
                }),
            ),
            (
                "ingest input",
                to(&IngestInput {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    symbol: Symbol::from_static("AAPL"),
                    source: Source::Yahoo,
                    sentiment: Some(SentimentSource::AlphaVantage),
                }),
            ),
            (
                "ingest output",
                to(&IngestOutput {
                    symbol: Symbol::from_static("AAPL"),
                    source: Source::Yahoo,
                    rows_added: 3,
                    rows_corrected: 1,
                    last_date: Some(date("2026-11-26")),
                    raw_key: "raw/yahoo/AAPL/2026-11-27/8c1f0e5b2a7d4c19.json".into(),
                    warnings: vec!["2026-11-24: the source corrected this day's values; the correction was applied".into()],
                }),
            ),
            (
                "quality input",
                to(&QualityInput {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    symbols: vec![],
                    symbols_key: Some("runs/2026-11-27T09-00-00Z-training/symbols.json".into()),
                    ingest_manifest: Some("runs/2026-11-27T09-00-00Z-training/ingest/0f0e…/manifest.json".into()),
                    ingest_failed: vec![],
                    shard_size: Some(126),
                }),
            ),
            (
                "quality output (the workflow state's: errors, and the warnings counted; runs/<run_id>/quality.json has every finding)",
                to(&QualityOutput {
                    ok: false,
                    any_passed: true,
                    passed: vec![Symbol::from_static("AAPL")],
                    skipped: vec![Symbol::from_static("IBM")],
                    issues: vec![
                        QualityIssue {
                            symbol: Symbol::from_static("IBM"),
                            check: QualityCheck::DuplicateDates,
                            detail: "row 8121: date 2026-11-24 appears twice".into(),
                            severity: Severity::Error,
                        },
                    ],
                    warnings: 1,
                    report_key: Some("runs/2026-11-27T09-00-00Z-training/quality.json".into()),
                    passed_count: 1,
                    passed_key: Some("runs/2026-11-27T09-00-00Z-training/passed.json".into()),
                    shards: 1,
                }),
            ),
            (
                "train input",
                to(&TrainInput {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    symbols: vec![Symbol::from_static("AAPL")],
                    models: vec![ModelKind::Naive, ModelKind::Arima],
                    shard: crate::universe::Shard { index: 0, count: 4 },
                }),
            ),
            (
                "gate request: merge (gathers runs/<run_id>/train/shard-<n>.json into train.json)",
                to(&GateRequest::Merge { run_id: RunId::from_static("2026-11-27T09-00-00Z-training"), shards: 4 }),
            ),
            (
                "merge output",
                to(&MergeOutput {
                    shards: 4,
                    candidates: 4520,
                    failures: 7,
                    train_key: "runs/2026-11-27T09-00-00Z-training/train.json".into(),
                }),
            ),
            (
                "train output",
                to(&TrainOutput {
                    candidates: vec![candidate.clone()],
                    failures: vec![TrainFailure {
                        symbol: Symbol::from_static("AAPL"),
                        model: ModelKind::LinregLag5,
                        reason: "fitting on the latest window failed: linreg_lag5 could not be estimated: Matrix is non-invertible".into(),
                    }],
                }),
            ),
            (
                "gate input",
                to(&GateInput {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    candidates: vec![candidate.clone()],
                }),
            ),
            (
                "gate output",
                to(&GateOutput {
                    decisions: vec![decision.clone()],
                    any_promote: true,
                    needs_approval: false,
                }),
            ),
            (
                "promote input",
                to(&PromoteInput {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    decisions: vec![decision],
                    approved: false,
                }),
            ),
            (
                "promote output",
                to(&PromoteOutput {
                    promoted: vec![Promotion {
                        symbol: Symbol::from_static("AAPL"),
                        model: ModelKind::Arima,
                        version: candidate.version.clone(),
                        previous: Some(VersionId::from_static("20261120T090301.002Z-aa01b2")),
                    }],
                }),
            ),
            (
                "notify input",
                to(&NotifyInput {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    subject: "stockcast dev: training promoted 1 model".into(),
                    message: "AAPL arima 20261127T090312.114Z-3fa2c1: MASE h5 2.7100 < naive 2.8000 by 3.21 %".into(),
                }),
            ),
            (
                "gate request: evaluate (the candidates are read from runs/<run_id>/train.json)",
                to(&GateRequest::Evaluate { run_id: RunId::from_static("2026-11-27T09-00-00Z-training") }),
            ),
            (
                "gate request: withdraw (after a rejection or an approval timeout: clears staging)",
                to(&GateRequest::Withdraw(WithdrawInput {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    decisions: vec![],
                    reason: "rejected".into(),
                })),
            ),
            (
                "withdraw output",
                to(&WithdrawOutput { withdrawn: vec![candidate.version.clone()] }),
            ),
            (
                "gate request: mirror (into the environment's MLflow server, when it names one)",
                to(&GateRequest::Mirror { run_id: RunId::from_static("2026-11-27T09-00-00Z-training") }),
            ),
            (
                "mirror output",
                to(&MirrorOutput {
                    mirrored: true,
                    summary: "created 0 experiment(s), 3 run(s) (0 resumed), 0 registered model(s), 2 version(s); logged 40 params, 96 metrics, 10 artifacts; set 1 alias(es), removed 0".into(),
                    run_url: Some("https://mlflow.example.com/#/experiments/1/runs/5f2c…".into()),
                }),
            ),
            (
                "gate request: request_approval (.waitForTaskToken)",
                to(&GateRequest::RequestApproval(ApprovalRequest {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    task_token: "AQCEAAAAKgAAAAMAAAAA…".into(),
                    decisions: vec![],
                })),
            ),
            (
                "gate request: answer (`cargo xtask approve`; sends the kept token to Step Functions)",
                to(&GateRequest::Answer(ApprovalAnswer {
                    run_id: RunId::from_static("2026-11-27T09-00-00Z-training"),
                    approve: true,
                    reason: Some("checked the plots".into()),
                    by: Some("alice".into()),
                })),
            ),
            (
                "approval result (the approval state's output)",
                to(&ApprovalResult { approved: true, by: Some("alice".into()), reason: Some("checked the plots".into()) }),
            ),
            (
                "monitor input",
                to(&MonitorInput {
                    run_id: RunId::from_static("2026-11-28T09-00-00Z-daily"),
                    symbols: vec![],
                    symbols_key: Some("runs/2026-11-28T09-00-00Z-daily/passed.json".into()),
                }),
            ),
            (
                "monitor output",
                to(&MonitorOutput {
                    drift: false,
                    metrics: MonitorMetrics { scored_points: 240, mase_ratio: Some(1.02), directional_accuracy: Some(0.51) },
                    reason: "MASE ratio 1.0200 over 240 realised forecasts is within the threshold 1.20".into(),
                    recorded: vec!["forecasts/AAPL/2026-11-27.json".into()],
                }),
            ),
            (
                "step error (a Lambda's errorType / a Batch exit reason)",
                to(&StepError::new(ErrorName::VendorThrottled, "alpha-vantage: the API rate limit was reached")),
            ),
        ]
    }

    fn render_steps_doc() -> String {
        let mut out = String::from(
            "# Step contracts\n\n\
             The JSON each workflow state reads and writes, generated from the types in `src/steps.rs` \
             by the test `steps_doc_is_current` (`UPDATE_EXPECT=1 cargo test steps_doc` rewrites this file).\n\
             Every state writes its result under its own key (`ResultPath: $.<step>`), so the run input flows through.\n\n\
             Error names (`errorType` of a Lambda, the reason of a Batch job) that Retry/Catch match: ",
        );
        let names: Vec<String> = ErrorName::ALL
            .iter()
            .map(|n| format!("`{n}`{}", if n.is_retryable() { " (retried)" } else { "" }))
            .collect();
        out.push_str(&names.join(", "));
        out.push_str(".\n\n| task | can return |\n|---|---|\n");
        for task in Task::ALL {
            let names: Vec<String> = task.errors().iter().map(|n| format!("`{n}`")).collect();
            out.push_str(&format!("| {} | {} |\n", task.name(), names.join(", ")));
        }
        for (title, example) in examples() {
            let json = example.json;
            out.push_str(&format!("\n## {title}\n\n```json\n{json}\n```\n"));
        }
        out
    }

    #[test]
    fn steps_doc_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/STEPS.md");
        let expected = render_steps_doc();
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&path, &expected).expect("writes docs/STEPS.md");
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/STEPS.md is out of date: run `UPDATE_EXPECT=1 cargo test steps_doc` and commit"
        );
    }

    #[test]
    fn examples_deserialise_back() {
        let examples = examples();
        assert!(examples.len() > 20, "every contract has an example");
        for (title, example) in examples {
            assert!(example.reads_back, "{title}: {}", example.json);
        }
    }

    #[test]
    fn an_ingest_input_without_sentiment_still_parses_and_fetches_none() {
        let old: IngestInput =
            serde_json::from_str(r#"{"run_id":"r","symbol":"IBM","source":"alpha-vantage"}"#)
                .expect("parses");
        assert_eq!(old.sentiment, None);
        let new: IngestInput = serde_json::from_str(
            r#"{"run_id":"r","symbol":"IBM","source":"yahoo","sentiment":"alpha-vantage"}"#,
        )
        .expect("parses");
        assert_eq!(new.sentiment, Some(SentimentSource::AlphaVantage));
        assert!(
            serde_json::from_str::<IngestInput>(
                r#"{"run_id":"r","symbol":"IBM","source":"yahoo","sentiment":"yahoo"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn error_names_serialise_as_the_asl_names() {
        for name in ErrorName::ALL {
            assert_eq!(
                serde_json::to_string(&name).expect("serialises"),
                format!("\"{}\"", name.as_str())
            );
        }
    }

    #[test]
    fn run_input_rejects_unknown_fields_and_defaults_the_rest() {
        let input: RunInput = serde_json::from_str(
            r#"{"run_id":"r1","env":"dev","symbols":["AAPL"],"models":["naive","arima"]}"#,
        )
        .expect("parses");
        assert_eq!(input.horizons, vec![1, 5, 21]);
        assert_eq!(input.source, Source::Sample);
        assert_eq!(input.sentiment, None);
        let err = serde_json::from_str::<RunInput>(
            r#"{"run_id":"r1","env":"dev","symbols":[],"models":[],"symbol":"x"}"#,
        );
        assert!(err.is_err());
    }
}
