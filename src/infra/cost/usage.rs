//! What the rendered templates say about how much runs, before any price:
//! each schedule's firings a month (its cron), what one execution of the
//! state machine it starts does along its longest successful path (state
//! transitions, Lambda calls, Batch jobs; a Map state's body once per item
//! of the execution input), which function serves the API, and the vendor
//! requests of the ingest calls (each call's payload is worked out from the
//! Map's ItemSelector and read as the step contract, `IngestInput`).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::CostError;
use super::cron;
use crate::infra::model::{Integration, Model, Resource, StateMachine, Target, Task};
use crate::ingest::{VendorRequest, vendor_requests};
use crate::steps::IngestInput;

/// A Task state's call, counted along a path.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCall {
    pub task: Task,
    /// Calls per execution (a Map body runs once per item).
    pub times: f64,
    /// The payload of each call in one execution, where the path can work
    /// it out: a Map body's Lambda task that passes on its item
    /// (`Payload.$: $`), once per item, as the Map's ItemSelector builds it.
    pub payloads: Vec<Json>,
}

/// What one execution does along a path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathCost {
    pub transitions: f64,
    pub tasks: Vec<TaskCall>,
}

impl PathCost {
    fn one_transition() -> PathCost {
        PathCost {
            transitions: 1.0,
            tasks: Vec::new(),
        }
    }

    fn then(mut self, rest: PathCost) -> PathCost {
        self.transitions += rest.transitions;
        self.tasks.extend(rest.tasks);
        self
    }

    fn times(mut self, n: f64) -> PathCost {
        self.transitions *= n;
        for t in &mut self.tasks {
            t.times *= n;
        }
        self
    }
}

/// The longest path from `StartAt` to a successful end (a `Succeed` state
/// or `End: true`), following `Next`, `Choices` and `Default` but not
/// `Catch` (those are the failure paths), for an execution started with
/// `input` (a Map state's `ItemsPath` selects its items there). `None`: no
/// successful path.
pub fn longest_success_path(definition: &Json, input: &Json) -> Result<Option<PathCost>, String> {
    let start = definition["StartAt"]
        .as_str()
        .ok_or("the definition has no StartAt")?;
    walk(definition, start, &mut Vec::new(), input)
}

fn walk(
    definition: &Json,
    name: &str,
    path: &mut Vec<String>,
    input: &Json,
) -> Result<Option<PathCost>, String> {
    if path.iter().any(|p| p == name) {
        return Err(format!(
            "state {name} is reached again through {}: a loop has no fixed number of transitions",
            path.join(" -> ")
        ));
    }
    let state = &definition["States"][name];
    let kind = state["Type"]
        .as_str()
        .ok_or_else(|| format!("state {name} does not exist or has no Type"))?;
    let own = match kind {
        "Fail" => return Ok(None),
        "Task" => task_cost(name, state)?,
        "Map" => map_cost(name, state, input)?,
        "Parallel" => parallel_cost(name, state, input)?,
        _ => PathCost::one_transition(),
    };
    if kind == "Succeed" || state["End"] == Json::Bool(true) {
        return Ok(Some(own));
    }
    path.push(name.to_owned());
    let mut best: Option<PathCost> = None;
    for next in successors(kind, state) {
        if let Some(rest) = walk(definition, next, path, input)?
            && best
                .as_ref()
                .is_none_or(|b| rest.transitions > b.transitions)
        {
            best = Some(rest);
        }
    }
    path.pop();
    Ok(best.map(|rest| own.then(rest)))
}

/// The states a successful run may go to next: `Next`, or a Choice's
/// `Choices` and `Default` (never `Catch`, the failure paths).
fn successors<'j>(kind: &str, state: &'j Json) -> Vec<&'j str> {
    if kind == "Choice" {
        state["Choices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Next"].as_str())
            .chain(state["Default"].as_str())
            .collect()
    } else {
        state["Next"].as_str().into_iter().collect()
    }
}

/// A Task state: one transition, one call.
fn task_cost(name: &str, state: &Json) -> Result<PathCost, String> {
    let task = Task::parse(name, state).map_err(|e| e.to_string())?;
    Ok(PathCost {
        transitions: 1.0,
        tasks: vec![TaskCall {
            task,
            times: 1.0,
            payloads: Vec::new(),
        }],
    })
}

