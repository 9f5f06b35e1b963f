//! The workflows' Retry and Catch against the error names each task can
//! return (`Task::errors`): a retry for exactly the names a retry can fix,
//! a catch for the rest, and no name the code never returns.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use stockcast::steps::{ErrorName, Task};

const WORKFLOWS: [&str; 2] = ["training", "daily"];

fn definition(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("workflows/{name}.asl.yaml"));
    let text = std::fs::read_to_string(&path).expect("reads the workflow");
    serde_norway::from_str(&text).expect("parses the workflow")
}

/// The stockcast task a Task state runs, from its resource, function and
/// action; `None` for AWS integrations (SNS, StartExecution).
fn task_of(state_name: &str, state: &Value) -> Option<Task> {
    let resource = state["Resource"].as_str().unwrap_or_default();
    let parameters = &state["Parameters"];
    let function = parameters["FunctionName"].as_str().unwrap_or_default();
    let action = parameters["Payload"]["action"].as_str();
    let task = match (resource, function, action) {
        ("arn:aws:states:::batch:submitJob.sync", _, _) => Task::Train,
        (_, "${IngestFunctionArn}", None) => Task::Ingest,
        (_, "${IngestFunctionArn}", Some("quality")) => Task::Quality,
        (_, "${IngestFunctionArn}", Some("plan")) => Task::Plan,
        (_, "${GateFunctionArn}", Some("merge")) => Task::GateMerge,
        (_, "${GateFunctionArn}", Some("evaluate")) => Task::GateEvaluate,
        (_, "${GateFunctionArn}", Some("promote")) => Task::GatePromote,
        (_, "${GateFunctionArn}", Some("withdraw")) => Task::GateWithdraw,
        (_, "${GateFunctionArn}", Some("mirror")) => Task::GateMirror,
        (_, "${GateFunctionArn}", Some("request_approval")) => Task::GateRequestApproval,
        (_, "${MonitorFunctionArn}", Some("monitor")) => Task::Monitor,
        (r, _, _) if r.contains(":::lambda:") => {
            panic!("{state_name}: a Lambda task this test does not know ({function} {action:?})")
        }
        _ => return None,
    };
    Some(task)
}

fn names(rules: &Value) -> BTreeSet<String> {
    rules
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["ErrorEquals"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

fn catches_all(state: &Value) -> bool {
    names(&state["Catch"]).contains("States.ALL")
}

/// A name of ours (not `States.*` or an AWS service's), as an `ErrorName`.
fn ours(name: &str) -> Option<Result<ErrorName, String>> {
    let service = ["States.", "Lambda.", "Batch.", "StepFunctions.", "SNS."];
    if service.iter().any(|s| name.starts_with(s)) {
        return None;
    }
    Some(serde_json::from_value(Value::String(name.to_owned())).map_err(|_| name.to_owned()))
}

/// Every problem of one state list; `caught` is whether an enclosing Map
/// catches everything its iterations throw.
fn check_states(workflow: &str, states: &Value, caught: bool, problems: &mut Vec<String>) {
    let Some(states) = states.as_object() else {
        return;
    };
    for (name, state) in states {
        let at = format!("{workflow}/{name}");
        let retried = names(&state["Retry"]);
        for n in retried.iter().chain(&names(&state["Catch"])) {
            if let Some(Err(unknown)) = ours(n) {
                problems.push(format!("{at}: {unknown} is not an ErrorName"));
            }
        }
        if let Some(error) = state["Error"].as_str()
            && let Some(Err(unknown)) = ours(error)
        {
            problems.push(format!(
                "{at}: fails with {unknown}, which is not an ErrorName"
            ));
        }
        match state["Type"].as_str() {
            Some("Map") => check_states(
                workflow,
                &state["ItemProcessor"]["States"],
                catches_all(state),
                problems,
            ),
            Some("Task") => {
                let Some(task) = task_of(&at, state) else {
                    if let Some(n) = retried.iter().find(|n| ours(n).is_some()) {
                        problems.push(format!("{at}: an AWS integration retries our {n}"));
                    }
                    continue;
                };
                check_task(&at, task, state, &retried, caught, problems);
            }
            _ => {}
        }
    }
}

fn check_task(
    at: &str,
    task: Task,
    state: &Value,
    retried: &BTreeSet<String>,
    caught: bool,
    problems: &mut Vec<String>,
) {
    let returns = task.errors();
    for n in retried {
        let Some(Ok(name)) = ours(n) else { continue };
        if task == Task::Train {
            // Batch reports a failed job as States.TaskFailed; the job
            // definition's RetryStrategy retries an interrupted attempt.
            problems.push(format!("{at}: a Batch job never fails with {n}"));
        } else if !name.is_retryable() {
            problems.push(format!("{at}: retries {n}, which a retry cannot fix"));
        } else if !returns.contains(&name) {
            problems.push(format!(
                "{at}: retries {n}, which {} never returns",
                task.name()
            ));
        }
    }
    if task != Task::Train {
        for name in returns.iter().filter(|n| n.is_retryable()) {
            if !retried.contains(name.as_str()) {
                problems.push(format!(
                    "{at}: {} can return {name}, which a retry fixes, but the state does not retry it",
                    task.name()
                ));
            }
        }
    }
    if !(caught || catches_all(state)) {
        problems.push(format!(
            "{at}: nothing catches what {} returns after its retries",
            task.name()
        ));
    }
}

#[test]
fn retry_and_catch_match_the_names_each_task_returns() {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for workflow in WORKFLOWS {
        let definition = definition(workflow);
        check_states(workflow, &definition["States"], false, &mut problems);
        collect_tasks(&definition["States"], &mut seen);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every task of the table runs somewhere, so the table is not stale.
    for task in Task::ALL {
        assert!(
            seen.contains(task.name()),
            "{} runs in no workflow",
            task.name()
        );
    }
}

fn collect_tasks(states: &Value, seen: &mut BTreeSet<&'static str>) {
    for (name, state) in states.as_object().into_iter().flatten() {
        if let Some(task) = task_of(name, state) {
            seen.insert(task.name());
        }
        collect_tasks(&state["ItemProcessor"]["States"], seen);
    }
}

#[test]
fn the_check_finds_a_retry_of_a_name_a_retry_cannot_fix() {
    // The test above must be able to fail: a Retry on Vendor.UnknownSymbol
    // and a quality step that forgot Storage.Unavailable.
    let mut definition = definition("training");
    let states = &mut definition["States"];
    states["Ingest"]["ItemProcessor"]["States"]["IngestSymbol"]["Retry"][0]["ErrorEquals"]
        .as_array_mut()
        .expect("a Retry")
        .push(Value::from("Vendor.UnknownSymbol"));
    states["Quality"]["Retry"] = Value::Array(Vec::new());
    let mut problems = Vec::new();
    check_states("training", states, false, &mut problems);
    let text = problems.join("\n");
    assert!(
        text.contains("retries Vendor.UnknownSymbol, which a retry cannot fix"),
        "{text}"
    );
    assert!(
        text.contains("Quality: quality can return Storage.Unavailable"),
        "{text}"
    );
}
