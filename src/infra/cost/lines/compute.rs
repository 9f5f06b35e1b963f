//! What runs: function calls, API requests, state transitions and Batch
//! jobs, each with the X-Ray traces it records.

use serde_json::Value as Json;

use super::{Inputs, Pricer, grouped};
use crate::backtest::Protocol;
use crate::infra::cost::{CostError, PriceId};
use crate::infra::model::Resource;
use crate::models::ModelKind;

/// A function's architecture, memory (MB) and the price of its compute.
pub(super) fn compute<'j>(r: &Resource<'j>) -> (&'j str, f64, PriceId) {
    // CloudFormation's defaults: 128 MB, x86_64.
    let mb = r.properties["MemorySize"].as_f64().unwrap_or(128.0);
    let arch = r.properties["Architectures"][0]
        .as_str()
        .unwrap_or("x86_64");
    let id = if arch == "arm64" {
        PriceId::LambdaArm64GbSecond
    } else {
        PriceId::LambdaX86GbSecond
    };
    (arch, mb, id)
}

pub(super) fn function(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    let (usage, workload) = (inputs.usage, inputs.workload);
    let key = r.key();
    let ms = workload.lambda_ms.get(r.id).copied().ok_or_else(|| {
        let message = format!(
            "lambda_ms: no average duration for {key}: add `{}: <ms>`",
            r.id
        );
        CostError::workload(workload, message)
    })?;
    let (arch, mb, id) = compute(r);
    let calls = usage.invocations.get(&key).copied().unwrap_or(0.0);
    let traced_calls = usage.traced_invocations.get(&key).copied().unwrap_or(0.0);
    let mut lines = p.of(key.clone());
    lines.add(
        format!(
            "{arch} compute: {} calls x {} ms x {} MB",
            grouped(calls, 1),
            grouped(ms, 0),
            grouped(mb, 0)
        ),
        id,
        calls * ms / 1000.0 * mb / 1024.0,
    )?;
    let per_symbol = workload
        .lambda_ms_per_symbol
        .get(r.id)
        .into_iter()
        .flatten();
    for (action, ms) in per_symbol {
        let n = (usage
            .symbol_calls
            .get(&(key.clone(), action.clone()))
            .copied())
        .unwrap_or(0.0);
        lines.add(
            format!(
                "{arch} compute, {action} calls per symbol: {} symbols x {} ms x {} MB",
                grouped(n, 1),
                grouped(*ms, 0),
                grouped(mb, 0)
            ),
            id,
            n * ms / 1000.0 * mb / 1024.0,
        )?;
    }
    lines.add("requests", PriceId::LambdaRequest, calls)?;
    // Calls from a traced state machine or API share their caller's trace.
    let untraced = calls - traced_calls;
    if r.properties["TracingConfig"]["Mode"] == "Active" && untraced > 0.0 {
        let what = "X-Ray traces of calls without a traced caller";
        lines.add(what, PriceId::XrayTraceRecorded, untraced)?;
    }
    Ok(())
}

pub(super) fn rest_api(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    let key = r.key();
    let requests = inputs.usage.api_requests.get(&key).map_or(0.0, |(n, _)| *n);
    let traced = inputs.model.of_kind("AWS::ApiGateway::Stage").any(|s| {
        s.stack == r.stack
            && s.properties["RestApiId"]["Ref"] == r.id
            && s.properties["TracingEnabled"] == Json::Bool(true)
    });
    let mut lines = p.of(key);
    lines.add(
        "REST API requests",
        PriceId::ApiGatewayRestRequest,
        requests,
    )?;
    if traced {
        let what = "X-Ray traces (stage tracing, one per request)";
        lines.add(what, PriceId::XrayTraceRecorded, requests)?;
    }
    Ok(())
}

pub(super) fn state_machine(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    let key = r.key();
    let kind = r.properties["StateMachineType"]
        .as_str()
        .unwrap_or("STANDARD");
    if kind != "STANDARD" {
        return Err(CostError::template(
            r,
            format!("the estimate prices STANDARD state machines only, not {kind}"),
        ));
    }
    let executions = inputs.usage.executions.get(&key).copied().unwrap_or(0.0);
    let transitions = inputs.usage.transitions.get(&key).copied().unwrap_or(0.0);
    let per_run = if executions > 0.0 {
        transitions / executions
    } else {
        0.0
    };
    let mut lines = p.of(key.clone());
    lines.add(
        format!(
            "{} runs x {} transitions (longest successful path)",
            grouped(executions, 2),
            grouped(per_run, 1)
        ),
        PriceId::StepFunctionsStateTransition,
        transitions,
    )?;
    let traced = r.properties["TracingConfiguration"]["Enabled"] == Json::Bool(true);
    if traced {
        let what = "X-Ray traces (one per execution)";
        lines.add(what, PriceId::XrayTraceRecorded, executions)?;
    }
    let children =
        (inputs.usage.child_executions.iter()).filter(|((machine, _), _)| *machine == key);
    for ((_, map), (children, transitions)) in children {
        let each = transitions / children;
        lines.add(
            format!(
                "Map {map} child executions: {} runs x {} x {} transitions (1 to start, {} in the child)",
                grouped(executions, 2),
                grouped(children / executions, 1),
                grouped(each, 1),
                grouped(each - 1.0, 1)
            ),
            PriceId::StepFunctionsStateTransition,
            *transitions,
        )?;
        if traced {
            // Each child is an execution of its own, traced as one.
            let what = format!("X-Ray traces of Map {map}'s child executions (one each)");
            lines.add(what, PriceId::XrayTraceRecorded, *children)?;
        }
    }
    Ok(())
}

