//! What one execution of a state machine does along its longest successful
//! path: state transitions, the calls of its Task states, the child
//! executions of its Distributed Maps and the S3 requests of their item
//! readers and result writers.
//!
//! Step Functions bills a Standard execution per state transition; a
//! Distributed Map state bills one transition for each child execution it
//! starts, and each Standard child execution its own transitions
//! (docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html,
//! "Transitions in Distributed Map states"). Its ItemReader reads its items
//! with one S3 GET of a JSON object; its ResultWriter writes the manifest
//! and the succeeded children's results file: two PUTs on a path where
//! every child succeeds.

use serde_json::Value as Json;

use super::run::Run;
use crate::infra::model::{Target, Task};

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
    /// The children of a Batch array job (`ArrayProperties.Size`), as the
    /// run's state sizes it; `None` for a job that is not an array.
    pub array_size: Option<usize>,
}

/// The child executions a Distributed Map state starts in one execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildRuns {
    /// The Map state.
    pub map: String,
    pub executions: f64,
    /// Transitions of each: the one its start is billed as, and its own.
    pub transitions_each: f64,
}

/// GET or PUT, as S3 prices them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum S3Kind {
    Get,
    Put,
}

/// S3 requests a Map state's ItemReader or ResultWriter makes in one execution.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Call {
    /// What makes them, in words ("ItemReader of Map Ingest").
    pub what: String,
    /// What they are, where it needs saying.
    pub detail: &'static str,
    /// The bucket (`Parameters.Bucket`, a placeholder).
    pub bucket: Target,
    pub kind: S3Kind,
    pub requests: f64,
}

/// What one execution does along a path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathCost {
    pub transitions: f64,
    pub tasks: Vec<TaskCall>,
    pub children: Vec<ChildRuns>,
    pub s3: Vec<S3Call>,
}

impl PathCost {
    fn one_transition() -> PathCost {
        PathCost {
            transitions: 1.0,
            ..PathCost::default()
        }
    }

    fn then(mut self, rest: PathCost) -> PathCost {
        self.transitions += rest.transitions;
        self.tasks.extend(rest.tasks);
        self.children.extend(rest.children);
        self.s3.extend(rest.s3);
        self
    }

    /// `n` times what the path does, its transitions included.
    fn times(mut self, n: f64) -> PathCost {
        self.transitions *= n;
        self.calls_times(n)
    }

    /// `n` times what the path's calls, child executions and S3 requests
    /// do, its own transitions unchanged.
    fn calls_times(mut self, n: f64) -> PathCost {
        self.tasks.iter_mut().for_each(|t| t.times *= n);
        self.children.iter_mut().for_each(|c| c.executions *= n);
        self.s3.iter_mut().for_each(|s| s.requests *= n);
        self
    }
}

/// The longest path from `StartAt` to a successful end (a `Succeed` state
/// or `End: true`), following `Next`, `Choices` and `Default` but not
/// `Catch` (those are the failure paths), for the execution `run`. A Choice
/// the run's state decides follows its one branch. `None`: no successful
/// path.
pub fn longest_success_path(definition: &Json, run: &Run) -> Result<Option<PathCost>, String> {
    let start = definition["StartAt"]
        .as_str()
        .ok_or("the definition has no StartAt")?;
    walk(definition, start, &mut Vec::new(), run)
}

fn walk(
    definition: &Json,
    name: &str,
    path: &mut Vec<String>,
    run: &Run,
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
        "Task" => task_cost(name, state, run)?,
        "Map" => map_cost(name, state, run)?,
        "Parallel" => parallel_cost(name, state, run)?,
        _ => PathCost::one_transition(),
    };
    if kind == "Succeed" || state["End"] == Json::Bool(true) {
        return Ok(Some(own));
    }
    path.push(name.to_owned());
    let mut best: Option<PathCost> = None;
    for next in successors(kind, state, &run.state) {
        if let Some(rest) = walk(definition, next, path, run)?
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

/// The states a successful run may go to next: `Next`; a Choice's one
/// branch where the state decides it, else all of its `Choices` and its
/// `Default` (never `Catch`, the failure paths).
fn successors<'j>(kind: &str, state: &'j Json, run_state: &Json) -> Vec<&'j str> {
    if kind != "Choice" {
        return state["Next"].as_str().into_iter().collect();
    }
    if let Some(decided) = super::choice::decided(state, run_state) {
        return decided.into_iter().collect();
    }
    state["Choices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Next"].as_str())
        .chain(state["Default"].as_str())
        .collect()
}

