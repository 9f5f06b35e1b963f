//! What the rendered templates say about how much runs, before any price:
//! each schedule's firings a month (its cron), what one execution of the
//! state machine it starts does along its longest successful path
//! (`path.rs`: state transitions, Lambda calls, child executions, Batch
//! tasks, S3 requests of the Distributed Maps), for the run its plan step
//! makes of the universe the estimate is for (`run.rs`), which function
//! serves the API, and the vendor requests of the ingest calls (each call's
//! payload is worked out from the Map's ItemSelector and read as the step
//! contract, `IngestInput`).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::cron;
use super::path::{PathCost, S3Kind, TaskCall, longest_success_path};
use super::run::Run;
use super::{CostError, grouped};
use crate::ids::Symbol;
use crate::infra::model::{Integration, Model, Resource, StateMachine, Target};
use crate::ingest::{VendorRequest, vendor_requests};
use crate::models::ModelKind;
use crate::steps::IngestInput;

const STATE_MACHINE: &str = "AWS::StepFunctions::StateMachine";

/// Executions a month of every state machine, and what they do.
#[derive(Debug, Default)]
pub struct Usage {
    /// The symbols of the universe the runs are planned for.
    pub universe: f64,
    /// Firings a month, by schedule key.
    pub schedule_runs: BTreeMap<String, f64>,
    /// Executions a month, by state machine key.
    pub executions: BTreeMap<String, f64>,
    /// State transitions a month, by state machine key.
    pub transitions: BTreeMap<String, f64>,
    /// Invocations a month, by function key.
    pub invocations: BTreeMap<String, f64>,
    /// Symbols a month handled by the calls of a function with an `action`
    /// (calls times the symbols of their run), by function key and action.
    pub symbol_calls: BTreeMap<(String, String), f64>,
    /// Invocations a month made by a traced caller (their traces are the caller's).
    pub traced_invocations: BTreeMap<String, f64>,
    /// Child executions of Distributed Maps a month, by state machine key
    /// and Map state: (executions, their transitions).
    pub child_executions: BTreeMap<(String, String), (f64, f64)>,
    /// Symbols a month that the executions of each state machine handle
    /// (executions times the symbols each plans).
    pub symbol_runs: BTreeMap<String, f64>,
    /// S3 requests a month that state machines make themselves (a Map's
    /// reader and writer), by bucket key, kind and what makes them.
    pub s3_requests: BTreeMap<(String, S3Kind, String), f64>,
    /// Batch work a month, by job definition key.
    pub jobs: BTreeMap<String, JobUsage>,
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

/// What a job definition's jobs do in a month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobUsage {
    /// The queue (key) they are submitted to.
    pub queue: String,
    /// Jobs submitted a month (an array job is one).
    pub submitted: f64,
    /// Tasks a month (an array job's children, or the job itself), by
    /// what each trains.
    pub tasks: Vec<JobTasks>,
}

/// Tasks that each train the same number of symbols with the same models.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTasks {
    /// Tasks a month.
    pub count: f64,
    pub symbols: usize,
    pub models: Vec<ModelKind>,
}

