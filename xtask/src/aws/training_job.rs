//! The training job as an operator sees it (issue 18, item 4): which Batch
//! job an execution's training state submitted, and what Batch says of its
//! children (how many succeeded, run, wait or failed; the attempts of each
//! and why each ended), for `status` and `run --follow`.
//!
//! Pure functions of what Step Functions and Batch answer, so that they can
//! be tested on answers of the real shape; `batch.rs` makes the calls.

use std::fmt;

use aws_sdk_batch::types::{AttemptDetail, JobDetail, JobStatus};
use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};
use serde::{Deserialize, Serialize};
use stockcast::train::exit_code;

use crate::table::Table;

/// Step Functions' `resourceType` of the `arn:aws:states:::batch:*` tasks:
/// the training states (`TrainArray`, `TrainOne`) are the workflows' only
/// Batch tasks.
const BATCH_RESOURCE: &str = "batch";

/// What one history event says about the training job.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchTaskEvent {
    /// Batch accepted the job: its id (an array job's parent).
    Submitted(String),
    /// The Batch task ended (succeeded, failed or timed out).
    Ended,
}

/// Reads a Batch task's event: `TaskSubmitted`'s output is SubmitJob's
/// answer (`{"JobArn", "JobId", "JobName", …}`).
pub fn batch_task_event(event: &HistoryEvent) -> Option<BatchTaskEvent> {
    #[derive(Deserialize)]
    struct SubmitJobAnswer {
        #[serde(rename = "JobId")]
        job_id: String,
    }
    let ended =
        |resource_type: &str| (resource_type == BATCH_RESOURCE).then_some(BatchTaskEvent::Ended);
    match event.r#type() {
        HistoryEventType::TaskSubmitted => {
            let details = event.task_submitted_event_details()?;
            if details.resource_type() != BATCH_RESOURCE {
                return None;
            }
            let answer: SubmitJobAnswer = serde_json::from_str(details.output()?).ok()?;
            Some(BatchTaskEvent::Submitted(answer.job_id))
        }
        HistoryEventType::TaskSucceeded => {
            ended(event.task_succeeded_event_details()?.resource_type())
        }
        HistoryEventType::TaskFailed => ended(event.task_failed_event_details()?.resource_type()),
        HistoryEventType::TaskTimedOut => {
            ended(event.task_timed_out_event_details()?.resource_type())
        }
        _ => None,
    }
}

/// The Batch job the execution's training state submitted last (a retried
/// submit submits again); `None` before the training state submits one.
pub fn training_job_id(events: &[HistoryEvent]) -> Option<String> {
    events
        .iter()
        .rev()
        .find_map(|event| match batch_task_event(event) {
            Some(BatchTaskEvent::Submitted(id)) => Some(id),
            _ => None,
        })
}

/// The training job and its children, as Batch describes them.
#[derive(Debug, Serialize)]
pub struct TrainingJob {
    pub job_id: String,
    pub job_name: String,
    /// Batch's status of the job; an array's parent stays PENDING while
    /// its children run.
    pub status: String,
    pub status_reason: Option<String>,
    /// The array's size; `None` for a single job (`TrainOne`), which is
    /// shown as its own one child.
    pub array_size: Option<u32>,
    /// The children listed, counted by where they are.
    pub counts: ChildCounts,
    /// Every child listed, by index.
    pub children: Vec<ChildJob>,
}

/// Children counted by where they are in Batch's lifecycle.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChildCounts {
    /// SUBMITTED, PENDING or RUNNABLE: not on an instance yet.
    pub waiting: u32,
    /// STARTING or RUNNING.
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// A status this SDK does not know.
    pub unknown: u32,
}

/// One child of the array (shard `index`), or the single job itself.
#[derive(Debug, Serialize)]
pub struct ChildJob {
    /// `AWS_BATCH_JOB_ARRAY_INDEX`, the shard it trains; `None` only if
    /// Batch gave no index.
    pub index: Option<u32>,
    pub job_id: String,
    pub status: String,
    pub status_reason: Option<String>,
    /// The attempts that have ended, oldest first (Batch lists an attempt
    /// once it ends).
    pub attempts: Vec<Attempt>,
}

/// One ended attempt of a child and what ended it.
#[derive(Debug, Serialize)]
pub struct Attempt {
    pub end: AttemptEnd,
    /// Batch's reason ("Host EC2 (instance i-…) terminated.", "Essential
    /// container in task exited").
    pub status_reason: Option<String>,
    pub exit_code: Option<i32>,
    /// The container's own reason (an out-of-memory kill, for instance).
    pub container_reason: Option<String>,
    /// Where its output went in CloudWatch Logs.
    pub log_stream: Option<String>,
}

