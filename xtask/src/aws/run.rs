//! `cargo xtask run`: start a pipeline and follow it state by state.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use stockcast::models::ModelKind;
use stockcast::steps::RunInput;

use super::poll::{Poll, Wait, poll_until};
use super::{Ctx, cfn};
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
        ctx.runtime.block_on(async {
            let arn = state_machine_arn(&ctx, self.pipeline).await?;
            let env = &ctx.rendered.env;
            let kind = match self.pipeline {
                flags::Pipeline::Training => "training",
                flags::Pipeline::Daily => "daily",
            };
            let input = RunInput {
                run_id: stockcast::pipeline::new_run_id(kind)?,
                env: env.name.clone(),
                symbols: if self.symbols.is_empty() {
                    env.symbols.clone()
                } else {
                    self.symbols.clone()
                },
                models: ModelKind::ALL.to_vec(),
                horizons: vec![1, 5, 21],
                source: env.source,
                sentiment: env.sentiment,
            };
            let started = sfn
                .start_execution()
                .state_machine_arn(&arn)
                .name(input.run_id.as_str())
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
                follow(&sfn, &execution, deadline, &console).await?;
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
/// and errors, until the execution ends or `deadline` passes; fails if it
/// did not succeed. `console` is the execution's page, for the message
/// when the wait gives up.
pub async fn follow(
    sfn: &aws_sdk_sfn::Client,
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
}

impl History {
    /// Prints the events after the last one printed.
    fn show(&mut self, events: &[HistoryEvent]) {
        let last_seen = self.next_event;
        for event in events.iter().filter(|e| e.id() > last_seen) {
            self.next_event = event.id();
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
