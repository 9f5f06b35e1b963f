//! What is kept: buckets with their requests and lifecycle, images, and log
//! groups with what the resources logging to them write.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Inputs, Pricer, grouped};
use crate::infra::cost::path::S3Kind;
use crate::infra::cost::{CostError, DAYS_PER_MONTH, PriceId, SymbolRunRequests};
use crate::infra::model::Resource;

pub(super) fn ecr_repository(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    let workload = inputs.workload;
    let gb = workload.storage.ecr_gb.get(r.id).copied().ok_or_else(|| {
        let message = format!(
            "storage.ecr_gb: no size for {}: add `{}: <GB>`",
            r.key(),
            r.id
        );
        CostError::workload(workload, message)
    })?;
    p.of(r.key())
        .add("image storage", PriceId::EcrStorageGbMonth, gb)
}

/// KB a month written to a log group by the functions, API stages, Batch
/// jobs and state machines that log to it.
fn log_volume_kb(group: &Resource<'_>, inputs: &Inputs<'_>) -> f64 {
    let (model, usage) = (inputs.model, inputs.usage);
    let refers = |v: &Json| {
        v["Ref"] == group.id
            || v["Fn::GetAtt"][0] == group.id
            || v["Fn::Sub"]
                .as_str()
                .is_some_and(|s| s.contains(&format!("${{{}}}", group.id)))
    };
    let same_stack = |r: &&Resource<'_>| r.stack == group.stack;
    let name = group.properties["LogGroupName"].as_str().unwrap_or("");
    let logs = &inputs.workload.logs;
    let mut kb = 0.0;
    for f in model.of_kind("AWS::Lambda::Function").filter(same_stack) {
        let config = &f.properties["LoggingConfig"]["LogGroup"];
        let default = format!(
            "/aws/lambda/{}",
            f.properties["FunctionName"].as_str().unwrap_or("")
        );
        if refers(config) || (config.is_null() && name == default) {
            kb += usage.invocations.get(&f.key()).copied().unwrap_or(0.0)
                * logs.kb_per_lambda_invocation;
        }
    }
    for stage in model.of_kind("AWS::ApiGateway::Stage").filter(same_stack) {
        if refers(&stage.properties["AccessLogSetting"]["DestinationArn"]) {
            let api = format!(
                "{}/{}",
                stage.stack,
                stage.properties["RestApiId"]["Ref"].as_str().unwrap_or("")
            );
            kb += usage.api_requests.get(&api).map_or(0.0, |(n, _)| *n) * logs.kb_per_api_request;
        }
    }
    for job in model
        .of_kind("AWS::Batch::JobDefinition")
        .filter(same_stack)
    {
        let options = &job.properties["ContainerProperties"]["LogConfiguration"]["Options"];
        if refers(&options["awslogs-group"]) {
            // Every task logs: an array job's children each.
            let tasks =
                (usage.jobs.get(&job.key())).map_or(0.0, |j| j.tasks.iter().map(|t| t.count).sum());
            kb += tasks * logs.kb_per_batch_job;
        }
    }
    for machine in model
        .of_kind("AWS::StepFunctions::StateMachine")
        .filter(same_stack)
    {
        let destinations = machine.properties["LoggingConfiguration"]["Destinations"].as_array();
        if destinations
            .into_iter()
            .flatten()
            .any(|d| refers(&d["CloudWatchLogsLogGroup"]["LogGroupArn"]))
        {
            // A Distributed Map's children log to their parent's destinations.
            let key = machine.key();
            let children: f64 = (usage.child_executions.iter())
                .filter(|((parent, _), _)| *parent == key)
                .map(|(_, (n, _))| n)
                .sum();
            let executions = usage.executions.get(&key).copied().unwrap_or(0.0);
            kb += (executions + children) * logs.kb_per_execution;
        }
    }
    kb
}

pub(super) fn log_group(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    let Some(retention) = r.properties["RetentionInDays"].as_f64() else {
        return Err(CostError::template(
            r,
            "has no RetentionInDays: its storage grows without bound".into(),
        ));
    };
    let gb = log_volume_kb(r, inputs) / (1024.0 * 1024.0);
    let mut lines = p.of(r.key());
    lines.add("log ingestion", PriceId::CloudwatchLogsIngestedGb, gb)?;
    // Steady state: the log group holds the last `retention` days.
    lines.add(
        format!("log storage, {} days retained", grouped(retention, 0)),
        PriceId::CloudwatchLogsStoredGbMonth,
        gb * retention / DAYS_PER_MONTH,
    )
}

/// The storage class the bucket's enabled lifecycle rules move objects to.
fn lifecycle_class<'j>(r: &Resource<'j>) -> Option<&'j str> {
    let rules = r.properties["LifecycleConfiguration"]["Rules"].as_array()?;
    rules
        .iter()
        .filter(|rule| rule["Status"] == "Enabled")
        .flat_map(|rule| {
            rule["Transitions"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&rule["Transition"]))
        })
        .find_map(|t| t["StorageClass"].as_str())
}

