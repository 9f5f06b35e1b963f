//! `cargo xtask run`: start a pipeline and follow it state by state, and
//! while its training job runs on Batch, the job's children (a line each
//! time their counts change, and at the end those that failed or were
//! retried, with the reasons).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use stockcast::steps::RunRequest;

use super::poll::{Poll, Wait, poll_until};
use super::training_job::{BatchTaskEvent, ChildCounts, batch_task_event};
use super::{Ctx, batch, cfn};
use crate::flags;

/// The ARN of one of the environment's state machines.
pub async fn state_machine_arn(ctx: &Ctx, pipeline: flags::Pipeline) -> anyhow::Result<String> {
    let outputs = cfn::outputs(&cfn::client(ctx), &ctx.stack_name("orchestration")).await?;
    let key = match pipeline {
        flags::Pipeline::Training => "TrainingStateMachineArn",
        flags::Pipeline::Daily => "DailyStateMachineArn",
    };
    outputs.get(key).cloned().with_context(|| {
        format!(
            "{} has no {key}: run `cargo xtask deploy --env {}`",
            ctx.stack_name("orchestration"),
            ctx.env()
        )
    })
}

impl flags::Run {
    pub fn run(self) -> anyhow::Result<()> {
        let ctx = self.aws.context()?;
        let sfn = aws_sdk_sfn::Client::new(&ctx.sdk);
        let batch = batch::client(&ctx);
        ctx.runtime.block_on(async {
            let arn = state_machine_arn(&ctx, self.pipeline).await?;
            let kind = match self.pipeline {
                flags::Pipeline::Training => "training",
                flags::Pipeline::Daily => "daily",
            };
            let run_id = stockcast::pipeline::new_run_id(kind)?;
            // The plan step fills in the rest from the environment (its
            // universe, models, horizons and vendors), as for a console run.
            let input = RunRequest {
                run_id: Some(run_id.clone()),
                symbols: (!self.symbols.is_empty()).then(|| self.symbols.clone()),
                ..RunRequest::default()
            };
            let started = sfn
                .start_execution()
                .state_machine_arn(&arn)
                .name(run_id.as_str())
                .input(serde_json::to_string(&input)?)
                .send()
                .await
                .map_err(|e| anyhow::Error::new(e.into_service_error()))
                .context("cannot start the execution")?;
            let execution = started.execution_arn().to_owned();
            let region = ctx.region();
            println!("started {execution}");
            println!("  https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution}");
            if self.follow {
                let deadline = Duration::from_secs(self.wait_minutes * 60);
                let console = format!("https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution}");
                follow(&sfn, &batch, &execution, deadline, &console).await?;
            }
            Ok(())
        })
    }
}

fn detail(event: &HistoryEvent) -> Option<String> {
    let pair = |error: Option<&str>, cause: Option<&str>| {
        Some(format!(
            "{}: {}",
            error.unwrap_or("?"),
            cause.unwrap_or("").chars().take(300).collect::<String>()
        ))
    };
    if let Some(d) = event.task_failed_event_details() {
        return pair(d.error(), d.cause());
    }
    if let Some(d) = event.lambda_function_failed_event_details() {
        return pair(d.error(), d.cause());
    }
    if let Some(d) = event.execution_failed_event_details() {
        return pair(d.error(), d.cause());
    }
    if let Some(d) = event.task_timed_out_event_details() {
        return pair(d.error(), d.cause());
    }
    None
}

