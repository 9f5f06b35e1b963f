//! The gate's steps against the registry: `evaluate` (decide, with
//! reasons, record the decisions, and stage what waits for approval),
//! `promote` (move the aliases) and `withdraw` (clear staging after a
//! rejection or a timeout).

use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use crate::config::GatePolicy;
use crate::gate::{self, ProductionScore};
use crate::ids::RunId;
use crate::layout;
use crate::registry::{Registry, RegistryError, VersionMetrics, pretty_json};
use crate::steps::{
    Candidate, Decision, ErrorName, GateInput, GateOutput, PromoteInput, PromoteOutput, StepError,
    Verdict, WithdrawInput, WithdrawOutput,
};

impl From<RegistryError> for StepError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Store(s) => s.into(),
            other => StepError::new(ErrorName::RegistryInvalid, other.to_string()),
        }
    }
}

/// Candidates read or moved at once. Each candidate is a handful of small
/// reads (its metrics, production's alias, metrics and lineage) or one
/// alias swap, and every candidate has its own keys: one after another,
/// the S&P 500's 4,527 candidates at ~20 ms a request are ~7 minutes, past
/// the gate function's 5-minute timeout; 32 at once are ~15 s.
const AT_ONCE: usize = 32;

/// `step` on every item, `AT_ONCE` at a time, the results in the items'
/// order (the decisions file and the answers are the same at every run);
/// the first error stops the step.
async fn each_at_once<'a, T, R, F, Fut>(
    items: impl IntoIterator<Item = &'a T>,
    step: F,
) -> Result<Vec<R>, StepError>
where
    T: 'a,
    F: FnMut(&'a T) -> Fut,
    Fut: Future<Output = Result<R, StepError>>,
{
    stream::iter(items)
        .map(step)
        .buffered(AT_ONCE)
        .try_collect()
        .await
}

#[derive(Serialize)]
struct DecisionRecord<'a> {
    run_id: &'a RunId,
    policy: &'a GatePolicy,
    #[serde(flatten)]
    output: &'a GateOutput,
}

/// Production's score on the candidate's origins, and a note on how it was obtained.
async fn production_score(
    registry: &Registry,
    policy: &GatePolicy,
    candidate: &Candidate,
    candidate_metrics: &VersionMetrics,
) -> Result<Option<(ProductionScore, Option<String>)>, RegistryError> {
    let Some(alias) = registry
        .production(&candidate.symbol, candidate.model)
        .await?
    else {
        return Ok(None);
    };
    let recorded = registry
        .metrics(&candidate.symbol, candidate.model, &alias.version)
        .await?;
    let (metric, note) = if recorded.same_origins(candidate_metrics) {
        (recorded.metric(policy.metric, policy.horizon), None)
    } else {
        // The backtest is deterministic, so production's procedure (same model,
        // code and settings) scores exactly what the candidate scores on these
        // origins; a version made by other code or settings cannot be re-run
        // and is compared on its own recorded origins, which the reason says.
        let production_lineage = registry
            .lineage(&candidate.symbol, candidate.model, &alias.version)
            .await?;
        let candidate_lineage = registry
            .lineage(&candidate.symbol, candidate.model, &candidate.version)
            .await?;
        let same_procedure = production_lineage.code_version == candidate_lineage.code_version
            && production_lineage.config_digest == candidate_lineage.config_digest;
        if same_procedure {
            (
                candidate_metrics.metric(policy.metric, policy.horizon),
                None,
            )
        } else {
            (
                recorded.metric(policy.metric, policy.horizon),
                Some(format!(
                    "production {} was made by other code or settings; its score is from its own origins (through {})",
                    alias.version,
                    recorded
                        .data_through
                        .map_or("?".to_owned(), |d| d.to_string())
                )),
            )
        }
    };
    Ok(Some((
        ProductionScore {
            version: alias.version,
            metric,
        },
        note,
    )))
}

