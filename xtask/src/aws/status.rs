//! `cargo xtask status`: what is deployed and how it is doing, gathered
//! into one report with two renderings, text for people (`Display`) and
//! JSON for scripts (`--json`).
//!
//! The training job of the newest training execution is shown as Batch
//! reports it (`training_job.rs`): its children's counts, and those that
//! failed or were retried with the reasons (every child with `--verbose`).
//!
//! Status reports what it can: a part that cannot be read (the executions
//! of a machine, the budget, the spend switches) is a line of the report,
//! not the end of it.

use std::fmt;

use anyhow::Context;
use serde::Serialize;
use stockcast::config::GateMetric;
use stockcast::infra::render::STACKS;
use stockcast::registry::Registry;
use stockcast::spend_cap::CapState;

use super::training_job::{TrainingJob, training_job_id};
use super::{Ctx, approve, batch, cfn, resume, run};
use crate::flags;

impl flags::Status {
    pub fn run(self) -> anyhow::Result<()> {
        let ctx = self.aws.context()?;
        let report = ctx.runtime.block_on(StatusReport::gather(&ctx))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.text(self.verbose));
        }
        Ok(())
    }
}

/// Everything `status` shows about one environment.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub env: String,
    pub stacks: Vec<StackState>,
    /// The last executions of each deployed state machine.
    pub executions: Vec<MachineExecutions>,
    /// The training job of the newest training execution; `None` when
    /// there is no training execution.
    pub training: Option<TrainingJobReport>,
    /// `None` when no data bucket is deployed.
    pub production: Option<ProductionModels>,
    pub alarms: Vec<AlarmState>,
    pub budget: Budget,
    pub spend_cap: SpendCap,
}