/// A Map state: its own transition, and its body's path once per item of
/// the execution input, each Lambda call that passes its item on with the
/// payload the ItemSelector builds.
fn map_cost(name: &str, state: &Json, input: &Json) -> Result<PathCost, String> {
    let body = if state["ItemProcessor"].is_object() {
        &state["ItemProcessor"]
    } else {
        &state["Iterator"]
    };
    let items_path = state["ItemsPath"].as_str().unwrap_or("$");
    let items = select_items(input, items_path).map_err(|e| format!("Map state {name}: {e}"))?;
    let mut body = longest_success_path(body, input)?
        .ok_or_else(|| format!("the body of Map state {name} has no successful path"))?;
    let selector = if state["ItemSelector"].is_object() {
        &state["ItemSelector"]
    } else {
        &state["Parameters"]
    };
    for call in &mut body.tasks {
        if call.task.parameters["Payload.$"] == "$" && call.payloads.is_empty() {
            // All or nothing: a payload that cannot be worked out is not guessed.
            call.payloads = items
                .iter()
                .map(|item| select(selector, input, item))
                .collect::<Option<Vec<Json>>>()
                .unwrap_or_default();
        }
    }
    Ok(PathCost::one_transition().then(body.times(items.len() as f64)))
}

/// A Parallel state: its own transition and every branch's path.
fn parallel_cost(name: &str, state: &Json, input: &Json) -> Result<PathCost, String> {
    let mut cost = PathCost::one_transition();
    for branch in state["Branches"].as_array().into_iter().flatten() {
        let branch = longest_success_path(branch, input)?
            .ok_or_else(|| format!("a branch of Parallel state {name} has no successful path"))?;
        cost = cost.then(branch);
    }
    Ok(cost)
}

/// The items a simple JSONPath (`$`, `$.a.b`) selects in an input.
fn select_items<'j>(input: &'j Json, path: &str) -> Result<&'j [Json], String> {
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("ItemsPath {path:?} is not a path into the execution input"))?;
    lookup(input, rest)
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| format!("ItemsPath {path:?} selects no array in the execution input"))
}

/// The value at `.a.b` (or `""`: the value itself), if there is one.
fn lookup<'j>(value: &'j Json, rest: &str) -> Option<&'j Json> {
    rest.split('.')
        .filter(|k| !k.is_empty())
        .try_fold(value, |v, key| v.get(key))
}

