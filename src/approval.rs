//! Manual approval of candidates: the workflow's task token is kept in the
//! store until a person answers, and an answer is claimed with a
//! compare-and-swap before it is sent, so two people answering at once
//! cannot both send one.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::ids::{RunId, VersionId};
use crate::layout;
use crate::promotion;
use crate::registry::{Registry, pretty_json};
use crate::steps::{
    ApprovalAnswer, ApprovalRequest, ApprovalResult, Decision, ErrorName, PromoteInput, Promotion,
    StepError, WithdrawInput,
};
use crate::store::Store;

/// The token a run of the local pipeline keeps: no workflow waits on it, so
/// the answer itself promotes or withdraws (`answer_local`).
pub const LOCAL_TOKEN: &str = "local";

/// `approvals/<run_id>.json`: a pending or answered approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub run_id: RunId,
    pub task_token: String,
    pub decisions: Vec<Decision>,
    pub requested_at: String,
    pub answer: Option<Answered>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answered {
    pub approve: bool,
    pub by: Option<String>,
    pub reason: Option<String>,
    pub answered_at: String,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn corrupt(key: &str, e: serde_json::Error) -> StepError {
    StepError::new(
        ErrorName::RegistryInvalid,
        format!("{key} is not an approval record: {e}"),
    )
}

/// Keeps the task token of a `.waitForTaskToken` state. A retried state
/// brings a new token, which replaces the old one while nobody has answered.
pub async fn request(
    store: &Store,
    request: &ApprovalRequest,
) -> Result<ApprovalRecord, StepError> {
    let key = layout::approval(&request.run_id);
    let record = ApprovalRecord {
        run_id: request.run_id.clone(),
        task_token: request.task_token.clone(),
        decisions: request.decisions.clone(),
        requested_at: now(),
        answer: None,
    };
    store
        .update_with(&key, |current| -> Result<Option<Vec<u8>>, StepError> {
            if let Some(bytes) = current {
                let existing: ApprovalRecord =
                    serde_json::from_slice(bytes).map_err(|e| corrupt(&key, e))?;
                if existing.answer.is_some() {
                    return Err(StepError::new(
                        ErrorName::InvalidInput,
                        format!("run {} was already answered", request.run_id),
                    ));
                }
            }
            Ok(Some(pretty_json(&record)))
        })
        .await?;
    Ok(record)
}

/// The pending approval of a run, if any.
pub async fn pending(store: &Store, run_id: &RunId) -> Result<Option<ApprovalRecord>, StepError> {
    let key = layout::approval(run_id);
    let Some(object) = store.get(&key).await? else {
        return Ok(None);
    };
    let record: ApprovalRecord =
        serde_json::from_slice(&object.bytes).map_err(|e| corrupt(&key, e))?;
    Ok(record.answer.is_none().then_some(record))
}

/// Claims the answer (compare-and-swap), then hands the token and the
/// result to `send` (`SendTaskSuccess`/`SendTaskFailure`). If sending
/// fails, the claim is withdrawn so the answer can be given again.
pub async fn answer<F>(
    store: &Store,
    answer: &ApprovalAnswer,
    send: F,
) -> Result<ApprovalResult, StepError>
where
    F: AsyncFnOnce(&str, &ApprovalResult) -> Result<(), StepError>,
{
    let key = layout::approval(&answer.run_id);
    let Some(object) = store.get(&key).await? else {
        return Err(StepError::new(
            ErrorName::InvalidInput,
            format!(
                "run {} has no pending approval (nothing at {key}); `cargo xtask status` lists the runs",
                answer.run_id
            ),
        ));
    };
    let mut record: ApprovalRecord =
        serde_json::from_slice(&object.bytes).map_err(|e| corrupt(&key, e))?;
    if let Some(given) = &record.answer {
        return Err(StepError::new(
            ErrorName::InvalidInput,
            format!(
                "run {} was already {} at {}{}",
                answer.run_id,
                if given.approve {
                    "approved"
                } else {
                    "rejected"
                },
                given.answered_at,
                given
                    .by
                    .as_ref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            ),
        ));
    }
    record.answer = Some(Answered {
        approve: answer.approve,
        by: answer.by.clone(),
        reason: answer.reason.clone(),
        answered_at: now(),
    });
    let claimed = store
        .update(&key, pretty_json(&record), Some(&object.version))
        .await?;
    let result = ApprovalResult {
        approved: answer.approve,
        by: answer.by.clone(),
        reason: answer.reason.clone(),
    };
    if let Err(e) = send(&record.task_token, &result).await {
        record.answer = None;
        // Best effort: if this fails too, the record says answered and the
        // error below tells the person the workflow did not hear it.
        let _ = store
            .update(&key, pretty_json(&record), Some(&claimed))
            .await;
        return Err(e);
    }
    Ok(result)
}

/// What a local answer did.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOutcome {
    pub result: ApprovalResult,
    pub promoted: Vec<Promotion>,
    /// Versions whose staging was cleared by a rejection.
    pub withdrawn: Vec<VersionId>,
}

