//! What the estimate knows of one execution before walking its state
//! machine: the input it is started with, and the state its plan step
//! leaves, which is where every later state reads the run's shape.
//!
//! Schedules send only a run id; the universe, models and vendors come
//! from the environment through the plan step (the ingest function's
//! `STOCKCAST_RUN_DEFAULTS`, rendered from the environment file). The
//! estimate plans the run as that step does ([`crate::plan::fill`]) for the
//! universe it is given, and adds what the data checks answer for the run it
//! prices: every symbol ingests and passes, so every symbol is trained and
//! the training shards are those of the whole universe. A Choice that reads
//! this state is decided by it; one that reads anything else (the gate's
//! verdict, drift) is walked both ways and the longer path priced.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::ids::Symbol;
use crate::infra::model::{Integration, Model, StateMachine, Task};
use crate::layout;
use crate::models::ModelKind;
use crate::steps::{RunDefaults, RunPlan};

/// The variable the stacks render the plan step's defaults into.
const RUN_DEFAULTS: &str = "STOCKCAST_RUN_DEFAULTS";

/// The name an execution started by a schedule gets: its run id, unless
/// the input gives one (the schedules do).
const EXECUTION_NAME: &str = "scheduled-run";

/// One execution, as far as the estimate follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// What the execution is started with (`$$.Execution.Input`).
    pub input: Json,
    /// What `$.…` paths read: after a plan step, the plan with the data
    /// checks' answer under `quality`; without one, the input.
    pub state: Json,
    /// The objects of the run an ItemReader may read, by key, as the items
    /// they hold: the plan's symbol list.
    pub objects: BTreeMap<String, Vec<Json>>,
    /// The symbols the run trains.
    pub symbols: Vec<Symbol>,
    /// The models the run trains (the plan's), where there is a plan.
    pub models: Option<Vec<ModelKind>>,
}

impl Run {
    /// An execution of a state machine with no plan step: paths read the
    /// input, and the run trains the universe.
    pub fn unplanned(input: Json, universe: &[Symbol]) -> Run {
        Run {
            state: input.clone(),
            input,
            objects: BTreeMap::new(),
            symbols: universe.to_vec(),
            models: None,
        }
    }

    /// An execution whose plan step fills `defaults` for `universe`, as
    /// the plan Lambda does, and whose symbols all pass the data checks.
    pub fn planned(
        input: Json,
        defaults: &RunDefaults,
        universe: &[Symbol],
    ) -> Result<Run, String> {
        let plan_input = crate::steps::PlanInput {
            execution_name: EXECUTION_NAME.to_owned(),
            request: input.clone(),
        };
        let mut request = crate::plan::request(&plan_input.request).map_err(|e| e.message)?;
        let symbols = request.symbols.take().unwrap_or_else(|| universe.to_vec());
        let plan = crate::plan::fill(defaults, &plan_input.execution_name, request, &symbols)
            .map_err(|e| e.message)?;
        let mut state = serde_json::to_value(&plan).map_err(|e| e.to_string())?;
        state["quality"] = all_passed(&plan, &symbols)?;
        let items: Vec<Json> = symbols.iter().map(|s| Json::from(s.as_str())).collect();
        let objects = BTreeMap::from([
            (plan.symbols_key.clone(), items.clone()),
            (layout::run_passed(&plan.run_id), items),
        ]);
        Ok(Run {
            input,
            state,
            objects,
            symbols,
            models: Some(plan.models),
        })
    }

    /// An execution of `machine` started with `input`: planned as its plan
    /// step plans it, where it has one.
    pub fn of(
        model: &Model<'_>,
        machine: &StateMachine<'_, '_>,
        input: &Json,
        universe: &[Symbol],
    ) -> Result<Run, String> {
        match plan_defaults(model, machine)? {
            Some(defaults) => Run::planned(input.clone(), &defaults, universe),
            None => Ok(Run::unplanned(input.clone(), universe)),
        }
    }
}

/// The data checks' answer, as the workflow state holds it, for a run in
/// which every symbol passes (what `quality::check` returns with no issue).
fn all_passed(plan: &RunPlan, symbols: &[Symbol]) -> Result<Json, String> {
    let mut output = crate::quality::verdict(symbols, Vec::new());
    output.passed_count = output.passed.len();
    output.shards = crate::universe::shard_count(output.passed_count, plan.shard_size);
    output.passed_key = Some(layout::run_passed(&plan.run_id));
    let output = crate::quality::for_state(output, &plan.run_id);
    serde_json::to_value(output).map_err(|e| e.to_string())
}