/// A Map item's payload: the ItemSelector with its `key.$` paths read from
/// the execution input (`$$.Execution.Input…`) and the item
/// (`$$.Map.Item.Value…`); no selector passes the item on. `None` where a
/// path is anything else or selects nothing: the payload is not known.
fn select(selector: &Json, input: &Json, item: &Json) -> Option<Json> {
    let Some(fields) = selector.as_object() else {
        return selector.is_null().then(|| item.clone());
    };
    let mut out = serde_json::Map::new();
    for (key, value) in fields {
        match key.strip_suffix(".$") {
            Some(name) => {
                let path = value.as_str()?;
                let found = if let Some(rest) = path.strip_prefix("$$.Execution.Input") {
                    lookup(input, rest)
                } else {
                    lookup(item, path.strip_prefix("$$.Map.Item.Value")?)
                };
                out.insert(name.to_owned(), found?.clone());
            }
            None if value.is_object() => {
                out.insert(key.clone(), select(value, input, &Json::Null)?);
            }
            None => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Some(Json::Object(out))
}

const STATE_MACHINE: &str = "AWS::StepFunctions::StateMachine";

/// Executions a month of every state machine, and what they do.
#[derive(Debug, Default)]
pub struct Usage {
    /// Firings a month, by schedule key.
    pub schedule_runs: BTreeMap<String, f64>,
    /// Executions a month, by state machine key.
    pub executions: BTreeMap<String, f64>,
    /// State transitions a month, by state machine key.
    pub transitions: BTreeMap<String, f64>,
    /// Invocations a month, by function key.
    pub invocations: BTreeMap<String, f64>,
    /// Invocations a month made by a traced caller (their traces are the caller's).
    pub traced_invocations: BTreeMap<String, f64>,
    /// Jobs a month, by job definition key, with the queue they go to.
    pub jobs: BTreeMap<String, (f64, String)>,
    /// API requests a month, by REST API key, and the function serving them.
    pub api_requests: BTreeMap<String, (f64, String)>,
    /// Vendor requests a month, by the function that sends them and what
    /// they ask.
    pub vendor_requests: BTreeMap<(String, VendorRequest), f64>,
    /// Each schedule (key, expression) with the vendor requests one firing
    /// sends, by vendor, the runs it starts included (a retraining on
    /// drift, the same day): what a vendor's daily limit is measured by.
    pub firings: Vec<(String, String, BTreeMap<&'static str, f64>)>,
}

/// Counts everything that runs in a month from the schedules, the state
/// machine definitions and the workload's API demand.
pub fn derive(model: &Model<'_>, api_requests_per_month: f64) -> Result<Usage, CostError> {
    let mut usage = Usage::default();
    for schedule in model.of_kind("AWS::Scheduler::Schedule") {
        schedule_usage(model, &mut usage, schedule)?;
    }
    for api in model.of_kind("AWS::ApiGateway::RestApi") {
        api_usage(model, &mut usage, api, api_requests_per_month)?;
    }
    Ok(usage)
}

/// A schedule's firings, and the executions of the state machine it starts.
fn schedule_usage(
    model: &Model<'_>,
    usage: &mut Usage,
    schedule: &Resource<'_>,
) -> Result<(), CostError> {
    let expression = schedule.properties["ScheduleExpression"]
        .as_str()
        .unwrap_or("");
    let runs = cron::runs_per_month(expression).map_err(|e| CostError::template(schedule, e))?;
    usage.schedule_runs.insert(schedule.key(), runs);
    let target = &schedule.properties["Target"];
    let Some(machine) = model.resource_of_kind(schedule.stack, &target["Arn"], STATE_MACHINE)
    else {
        return Ok(());
    };
    // What the scheduler sends: its placeholder for the firing's time
    // replaced, so the run id (and the ingest inputs made from it) parse.
    let fired = crate::steps::as_fired(
        target["Input"].as_str().unwrap_or("{}"),
        "2026-11-27T09:00:00Z",
    );
    let input: Json = serde_json::from_str(&fired)
        .map_err(|e| CostError::template(schedule, format!("Target.Input is not JSON: {e}")))?;
    let machine = StateMachine { resource: machine };
    let requests = execute(model, usage, &machine, runs, &input)?;
    usage
        .firings
        .push((schedule.key(), expression.to_owned(), requests));
    Ok(())
}

/// A REST API's requests, and the calls of the function serving them.
fn api_usage(
    model: &Model<'_>,
    usage: &mut Usage,
    api: &Resource<'_>,
    requests: f64,
) -> Result<(), CostError> {
    let mut functions: Vec<String> = model
        .of_kind("AWS::ApiGateway::Method")
        .filter(|m| m.stack == api.stack && m.properties["RestApiId"]["Ref"] == api.id)
        .filter_map(|m| integrated_function(model, m))
        .collect();
    functions.sort();
    functions.dedup();
    let function = match &functions[..] {
        [one] => one.clone(),
        [] => String::new(),
        many => {
            return Err(CostError::template(
                api,
                format!(
                    "its methods call {} functions ({}); the workload cannot split its requests between them",
                    many.len(),
                    many.join(", ")
                ),
            ));
        }
    };
    let traced = model.of_kind("AWS::ApiGateway::Stage").any(|s| {
        s.properties["RestApiId"]["Ref"] == api.id
            && s.properties["TracingEnabled"] == Json::Bool(true)
    });
    if !function.is_empty() {
        usage.add_invocations(&function, requests, traced);
    }
    usage.api_requests.insert(api.key(), (requests, function));
    Ok(())
}

impl Usage {
    /// Adds calls of a function, made by a traced caller or not.
    fn add_invocations(&mut self, function: &str, calls: f64, traced: bool) {
        *self.invocations.entry(function.to_owned()).or_default() += calls;
        if traced {
            *self
                .traced_invocations
                .entry(function.to_owned())
                .or_default() += calls;
        }
    }
}

/// The function an API method's proxy integration calls (`${Function.Arn}` in its URI).
fn integrated_function(model: &Model<'_>, method: &Resource<'_>) -> Option<String> {
    let uri = &method.properties["Integration"]["Uri"];
    let text = uri["Fn::Sub"].as_str().or(uri.as_str())?;
    model
        .of_kind("AWS::Lambda::Function")
        .find(|f| f.stack == method.stack && text.contains(&format!("${{{}.Arn}}", f.id)))
        .map(Resource::key)
}

/// The longest successful path of a state machine started with `input`.
fn machine_path(machine: &StateMachine<'_, '_>, input: &Json) -> Result<PathCost, CostError> {
    let resource = machine.resource;
    longest_success_path(machine.definition(), input)
        .map_err(|e| CostError::template(resource, e))?
        .ok_or_else(|| CostError::template(resource, "has no successful path".into()))
}

/// The vendor requests of one call's payload, if it is an ingest input.
fn payload_requests(payload: &Json) -> Vec<VendorRequest> {
    serde_json::from_value::<IngestInput>(payload.clone())
        .map(|input| vendor_requests(&input))
        .unwrap_or_default()
}

/// The vendor requests one execution sends, by vendor, with those of the
/// executions it starts (`depth` levels down; the started run is assumed to
/// ingest what its parent did, as a retraining on drift does).
fn run_vendor_requests(
    model: &Model<'_>,
    machine: &StateMachine<'_, '_>,
    input: &Json,
    depth: u32,
) -> Result<BTreeMap<&'static str, f64>, CostError> {
    let mut by_vendor = BTreeMap::new();
    for call in &machine_path(machine, input)?.tasks {
        for request in call.payloads.iter().flat_map(payload_requests) {
            *by_vendor.entry(request.vendor()).or_default() += 1.0;
        }
        if depth > 0
            && let Integration::StartExecution { state_machine } = &call.task.integration
            && let Some(started) = machine.target(model, state_machine)
        {
            let started = StateMachine { resource: started };
            for (vendor, n) in run_vendor_requests(model, &started, input, depth - 1)? {
                *by_vendor.entry(vendor).or_default() += call.times * n;
            }
        }
    }
    Ok(by_vendor)
}

/// Adds `runs` executions of a state machine started with `input`; returns
/// the vendor requests one of them sends, by vendor, the runs it starts
/// included.
fn execute(
    model: &Model<'_>,
    usage: &mut Usage,
    machine: &StateMachine<'_, '_>,
    runs: f64,
    input: &Json,
) -> Result<BTreeMap<&'static str, f64>, CostError> {
    let path = machine_path(machine, input)?;
    let key = machine.resource.key();
    *usage.executions.entry(key.clone()).or_default() += runs;
    *usage.transitions.entry(key).or_default() += runs * path.transitions;
    for call in &path.tasks {
        count_call(model, usage, machine, call, runs)?;
    }
    // One level: a run that starts another (drift → training) is followed
    // once; training starts nothing.
    run_vendor_requests(model, machine, input, 1)
}

/// Adds what one task's calls in `runs` executions do.
fn count_call(
    model: &Model<'_>,
    usage: &mut Usage,
    machine: &StateMachine<'_, '_>,
    call: &TaskCall,
    runs: f64,
) -> Result<(), CostError> {
    let calls = runs * call.times;
    let resolve = |target: &Target| {
        machine.target(model, target).ok_or_else(|| {
            CostError::template(
                machine.resource,
                format!(
                    "state {}: {} names no {} of the stacks",
                    call.task.state, target.parameter, target.kind
                ),
            )
        })
    };
    match &call.task.integration {
        Integration::LambdaInvoke { function } => {
            let function = resolve(function)?.key();
            let traced =
                machine.resource.properties["TracingConfiguration"]["Enabled"] == Json::Bool(true);
            usage.add_invocations(&function, calls, traced);
            for request in call.payloads.iter().flat_map(payload_requests) {
                *usage
                    .vendor_requests
                    .entry((function.clone(), request))
                    .or_default() += runs;
            }
        }
        Integration::BatchSubmitJob { queue, definition } => {
            let definition = resolve(definition)?;
            let queue = resolve(queue)?;
            let entry = usage
                .jobs
                .entry(definition.key())
                .or_insert((0.0, queue.key()));
            entry.0 += calls;
        }
        // Priced through the workload's notifications_per_month.
        Integration::SnsPublish { .. } => {}
        // The call is one state transition, counted with the path; the run
        // it starts (training on drift) is priced as that state machine's
        // own runs, and counts only towards the busiest day.
        Integration::StartExecution { .. } => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_longest_successful_path_counts_map_bodies_per_item() {
        let definition = json!({
            "StartAt": "Fetch",
            "States": {
                "Fetch": {"Type": "Map", "ItemsPath": "$.symbols", "Next": "Decide",
                    "ItemProcessor": {"StartAt": "One", "States": {
                        "One": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}}},
                "Decide": {"Type": "Choice",
                    "Choices": [{"Variable": "$.x", "BooleanEquals": true, "Next": "Long"}],
                    "Default": "Done"},
                "Long": {"Type": "Pass", "Next": "Longer"},
                "Longer": {"Type": "Pass", "Next": "Done",
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Broken"}]},
                "Broken": {"Type": "Fail"},
                "Done": {"Type": "Succeed"}
            }
        });
        let input = json!({"symbols": ["A", "B", "C"]});
        let path = longest_success_path(&definition, &input)
            .expect("walks")
            .expect("has a successful path");
        // Fetch (1) + 3 x One (3) + Decide + Long + Longer + Done (4) = 8.
        assert_eq!(path.transitions, 8.0);
        assert_eq!(path.tasks.len(), 1);
        assert_eq!(path.tasks[0].times, 3.0);
    }

    #[test]
    fn a_map_items_payloads_are_built_by_its_item_selector() {
        let mut definition = json!({"StartAt": "Ingest", "States": {"Ingest": {
            "Type": "Map", "ItemsPath": "$.symbols", "End": true,
            "ItemSelector": {
                "run_id.$": "$$.Execution.Input.run_id",
                "symbol.$": "$$.Map.Item.Value",
                "source.$": "$$.Execution.Input.source",
                "sentiment.$": "$$.Execution.Input.sentiment",
                "fixed": {"a": 1}},
            "ItemProcessor": {"StartAt": "One", "States": {"One": {
                "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "f", "Payload.$": "$"}, "End": true}}}}}});
        let input = json!({"run_id": "r", "symbols": ["AAPL", "^GSPC"], "source": "yahoo", "sentiment": "alpha-vantage"});
        let payloads = |definition: &Json| {
            longest_success_path(definition, &input)
                .expect("walks")
                .expect("has a successful path")
                .tasks[0]
                .payloads
                .clone()
        };
        let got = payloads(&definition);
        assert_eq!(
            got[0],
            json!({"run_id": "r", "symbol": "AAPL", "source": "yahoo", "sentiment": "alpha-vantage", "fixed": {"a": 1}})
        );
        let requests: Vec<VendorRequest> = got.iter().flat_map(payload_requests).collect();
        use crate::steps::{SentimentSource, Source};
        assert_eq!(
            requests,
            [
                VendorRequest::DailyPrices(Source::Yahoo),
                VendorRequest::NewsSentiment(SentimentSource::AlphaVantage),
                // ^GSPC: an index has no news.
                VendorRequest::DailyPrices(Source::Yahoo),
            ]
        );
        // A path the estimate cannot follow leaves the payloads unknown, never guessed.
        definition["States"]["Ingest"]["ItemSelector"]["symbol.$"] = json!("$.symbol");
        assert!(payloads(&definition).is_empty());
    }

    #[test]
    fn a_loop_is_an_error() {
        let definition = json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Pass", "Next": "A"}}});
        let err = longest_success_path(&definition, &json!({})).expect_err("loops");
        assert!(
            err.contains("state A is reached again through A -> B"),
            "{err}"
        );
    }
}
