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

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::models::ModelKind;

/// Where prices come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// The input of a pipeline run (either state machine, or `cargo xtask local`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    pub run_id: String,
    pub env: String,
    pub symbols: Vec<String>,
    pub models: Vec<ModelKind>,
    #[serde(default = "default_horizons")]
    pub horizons: Vec<usize>,
    #[serde(default = "default_source")]
    pub source: Source,
}

fn default_horizons() -> Vec<usize> {
    vec![1, 5, 21]
}

fn default_source() -> Source {
    Source::Sample
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestInput {
    pub run_id: String,
    pub symbol: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestOutput {
    pub symbol: String,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityInput {
    pub run_id: String,
    pub symbols: Vec<String>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityIssue {
    pub symbol: String,
    pub check: QualityCheck,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityOutput {
    pub ok: bool,
    pub issues: Vec<QualityIssue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainInput {
    pub run_id: String,
    pub symbols: Vec<String>,
    pub models: Vec<ModelKind>,
}

/// A version written to the registry, waiting for the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub symbol: String,
    pub model: ModelKind,
    pub version: String,
    pub metrics_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainFailure {
    pub symbol: String,
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
    pub run_id: String,
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
    pub symbol: String,
    pub model: ModelKind,
    pub version: String,
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
    pub run_id: String,
    pub decisions: Vec<Decision>,
    /// Promote `needs_approval` decisions too (after a manual approval).
    #[serde(default)]
    pub approved: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub symbol: String,
    pub model: ModelKind,
    pub version: String,
    pub previous: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromoteOutput {
    pub promoted: Vec<Promotion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyInput {
    pub run_id: String,
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyOutput {
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorOutput {
    pub drift: bool,
    pub metrics: BTreeMap<String, f64>,
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
    #[serde(rename = "Storage.Unavailable")]
    StorageUnavailable,
    #[serde(rename = "Train.Interrupted")]
    TrainInterrupted,
    #[serde(rename = "Train.Failed")]
    TrainFailed,
    #[serde(rename = "Gate.ApprovalRejected")]
    GateApprovalRejected,
    #[serde(rename = "Gate.ApprovalTimeout")]
    GateApprovalTimeout,
}

impl ErrorName {
    pub const ALL: [ErrorName; 11] = [
        ErrorName::VendorThrottled,
        ErrorName::VendorUnavailable,
        ErrorName::VendorUnknownSymbol,
        ErrorName::VendorBadResponse,
        ErrorName::DataQualityFailed,
        ErrorName::StorageConflict,
        ErrorName::StorageUnavailable,
        ErrorName::TrainInterrupted,
        ErrorName::TrainFailed,
        ErrorName::GateApprovalRejected,
        ErrorName::GateApprovalTimeout,
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
            ErrorName::TrainInterrupted => "Train.Interrupted",
            ErrorName::TrainFailed => "Train.Failed",
            ErrorName::GateApprovalRejected => "Gate.ApprovalRejected",
            ErrorName::GateApprovalTimeout => "Gate.ApprovalTimeout",
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
                | ErrorName::TrainInterrupted
        )
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
        } else {
            ErrorName::StorageUnavailable
        };
        StepError::new(name, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = serde_json::from_str::<RunInput>(
            r#"{"run_id":"r1","env":"dev","symbols":[],"models":[],"symbol":"x"}"#,
        );
        assert!(err.is_err());
    }
}
