//! `cargo xtask approve|reject EXECUTION`: answer a waiting training run.
//! The gate keeps the waiting state's task token in `approvals/<run_id>.json`
//! in the data bucket; the answer goes through the same code as the gate
//! Lambda's (`stockcast::approval::answer` with `StepFunctions`).

use anyhow::Context;
use stockcast::functions::StepFunctions;
use stockcast::steps::ApprovalAnswer;

use super::{Ctx, cfn, run};
use crate::flags;

/// The data bucket of the environment.
pub async fn data_bucket(ctx: &Ctx) -> anyhow::Result<String> {
    let name = ctx.stack_name("data");
    cfn::outputs(&cfn::client(ctx), &name)
        .await?
        .get("DataBucketName")
        .cloned()
        .with_context(|| {
            format!(
                "{name} has no DataBucketName: run `cargo xtask deploy --env {}`",
                ctx.env()
            )
        })
}

/// The run id of an execution given by ARN or by name.
async fn run_id(
    ctx: &Ctx,
    sfn: &aws_sdk_sfn::Client,
    execution: &str,
) -> anyhow::Result<stockcast::ids::RunId> {
    let arn = if execution.starts_with("arn:") {
        execution.to_owned()
    } else {
        let machine = run::state_machine_arn(ctx, flags::Pipeline::Training).await?;
        format!(
            "{}:{execution}",
            machine.replacen(":stateMachine:", ":execution:", 1)
        )
    };
    let described = sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .with_context(|| format!("cannot find execution {execution}"))?;
    let input: serde_json::Value = serde_json::from_str(described.input().unwrap_or("{}"))?;
    let run_id = input["run_id"]
        .as_str()
        .with_context(|| format!("execution {execution} has no run_id in its input"))?;
    Ok(stockcast::ids::RunId::new(run_id)?)
}

fn answer(
    aws: &flags::Aws,
    execution: &str,
    reason: Option<String>,
    approve: bool,
) -> anyhow::Result<()> {
    let ctx = aws.context()?;
    let sfn = aws_sdk_sfn::Client::new(&ctx.sdk);
    ctx.runtime.block_on(async {
        let run_id = run_id(&ctx, &sfn, execution).await?;
        let store = ctx.bucket(&data_bucket(&ctx).await?)?;
        let by = std::env::var("USER").ok();
        let result = stockcast::approval::answer(
            &store,
            &ApprovalAnswer {
                run_id: run_id.clone(),
                approve,
                reason,
                by,
            },
            async |token: &str, result: &stockcast::steps::ApprovalResult| {
                use stockcast::functions::ApprovalSender;
                StepFunctions::new(sfn.clone()).send(token, result).await
            },
        )
        .await?;
        println!(
            "run {run_id}: {}",
            if result.approved {
                "approved; the workflow promotes the candidates"
            } else {
                "rejected; production is unchanged"
            }
        );
        Ok(())
    })
}

impl flags::Answer {
    pub fn run(self, approve: bool) -> anyhow::Result<()> {
        answer(&self.aws, &self.execution, self.reason, approve)
    }
}