/// A Task state: one transition, one call; a Batch array job with the
/// size the run's state gives it.
fn task_cost(name: &str, state: &Json, run: &Run) -> Result<PathCost, String> {
    let task = Task::parse(name, state).map_err(|e| e.to_string())?;
    let array = &task.parameters["ArrayProperties"];
    let array_size = if array.is_object() {
        let size = match array["Size.$"].as_str() {
            Some(path) => resolve(&run.state, path),
            None => array.get("Size"),
        };
        let size = size.and_then(Json::as_u64).ok_or_else(|| {
            format!(
                "state {name}: ArrayProperties.Size is not a number the run's state gives ({array})"
            )
        })?;
        Some(usize::try_from(size).map_err(|e| format!("state {name}: {e}"))?)
    } else {
        None
    };
    Ok(PathCost {
        transitions: 1.0,
        tasks: vec![TaskCall {
            task,
            times: 1.0,
            payloads: Vec::new(),
            array_size,
        }],
        ..PathCost::default()
    })
}

/// A Map state: its own transition, and its body's path once per item,
/// each Lambda call that passes its item on with the payload the
/// ItemSelector builds. A Distributed Map's body runs as child executions,
/// billed as such; its reader and writer make S3 requests.
fn map_cost(name: &str, state: &Json, run: &Run) -> Result<PathCost, String> {
    let body = if state["ItemProcessor"].is_object() {
        &state["ItemProcessor"]
    } else {
        &state["Iterator"]
    };
    let mut cost = PathCost::one_transition();
    let items = if state["ItemReader"].is_object() {
        let (items, read) = read_items(name, &state["ItemReader"], run)?;
        cost.s3.push(read);
        items
    } else {
        let items_path = state["ItemsPath"].as_str().unwrap_or("$");
        select_items(&run.state, items_path).map_err(|e| format!("Map state {name}: {e}"))?
    };
    // The body's paths read its item, which the estimate does not follow:
    // its Choices are walked both ways.
    let item_run = Run {
        state: Json::Null,
        ..run.clone()
    };
    let mut body = longest_success_path(body, &item_run)?
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
                .map(|item| select(selector, run, item))
                .collect::<Option<Vec<Json>>>()
                .unwrap_or_default();
        }
    }
    let n = items.len() as f64;
    let processor = &state["ItemProcessor"]["ProcessorConfig"];
    if processor["Mode"] == "DISTRIBUTED" {
        let kind = processor["ExecutionType"].as_str().unwrap_or("STANDARD");
        if kind != "STANDARD" {
            return Err(format!(
                "Map state {name}: the estimate prices STANDARD child executions only, not {kind}"
            ));
        }
        let children = ChildRuns {
            map: name.to_owned(),
            executions: 1.0,
            transitions_each: 1.0 + body.transitions,
        };
        let mut each = body;
        each.transitions = 0.0;
        each.children.push(children);
        cost = cost.then(each.calls_times(n));
    } else {
        cost = cost.then(body.times(n));
    }
    if state["ResultWriter"].is_object() {
        cost.s3.push(write_results(name, &state["ResultWriter"])?);
    }
    Ok(cost)
}