/// The defaults of the function a machine's plan step calls (a Lambda
/// task whose payload is `{"action": "plan", …}`), if it has one.
fn plan_defaults(
    model: &Model<'_>,
    machine: &StateMachine<'_, '_>,
) -> Result<Option<RunDefaults>, String> {
    let definition = machine.definition();
    let Some(states) = definition["States"].as_object() else {
        return Ok(None);
    };
    for (name, state) in states {
        if state["Type"] != "Task" || state["Parameters"]["Payload"]["action"] != "plan" {
            continue;
        }
        let task = Task::parse(name, state).map_err(|e| e.to_string())?;
        let Integration::LambdaInvoke { function } = &task.integration else {
            return Err(format!(
                "state {name} plans the run, but is not a Lambda call"
            ));
        };
        let function = machine.target(model, function).ok_or_else(|| {
            format!("state {name}: its FunctionName names no function of the stacks")
        })?;
        let text = function.properties["Environment"]["Variables"][RUN_DEFAULTS]
            .as_str()
            .ok_or_else(|| {
                format!(
                    "state {name} plans the run with {}, which has no {RUN_DEFAULTS}",
                    function.key()
                )
            })?;
        let defaults = serde_json::from_str(text).map_err(|e| {
            format!(
                "{}: {RUN_DEFAULTS} is not the plan's defaults: {e}",
                function.key()
            )
        })?;
        return Ok(Some(defaults));
    }
    Ok(None)
}

/// A universe of `size` symbols made from `universe`: its first `size`
/// where it has as many, else all of it and as many made-up company
/// tickers as it lacks (`SYM0009`, …), which have news as a company does.
/// Pricing dev at 500 symbols prices its environment grown to 500.
pub fn sized(universe: &[Symbol], size: usize) -> Vec<Symbol> {
    let mut symbols: Vec<Symbol> = universe.iter().take(size).cloned().collect();
    let mut next = 0usize;
    while symbols.len() < size {
        next += 1;
        let name = format!("SYM{next:04}");
        if let Ok(symbol) = Symbol::new(name.as_str())
            && !symbols.contains(&symbol)
        {
            symbols.push(symbol);
        }
    }
    symbols
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelKind;
    use crate::steps::Source;
    use serde_json::json;

    fn defaults() -> RunDefaults {
        RunDefaults {
            env: "dev".into(),
            universe_key: "universes/dev.txt".into(),
            models: vec![ModelKind::Naive, ModelKind::Arima],
            horizons: vec![1, 5, 21],
            source: Source::Yahoo,
            sentiment: None,
            ingest_concurrency: 1,
            tolerated_failure_percent: 10.0,
            max_parallel_jobs: 4,
        }
    }

    fn symbols(n: usize) -> Vec<Symbol> {
        sized(&[], n)
    }

    #[test]
    fn a_planned_run_holds_the_plan_and_every_symbol_passed() {
        let run = Run::planned(json!({"run_id": "r-1"}), &defaults(), &symbols(10)).expect("plans");
        assert_eq!(run.state["run_id"], "r-1");
        assert_eq!(run.state["symbol_count"], 10);
        // 10 symbols over 4 parallel jobs: 3 a shard, 4 shards.
        assert_eq!(run.state["shard_size"], 3);
        assert_eq!(run.state["quality"]["shards"], 4);
        assert_eq!(run.state["quality"]["passed_count"], 10);
        assert_eq!(run.state["quality"]["any_passed"], true);
        let listed = &run.objects[run.state["symbols_key"].as_str().expect("a key")];
        assert_eq!(listed.len(), 10);
        assert_eq!(run.models, Some(vec![ModelKind::Naive, ModelKind::Arima]));
        // The input's symbols, where it gives them, are the run's.
        let run =
            Run::planned(json!({"symbols": ["AAPL"]}), &defaults(), &symbols(10)).expect("plans");
        assert_eq!(run.symbols.len(), 1);
        assert_eq!(run.state["run_id"], EXECUTION_NAME);
    }

    #[test]
    fn a_universe_is_cut_or_grown_to_size() {
        let seed: Vec<Symbol> = ["AAPL", "^GSPC"]
            .into_iter()
            .map(|s| Symbol::new(s).expect("valid"))
            .collect();
        assert_eq!(sized(&seed, 1), seed[..1]);
        let grown = sized(&seed, 4);
        assert_eq!(grown[..2], seed[..]);
        assert_eq!(grown[2].as_str(), "SYM0001");
        assert_eq!(grown.len(), 4);
        assert!(grown[2..].iter().all(|s| crate::ingest::has_news(s)));
    }
}