#[derive(Debug, Serialize)]
pub struct StackState {
    pub name: String,
    /// CloudFormation's status; `None` when the stack is not deployed.
    pub status: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MachineExecutions {
    #[serde(skip)]
    pub pipeline: flags::Pipeline,
    pub state_machine: String,
    pub executions: Vec<Execution>,
    /// Why the executions could not be listed.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Execution {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub started: String,
}

/// The training job of one execution.
#[derive(Debug, Serialize)]
pub struct TrainingJobReport {
    /// The execution's name (its run id).
    pub execution: String,
    #[serde(flatten)]
    pub state: TrainingJobState,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TrainingJobState {
    /// The execution has submitted no Batch job: it has not reached
    /// training, or ended before it.
    NotSubmitted,
    Described {
        job: TrainingJob,
    },
    Unreadable {
        error: String,
    },
}

#[derive(Debug, Serialize)]
pub struct ProductionModels {
    pub bucket: String,
    pub models: Vec<ProductionModel>,
}

#[derive(Debug, Serialize)]
pub struct ProductionModel {
    pub symbol: String,
    pub model: String,
    pub version: String,
    /// The version's backtest MASE at horizon 5; `None` when undefined.
    pub mase_h5: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AlarmState {
    pub name: String,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct Budget {
    pub name: String,
    #[serde(flatten)]
    pub state: BudgetState,
}

/// The budget, as AWS Budgets answers for it.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BudgetState {
    /// This month's spend against the limit, each `None` where AWS gave none.
    Tracked {
        spent: Option<Money>,
        limit: Option<Money>,
        forecast: Option<Money>,
    },
    /// No budget by that name: the monitoring stack creates it.
    Missing,
    Unreadable {
        error: String,
    },
}

#[derive(Debug, Serialize)]
pub struct Money {
    pub amount: String,
    pub unit: String,
}

/// The spend cap's switches (`stockcast::spend_cap`).
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SpendCap {
    Read {
        summary: String,
        stopped: bool,
        switches: CapState,
    },
    Unreadable {
        error: String,
    },
}

impl StatusReport {
    /// Reads every part of the report from AWS.
    pub async fn gather(ctx: &Ctx) -> anyhow::Result<StatusReport> {
        let executions = executions(ctx).await;
        Ok(StatusReport {
            env: ctx.env().to_owned(),
            stacks: stacks(ctx).await?,
            training: training(ctx, &executions).await,
            executions,
            production: production(ctx).await?,
            alarms: alarms(ctx).await?,
            budget: budget(ctx).await?,
            spend_cap: match resume::spend_cap(ctx).state().await {
                Ok(switches) => SpendCap::Read {
                    summary: switches.summary(),
                    stopped: switches.stopped(),
                    switches,
                },
                Err(e) => SpendCap::Unreadable {
                    error: e.to_string(),
                },
            },
        })
    }
}

async fn stacks(ctx: &Ctx) -> anyhow::Result<Vec<StackState>> {
    let cfn = cfn::client(ctx);
    let mut stacks = Vec::new();
    for stack in STACKS {
        let name = ctx.stack_name(stack);
        let status = cfn::stack_status(&cfn, &name).await?;
        stacks.push(StackState {
            name,
            status: status.map(|s| s.as_str().to_owned()),
        });
    }
    Ok(stacks)
}

/// The last five executions of each state machine the environment has.
async fn executions(ctx: &Ctx) -> Vec<MachineExecutions> {
    let sfn = aws_sdk_sfn::Client::new(&ctx.sdk);
    let mut machines = Vec::new();
    for pipeline in [flags::Pipeline::Training, flags::Pipeline::Daily] {
        let Ok(arn) = run::state_machine_arn(ctx, pipeline).await else {
            continue;
        };
        let listed = sfn
            .list_executions()
            .state_machine_arn(&arn)
            .max_results(5)
            .send()
            .await;
        let (executions, error) = match listed {
            Ok(listed) => (
                listed
                    .executions()
                    .iter()
                    .map(|e| Execution {
                        name: e.name().to_owned(),
                        arn: e.execution_arn().to_owned(),
                        status: e.status().as_str().to_owned(),
                        started: e.start_date().to_string(),
                    })
                    .collect(),
                None,
            ),
            Err(e) => (
                Vec::new(),
                Some(aws_sdk_sfn::error::DisplayErrorContext(e.into_service_error()).to_string()),
            ),
        };
        machines.push(MachineExecutions {
            pipeline,
            state_machine: arn.rsplit(':').next().unwrap_or(&arn).to_owned(),
            executions,
            error,
        });
    }
    machines
}

/// The training job of the newest training execution (ListExecutions
/// lists the newest first).
async fn training(ctx: &Ctx, machines: &[MachineExecutions]) -> Option<TrainingJobReport> {
    let latest = machines
        .iter()
        .find(|m| matches!(m.pipeline, flags::Pipeline::Training))?
        .executions
        .first()?;
    let state = match training_job(ctx, &latest.arn).await {
        Ok(Some(job)) => TrainingJobState::Described { job },
        Ok(None) => TrainingJobState::NotSubmitted,
        Err(e) => TrainingJobState::Unreadable {
            error: crate::error_text(&e),
        },
    };
    Some(TrainingJobReport {
        execution: latest.name.clone(),
        state,
    })
}

/// The Batch job an execution's history names, described.
async fn training_job(ctx: &Ctx, execution: &str) -> anyhow::Result<Option<TrainingJob>> {
    let sfn = aws_sdk_sfn::Client::new(&ctx.sdk);
    let Some(job_id) = training_job_id(&run::read_history(&sfn, execution).await?) else {
        return Ok(None);
    };
    Ok(Some(
        batch::training_job(&batch::client(ctx), &job_id).await?,
    ))
}

async fn production(ctx: &Ctx) -> anyhow::Result<Option<ProductionModels>> {
    let Ok(bucket) = approve::data_bucket(ctx).await else {
        return Ok(None);
    };
    let entries = Registry::new(ctx.bucket(&bucket)?)
        .production_models()
        .await
        .context("cannot read the registry")?;
    let models = entries
        .into_iter()
        .map(|entry| ProductionModel {
            mase_h5: entry.metrics.metric(GateMetric::Mase, 5),
            symbol: entry.symbol.to_string(),
            model: entry.model.name().to_owned(),
            version: entry.alias.version.to_string(),
        })
        .collect();
    Ok(Some(ProductionModels { bucket, models }))
}

async fn alarms(ctx: &Ctx) -> anyhow::Result<Vec<AlarmState>> {
    let alarms = aws_sdk_cloudwatch::Client::new(&ctx.sdk)
        .describe_alarms()
        .alarm_name_prefix(format!("stockcast-{}", ctx.env()))
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .context("cannot describe the alarms")?;
    Ok(alarms
        .metric_alarms()
        .iter()
        .map(|alarm| AlarmState {
            name: alarm.alarm_name().unwrap_or("?").to_owned(),
            state: alarm.state_value().map_or("?", |s| s.as_str()).to_owned(),
        })
        .collect())
}

async fn budget(ctx: &Ctx) -> anyhow::Result<Budget> {
    let account = aws_sdk_sts::Client::new(&ctx.sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .context("cannot read the account id")?;
    let name = format!("stockcast-{}", ctx.env());
    let described = aws_sdk_budgets::Client::new(&ctx.sdk)
        .describe_budget()
        .account_id(account.account().unwrap_or_default())
        .budget_name(&name)
        .send()
        .await;
    let money = |s: Option<&aws_sdk_budgets::types::Spend>| {
        s.map(|s| Money {
            amount: s.amount().to_owned(),
            unit: s.unit().to_owned(),
        })
    };
    let state = match described {
        Ok(out) => {
            let budget = out.budget();
            let spend = budget.and_then(|b| b.calculated_spend());
            BudgetState::Tracked {
                spent: money(spend.and_then(|c| c.actual_spend())),
                limit: money(budget.and_then(|b| b.budget_limit())),
                forecast: money(spend.and_then(|c| c.forecasted_spend())),
            }
        }
        Err(e) => match e.into_service_error() {
            e if e.is_not_found_exception() => BudgetState::Missing,
            e => BudgetState::Unreadable {
                error: aws_sdk_budgets::error::DisplayErrorContext(&e).to_string(),
            },
        },
    };
    Ok(Budget { name, state })
}

impl StatusReport {
    /// The report for people; `every_child` lists every child of the
    /// training job, not only those that failed or were retried.
    pub fn text(&self, every_child: bool) -> String {
        StatusText {
            report: self,
            every_child,
        }
        .to_string()
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text(false))
    }
}

struct StatusText<'a> {
    report: &'a StatusReport,
    every_child: bool,
}

impl fmt::Display for StatusText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.report;
        writeln!(f, "stacks")?;
        for stack in &report.stacks {
            let status = stack.status.as_deref().unwrap_or("not deployed");
            writeln!(f, "  {:<36} {status}", stack.name)?;
        }
        for machine in &report.executions {
            write!(f, "{machine}")?;
        }
        if let Some(training) = &report.training {
            write!(f, "{}", training.text(self.every_child))?;
        }
        if let Some(production) = &report.production {
            write!(f, "{production}")?;
        }
        writeln!(f, "alarms")?;
        if report.alarms.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for alarm in &report.alarms {
            writeln!(f, "  {:<48} {}", alarm.name, alarm.state)?;
        }
        write!(f, "{}", report.budget)?;
        match &report.spend_cap {
            SpendCap::Read {
                summary, stopped, ..
            } => {
                writeln!(f, "spend cap: {summary}")?;
                if *stopped {
                    let env = &report.env;
                    writeln!(f, "  lift the stop with: cargo xtask resume --env {env}")?;
                }
            }
            SpendCap::Unreadable { error } => writeln!(f, "spend cap: {error}")?,
        }
        Ok(())
    }
}