/// Prints states as they are entered and left (with durations), retries
/// and errors, and the training job's children, until the execution ends
/// or `deadline` passes; fails if it did not succeed. `console` is the
/// execution's page, for the message when the wait gives up.
pub async fn follow(
    sfn: &aws_sdk_sfn::Client,
    batch: &aws_sdk_batch::Client,
    execution: &str,
    deadline: Duration,
    console: &str,
) -> anyhow::Result<()> {
    let mut history = History::default();
    let wait = Wait {
        what: "execution".into(),
        id: execution.to_owned(),
        deadline,
        interval: Duration::from_secs(2),
        next_step: format!(
            "it carries on without us: see it at {console} or with `aws stepfunctions describe-execution --execution-arn {execution}`, or follow longer with --wait-minutes"
        ),
    };
    poll_until(&wait, async || {
        history.show(&read_history(sfn, execution).await?);
        if let Some(training) = &mut history.training {
            for line in training.news(batch).await {
                println!("    {line}");
            }
        }
        let status = sfn
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.into_service_error()))
            .context("cannot describe the execution")?;
        match status.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {
                Ok(Poll::Pending(match history.current.as_str() {
                    "" => status.status().as_str().to_owned(),
                    state => format!("{} in state {state}", status.status().as_str()),
                }))
            }
            ExecutionStatus::Succeeded => {
                println!("execution succeeded");
                Ok(Poll::Done(()))
            }
            other => anyhow::bail!(
                "execution {}: {}{}",
                other.as_str(),
                status.error().unwrap_or_default(),
                status
                    .cause()
                    .map(|c| format!(" - {c}"))
                    .unwrap_or_default()
            ),
        }
    })
    .await
}

/// Every event of the execution's history so far, oldest first.
pub async fn read_history(
    sfn: &aws_sdk_sfn::Client,
    execution: &str,
) -> anyhow::Result<Vec<HistoryEvent>> {
    let mut pages = sfn
        .get_execution_history()
        .execution_arn(execution)
        .max_results(500)
        .into_paginator()
        .send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|e| anyhow::Error::new(e.into_service_error()))
            .context("cannot read the execution history")?;
        events.extend(page.events().iter().cloned());
    }
    Ok(events)
}

/// What has been printed of an execution's history: the last event, when
/// each state was entered, the attempts of each task, the current state.
#[derive(Debug, Default)]
struct History {
    next_event: i64,
    entered: HashMap<String, aws_smithy_types::DateTime>,
    attempts: HashMap<String, u32>,
    current: String,
    /// The Batch job the training state submitted last.
    training: Option<TrainingWatch>,
}

impl History {
    /// Prints the events after the last one printed.
    fn show(&mut self, events: &[HistoryEvent]) {
        let last_seen = self.next_event;
        for event in events.iter().filter(|e| e.id() > last_seen) {
            self.next_event = event.id();
            match batch_task_event(event) {
                Some(BatchTaskEvent::Submitted(job_id)) => {
                    println!("    Batch job {job_id}");
                    self.training = Some(TrainingWatch::new(job_id));
                }
                Some(BatchTaskEvent::Ended) => {
                    if let Some(training) = &mut self.training {
                        training.ended = true;
                    }
                }
                None => {}
            }
            match event.r#type() {
                HistoryEventType::TaskStateEntered
                | HistoryEventType::ChoiceStateEntered
                | HistoryEventType::MapStateEntered
                | HistoryEventType::PassStateEntered
                | HistoryEventType::SucceedStateEntered
                | HistoryEventType::FailStateEntered
                | HistoryEventType::WaitStateEntered => self.entered(event),
                HistoryEventType::TaskStateExited
                | HistoryEventType::ChoiceStateExited
                | HistoryEventType::MapStateExited
                | HistoryEventType::PassStateExited
                | HistoryEventType::SucceedStateExited
                | HistoryEventType::WaitStateExited => self.exited(event),
                HistoryEventType::TaskScheduled | HistoryEventType::LambdaFunctionScheduled => {
                    let n = self.attempts.entry(self.current.clone()).or_default();
                    *n += 1;
                    if *n > 1 {
                        println!("    retry {} of {}", *n - 1, self.current);
                    }
                }
                HistoryEventType::TaskFailed
                | HistoryEventType::LambdaFunctionFailed
                | HistoryEventType::TaskTimedOut => {
                    println!(
                        "    ✗ {}: {}",
                        self.current,
                        detail(event).unwrap_or_default()
                    );
                }
                _ => {}
            }
        }
    }

    fn entered(&mut self, event: &HistoryEvent) {
        if let Some(d) = event.state_entered_event_details() {
            self.current = d.name().to_owned();
            self.entered
                .insert(self.current.clone(), *event.timestamp());
            println!("  → {}", self.current);
        }
    }

    fn exited(&self, event: &HistoryEvent) {
        if let Some(d) = event.state_exited_event_details() {
            let took = self
                .entered
                .get(d.name())
                .map(|t| (event.timestamp().as_secs_f64() - t.as_secs_f64()).max(0.0))
                .unwrap_or_default();
            println!("  ✓ {} ({took:.1} s)", d.name());
        }
    }
}