/// The items an ItemReader reads (an object the run writes, a JSON array),
/// and its request.
fn read_items<'r>(name: &str, reader: &Json, run: &'r Run) -> Result<(&'r [Json], S3Call), String> {
    let resource = reader["Resource"].as_str().unwrap_or("");
    let input_type = reader["ReaderConfig"]["InputType"].as_str().unwrap_or("");
    if resource != "arn:aws:states:::s3:getObject" || input_type != "JSON" {
        return Err(format!(
            "Map state {name}: the estimate reads items with s3:getObject of a JSON array only, not {resource} of {input_type:?}"
        ));
    }
    let parameters = &reader["Parameters"];
    let key = match parameters["Key.$"].as_str() {
        Some(path) => resolve(&run.state, path).and_then(Json::as_str),
        None => parameters["Key"].as_str(),
    }
    .ok_or_else(|| {
        format!("Map state {name}: its ItemReader's Key is not one the run's state gives")
    })?;
    let items = run.objects.get(key).ok_or_else(|| {
        let known: Vec<&str> = run.objects.keys().map(String::as_str).collect();
        format!(
            "Map state {name}: its ItemReader reads {key}, which the run is not known to write (it writes {})",
            known.join(", ")
        )
    })?;
    let read = S3Call {
        what: format!("ItemReader of Map {name}"),
        detail: "",
        bucket: bucket(parameters),
        kind: S3Kind::Get,
        requests: 1.0,
    };
    Ok((items, read))
}

/// The requests of a ResultWriter: the manifest and the succeeded
/// children's results file.
fn write_results(name: &str, writer: &Json) -> Result<S3Call, String> {
    let resource = writer["Resource"].as_str().unwrap_or("");
    if resource != "arn:aws:states:::s3:putObject" {
        return Err(format!(
            "Map state {name}: the estimate writes results with s3:putObject only, not {resource}"
        ));
    }
    Ok(S3Call {
        what: format!("ResultWriter of Map {name}"),
        detail: " (manifest, results)",
        bucket: bucket(&writer["Parameters"]),
        kind: S3Kind::Put,
        requests: 2.0,
    })
}

/// The bucket a reader or writer names.
fn bucket(parameters: &Json) -> Target {
    Target {
        parameter: "Bucket",
        kind: "AWS::S3::Bucket",
        text: parameters["Bucket"].as_str().map(str::to_owned),
    }
}

/// A Parallel state: its own transition and every branch's path.
fn parallel_cost(name: &str, state: &Json, run: &Run) -> Result<PathCost, String> {
    let mut cost = PathCost::one_transition();
    for branch in state["Branches"].as_array().into_iter().flatten() {
        let branch = longest_success_path(branch, run)?
            .ok_or_else(|| format!("a branch of Parallel state {name} has no successful path"))?;
        cost = cost.then(branch);
    }
    Ok(cost)
}

/// The items a simple JSONPath (`$`, `$.a.b`) selects in the state.
fn select_items<'j>(state: &'j Json, path: &str) -> Result<&'j [Json], String> {
    resolve(state, path)
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| format!("ItemsPath {path:?} selects no array in the run's state"))
}

/// The value a simple path (`$`, `$.a.b`) selects in the state, if any.
pub(super) fn resolve<'j>(state: &'j Json, path: &str) -> Option<&'j Json> {
    if path.starts_with("$$") {
        return None;
    }
    lookup(state, path.strip_prefix('$')?)
}

/// The value at `.a.b` (or `""`: the value itself), if there is one.
fn lookup<'j>(value: &'j Json, rest: &str) -> Option<&'j Json> {
    rest.split('.')
        .filter(|k| !k.is_empty())
        .try_fold(value, |v, key| v.get(key))
}

/// A Map item's payload: the ItemSelector with its `key.$` paths read from
/// the execution input (`$$.Execution.Input…`), the item
/// (`$$.Map.Item.Value…`) and the state the Map state is given (`$…`); no
/// selector passes the item on. `None` where a path is anything else or
/// selects nothing: the payload is not known.
fn select(selector: &Json, run: &Run, item: &Json) -> Option<Json> {
    let Some(fields) = selector.as_object() else {
        return selector.is_null().then(|| item.clone());
    };
    let mut out = serde_json::Map::new();
    for (key, value) in fields {
        match key.strip_suffix(".$") {
            Some(name) => {
                let path = value.as_str()?;
                let found = if let Some(rest) = path.strip_prefix("$$.Execution.Input") {
                    lookup(&run.input, rest)
                } else if let Some(rest) = path.strip_prefix("$$.Map.Item.Value") {
                    lookup(item, rest)
                } else {
                    resolve(&run.state, path)
                };
                out.insert(name.to_owned(), found?.clone());
            }
            None if value.is_object() => {
                out.insert(key.clone(), select(value, run, &Json::Null)?);
            }
            None => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Some(Json::Object(out))
}

#[cfg(test)]
mod tests;
