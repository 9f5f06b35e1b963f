//! The checks of what fans a run out past one machine: Distributed Maps
//! (child executions of their own state machine, an ItemReader and a
//! ResultWriter in S3), Batch array jobs, and the vendor's daily quota at
//! the universe's size.

use serde_json::Value as Json;

use super::{Finding, allow_statements, allows, finding, glob_matches, role_of};
use crate::infra::model::{Integration, Model, StateMachine};
use crate::infra::render::Rendered;
use crate::train::exit_code;

pub fn check(rendered: &Rendered, model: &Model<'_>, findings: &mut Vec<Finding>) {
    for machine in model.state_machines() {
        for (state, map) in machine.distributed_maps() {
            check_distributed_map(model, &machine, state, map, findings);
        }
        check_arrays(model, &machine, findings);
    }
    check_vendor_quota(rendered, findings);
}

/// What a Distributed Map needs its state machine's role to allow: start
/// child executions of the machine itself and follow or stop them (the
/// Step Functions guide's "IAM policies for using Distributed Map
/// states"), read its ItemReader's object and write its ResultWriter's.
fn check_distributed_map(
    model: &Model<'_>,
    machine: &StateMachine<'_, '_>,
    state: &str,
    map: &Json,
    findings: &mut Vec<Finding>,
) {
    let (Some(role), Some(name)) = (role_of(model, machine), machine.name()) else {
        return;
    };
    let statements = allow_statements(model, role);
    let mut need: Vec<(&str, Json)> = vec![
        (
            "states:StartExecution",
            format!("stateMachine:{name}").into(),
        ),
        (
            "states:DescribeExecution",
            format!("execution:{name}/").into(),
        ),
        ("states:StopExecution", format!("execution:{name}/").into()),
    ];
    for (field, resource, action) in [
        (
            "ItemReader",
            "arn:aws:states:::s3:getObject",
            "s3:GetObject",
        ),
        (
            "ResultWriter",
            "arn:aws:states:::s3:putObject",
            "s3:PutObject",
        ),
    ] {
        let part = &map[field];
        if part.is_null() {
            continue;
        }
        if part["Resource"] != resource {
            findings.push(finding(
                machine.resource,
                "distributed maps",
                format!("state {state}: its {field} should be {resource}"),
            ));
            continue;
        }
        match machine.binding(part["Parameters"]["Bucket"].as_str()) {
            Some(bucket) => need.push((action, bucket.clone())),
            None => findings.push(finding(
                machine.resource,
                "distributed maps",
                format!("state {state}: its {field}'s Bucket is not a bound ${{Placeholder}}"),
            )),
        }
    }
    for (action, resource) in need {
        if !allows(&statements, action, &resource) {
            findings.push(finding(
                role,
                "roles",
                format!(
                    "does not allow {action} on {} (Distributed Map {state} of {})",
                    serde_json::to_string(&resource).unwrap_or_default(),
                    machine.resource.id
                ),
            ));
        }
    }
}

/// A Batch array's size comes from the state (it follows the universe),
/// and its job definition retries an attempt, so a reclaimed child runs
/// again alone instead of failing the array.
fn check_arrays(model: &Model<'_>, machine: &StateMachine<'_, '_>, findings: &mut Vec<Finding>) {
    for task in machine.tasks().into_iter().flatten() {
        let Integration::BatchSubmitJob { definition, .. } = &task.integration else {
            continue;
        };
        let array = &task.parameters["ArrayProperties"];
        if array.is_null() {
            continue;
        }
        let state = &task.state;
        if array["Size.$"].as_str().is_none() {
            findings.push(finding(
                machine.resource,
                "batch arrays",
                format!("state {state}: ArrayProperties.Size should be a path (Size.$) to the run's shard count"),
            ));
        }
        let Some(definition) = machine.target(model, definition) else {
            continue;
        };
        let retry = &definition.properties["RetryStrategy"];
        if retry["Attempts"].as_u64().unwrap_or(1) < 2 {
            findings.push(finding(
                machine.resource,
                "batch arrays",
                format!("state {state}: its job definition has no RetryStrategy with Attempts >= 2, so a Spot reclaim fails the whole array"),
            ));
        }
        for code in [exit_code::INTERRUPTED, exit_code::TEMPORARY] {
            if !retries_exit_code(retry, code) {
                findings.push(finding(
                    machine.resource,
                    "batch arrays",
                    format!("state {state}: its job definition's RetryStrategy does not retry exit code {code}, which the training job ends with when a new attempt can finish it (stockcast::train::exit_code)"),
                ));
            }
        }
    }
}

/// Whether `EvaluateOnExit` retries an attempt that exited with `code` (and
/// a reason and status reason this check cannot know): the first rule whose
/// conditions all hold decides, and where none holds Batch retries.
fn retries_exit_code(retry: &Json, code: u8) -> bool {
    let code = code.to_string();
    let holds = |rule: &Json, condition: &str, value: Option<&str>| match rule[condition].as_str() {
        None => true,
        Some(pattern) => value.map_or(pattern == "*", |v| glob_matches(pattern, v)),
    };
    let rules = retry["EvaluateOnExit"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    rules
        .iter()
        .find(|rule| {
            holds(rule, "OnExitCode", Some(&code))
                && holds(rule, "OnReason", None)
                && holds(rule, "OnStatusReason", None)
        })
        .is_none_or(|rule| {
            rule["Action"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case("retry"))
        })
}

/// A day can hold a daily run and a training run (a weekly one, or one
/// the daily run starts on drift); both ingest every symbol.
const RUNS_A_DAY: usize = 2;

/// The universe fits the vendor's daily quota: a universe that does not
/// would fail ingestion every day from the symbol past the quota.
fn check_vendor_quota(rendered: &Rendered, findings: &mut Vec<Finding>) {
    let env = &rendered.env;
    let Some(quota) = env.ingest.alpha_vantage_daily_quota else {
        return;
    };
    let per_run = env.alpha_vantage_requests_per_run();
    if per_run * RUNS_A_DAY > quota as usize {
        findings.push(Finding {
            stack: "environment".into(),
            resource: env.name.clone(),
            check: "vendor quota",
            message: format!(
                "{} symbols make {per_run} Alpha Vantage requests a run, {} on a day with a daily and a training run, over ingest.alpha_vantage_daily_quota {quota}: use a smaller universe, Yahoo, or a premium plan (alpha_vantage_daily_quota: null)",
                env.symbols().len(),
                per_run * RUNS_A_DAY
            ),
        });
    }
}
