//! How a scenario's execution starts: the input it is given (every field,
//! the universe's symbols, `{}`, the console's default), the run that input
//! must plan to, and the run defaults the plan step reads.

use anyhow::Context;
use serde_json::{Value as Json, json};
use stockcast::config::PipelineConfig;
use stockcast::ids::{RunId, Symbol};
use stockcast::steps::{RunDefaults, RunInput};

use super::Simulation;
use super::scenarios::{Scenario, StartInput};

/// The console's default input for a new execution.
pub const CONSOLE_DEFAULT_INPUT: &str = r#"{"Comment": "Insert your JSON here"}"#;

/// An execution as the scenario starts it.
pub struct Start<'a> {
    pub definition: &'a Json,
    pub config: PipelineConfig,
    /// What the execution is started with.
    pub given: Json,
    /// The run it must plan to (its run id, symbols, models, …).
    pub run: RunInput,
    pub execution_id: String,
    pub task_token: String,
}

impl Simulation {
    /// The execution the scenario starts: its input and settings, and the
    /// ids the interpreter gives it.
    pub(super) fn start(&self, scenario: &Scenario) -> anyhow::Result<Start<'_>> {
        let config = self.config(scenario.gate);
        let machine = self.bound.machine(scenario.workflow.logical_id())?;
        let defaults = self.run_defaults(scenario)?;
        let run_id = if scenario.start.uses_defaults() {
            // The console names an execution; the plan takes its name.
            RunId::new(scenario.name).context("a scenario's name is a run id")?
        } else {
            stockcast::pipeline::new_run_id(scenario.workflow.name())?
        };
        let run = RunInput {
            run_id,
            env: self.env.name.clone(),
            symbols: scenario
                .universe
                .symbols()
                .iter()
                .map(Symbol::new)
                .collect::<Result<_, _>>()?,
            models: defaults.models.clone(),
            horizons: defaults.horizons.clone(),
            source: defaults.source,
            sentiment: defaults.sentiment,
        };
        let execution_id = format!(
            "{}:{}",
            machine.arn.replace(":stateMachine:", ":execution:"),
            scenario.name
        );
        let task_token = format!("simulated-task-token-{}-{}", scenario.name, run.run_id);
        Ok(Start {
            definition: &machine.definition,
            config,
            given: given_input(scenario.start, &run)?,
            run,
            execution_id,
            task_token,
        })
    }

    /// The run defaults the ingest function is deployed with
    /// (`STOCKCAST_RUN_DEFAULTS`), but with the scenario's models and price
    /// source and no news: the environment's nine models would take minutes
    /// a scenario, and only the scenario's vendor is faked. Everything else
    /// (universe key, horizons, ingest concurrency, tolerated failures,
    /// parallel jobs) is as rendered.
    pub(super) fn run_defaults(&self, scenario: &Scenario) -> anyhow::Result<RunDefaults> {
        let rendered = self
            .bound
            .functions
            .values()
            .find_map(|f| f.environment.get("STOCKCAST_RUN_DEFAULTS"))
            .context("no function of the rendered stacks has STOCKCAST_RUN_DEFAULTS")?;
        let mut defaults: RunDefaults = serde_json::from_str(rendered)
            .with_context(|| format!("STOCKCAST_RUN_DEFAULTS is not run defaults: {rendered}"))?;
        defaults.models = scenario.models.to_vec();
        defaults.source = scenario.source;
        defaults.sentiment = None;
        Ok(defaults)
    }
}

/// The execution's input for `kind`: `run` in full, without its symbols,
/// `{}`, or the console's default.
fn given_input(kind: StartInput, run: &RunInput) -> anyhow::Result<Json> {
    Ok(match kind {
        StartInput::Full => serde_json::to_value(run)?,
        StartInput::Universe => {
            let mut input = serde_json::to_value(run)?;
            if let Some(fields) = input.as_object_mut() {
                fields.remove("symbols");
            }
            input
        }
        StartInput::Empty => json!({}),
        StartInput::Console => serde_json::from_str(CONSOLE_DEFAULT_INPUT)?,
    })
}
