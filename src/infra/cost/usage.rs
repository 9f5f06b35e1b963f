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
use crate::infra::RenderedStack;
use crate::ingest::{VendorRequest, vendor_requests};
use crate::steps::IngestInput;

/// A resource of the rendered stacks.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub stack: &'a str,
    pub id: &'a str,
    pub kind: &'a str,
    pub properties: &'a Json,
}

impl Resource<'_> {
    /// `stack/LogicalId`, as the estimate names resources.
    pub fn key(&self) -> String {
        format!("{}/{}", self.stack, self.id)
    }
}

/// Every resource and export of one environment's stacks.
#[derive(Debug)]
pub struct Index<'a> {
    pub resources: Vec<Resource<'a>>,
    exports: BTreeMap<&'a str, (&'a str, &'a Json)>,
}

impl<'a> Index<'a> {
    pub fn new(stacks: &'a [RenderedStack]) -> Self {
        let mut resources = Vec::new();
        let mut exports = BTreeMap::new();
        for stack in stacks {
            let name = stack.name.as_str();
            for (id, r) in stack.template["Resources"]
                .as_object()
                .into_iter()
                .flatten()
            {
                resources.push(Resource {
                    stack: name,
                    id,
                    kind: r["Type"].as_str().unwrap_or(""),
                    properties: &r["Properties"],
                });
            }
            for output in stack.template["Outputs"].as_object().into_iter().flatten() {
                if let Some(export) = output.1["Export"]["Name"].as_str() {
                    exports.insert(export, (name, &output.1["Value"]));
                }
            }
        }
        Index { resources, exports }
    }

    pub fn of_kind<'s>(&'s self, kind: &str) -> impl Iterator<Item = &'s Resource<'a>> {
        self.resources.iter().filter(move |r| r.kind == kind)
    }

    pub fn get(&self, stack: &str, id: &str) -> Option<&Resource<'a>> {
        self.resources
            .iter()
            .find(|r| r.stack == stack && r.id == id)
    }

    /// The resource of `kind` a value names: through an import to the
    /// exporting stack, a `Ref` or `GetAtt` of a resource, or (for ARNs
    /// built with `Fn::Sub`, like a job definition's) a text containing the
    /// resource's `name_property`.
    pub fn target(
        &self,
        stack: &str,
        value: &Json,
        kind: &str,
        name_property: &str,
    ) -> Option<&Resource<'a>> {
        if let Some(name) = value["Fn::ImportValue"].as_str() {
            let (from, exported) = self.exports.get(name)?;
            return self.target(from, exported, kind, name_property);
        }
        let id = value["Ref"]
            .as_str()
            .or_else(|| value["Fn::GetAtt"].get(0).and_then(Json::as_str));
        if let Some(id) = id {
            return self.get(stack, id).filter(|r| r.kind == kind);
        }
        let text = value["Fn::Sub"].as_str().or(value.as_str())?;
        self.of_kind(kind).find(|r| {
            r.properties[name_property]
                .as_str()
                .is_some_and(|name| text.contains(name))
        })
    }
}