/// The prices of a storage class a lifecycle rule moves objects to: its
/// storage and each transition into it.
fn archive_prices(r: &Resource<'_>, class: &str) -> Result<(PriceId, PriceId), CostError> {
    match class {
        "GLACIER_IR" => Ok((
            PriceId::S3GlacierInstantGbMonth,
            PriceId::S3GlacierInstantTransition,
        )),
        "GLACIER" => Ok((
            PriceId::S3GlacierFlexibleGbMonth,
            PriceId::S3GlacierFlexibleTransition,
        )),
        other => Err(CostError::template(
            r,
            format!("the estimate does not price the storage class {other}"),
        )),
    }
}

pub(super) fn bucket(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    let workload = inputs.workload;
    let key = r.key();
    let volumes = workload.storage.s3.get(r.id).ok_or_else(|| {
        let message = format!(
            "storage.s3: no volumes for {key}: add `{}: {{standard_gb: ...}}`",
            r.id
        );
        CostError::workload(workload, message)
    })?;
    let per_symbol = &volumes.per_symbol;
    let symbols = inputs.usage.universe;
    let runs = symbol_runs(inputs, &per_symbol.per_run);
    let mut lines = p.of(key.clone());
    lines.add(
        stored(
            "Standard storage",
            volumes.standard_gb,
            symbols,
            per_symbol.standard_gb,
        ),
        PriceId::S3StandardGbMonth,
        volumes.standard_gb + symbols * per_symbol.standard_gb,
    )?;
    let what = "PUT, COPY, POST, LIST requests";
    lines.add(what, PriceId::S3PutRequest, volumes.put_requests)?;
    let what = "GET and other requests";
    lines.add(what, PriceId::S3GetRequest, volumes.get_requests)?;
    for (machine, n, requests) in &runs {
        let per = |kind: &str, each: f64| {
            format!(
                "{kind} requests, per symbol in {machine} runs: {} symbol-runs x {}",
                grouped(*n, 1),
                grouped(each, 1)
            )
        };
        let (puts, gets) = (requests.put_requests, requests.get_requests);
        lines.add(per("PUT", puts), PriceId::S3PutRequest, n * puts)?;
        lines.add(per("GET", gets), PriceId::S3GetRequest, n * gets)?;
    }
    let own = (inputs.usage.s3_requests.iter()).filter(|((bucket, _, _), _)| *bucket == key);
    for ((_, kind, what), n) in own {
        let (name, price) = match kind {
            S3Kind::Get => ("GET", PriceId::S3GetRequest),
            S3Kind::Put => ("PUT", PriceId::S3PutRequest),
        };
        lines.add(format!("{name} requests, {what}"), price, *n)?;
    }
    let archived_gb = volumes.archived_gb + symbols * per_symbol.archived_gb;
    let transitions = volumes.lifecycle_transitions
        + (runs.iter())
            .map(|(_, n, requests)| n * requests.lifecycle_transitions)
            .sum::<f64>();
    match lifecycle_class(r) {
        Some(class) => {
            let (storage, transition) = archive_prices(r, class)?;
            let name = format!("{class} storage (lifecycle)");
            let what = stored(&name, volumes.archived_gb, symbols, per_symbol.archived_gb);
            lines.add(what, storage, archived_gb)?;
            let what = format!("lifecycle transitions to {class}");
            lines.add(what, transition, transitions)?;
        }
        None if archived_gb > 0.0 || transitions > 0.0 => {
            return Err(CostError::workload(
                workload,
                format!(
                    "storage.s3.{}: archived_gb and lifecycle_transitions need a lifecycle transition in {key}, which has none",
                    r.id
                ),
            ));
        }
        None => {}
    }
    Ok(())
}

/// What is stored: a fixed part and one per symbol, in words.
fn stored(what: &str, fixed: f64, symbols: f64, per_symbol: f64) -> String {
    let symbols = format!(
        "{} symbols x {} GB",
        grouped(symbols, 0),
        grouped(per_symbol, 4)
    );
    match (fixed, per_symbol) {
        (_, 0.0) => what.to_owned(),
        (0.0, _) => format!("{what}: {symbols}"),
        _ => format!("{what}: {} GB + {symbols}", grouped(fixed, 3)),
    }
}

/// Each state machine a bucket's per-symbol requests are given for: its
/// key, the symbols its executions handle a month, and the requests.
fn symbol_runs<'w>(
    inputs: &Inputs<'_>,
    per_run: &'w BTreeMap<String, SymbolRunRequests>,
) -> Vec<(String, f64, &'w SymbolRunRequests)> {
    let machines = inputs.model.of_kind("AWS::StepFunctions::StateMachine");
    machines
        .filter_map(|m| {
            let requests = per_run.get(m.id)?;
            let key = m.key();
            let n = inputs.usage.symbol_runs.get(&key).copied().unwrap_or(0.0);
            Some((key, n, requests))
        })
        .collect()
}
