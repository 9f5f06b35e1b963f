//! `cargo xtask status`: what is deployed and how it is doing.

use anyhow::Context;
use stockcast::infra::render::STACKS;
use stockcast::registry::Registry;

use super::{Ctx, approve, cfn, resume, run};
use crate::flags;

impl flags::Status {
    pub fn run(self) -> anyhow::Result<()> {
        let ctx = self.aws.context()?;
        ctx.runtime.block_on(status(&ctx))
    }
}

async fn status(ctx: &Ctx) -> anyhow::Result<()> {
    let cfn = cfn::client(ctx);
    println!("stacks");
    for stack in STACKS {
        let name = ctx.stack_name(stack);
        let status = cfn::stack_status(&cfn, &name).await?;
        println!(
            "  {name:<36} {}",
            status
                .map(|s| s.as_str().to_owned())
                .unwrap_or("not deployed".into())
        );
    }

    let sfn = aws_sdk_sfn::Client::new(&ctx.sdk);
    for pipeline in [flags::Pipeline::Training, flags::Pipeline::Daily] {
        let Ok(arn) = run::state_machine_arn(ctx, pipeline).await else {
            continue;
        };
        println!("executions of {}", arn.rsplit(':').next().unwrap_or(&arn));
        // Status reports what it can: one unreadable part is a line, not
        // the end of the report.
        let listed = match sfn
            .list_executions()
            .state_machine_arn(&arn)
            .max_results(5)
            .send()
            .await
        {
            Ok(listed) => listed,
            Err(e) => {
                println!(
                    "  cannot list executions: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(e.into_service_error())
                );
                continue;
            }
        };
        if listed.executions().is_empty() {
            println!("  (none)");
        }
        for e in listed.executions() {
            println!(
                "  {:<44} {:<10} {}",
                e.name(),
                e.status().as_str(),
                e.start_date()
            );
        }
    }

    if let Ok(bucket) = approve::data_bucket(ctx).await {
        println!("production models (s3://{bucket})");
        let registry = Registry::new(ctx.bucket(&bucket)?);
        let entries = registry
            .production_models()
            .await
            .context("cannot read the registry")?;
        if entries.is_empty() {
            println!("  (none yet: run the training pipeline)");
        }
        for entry in entries {
            let mase = entry
                .metrics
                .metric(stockcast::config::GateMetric::Mase, 5)
                .map_or_else(
                    || "MASE h5 undefined".to_owned(),
                    |v| format!("MASE h5 {v:.4}"),
                );
            println!(
                "  {:<8} {:<12} {:<28} {mase}",
                entry.symbol,
                entry.model.name(),
                entry.alias.version
            );
        }
    }

    let cloudwatch = aws_sdk_cloudwatch::Client::new(&ctx.sdk);
    let alarms = cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("stockcast-{}", ctx.env()))
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .context("cannot describe the alarms")?;
    println!("alarms");
    if alarms.metric_alarms().is_empty() {
        println!("  (none)");
    }
    for alarm in alarms.metric_alarms() {
        println!(
            "  {:<48} {}",
            alarm.alarm_name().unwrap_or("?"),
            alarm.state_value().map(|s| s.as_str()).unwrap_or("?")
        );
    }

    let account = aws_sdk_sts::Client::new(&ctx.sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .context("cannot read the account id")?;
    let budget_name = format!("stockcast-{}", ctx.env());
    match aws_sdk_budgets::Client::new(&ctx.sdk)
        .describe_budget()
        .account_id(account.account().unwrap_or_default())
        .budget_name(&budget_name)
        .send()
        .await
    {
        Ok(out) => {
            let budget = out.budget();
            let amount = |s: Option<&aws_sdk_budgets::types::Spend>| {
                s.map(|s| format!("{} {}", s.amount(), s.unit()))
                    .unwrap_or("?".into())
            };
            println!(
                "budget {budget_name}: spent {} of {} this month (forecast {})",
                amount(
                    budget
                        .and_then(|b| b.calculated_spend())
                        .and_then(|c| c.actual_spend())
                ),
                amount(budget.and_then(|b| b.budget_limit())),
                amount(
                    budget
                        .and_then(|b| b.calculated_spend())
                        .and_then(|c| c.forecasted_spend())
                ),
            );
        }
        Err(e) => match e.into_service_error() {
            e if e.is_not_found_exception() => {
                println!("budget {budget_name}: none (the monitoring stack creates it)")
            }
            e => println!(
                "budget {budget_name}: {}",
                aws_sdk_budgets::error::DisplayErrorContext(&e)
            ),
        },
    }

    match resume::spend_cap(ctx).state().await {
        Ok(state) => {
            println!("spend cap: {}", state.summary());
            if state.stopped() {
                println!(
                    "  lift the stop with: cargo xtask resume --env {}",
                    ctx.env()
                );
            }
        }
        Err(e) => println!("spend cap: {e}"),
    }
    Ok(())
}