/// The jobs of a job definition, on the capacity of the queue they go to:
/// each task (an array child, or the job) runs for the CPU its symbols'
/// fits take over the job's vCPUs, billed for a minute at least.
pub(super) fn job_definition(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    let key = r.key();
    let Some(job) = inputs.usage.jobs.get(&key) else {
        return Ok(());
    };
    let (vcpus, memory_mb) = container_size(r)?;
    let capacity = queue_capacity(inputs, &job.queue).ok_or_else(|| {
        CostError::template(
            r,
            format!(
                "the compute environment of queue {} has no ComputeResources.Type",
                job.queue
            ),
        )
    })?;
    let training = &inputs.workload.training;
    let discount = match capacity {
        "FARGATE_SPOT" | "SPOT" => training.spot_discount_pct,
        _ => 0.0,
    };
    let (mut tasks, mut hours, mut symbols, mut cpu_seconds) = (0.0, 0.0, 0.0, 0.0);
    for group in &job.tasks {
        let per_symbol = cpu_seconds_per_symbol(inputs, &group.models)?;
        // Fargate bills at least one minute per task.
        let minutes = (group.symbols as f64 * per_symbol / vcpus / 60.0).max(1.0);
        tasks += group.count;
        hours += group.count * minutes / 60.0;
        symbols += group.count * group.symbols as f64;
        cpu_seconds += group.count * group.symbols as f64 * per_symbol;
    }
    let jobs = job.submitted;
    let runs = format!(
        "{} jobs x {} tasks x {} min",
        grouped(jobs, 2),
        grouped(tasks / jobs, 1),
        grouped(hours * 60.0 / tasks, 1)
    );
    let spot = if discount > 0.0 {
        format!(", Spot -{}%", grouped(discount, 1))
    } else {
        String::new()
    };
    let vcpu_line = format!(
        "{runs} x {} vCPU ({} symbols a job x {} vCPU-s){spot}",
        grouped(vcpus, 2),
        grouped(symbols / jobs, 1),
        grouped(cpu_seconds / symbols, 0)
    );
    let mut lines = p.of(key).discounted(discount);
    match capacity {
        "FARGATE" | "FARGATE_SPOT" => {
            let what = format!("{capacity} vCPU: {vcpu_line}");
            lines.add(what, PriceId::FargateVcpuHour, hours * vcpus)?;
            let gb = grouped(memory_mb / 1024.0, 2);
            let what = format!("{capacity} memory: {runs} x {gb} GB{spot}");
            lines.add(what, PriceId::FargateGbHour, hours * memory_mb / 1024.0)
        }
        "SPOT" | "EC2" => {
            let what = format!("EC2 {capacity} vCPU: {vcpu_line}");
            lines.add(what, PriceId::Ec2VcpuHour, hours * vcpus)
        }
        other => Err(CostError::template(
            r,
            format!("the estimate does not price compute environments of type {other}"),
        )),
    }
}

/// CPU seconds that training one symbol takes: every model of the run and
/// naive (which every version's metrics are compared with) fitted at every
/// backtest origin of the protocol, and each model of the run once more on
/// the latest window (`train.rs`).
fn cpu_seconds_per_symbol(inputs: &Inputs<'_>, models: &[ModelKind]) -> Result<f64, CostError> {
    let origins = Protocol::default().origin_count() as f64;
    let workload = inputs.workload;
    let ms = |model: ModelKind| {
        (workload.training.cpu_ms_per_fit.get(&model).copied()).ok_or_else(|| {
            let message = format!(
                "training.cpu_ms_per_fit: no figure for {0}, which the runs train: add `{0}: <ms>` (cargo xtask bench)",
                model.name()
            );
            CostError::workload(workload, message)
        })
    };
    let mut backtested: Vec<ModelKind> = models.to_vec();
    if !backtested.contains(&ModelKind::Naive) {
        backtested.push(ModelKind::Naive);
    }
    let mut total_ms = 0.0;
    for model in backtested {
        total_ms += ms(model)? * origins;
    }
    for model in models {
        total_ms += ms(*model)?;
    }
    Ok(total_ms / 1000.0)
}

/// A job definition's vCPUs and memory (MB).
fn container_size(r: &Resource<'_>) -> Result<(f64, f64), CostError> {
    let requirement = |kind: &str| -> Option<f64> {
        r.properties["ContainerProperties"]["ResourceRequirements"]
            .as_array()?
            .iter()
            .find(|q| q["Type"] == kind)
            .and_then(|q| {
                q["Value"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .or(q["Value"].as_f64())
            })
    };
    match (requirement("VCPU"), requirement("MEMORY")) {
        (Some(vcpus), Some(memory_mb)) => Ok((vcpus, memory_mb)),
        _ => Err(CostError::template(
            r,
            "ContainerProperties.ResourceRequirements should give VCPU and MEMORY".into(),
        )),
    }
}

/// The capacity type (`FARGATE_SPOT`, `EC2`, …) of the first compute
/// environment of a queue (`stack/LogicalId`).
fn queue_capacity<'i>(inputs: &Inputs<'i>, queue: &str) -> Option<&'i str> {
    let model = inputs.model;
    let (stack, id) = queue.split_once('/')?;
    let queue = model.get(stack, id)?;
    let environment = queue.properties["ComputeEnvironmentOrder"][0]["ComputeEnvironment"]["Ref"]
        .as_str()
        .and_then(|ce| model.get(queue.stack, ce))?;
    environment.properties["ComputeResources"]["Type"].as_str()
}