/// What has been printed of the training job: the children's last counts,
/// and whether its summary was printed after the Batch task ended.
#[derive(Debug)]
struct TrainingWatch {
    job_id: String,
    last_counts: Option<ChildCounts>,
    ended: bool,
    summarised: bool,
    /// A failed read is said once, not at every poll.
    read_failed: bool,
}

impl TrainingWatch {
    fn new(job_id: String) -> TrainingWatch {
        TrainingWatch {
            job_id,
            last_counts: None,
            ended: false,
            summarised: false,
            read_failed: false,
        }
    }

    /// What to print of the job now: while it runs, a line when the
    /// children's counts have changed (one DescribeJobs on the parent);
    /// once the Batch task has ended, the children that failed or were
    /// retried, once. Batch being unreadable is said once, and does not
    /// stop following the execution.
    async fn news(&mut self, batch: &aws_sdk_batch::Client) -> Vec<String> {
        if self.summarised {
            return Vec::new();
        }
        if self.ended {
            self.summarised = true;
            return match batch::training_job(batch, &self.job_id).await {
                Ok(job) => job.text(false).lines().map(str::to_owned).collect(),
                Err(e) => vec![crate::error_text(&e)],
            };
        }
        match batch::child_counts(batch, &self.job_id).await {
            Ok(counts) if self.last_counts != Some(counts) => {
                self.last_counts = Some(counts);
                vec![format!("children: {counts}")]
            }
            Ok(_) => Vec::new(),
            Err(e) if !self.read_failed => {
                self.read_failed = true;
                vec![format!(
                    "cannot read the training job's children: {}",
                    crate::error_text(&e)
                )]
            }
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::batch::stand_in::{PARENT, REFUSED, array_of_150, stand_in};

    #[tokio::test]
    async fn follow_prints_the_counts_when_they_change_and_the_children_at_the_end() {
        let (client, batch) = stand_in(array_of_150()).await;
        let mut watch = TrainingWatch::new(PARENT.to_owned());
        assert_eq!(
            watch.news(&client).await,
            ["children: 148 succeeded, 1 running, 0 waiting, 1 failed"]
        );
        assert!(watch.news(&client).await.is_empty(), "the same counts");
        assert!(
            batch.calls("listjobs").is_empty(),
            "the parent alone while it runs"
        );

        watch.ended = true;
        let summary = watch.news(&client).await;
        assert_eq!(
            summary[..2],
            [
                format!(
                    "training job 2026-01-02T03-04-05Z-training ({PARENT}): array of 150, PENDING"
                ),
                "  children: 148 succeeded, 1 running, 0 waiting, 1 failed".to_owned()
            ]
        );
        let shards: Vec<&str> = summary[4..]
            .iter()
            .filter_map(|row| row.strip_prefix("  "))
            .filter(|row| !row.starts_with(' '))
            .filter_map(|row| row.split_whitespace().next())
            .collect();
        assert_eq!(
            shards,
            ["1", "2"],
            "the Spot-reclaimed and the failed shard"
        );
        assert!(watch.news(&client).await.is_empty(), "summarised once");
    }

    #[tokio::test]
    async fn an_unreadable_job_is_said_once() {
        let (client, _) = stand_in(Vec::new()).await;
        let mut watch = TrainingWatch::new(REFUSED.to_owned());
        let said = watch.news(&client).await;
        assert_eq!(said.len(), 1);
        assert!(
            said[0].starts_with(
                "cannot read the training job's children: cannot describe Batch job refused: "
            ),
            "{said:?}"
        );
        assert!(watch.news(&client).await.is_empty());
    }
}