/// A Task state's call, counted along a path.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCall {
    pub state: String,
    /// The integration (`arn:aws:states:::lambda:invoke`).
    pub integration: String,
    pub parameters: Json,
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
        "Task" => PathCost {
            transitions: 1.0,
            tasks: vec![TaskCall {
                state: name.to_owned(),
                integration: state["Resource"].as_str().unwrap_or("").to_owned(),
                parameters: if state["Parameters"].is_object() {
                    state["Parameters"].clone()
                } else {
                    state["Arguments"].clone()
                },
                times: 1.0,
                payloads: Vec::new(),
            }],
        },
        "Map" => {
            let body = if state["ItemProcessor"].is_object() {
                &state["ItemProcessor"]
            } else {
                &state["Iterator"]
            };
            let items_path = state["ItemsPath"].as_str().unwrap_or("$");
            let items =
                select_items(input, items_path).map_err(|e| format!("Map state {name}: {e}"))?;
            let mut body = longest_success_path(body, input)?
                .ok_or_else(|| format!("the body of Map state {name} has no successful path"))?;
            let selector = if state["ItemSelector"].is_object() {
                &state["ItemSelector"]
            } else {
                &state["Parameters"]
            };
            for task in &mut body.tasks {
                if task.parameters["Payload.$"] == "$" && task.payloads.is_empty() {
                    // All or nothing: a payload that cannot be worked out is not guessed.
                    task.payloads = items
                        .iter()
                        .map(|item| select(selector, input, item))
                        .collect::<Option<Vec<Json>>>()
                        .unwrap_or_default();
                }
            }
            PathCost {
                transitions: 1.0,
                tasks: Vec::new(),
            }
            .then(body.times(items.len() as f64))
        }
        "Parallel" => {
            let mut cost = PathCost {
                transitions: 1.0,
                tasks: Vec::new(),
            };
            for branch in state["Branches"].as_array().into_iter().flatten() {
                let branch = longest_success_path(branch, input)?.ok_or_else(|| {
                    format!("a branch of Parallel state {name} has no successful path")
                })?;
                cost = cost.then(branch);
            }
            cost
        }
        _ => PathCost {
            transitions: 1.0,
            tasks: Vec::new(),
        },
    };
    if kind == "Succeed" || state["End"] == Json::Bool(true) {
        return Ok(Some(own));
    }
    let next: Vec<&str> = if kind == "Choice" {
        state["Choices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Next"].as_str())
            .chain(state["Default"].as_str())
            .collect()
    } else {
        state["Next"].as_str().into_iter().collect()
    };
    path.push(name.to_owned());
    let mut best: Option<PathCost> = None;
    for n in next {
        if let Some(rest) = walk(definition, n, path, input)?
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

fn template_error(r: &Resource<'_>, message: String) -> CostError {
    CostError::Template {
        resource: r.key(),
        message,
    }
}

/// Counts everything that runs in a month from the schedules, the state
/// machine definitions and the workload's API demand.
pub fn derive(index: &Index<'_>, api_requests_per_month: f64) -> Result<Usage, CostError> {
    let mut usage = Usage::default();
    for schedule in index.of_kind("AWS::Scheduler::Schedule") {
        let expression = schedule.properties["ScheduleExpression"]
            .as_str()
            .unwrap_or("");
        let runs = cron::runs_per_month(expression).map_err(|e| template_error(schedule, e))?;
        usage.schedule_runs.insert(schedule.key(), runs);
        let target = &schedule.properties["Target"];
        let Some(machine) = index.target(
            schedule.stack,
            &target["Arn"],
            "AWS::StepFunctions::StateMachine",
            "StateMachineName",
        ) else {
            continue;
        };
        let fired = crate::steps::as_fired(
            target["Input"].as_str().unwrap_or("{}"),
            "2026-11-27T09:00:00Z",
        );
        let input: Json = serde_json::from_str(&fired)
            .map_err(|e| template_error(schedule, format!("Target.Input is not JSON: {e}")))?;
        let requests = execute(index, &mut usage, machine, runs, &input)?;
        usage
            .firings
            .push((schedule.key(), expression.to_owned(), requests));
    }
    for api in index.of_kind("AWS::ApiGateway::RestApi") {
        let mut functions: Vec<String> = index
            .of_kind("AWS::ApiGateway::Method")
            .filter(|m| m.stack == api.stack && m.properties["RestApiId"]["Ref"] == api.id)
            .filter_map(|m| integrated_function(index, m))
            .collect();
        functions.sort();
        functions.dedup();
        let function = match &functions[..] {
            [one] => one.clone(),
            [] => String::new(),
            many => {
                return Err(template_error(
                    api,
                    format!(
                        "its methods call {} functions ({}); the workload cannot split its requests between them",
                        many.len(),
                        many.join(", ")
                    ),
                ));
            }
        };
        let traced = index.of_kind("AWS::ApiGateway::Stage").any(|s| {
            s.properties["RestApiId"]["Ref"] == api.id
                && s.properties["TracingEnabled"] == Json::Bool(true)
        });
        if !function.is_empty() {
            *usage.invocations.entry(function.clone()).or_default() += api_requests_per_month;
            if traced {
                *usage
                    .traced_invocations
                    .entry(function.clone())
                    .or_default() += api_requests_per_month;
            }
        }
        usage
            .api_requests
            .insert(api.key(), (api_requests_per_month, function));
    }
    Ok(usage)
}

/// The function an API method's proxy integration calls (`${Function.Arn}` in its URI).
fn integrated_function(index: &Index<'_>, method: &Resource<'_>) -> Option<String> {
    let uri = &method.properties["Integration"]["Uri"];
    let text = uri["Fn::Sub"].as_str().or(uri.as_str())?;
    index
        .of_kind("AWS::Lambda::Function")
        .find(|f| f.stack == method.stack && text.contains(&format!("${{{}.Arn}}", f.id)))
        .map(Resource::key)
}

/// The longest successful path of a state machine started with `input`.
fn machine_path(machine: &Resource<'_>, input: &Json) -> Result<PathCost, CostError> {
    longest_success_path(&machine.properties["Definition"], input)
        .map_err(|e| template_error(machine, e))?
        .ok_or_else(|| template_error(machine, "has no successful path".into()))
}

/// The function a task's `FunctionName` (a `${Placeholder}`) is bound to.
fn task_target<'i, 'a>(
    index: &'i Index<'a>,
    machine: &Resource<'_>,
    task: &TaskCall,
    parameter: &str,
    kind: &str,
    name_property: &str,
) -> Option<&'i Resource<'a>> {
    let name = task.parameters[parameter]
        .as_str()?
        .strip_prefix("${")?
        .strip_suffix('}')?;
    let bound = machine.properties["DefinitionSubstitutions"].get(name)?;
    index.target(machine.stack, bound, kind, name_property)
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
    index: &Index<'_>,
    machine: &Resource<'_>,
    input: &Json,
    depth: u32,
) -> Result<BTreeMap<&'static str, f64>, CostError> {
    let mut by_vendor = BTreeMap::new();
    for task in &machine_path(machine, input)?.tasks {
        for request in task.payloads.iter().flat_map(payload_requests) {
            *by_vendor.entry(request.vendor()).or_default() += 1.0;
        }
        if depth > 0
            && task
                .integration
                .starts_with("arn:aws:states:::states:startExecution")
            && let Some(started) = task_target(
                index,
                machine,
                task,
                "StateMachineArn",
                "AWS::StepFunctions::StateMachine",
                "StateMachineName",
            )
        {
            for (vendor, n) in run_vendor_requests(index, started, input, depth - 1)? {
                *by_vendor.entry(vendor).or_default() += task.times * n;
            }
        }
    }
    Ok(by_vendor)
}

