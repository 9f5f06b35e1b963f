//! The promotion gate: a pure decision from backtest metrics and a policy.
//!
//! A learned model goes live only if, on the same backtest origins, it beats
//! the naive random walk and is at least as good as the current production
//! version, by the policy's margins, with no failures. Baselines (naive,
//! drift) are the yardstick and the fallback the API serves when nothing
//! learned passes, so they are always promoted: refreshing them on newer
//! data never makes anything worse. Every decision carries reasons a person
//! can read.

use crate::config::{Approval, GatePolicy};
use crate::ids::VersionId;
use crate::registry::VersionMetrics;
use crate::steps::Verdict;

/// The outcome for one candidate, before it is tied to a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub metric: Option<f64>,
    pub naive: Option<f64>,
    pub production: Option<f64>,
}

/// Production's score on the candidate's origins, and which version it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductionScore {
    pub version: VersionId,
    /// `None` where production's metric is undefined (or was never
    /// recorded at the gate's horizon).
    pub metric: Option<f64>,
}

pub fn decide(
    policy: &GatePolicy,
    candidate: &VersionMetrics,
    production: Option<&ProductionScore>,
) -> Judgement {
    let mut reasons = Vec::new();
    let verdict = judge(policy, candidate, production, &mut reasons).unwrap_or_else(|why| {
        reasons.push(why);
        Verdict::Reject
    });
    Judgement {
        verdict,
        reasons,
        metric: candidate.metric(policy.metric, policy.horizon),
        naive: candidate.naive_metric(policy.metric, policy.horizon),
        production: production.and_then(|p| p.metric),
    }
}

/// The rules in order: each one passed adds its reason and the next is
/// asked; the first one failed is the rejection's reason.
fn judge(
    policy: &GatePolicy,
    candidate: &VersionMetrics,
    production: Option<&ProductionScore>,
    reasons: &mut Vec<String>,
) -> Result<Verdict, String> {
    let label = format!("{} h{}", policy.metric.name(), policy.horizon);
    if candidate.failures > 0 {
        return Err(format!(
            "{} of {} backtest origins failed; a candidate must have none",
            candidate.failures, candidate.origins
        ));
    }
    let (c, n) = defined_scores(policy, candidate, &label)?;
    if candidate.model.is_baseline() {
        reasons.push(format!(
            "baseline: always servable; {label} {c:.4} (naive {n:.4}), refreshed on the latest data"
        ));
        return Ok(Verdict::Promote);
    }
    reasons.push(beats_naive(policy, &label, c, n)?);
    reasons.push(against_production(policy, &label, c, production)?);
    Ok(match policy.approval {
        Approval::Automatic => Verdict::Promote,
        Approval::Manual => {
            reasons.push("manual approval required".to_owned());
            Verdict::NeedsApproval
        }
    })
}

/// The candidate's and naive's deciding metric, both defined: nothing goes
/// live on a score that cannot be computed, baselines included (a NaN
/// would pass every comparison after).
fn defined_scores(
    policy: &GatePolicy,
    candidate: &VersionMetrics,
    label: &str,
) -> Result<(f64, f64), String> {
    let h = policy.horizon;
    match (
        candidate.metric(policy.metric, h),
        candidate.naive_metric(policy.metric, h),
    ) {
        (Some(c), Some(n)) => Ok((c, n)),
        (metric, naive) => {
            let whose = match (metric, naive) {
                (None, None) => "the candidate's and naive's",
                (None, Some(_)) => "the candidate's",
                _ => "naive's",
            };
            let why = if candidate.has_horizon(h) {
                "undefined (a flat window makes naive's in-sample error, MASE's scale, zero)"
            } else {
                "missing (the backtest did not score this horizon)"
            };
            Err(format!(
                "{whose} {label} is {why}: nothing is promoted on a metric that cannot be computed"
            ))
        }
    }
}

fn beats_naive(policy: &GatePolicy, label: &str, c: f64, n: f64) -> Result<String, String> {
    let over_naive = improvement_pct(n, c);
    if over_naive <= policy.min_improvement_over_naive_pct {
        return Err(format!(
            "{label} {c:.4} does not beat naive {n:.4} by more than {:.2} % ({over_naive:+.2} %)",
            policy.min_improvement_over_naive_pct
        ));
    }
    Ok(format!(
        "{label} {c:.4} < naive {n:.4} by {over_naive:.2} %"
    ))
}

fn against_production(
    policy: &GatePolicy,
    label: &str,
    c: f64,
    production: Option<&ProductionScore>,
) -> Result<String, String> {
    let Some(ProductionScore { version, metric }) = production else {
        return Ok("first version of this model for this symbol".to_owned());
    };
    let Some(p) = *metric else {
        return Ok(format!(
            "production {version} has no defined {label} on these origins: judged against naive alone"
        ));
    };
    let over_production = improvement_pct(p, c);
    if over_production < policy.min_improvement_over_production_pct {
        return Err(format!(
            "loses to production {version} ({label} {p:.4}): {over_production:+.2} %, the policy needs at least {:.2} %",
            policy.min_improvement_over_production_pct
        ));
    }
    Ok(if over_production == 0.0 {
        format!(
            "ties production {version} ({label} {p:.4}) on the same origins: refreshed on newer data"
        )
    } else {
        format!("beats production {version} ({label} {p:.4}) by {over_production:.2} %")
    })
}