/// What ended an attempt, told apart as the job definition's
/// `EvaluateOnExit` tells them apart (stacks/app.yaml) with the exit codes
/// of jobs/train: the first three are retried, a failure is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptEnd {
    /// Spot took the instance back ("Host EC2 (instance …) terminated.",
    /// "Your Spot Task was interrupted").
    SpotReclaim,
    /// The job stopped on SIGTERM before writing anything (exit 143): an
    /// interruption notice, or the job being stopped.
    Interrupted,
    /// Storage was still unavailable after the store's retries (exit 75).
    StorageUnavailable,
    Succeeded,
    Failed,
}

/// jobs/train's exit codes.
const EXIT_INTERRUPTED: i32 = exit_code::INTERRUPTED as i32;
const EXIT_STORAGE_UNAVAILABLE: i32 = exit_code::TEMPORARY as i32;

impl AttemptEnd {
    fn of(status_reason: Option<&str>, exit_code: Option<i32>) -> AttemptEnd {
        let reason = status_reason.unwrap_or_default();
        if reason.starts_with("Host EC2") || reason.starts_with("Your Spot Task was interrupted") {
            return AttemptEnd::SpotReclaim;
        }
        match exit_code {
            Some(0) => AttemptEnd::Succeeded,
            Some(EXIT_INTERRUPTED) => AttemptEnd::Interrupted,
            Some(EXIT_STORAGE_UNAVAILABLE) => AttemptEnd::StorageUnavailable,
            _ => AttemptEnd::Failed,
        }
    }

    fn label(self) -> &'static str {
        match self {
            AttemptEnd::SpotReclaim => "Spot reclaim",
            AttemptEnd::Interrupted => "interrupted",
            AttemptEnd::StorageUnavailable => "storage unavailable",
            AttemptEnd::Succeeded => "succeeded",
            AttemptEnd::Failed => "failed",
        }
    }
}

/// Where a Batch status is in the lifecycle, for the counts.
fn count(counts: &mut ChildCounts, status: &JobStatus, n: u32) {
    let slot = match status {
        JobStatus::Submitted | JobStatus::Pending | JobStatus::Runnable => &mut counts.waiting,
        JobStatus::Starting | JobStatus::Running => &mut counts.running,
        JobStatus::Succeeded => &mut counts.succeeded,
        JobStatus::Failed => &mut counts.failed,
        _ => &mut counts.unknown,
    };
    *slot += n;
}

impl ChildCounts {
    /// The counts of the children from the parent's description alone
    /// (one call, for `run --follow`): the array's `statusSummary`, or the
    /// single job's own status.
    pub fn of_parent(parent: &JobDetail) -> ChildCounts {
        let mut counts = ChildCounts::default();
        match parent.array_properties().and_then(|a| a.status_summary()) {
            Some(summary) => {
                for (status, n) in summary {
                    count(
                        &mut counts,
                        &JobStatus::from(status.as_str()),
                        u32::try_from(*n).unwrap_or(0),
                    );
                }
            }
            None => {
                if let Some(status) = parent.status() {
                    count(&mut counts, status, 1);
                }
            }
        }
        counts
    }

    pub fn total(&self) -> u32 {
        self.waiting + self.running + self.succeeded + self.failed + self.unknown
    }
}

/// The summary of a training job from DescribeJobs' answers: the parent,
/// and its children (any order; empty for a single job, which is then its
/// own child 0).
pub fn summarise(parent: &JobDetail, children: &[JobDetail]) -> TrainingJob {
    let array_size = parent
        .array_properties()
        .and_then(|a| a.size())
        .and_then(|size| u32::try_from(size).ok());
    let mut children: Vec<ChildJob> = match array_size {
        Some(_) => children.iter().map(child).collect(),
        None => vec![ChildJob {
            index: Some(0),
            ..child(parent)
        }],
    };
    children.sort_by_key(|c| (c.index.is_none(), c.index));
    let mut counts = ChildCounts::default();
    for c in &children {
        count(&mut counts, &JobStatus::from(c.status.as_str()), 1);
    }
    TrainingJob {
        job_id: parent.job_id().unwrap_or_default().to_owned(),
        job_name: parent.job_name().unwrap_or_default().to_owned(),
        status: status_name(parent),
        status_reason: parent.status_reason().map(str::to_owned),
        array_size,
        counts,
        children,
    }
}

fn status_name(job: &JobDetail) -> String {
    job.status().map_or("?", JobStatus::as_str).to_owned()
}

