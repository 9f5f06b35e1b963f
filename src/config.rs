//! The pipeline's settings: training protocol, quality thresholds and the
//! promotion gate's policy. Environment files (stacks/environments) embed
//! this; `PipelineConfig::default()` is the local default.

use serde::{Deserialize, Serialize};

use crate::backtest::Protocol;

/// Which backtest metric the gate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMetric {
    Mase,
    Mape,
}

impl GateMetric {
    pub fn name(self) -> &'static str {
        match self {
            GateMetric::Mase => "MASE",
            GateMetric::Mape => "MAPE",
        }
    }
}

/// Whether a passing candidate goes live at once or waits for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    Automatic,
    Manual,
}

/// The promotion gate's policy.
///
/// | Name | Default | Purpose |
/// |---|---|---|
/// | `metric` | `mase` | the backtest metric compared (lower is better) |
/// | `horizon` | 5 | the horizon it is compared at |
/// | `min_improvement_over_naive_pct` | 0 | the candidate must be lower than naive by more than this |
/// | `min_improvement_over_production_pct` | 0 | and lower than production by at least this (0: a tie refreshes production) |
/// | `approval` | `automatic` | `manual` waits for `cargo xtask approve` |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatePolicy {
    pub metric: GateMetric,
    pub horizon: usize,
    pub min_improvement_over_naive_pct: f64,
    pub min_improvement_over_production_pct: f64,
    pub approval: Approval,
}

impl Default for GatePolicy {
    fn default() -> Self {
        GatePolicy {
            metric: GateMetric::Mase,
            horizon: 5,
            min_improvement_over_naive_pct: 0.0,
            min_improvement_over_production_pct: 0.0,
            approval: Approval::Automatic,
        }
    }
}

/// Thresholds of the data checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityPolicy {
    /// Calendar days the last close may lag the check date; `None` skips
    /// freshness (the bundled sample data is historical).
    pub max_staleness_days: Option<u32>,
    /// A one-day move whose ratio lies within this fraction of a split
    /// ratio (2:1, 3:1, …, or their inverses) is flagged as an unadjusted split.
    pub split_tolerance: f64,
}

impl Default for QualityPolicy {
    fn default() -> Self {
        QualityPolicy {
            max_staleness_days: None,
            split_tolerance: 0.03,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub quality: QualityPolicy,
    #[serde(default)]
    pub gate: GatePolicy,
}

impl PipelineConfig {
    /// A digest of the settings, recorded in every version's lineage.
    pub fn digest(&self) -> String {
        crate::digest::sha256_hex(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }
}