/// How much lower `candidate` is than `reference`, in percent of `reference`.
fn improvement_pct(reference: f64, candidate: f64) -> f64 {
    if reference == candidate {
        return 0.0;
    }
    100.0 * (reference - candidate) / reference
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::Protocol;
    use crate::ids::{RunId, Symbol};
    use crate::models::ModelKind;
    use crate::registry::HorizonMetrics;

    fn horizon(mase: f64) -> HorizonMetrics {
        HorizonMetrics {
            horizon: 5,
            n: 96,
            mae: Some(1.0),
            rmse: Some(1.0),
            mape: Some(mase),
            mase: crate::backtest::defined(mase),
            n_dir: 90,
            dir_acc: Some(0.5),
            coverage80: None,
            width80_rel: None,
        }
    }

    fn metrics(model: ModelKind, mase: f64, naive: f64, failures: usize) -> VersionMetrics {
        VersionMetrics {
            symbol: Symbol::from_static("AAPL"),
            model,
            version: VersionId::from_static("v2"),
            run_id: RunId::from_static("r"),
            protocol: Protocol::default(),
            origins: 96,
            first_origin: None,
            last_origin: None,
            data_through: None,
            failures,
            horizons: vec![horizon(mase)],
            naive: vec![horizon(naive)],
        }
    }

    fn check(
        policy: &GatePolicy,
        candidate: VersionMetrics,
        production: Option<f64>,
        verdict: Verdict,
        reason_contains: &str,
    ) {
        let production = production.map(|metric| ProductionScore {
            version: VersionId::from_static("v1"),
            metric: crate::backtest::defined(metric),
        });
        let j = decide(policy, &candidate, production.as_ref());
        assert_eq!(j.verdict, verdict, "{:?}", j.reasons);
        let text = j.reasons.join("; ");
        assert!(
            text.contains(reason_contains),
            "{text:?} should contain {reason_contains:?}"
        );
    }

    #[test]
    fn decisions() {
        let policy = GatePolicy::default();
        let arima = ModelKind::Arima;
        // First model: promoted only if it beats naive.
        check(
            &policy,
            metrics(arima, 2.80, 2.90, 0),
            None,
            Verdict::Promote,
            "first version",
        );
        check(
            &policy,
            metrics(arima, 2.95, 2.90, 0),
            None,
            Verdict::Reject,
            "does not beat naive",
        );
        // Equal to naive is not beating it.
        check(
            &policy,
            metrics(arima, 2.90, 2.90, 0),
            None,
            Verdict::Reject,
            "(+0.00 %)",
        );
        // Beats production.
        check(
            &policy,
            metrics(arima, 2.70, 2.90, 0),
            Some(2.80),
            Verdict::Promote,
            "beats production v1",
        );
        // Loses to production.
        check(
            &policy,
            metrics(arima, 2.85, 2.90, 0),
            Some(2.80),
            Verdict::Reject,
            "loses to production v1",
        );
        // A tie refreshes production under the default margin of 0 …
        check(
            &policy,
            metrics(arima, 2.80, 2.90, 0),
            Some(2.80),
            Verdict::Promote,
            "ties production",
        );
        // … but not when the policy asks for a real improvement.
        let strict = GatePolicy {
            min_improvement_over_production_pct: 1.0,
            ..GatePolicy::default()
        };
        check(
            &strict,
            metrics(arima, 2.80, 2.90, 0),
            Some(2.80),
            Verdict::Reject,
            "at least 1.00 %",
        );
        // Better than production, but by less than the margin.
        check(
            &strict,
            metrics(arima, 2.79, 2.90, 0),
            Some(2.80),
            Verdict::Reject,
            "loses to production",
        );
        // Failures disqualify, whatever the metrics.
        check(
            &policy,
            metrics(arima, 1.0, 2.90, 1),
            None,
            Verdict::Reject,
            "1 of 96 backtest origins failed",
        );
        // Margin over naive.
        let naive_margin = GatePolicy {
            min_improvement_over_naive_pct: 5.0,
            ..GatePolicy::default()
        };
        check(
            &naive_margin,
            metrics(arima, 2.80, 2.90, 0),
            None,
            Verdict::Reject,
            "by more than 5.00 %",
        );
    }

    #[test]
    fn nothing_is_promoted_on_an_undefined_metric() {
        let policy = GatePolicy::default();
        // A flat window: 0/0 for the candidate and naive alike. As a raw
        // NaN it would have passed `c < n` checks written the other way.
        for model in [ModelKind::Arima, ModelKind::Naive, ModelKind::Lstm] {
            check(
                &policy,
                metrics(model, f64::NAN, f64::NAN, 0),
                None,
                Verdict::Reject,
                "the candidate's and naive's MASE h5 is undefined",
            );
        }
        check(
            &policy,
            metrics(ModelKind::Arima, 2.0, f64::NAN, 0),
            None,
            Verdict::Reject,
            "naive's MASE h5 is undefined",
        );
        let mut other_horizon = metrics(ModelKind::Arima, 2.0, 2.9, 0);
        other_horizon.horizons[0].horizon = 21;
        check(&policy, other_horizon, None, Verdict::Reject, "is missing");
        // Production's undefined score does not block a defined candidate.
        check(
            &policy,
            metrics(ModelKind::Arima, 2.7, 2.9, 0),
            Some(f64::NAN),
            Verdict::Promote,
            "judged against naive alone",
        );
    }

    #[test]
    fn baselines_are_always_promoted_and_manual_approval_waits() {
        let policy = GatePolicy::default();
        check(
            &policy,
            metrics(ModelKind::Drift, 3.0, 2.9, 0),
            Some(2.0),
            Verdict::Promote,
            "baseline",
        );
        let manual = GatePolicy {
            approval: Approval::Manual,
            ..GatePolicy::default()
        };
        check(
            &manual,
            metrics(ModelKind::Arima, 2.7, 2.9, 0),
            None,
            Verdict::NeedsApproval,
            "manual approval",
        );
    }
}