/// Decides on one candidate. A version whose metrics (or production's)
/// cannot be read is rejected with the reason, so one bad symbol fails that
/// symbol, never the run; a store that cannot be reached fails the step,
/// which the workflow retries.
async fn decide_one(
    registry: &Registry,
    policy: &GatePolicy,
    candidate: &Candidate,
) -> Result<Decision, StepError> {
    let reject = |reason: String| Decision {
        symbol: candidate.symbol.clone(),
        model: candidate.model,
        version: candidate.version.clone(),
        decision: Verdict::Reject,
        reasons: vec![reason],
        metric: None,
        naive: None,
        production: None,
    };
    let metrics = match registry
        .metrics(&candidate.symbol, candidate.model, &candidate.version)
        .await
    {
        Ok(metrics) => metrics,
        Err(RegistryError::Store(e)) => return Err(e.into()),
        Err(e) => {
            return Ok(reject(format!(
                "the candidate's metrics cannot be read: {e}"
            )));
        }
    };
    let production = match production_score(registry, policy, candidate, &metrics).await {
        Ok(production) => production,
        Err(RegistryError::Store(e)) => return Err(e.into()),
        Err(e) => {
            return Ok(reject(format!(
                "production cannot be compared, so it stays: {e}"
            )));
        }
    };
    let mut judgement = gate::decide(policy, &metrics, production.as_ref().map(|p| &p.0));
    if let Some((_, Some(note))) = production {
        judgement.reasons.push(note);
    }
    Ok(Decision {
        symbol: candidate.symbol.clone(),
        model: candidate.model,
        version: candidate.version.clone(),
        decision: judgement.verdict,
        reasons: judgement.reasons,
        metric: judgement.metric,
        naive: judgement.naive,
        production: judgement.production,
    })
}

/// Decides on every candidate and records the decisions under `decisions/`.
pub async fn evaluate(
    registry: &Registry,
    policy: &GatePolicy,
    input: &GateInput,
) -> Result<GateOutput, StepError> {
    let decisions = each_at_once(&input.candidates, |candidate| {
        decide_one(registry, policy, candidate)
    })
    .await?;
    let output = GateOutput {
        any_promote: decisions.iter().any(|d| d.decision == Verdict::Promote),
        needs_approval: decisions
            .iter()
            .any(|d| d.decision == Verdict::NeedsApproval),
        decisions,
    };
    each_at_once(decisions_awaiting(&output.decisions), |d| async {
        registry
            .stage(
                &d.symbol,
                d.model,
                &d.version,
                &input.run_id,
                &d.reasons.join("; "),
            )
            .await
            .map_err(StepError::from)
    })
    .await?;
    let record = DecisionRecord {
        run_id: &input.run_id,
        policy,
        output: &output,
    };
    registry
        .store()
        .update_with(
            &layout::decisions(&input.run_id),
            |_| -> Result<Option<Vec<u8>>, StepError> { Ok(Some(pretty_json(&record))) },
        )
        .await?;
    Ok(output)
}

fn decisions_awaiting(decisions: &[Decision]) -> impl Iterator<Item = &Decision> {
    decisions
        .iter()
        .filter(|d| d.decision == Verdict::NeedsApproval)
}

/// Moves production to every promoted version (and, once approved, to the
/// ones that needed approval, clearing their staging).
pub async fn promote(
    registry: &Registry,
    input: &PromoteInput,
) -> Result<PromoteOutput, StepError> {
    let going = input.decisions.iter().filter(|d| match d.decision {
        Verdict::Promote => true,
        Verdict::NeedsApproval => input.approved,
        Verdict::Reject => false,
    });
    let promoted = each_at_once(going, |d| async {
        let reason = d.reasons.join("; ");
        let promotion = registry
            .promote(&d.symbol, d.model, &d.version, &input.run_id, &reason)
            .await?;
        if d.decision == Verdict::NeedsApproval {
            registry
                .unstage(&d.symbol, d.model, &d.version, &input.run_id, "approved")
                .await?;
        }
        Ok(promotion)
    })
    .await?;
    Ok(PromoteOutput { promoted })
}

/// Clears the staging of every candidate of a run that waited for an
/// approval that did not come (rejected or timed out); production is
/// untouched. Returns the versions that were still staged.
pub async fn withdraw(
    registry: &Registry,
    input: &WithdrawInput,
) -> Result<WithdrawOutput, StepError> {
    let unstaged = each_at_once(decisions_awaiting(&input.decisions), |d| async {
        let was_staged = registry
            .unstage(&d.symbol, d.model, &d.version, &input.run_id, &input.reason)
            .await?;
        Ok(was_staged.then(|| d.version.clone()))
    })
    .await?;
    let withdrawn = unstaged.into_iter().flatten().collect();
    Ok(WithdrawOutput { withdrawn })
}