/// Answers a run of the local pipeline: claims the answer like `answer`,
/// then does what the training workflow does after its approval state
/// (promote on approval, withdraw the staged candidates on rejection).
pub async fn answer_local(
    store: &Store,
    answer_given: &ApprovalAnswer,
) -> Result<LocalOutcome, StepError> {
    let registry = Registry::new(store.clone());
    let record = pending(store, &answer_given.run_id).await?;
    if let Some(record) = &record
        && record.task_token != LOCAL_TOKEN
    {
        return Err(StepError::new(
            ErrorName::InvalidInput,
            format!(
                "run {} waits in Step Functions; answer it with `cargo xtask approve --env ENV {}`",
                answer_given.run_id, answer_given.run_id
            ),
        ));
    }
    let decisions = record.map(|r| r.decisions).unwrap_or_default();
    let mut outcome = LocalOutcome {
        result: ApprovalResult {
            approved: answer_given.approve,
            by: answer_given.by.clone(),
            reason: answer_given.reason.clone(),
        },
        promoted: Vec::new(),
        withdrawn: Vec::new(),
    };
    let run_id = answer_given.run_id.clone();
    answer(
        store,
        answer_given,
        async |_: &str, result: &ApprovalResult| {
            if result.approved {
                let input = PromoteInput {
                    run_id: run_id.clone(),
                    decisions: decisions.clone(),
                    approved: true,
                };
                outcome.promoted = promotion::promote(&registry, &input).await?.promoted;
            } else {
                let input = WithdrawInput {
                    run_id: run_id.clone(),
                    decisions: decisions.clone(),
                    reason: "rejected".to_owned(),
                };
                outcome.withdrawn = promotion::withdraw(&registry, &input).await?.withdrawn;
            }
            Ok(())
        },
    )
    .await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_for(run_id: &str, token: &str) -> ApprovalRequest {
        ApprovalRequest {
            run_id: run_id.parse().expect("valid run id"),
            task_token: token.into(),
            decisions: vec![],
        }
    }

    fn answer_for(run_id: &str, approve: bool) -> ApprovalAnswer {
        ApprovalAnswer {
            run_id: run_id.parse().expect("valid run id"),
            approve,
            reason: Some("looked at the plots".into()),
            by: Some("alice".into()),
        }
    }

    #[tokio::test]
    async fn an_answer_sends_the_latest_token_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::local(dir.path()).expect("store");
        request(&store, &request_for("r1", "token-1"))
            .await
            .expect("kept");
        // The state was retried: a new token replaces the old one.
        request(&store, &request_for("r1", "token-2"))
            .await
            .expect("kept");
        assert_eq!(
            pending(&store, &"r1".parse().expect("valid"))
                .await
                .expect("reads")
                .map(|r| r.task_token)
                .as_deref(),
            Some("token-2")
        );
        let mut sent = Vec::new();
        let result = answer(
            &store,
            &answer_for("r1", true),
            async |token: &str, result: &ApprovalResult| {
                sent.push((token.to_owned(), result.approved));
                Ok(())
            },
        )
        .await
        .expect("answered");
        assert!(result.approved);
        assert_eq!(sent, vec![("token-2".to_owned(), true)]);
        assert!(
            pending(&store, &"r1".parse().expect("valid"))
                .await
                .expect("reads")
                .is_none()
        );
        let again = answer(
            &store,
            &answer_for("r1", false),
            async |_: &str, _: &ApprovalResult| Ok(()),
        )
        .await
        .expect_err("answered twice");
        assert_eq!(again.name, ErrorName::InvalidInput);
        assert!(
            again.message.contains("already approved"),
            "{}",
            again.message
        );
    }

    #[tokio::test]
    async fn a_failed_send_leaves_the_approval_pending() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::local(dir.path()).expect("store");
        request(&store, &request_for("r2", "token"))
            .await
            .expect("kept");
        let failed = answer(
            &store,
            &answer_for("r2", false),
            async |_: &str, _: &ApprovalResult| {
                Err(StepError::new(
                    ErrorName::ServiceUnavailable,
                    "Step Functions did not answer",
                ))
            },
        )
        .await
        .expect_err("send failed");
        assert_eq!(failed.name, ErrorName::ServiceUnavailable);
        assert!(
            pending(&store, &"r2".parse().expect("valid"))
                .await
                .expect("reads")
                .is_some()
        );
        let missing = answer(
            &store,
            &answer_for("nope", true),
            async |_: &str, _: &ApprovalResult| Ok(()),
        )
        .await
        .expect_err("no such run");
        assert!(
            missing.message.contains("no pending approval"),
            "{}",
            missing.message
        );
    }
}
