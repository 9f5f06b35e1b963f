//! What the rendered templates say about how much runs, before any price:
//! each schedule's firings a month (its cron), what one execution of the
//! state machine it starts does along its longest successful path (state
//! transitions, Lambda calls, Batch jobs; a Map state's body once per item
//! of the execution input), and which function serves the API.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::CostError;
use super::cron;
use crate::infra::RenderedStack;

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
/// `Catch` (those are the failure paths). `items` gives the number of
/// items a Map state's `ItemsPath` selects. `None`: no successful path.
pub fn longest_success_path(
    definition: &Json,
    items: &dyn Fn(&str) -> Result<f64, String>,
) -> Result<Option<PathCost>, String> {
    let start = definition["StartAt"]
        .as_str()
        .ok_or("the definition has no StartAt")?;
    walk(definition, start, &mut Vec::new(), items)
}

fn walk(
    definition: &Json,
    name: &str,
    path: &mut Vec<String>,
    items: &dyn Fn(&str) -> Result<f64, String>,
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
            }],
        },
        "Map" => {
            let body = if state["ItemProcessor"].is_object() {
                &state["ItemProcessor"]
            } else {
                &state["Iterator"]
            };
            let items_path = state["ItemsPath"].as_str().unwrap_or("$");
            let n = items(items_path).map_err(|e| format!("Map state {name}: {e}"))?;
            let body = longest_success_path(body, items)?
                .ok_or_else(|| format!("the body of Map state {name} has no successful path"))?;
            PathCost {
                transitions: 1.0,
                tasks: Vec::new(),
            }
            .then(body.times(n))
        }
        "Parallel" => {
            let mut cost = PathCost {
                transitions: 1.0,
                tasks: Vec::new(),
            };
            for branch in state["Branches"].as_array().into_iter().flatten() {
                let branch = longest_success_path(branch, items)?.ok_or_else(|| {
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
        if let Some(rest) = walk(definition, n, path, items)?
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

/// The number of items a simple JSONPath (`$`, `$.a.b`) selects in an input.
fn count_items(input: &Json, path: &str) -> Result<f64, String> {
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("ItemsPath {path:?} is not a path into the execution input"))?;
    let mut value = input;
    for key in rest.split('.').filter(|k| !k.is_empty()) {
        value = &value[key];
    }
    value
        .as_array()
        .map(|a| a.len() as f64)
        .ok_or_else(|| format!("ItemsPath {path:?} selects no array in the execution input"))
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
        let input: Json = serde_json::from_str(target["Input"].as_str().unwrap_or("{}"))
            .map_err(|e| template_error(schedule, format!("Target.Input is not JSON: {e}")))?;
        execute(index, &mut usage, machine, runs, &input)?;
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

/// Adds `runs` executions of a state machine started with `input`.
fn execute(
    index: &Index<'_>,
    usage: &mut Usage,
    machine: &Resource<'_>,
    runs: f64,
    input: &Json,
) -> Result<(), CostError> {
    let definition = &machine.properties["Definition"];
    let path = longest_success_path(definition, &|p| count_items(input, p))
        .map_err(|e| template_error(machine, e))?
        .ok_or_else(|| template_error(machine, "has no successful path".into()))?;
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
            // machine's own runs.
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
        let path = longest_success_path(&definition, &|p| count_items(&input, p))
            .expect("walks")
            .expect("has a successful path");
        // Fetch (1) + 3 x One (3) + Decide + Long + Longer + Done (4) = 8.
        assert_eq!(path.transitions, 8.0);
        assert_eq!(path.tasks.len(), 1);
        assert_eq!(path.tasks[0].times, 3.0);
    }

    #[test]
    fn a_loop_is_an_error() {
        let definition = json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Pass", "Next": "A"}}});
        let err = longest_success_path(&definition, &|_| Ok(1.0)).expect_err("loops");
        assert!(
            err.contains("state A is reached again through A -> B"),
            "{err}"
        );
    }
}