/// Counts everything that runs in a month from the schedules, the state
/// machine definitions run for `universe`, and the workload's API demand.
pub fn derive(
    model: &Model<'_>,
    universe: &[Symbol],
    api_requests_per_month: f64,
) -> Result<Usage, CostError> {
    let mut usage = Usage {
        universe: universe.len() as f64,
        ..Usage::default()
    };
    for schedule in model.of_kind("AWS::Scheduler::Schedule") {
        schedule_usage(model, &mut usage, schedule, universe)?;
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
    universe: &[Symbol],
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
    let requests = execute(model, usage, &machine, runs, &input, universe)?;
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

/// An execution of a state machine started with `input`, and its longest
/// successful path.
fn machine_path(
    model: &Model<'_>,
    machine: &StateMachine<'_, '_>,
    input: &Json,
    universe: &[Symbol],
) -> Result<(Run, PathCost), CostError> {
    let resource = machine.resource;
    let run =
        Run::of(model, machine, input, universe).map_err(|e| CostError::template(resource, e))?;
    let path = longest_success_path(machine.definition(), &run)
        .map_err(|e| CostError::template(resource, e))?
        .ok_or_else(|| CostError::template(resource, "has no successful path".into()))?;
    Ok((run, path))
}

/// The vendor requests of one call's payload, if it is an ingest input.
fn payload_requests(payload: &Json) -> Vec<VendorRequest> {
    serde_json::from_value::<IngestInput>(payload.clone())
        .map(|input| vendor_requests(&input))
        .unwrap_or_default()
}

/// The vendor requests one execution sends, by vendor, with those of the
/// executions it starts (`depth` levels down; the started run is planned
/// from the parent's input, so it ingests what its parent did, as a
/// retraining on drift does).
fn run_vendor_requests(
    model: &Model<'_>,
    machine: &StateMachine<'_, '_>,
    input: &Json,
    universe: &[Symbol],
    depth: u32,
) -> Result<BTreeMap<&'static str, f64>, CostError> {
    let mut by_vendor = BTreeMap::new();
    for call in &machine_path(model, machine, input, universe)?.1.tasks {
        for request in call.payloads.iter().flat_map(payload_requests) {
            *by_vendor.entry(request.vendor()).or_default() += 1.0;
        }
        if depth > 0
            && let Integration::StartExecution { state_machine } = &call.task.integration
            && let Some(started) = machine.target(model, state_machine)
        {
            let started = StateMachine { resource: started };
            for (vendor, n) in run_vendor_requests(model, &started, input, universe, depth - 1)? {
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
    universe: &[Symbol],
) -> Result<BTreeMap<&'static str, f64>, CostError> {
    let (run, path) = machine_path(model, machine, input, universe)?;
    let key = machine.resource.key();
    *usage.executions.entry(key.clone()).or_default() += runs;
    *usage.transitions.entry(key.clone()).or_default() += runs * path.transitions;
    *usage.symbol_runs.entry(key.clone()).or_default() += runs * run.symbols.len() as f64;
    for children in &path.children {
        let entry = (usage.child_executions)
            .entry((key.clone(), children.map.clone()))
            .or_default();
        entry.0 += runs * children.executions;
        entry.1 += runs * children.executions * children.transitions_each;
    }
    for call in &path.s3 {
        let bucket = resolve(model, machine, &call.bucket, &call.what)?.key();
        let what = format!(
            "{} ({key}): {} runs x {}{}",
            call.what,
            grouped(runs, 2),
            grouped(call.requests, 1),
            call.detail
        );
        *usage
            .s3_requests
            .entry((bucket, call.kind, what))
            .or_default() += runs * call.requests;
    }
    for call in &path.tasks {
        count_call(model, usage, machine, call, runs, &run)?;
    }
    // One level: a run that starts another (drift → training) is followed
    // once; training starts nothing.
    run_vendor_requests(model, machine, input, universe, 1)
}

/// The resource a target of a state machine names.
fn resolve<'m, 'a>(
    model: &'m Model<'a>,
    machine: &StateMachine<'m, 'a>,
    target: &Target,
    state: &str,
) -> Result<&'m Resource<'a>, CostError> {
    machine.target(model, target).ok_or_else(|| {
        CostError::template(
            machine.resource,
            format!(
                "{state}: {} names no {} of the stacks",
                target.parameter, target.kind
            ),
        )
    })
}

/// Adds what one task's calls in `runs` executions of `run` do.
fn count_call(
    model: &Model<'_>,
    usage: &mut Usage,
    machine: &StateMachine<'_, '_>,
    call: &TaskCall,
    runs: f64,
    run: &Run,
) -> Result<(), CostError> {
    let calls = runs * call.times;
    let state = format!("state {}", call.task.state);
    match &call.task.integration {
        Integration::LambdaInvoke { function } => {
            let function = resolve(model, machine, function, &state)?.key();
            let traced =
                machine.resource.properties["TracingConfiguration"]["Enabled"] == Json::Bool(true);
            usage.add_invocations(&function, calls, traced);
            if let Some(action) = call.task.parameters["Payload"]["action"].as_str() {
                *(usage.symbol_calls)
                    .entry((function.clone(), action.to_owned()))
                    .or_default() += calls * run.symbols.len() as f64;
            }
            for request in call.payloads.iter().flat_map(payload_requests) {
                *usage
                    .vendor_requests
                    .entry((function.clone(), request))
                    .or_default() += runs;
            }
        }
        Integration::BatchSubmitJob { queue, definition } => {
            let definition = resolve(model, machine, definition, &state)?.key();
            let queue = resolve(model, machine, queue, &state)?.key();
            let models = run.models.clone().ok_or_else(|| {
                CostError::template(
                    machine.resource,
                    format!(
                        "{state} submits a Batch job, but no plan step says which models the run trains"
                    ),
                )
            })?;
            let job = usage.jobs.entry(definition).or_default();
            job.queue = queue;
            job.submitted += calls;
            for (tasks, symbols) in split(run.symbols.len(), call.array_size.unwrap_or(1)) {
                add_tasks(job, calls * tasks as f64, symbols, &models);
            }
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

/// How `symbols` split over `tasks` tasks, as `universe::select` splits a
/// run into shards: (tasks, symbols each), the larger first.
fn split(symbols: usize, tasks: usize) -> Vec<(usize, usize)> {
    let tasks = tasks.max(1);
    let (base, extra) = (symbols / tasks, symbols % tasks);
    [(extra, base + 1), (tasks - extra, base)]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .collect()
}

fn add_tasks(job: &mut JobUsage, count: f64, symbols: usize, models: &[ModelKind]) {
    match (job.tasks.iter_mut()).find(|t| t.symbols == symbols && t.models == models) {
        Some(same) => same.count += count,
        None => job.tasks.push(JobTasks {
            count,
            symbols,
            models: models.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_split_over_tasks_as_shards_do() {
        assert_eq!(split(8, 4), [(4, 2)]);
        assert_eq!(split(503, 32), [(23, 16), (9, 15)]);
        assert_eq!(split(3, 1), [(1, 3)]);
        assert_eq!(split(2, 3), [(2, 1), (1, 0)]);
    }
}