fn child(job: &JobDetail) -> ChildJob {
    ChildJob {
        index: job
            .array_properties()
            .and_then(|a| a.index())
            .and_then(|i| u32::try_from(i).ok()),
        job_id: job.job_id().unwrap_or_default().to_owned(),
        status: status_name(job),
        status_reason: job.status_reason().map(str::to_owned),
        attempts: job.attempts().iter().map(attempt).collect(),
    }
}

fn attempt(detail: &AttemptDetail) -> Attempt {
    let container = detail.container();
    let exit_code = container.and_then(|c| c.exit_code());
    Attempt {
        end: AttemptEnd::of(detail.status_reason(), exit_code),
        status_reason: detail.status_reason().map(str::to_owned),
        exit_code,
        container_reason: container.and_then(|c| c.reason()).map(str::to_owned),
        log_stream: container
            .and_then(|c| c.log_stream_name())
            .map(str::to_owned),
    }
}

impl ChildJob {
    /// Worth a line without --verbose: it failed, or is past its first
    /// attempt (ended ones, and the one under way or waiting).
    pub fn notable(&self) -> bool {
        self.status == JobStatus::Failed.as_str()
            || self.attempts.len() + usize::from(self.is_active()) > 1
    }

    fn is_active(&self) -> bool {
        !matches!(
            JobStatus::from(self.status.as_str()),
            JobStatus::Succeeded | JobStatus::Failed
        )
    }

    /// The table's "attempt" and "ended" cells: one row per ended attempt,
    /// one for the attempt under way or waiting (not ended: "-"), or, for a
    /// child that ended without an attempt (its dependency failed, it was
    /// cancelled), Batch's reason.
    fn attempt_rows(&self) -> Vec<(String, String)> {
        let active = self.is_active();
        let tries = self.attempts.len() + usize::from(active);
        let mut rows: Vec<(String, String)> = self
            .attempts
            .iter()
            .enumerate()
            .map(|(n, a)| (format!("{} of {tries}", n + 1), a.to_string()))
            .collect();
        if active {
            rows.push((format!("{tries} of {tries}"), "-".to_owned()));
        } else if rows.is_empty() {
            let reason = self.status_reason.as_deref().unwrap_or("no attempt");
            rows.push(("-".to_owned(), reason.to_owned()));
        }
        rows
    }
}

impl fmt::Display for ChildCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} succeeded, {} running, {} waiting, {} failed",
            self.succeeded, self.running, self.waiting, self.failed
        )?;
        if self.unknown > 0 {
            write!(f, ", {} in a status this tool does not know", self.unknown)?;
        }
        Ok(())
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.end.label())?;
        if let Some(code) = self.exit_code {
            write!(f, ", exit {code}")?;
        }
        let reasons: Vec<&str> = [&self.status_reason, &self.container_reason]
            .into_iter()
            .filter_map(|r| r.as_deref())
            .collect();
        if !reasons.is_empty() {
            write!(f, ": {}", reasons.join("; "))?;
        }
        Ok(())
    }
}

impl TrainingJob {
    /// The job, its counts, and a table of its children: those that failed
    /// or were retried, or all of them with `every_child`.
    pub fn text(&self, every_child: bool) -> String {
        let shape = match self.array_size {
            Some(size) => format!("array of {size}"),
            None => "single job".to_owned(),
        };
        let mut out = format!(
            "training job {} ({}): {shape}, {}",
            self.job_name, self.job_id, self.status
        );
        if let Some(reason) = &self.status_reason {
            out.push_str(&format!(" ({reason})"));
        }
        out.push_str(&format!("\n  children: {}", self.counts));
        if let Some(size) = self.array_size.filter(|size| *size != self.counts.total()) {
            out.push_str(&format!(" ({} of {size} listed)", self.counts.total()));
        }
        out.push('\n');
        let shown: Vec<&ChildJob> = self
            .children
            .iter()
            .filter(|c| every_child || c.notable())
            .collect();
        if shown.is_empty() {
            return out;
        }
        let mut table = Table::new(&["shard", "status", "attempt", "ended"]).text_columns(4);
        for c in shown {
            for (n, (attempt, ended)) in c.attempt_rows().into_iter().enumerate() {
                let (shard, status) = match n {
                    0 => (
                        c.index.map_or("?".to_owned(), |i| i.to_string()),
                        c.status.clone(),
                    ),
                    _ => (String::new(), String::new()),
                };
                table.row(vec![shard, status, attempt, ended]);
            }
        }
        for line in table.render().lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests;
