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

impl GatePolicy {
    /// The policy from `STOCKCAST_GATE_*` variables (the gate Lambda's
    /// environment, rendered from the environment file's `gate:`); an
    /// unset variable keeps its default, a malformed one is an error.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut policy = GatePolicy::default();
        let field = |name: &str| get(&format!("STOCKCAST_GATE_{name}"));
        fn value<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<T, String> {
            var_value(&format!("STOCKCAST_GATE_{name}"), text)
        }
        if let Some(v) = field("METRIC") {
            policy.metric = value("METRIC", &v)?;
        }
        if let Some(v) = field("HORIZON") {
            policy.horizon = value("HORIZON", &v)?;
        }
        if let Some(v) = field("MIN_IMPROVEMENT_OVER_NAIVE_PCT") {
            policy.min_improvement_over_naive_pct = value("MIN_IMPROVEMENT_OVER_NAIVE_PCT", &v)?;
        }
        if let Some(v) = field("MIN_IMPROVEMENT_OVER_PRODUCTION_PCT") {
            policy.min_improvement_over_production_pct =
                value("MIN_IMPROVEMENT_OVER_PRODUCTION_PCT", &v)?;
        }
        if let Some(v) = field("APPROVAL") {
            policy.approval = value("APPROVAL", &v)?;
        }
        Ok(policy)
    }
}

/// A setting's value from its environment variable's text, or an error that
/// names the variable. Numbers parse as JSON numbers, names as JSON strings,
/// `null` as an absent optional.
fn var_value<T: serde::de::DeserializeOwned>(variable: &str, text: &str) -> Result<T, String> {
    serde_json::from_str(text)
        .or_else(|_| serde_json::from_value(serde_json::Value::String(text.to_owned())))
        .map_err(|e| format!("{variable}={text:?} is invalid: {e}"))
}

/// Thresholds of the data checks. Every field must be written where the
/// policy is read from a file (an environment's `quality:`): a forgotten
/// line must not deploy with freshness off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityPolicy {
    /// Calendar days the last close may lag the check date; `null` skips
    /// freshness (the bundled sample data is historical). Required, `null`
    /// included.
    #[serde(deserialize_with = "Option::deserialize")]
    pub max_staleness_days: Option<u32>,
    /// A one-day move whose ratio lies within this fraction of a split
    /// ratio (2:1, 3:1, …, or their inverses) is flagged as an unadjusted split.
    pub split_tolerance: f64,
    /// Trading days the price may stay exactly unchanged: a longer run at
    /// the end of the series means it has stopped moving (a halted or
    /// pegged instrument, on which every scaled metric is 0/0).
    pub max_unchanged_days: usize,
}

impl QualityPolicy {
    /// The policy from the ingest function's `STOCKCAST_QUALITY_*`
    /// variables, rendered from the environment file's `quality:`. Every
    /// one must be set (the deployed policy is the file's, never a default
    /// the code happens to have); a malformed one names itself.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let field = |name: &str| {
            let variable = format!("STOCKCAST_QUALITY_{name}");
            let text = get(&variable).ok_or_else(|| {
                format!("{variable} is not set: the app stack renders it from the environment file's quality:")
            })?;
            Ok::<_, String>((variable, text))
        };
        let (variable, text) = field("MAX_STALENESS_DAYS")?;
        let max_staleness_days = var_value(&variable, &text)?;
        let (variable, text) = field("SPLIT_TOLERANCE")?;
        let split_tolerance = var_value(&variable, &text)?;
        let (variable, text) = field("MAX_UNCHANGED_DAYS")?;
        let max_unchanged_days = var_value(&variable, &text)?;
        Ok(QualityPolicy {
            max_staleness_days,
            split_tolerance,
            max_unchanged_days,
        })
    }
}

impl Default for QualityPolicy {
    fn default() -> Self {
        QualityPolicy {
            max_staleness_days: None,
            split_tolerance: 0.03,
            max_unchanged_days: 10,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_policy_reads_the_rendered_variables() {
        let vars = |name: &str| match name {
            "STOCKCAST_GATE_METRIC" => Some("mape".to_owned()),
            "STOCKCAST_GATE_HORIZON" => Some("21".to_owned()),
            "STOCKCAST_GATE_MIN_IMPROVEMENT_OVER_NAIVE_PCT" => Some("0.5".to_owned()),
            "STOCKCAST_GATE_APPROVAL" => Some("manual".to_owned()),
            _ => None,
        };
        let policy = GatePolicy::from_vars(vars).expect("parses");
        assert_eq!(policy.metric, GateMetric::Mape);
        assert_eq!(policy.horizon, 21);
        assert_eq!(policy.min_improvement_over_naive_pct, 0.5);
        assert_eq!(policy.min_improvement_over_production_pct, 0.0);
        assert_eq!(policy.approval, Approval::Manual);
        let bad = GatePolicy::from_vars(|n: &str| {
            (n == "STOCKCAST_GATE_HORIZON").then(|| "five".to_owned())
        })
        .expect_err("not a number");
        assert!(bad.contains("STOCKCAST_GATE_HORIZON"), "{bad}");
    }

    #[test]
    fn quality_policy_in_a_file_needs_every_key() {
        let full = "max_staleness_days: null\nsplit_tolerance: 0.03\nmax_unchanged_days: 10\n";
        let policy: QualityPolicy = serde_norway::from_str(full).expect("parses");
        assert_eq!(policy.max_staleness_days, None);
        for missing in ["max_staleness_days", "max_unchanged_days"] {
            let text: String = full
                .lines()
                .filter(|l| !l.starts_with(missing))
                .map(|l| format!("{l}\n"))
                .collect();
            let err = serde_norway::from_str::<QualityPolicy>(&text).expect_err(missing);
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn quality_policy_from_vars_needs_every_variable() {
        let vars = |name: &str| match name {
            "STOCKCAST_QUALITY_MAX_STALENESS_DAYS" => Some("5".to_owned()),
            "STOCKCAST_QUALITY_SPLIT_TOLERANCE" => Some("0.03".to_owned()),
            "STOCKCAST_QUALITY_MAX_UNCHANGED_DAYS" => Some("10".to_owned()),
            _ => None,
        };
        let policy = QualityPolicy::from_vars(vars).expect("valid");
        assert_eq!(policy.max_staleness_days, Some(5));
        assert_eq!(policy.max_unchanged_days, 10);
        let never_stale = QualityPolicy::from_vars(|n: &str| {
            if n == "STOCKCAST_QUALITY_MAX_STALENESS_DAYS" {
                Some("null".to_owned())
            } else {
                vars(n)
            }
        })
        .expect("null is no limit");
        assert_eq!(never_stale.max_staleness_days, None);
        let missing = QualityPolicy::from_vars(|n: &str| {
            (n != "STOCKCAST_QUALITY_SPLIT_TOLERANCE")
                .then(|| vars(n))
                .flatten()
        })
        .expect_err("missing");
        assert!(
            missing.contains("STOCKCAST_QUALITY_SPLIT_TOLERANCE is not set"),
            "{missing}"
        );
        let bad = QualityPolicy::from_vars(|n: &str| {
            if n == "STOCKCAST_QUALITY_MAX_UNCHANGED_DAYS" {
                Some("ten".to_owned())
            } else {
                vars(n)
            }
        })
        .expect_err("malformed");
        assert!(
            bad.contains("STOCKCAST_QUALITY_MAX_UNCHANGED_DAYS=\"ten\""),
            "{bad}"
        );
    }
}