impl fmt::Display for MachineExecutions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "executions of {}", self.state_machine)?;
        if let Some(error) = &self.error {
            return writeln!(f, "  cannot list executions: {error}");
        }
        if self.executions.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for e in &self.executions {
            writeln!(f, "  {:<44} {:<10} {}", e.name, e.status, e.started)?;
        }
        Ok(())
    }
}

impl TrainingJobReport {
    fn text(&self, every_child: bool) -> String {
        let execution = &self.execution;
        match &self.state {
            TrainingJobState::NotSubmitted => {
                format!("training job: none submitted by {execution}\n")
            }
            TrainingJobState::Described { job } => job.text(every_child),
            TrainingJobState::Unreadable { error } => {
                format!("training job of {execution}: {error}\n")
            }
        }
    }
}

impl fmt::Display for ProductionModels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "production models (s3://{})", self.bucket)?;
        if self.models.is_empty() {
            writeln!(f, "  (none yet: run the training pipeline)")?;
        }
        for m in &self.models {
            let mase = m.mase_h5.map_or_else(
                || "MASE h5 undefined".to_owned(),
                |v| format!("MASE h5 {v:.4}"),
            );
            writeln!(
                f,
                "  {:<8} {:<12} {:<28} {mase}",
                m.symbol, m.model, m.version
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.state {
            BudgetState::Tracked {
                spent,
                limit,
                forecast,
            } => {
                let money = |m: &Option<Money>| {
                    m.as_ref()
                        .map_or("?".to_owned(), |m| format!("{} {}", m.amount, m.unit))
                };
                writeln!(
                    f,
                    "budget {name}: spent {} of {} this month (forecast {})",
                    money(spent),
                    money(limit),
                    money(forecast)
                )
            }
            BudgetState::Missing => {
                writeln!(f, "budget {name}: none (the monitoring stack creates it)")
            }
            BudgetState::Unreadable { error } => writeln!(f, "budget {name}: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> StatusReport {
        StatusReport {
            env: "dev".into(),
            stacks: vec![
                StackState {
                    name: "stockcast-dev-data".into(),
                    status: Some("CREATE_COMPLETE".into()),
                },
                StackState {
                    name: "stockcast-dev-app".into(),
                    status: None,
                },
            ],
            executions: vec![MachineExecutions {
                pipeline: flags::Pipeline::Training,
                state_machine: "stockcast-dev-training".into(),
                executions: vec![Execution {
                    name: "training-1".into(),
                    arn: "arn:aws:states:eu-west-1:123456789012:execution:stockcast-dev-training:training-1".into(),
                    status: "SUCCEEDED".into(),
                    started: "2026-01-02T03:04:05Z".into(),
                }],
                error: None,
            }],
            training: Some(TrainingJobReport {
                execution: "training-1".into(),
                state: TrainingJobState::NotSubmitted,
            }),
            production: Some(ProductionModels {
                bucket: "data-bucket".into(),
                models: vec![ProductionModel {
                    symbol: "AAPL".into(),
                    model: "arima".into(),
                    version: "v1".into(),
                    mase_h5: Some(0.98765),
                }],
            }),
            alarms: Vec::new(),
            budget: Budget {
                name: "stockcast-dev".into(),
                state: BudgetState::Missing,
            },
            spend_cap: SpendCap::Unreadable {
                error: "no usage plan".into(),
            },
        }
    }

    #[test]
    fn the_text_is_the_report_for_people() {
        let expected = "\
stacks
  stockcast-dev-data                   CREATE_COMPLETE
  stockcast-dev-app                    not deployed
executions of stockcast-dev-training
  training-1                                   SUCCEEDED  2026-01-02T03:04:05Z
training job: none submitted by training-1
production models (s3://data-bucket)
  AAPL     arima        v1                           MASE h5 0.9877
alarms
  (none)
budget stockcast-dev: none (the monitoring stack creates it)
spend cap: no usage plan
";
        assert_eq!(report().to_string(), expected);
    }

    #[test]
    fn the_json_has_the_reports_fields() {
        let json = serde_json::to_value(report()).expect("serialises");
        let mut keys: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "alarms",
                "budget",
                "env",
                "executions",
                "production",
                "spend_cap",
                "stacks",
                "training"
            ]
        );
        assert_eq!(json["stacks"][1]["status"], serde_json::Value::Null);
        assert_eq!(json["executions"][0]["executions"][0]["name"], "training-1");
        assert_eq!(json["training"]["execution"], "training-1");
        assert_eq!(json["training"]["status"], "not_submitted");
        assert_eq!(json["production"]["models"][0]["mase_h5"], 0.98765);
        assert_eq!(json["budget"]["status"], "missing");
        assert_eq!(json["budget"]["name"], "stockcast-dev");
        assert_eq!(json["spend_cap"]["status"], "unreadable");
        assert_eq!(json["spend_cap"]["error"], "no usage plan");
    }
}