/// Adds `runs` executions of a state machine started with `input`; returns
/// the vendor requests one of them sends, by vendor, the runs it starts
/// included.
fn execute(
    index: &Index<'_>,
    usage: &mut Usage,
    machine: &Resource<'_>,
    runs: f64,
    input: &Json,
) -> Result<BTreeMap<&'static str, f64>, CostError> {
    let path = machine_path(machine, input)?;
    let key = machine.key();
    *usage.executions.entry(key.clone()).or_default() += runs;
    *usage.transitions.entry(key).or_default() += runs * path.transitions;
    let traced = machine.properties["TracingConfiguration"]["Enabled"] == Json::Bool(true);
    let substitutions = &machine.properties["DefinitionSubstitutions"];
    // "${IngestFunctionArn}" → the value DefinitionSubstitutions binds it to.
    let bound = |text: &Json| -> Option<&Json> {
        let name = text.as_str()?.strip_prefix("${")?.strip_suffix('}')?;
        substitutions.get(name)
    };
    for task in &path.tasks {
        let calls = runs * task.times;
        let resolve = |parameter: &str, kind: &str, name_property: &str| {
            bound(&task.parameters[parameter])
                .and_then(|v| index.target(machine.stack, v, kind, name_property))
                .ok_or_else(|| {
                    template_error(
                        machine,
                        format!(
                            "state {}: {parameter} names no {kind} of the stacks",
                            task.state
                        ),
                    )
                })
        };
        if task
            .integration
            .starts_with("arn:aws:states:::lambda:invoke")
        {
            let function = resolve("FunctionName", "AWS::Lambda::Function", "FunctionName")?;
            *usage.invocations.entry(function.key()).or_default() += calls;
            if traced {
                *usage.traced_invocations.entry(function.key()).or_default() += calls;
            }
            for request in task.payloads.iter().flat_map(payload_requests) {
                *usage
                    .vendor_requests
                    .entry((function.key(), request))
                    .or_default() += runs;
            }
        } else if task
            .integration
            .starts_with("arn:aws:states:::batch:submitJob")
        {
            let definition = resolve(
                "JobDefinition",
                "AWS::Batch::JobDefinition",
                "JobDefinitionName",
            )?;
            let queue = resolve("JobQueue", "AWS::Batch::JobQueue", "JobQueueName")?;
            let entry = usage
                .jobs
                .entry(definition.key())
                .or_insert((0.0, queue.key()));
            entry.0 += calls;
        } else if task.integration.starts_with("arn:aws:states:::sns:publish") {
            // Priced through the workload's notifications_per_month.
        } else if task
            .integration
            .starts_with("arn:aws:states:::states:startExecution")
        {
            // The call is one state transition, counted with the path; the
            // run it starts (training on drift) is priced as that state
            // machine's own runs, and counts only towards the busiest day.
        } else {
            return Err(template_error(
                machine,
                format!(
                    "state {}: the estimate does not know the integration {:?}; teach infra::cost its price",
                    task.state, task.integration
                ),
            ));
        }
    }
    // One level: a run that starts another (drift → training) is followed
    // once; training starts nothing.
    run_vendor_requests(index, machine, input, 1)
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
