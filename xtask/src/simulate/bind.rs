//! The rendered state machines with their `${Placeholders}` bound to local
//! names, and what each name stands for.
//!
//! Nothing is hard-coded about the wiring: every substitution is resolved
//! through the model of the rendered stacks (`stockcast::infra::model`) as
//! CloudFormation would (an import to its export, a `Ref`/`GetAtt` to its
//! resource, an ARN to the resource of that name) and named after that
//! resource, so a substitution that points at the wrong function, job
//! definition or topic runs the wrong local binding, or none, and the
//! scenario fails; one that points at the wrong kind for its task's
//! integration fails the binding. The Batch job definition's retry
//! strategy is read from the rendered app stack for the runner to emulate.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use serde_json::{Value as Json, json};
use stockcast::infra::Rendered;
use stockcast::infra::model::{
    Integration, Model, Pseudo, Resolved, Resource, StateMachine, Target, substitute,
};

/// The account id of every local ARN (AWS's documentation account).
const ACCOUNT: &str = "000000000000";
/// The stack whose state machines are simulated.
const ORCHESTRATION: &str = "orchestration";

/// One state machine, ready for the interpreter.
#[derive(Debug, Clone)]
pub struct Machine {
    pub arn: String,
    pub definition: Json,
}

/// A Lambda function a definition calls.
#[derive(Debug, Clone)]
pub struct Function {
    /// Its logical id in the app stack ("IngestFunction").
    pub logical_id: String,
    /// Its variables with literal values, as the deployed function gets them.
    pub environment: BTreeMap<String, String>,
}

/// The training job definition: what the runner needs to emulate Batch.
#[derive(Debug, Clone)]
pub struct JobDefinition {
    pub attempts: u64,
    pub evaluate_on_exit: Json,
    /// FARGATE or EC2: which status reason a Spot interruption has.
    pub platform: String,
    pub environment: BTreeMap<String, String>,
}

/// Every state machine of the orchestration stack and what their names mean.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// By logical id: "TrainingStateMachine", "DailyStateMachine".
    pub machines: BTreeMap<String, Machine>,
    /// By local ARN.
    pub functions: BTreeMap<String, Function>,
    pub jobs: BTreeMap<String, JobDefinition>,
    pub topics: BTreeSet<String>,
    /// The buckets the definitions name (a Distributed Map's ItemReader and
    /// ResultWriter): bucket name → logical id ("DataBucket").
    pub buckets: BTreeMap<String, String>,
}

/// Variables whose values are literals (imports and references have no
/// local meaning and are left out).
fn literal_variables(list_or_map: &Json) -> BTreeMap<String, String> {
    match list_or_map {
        Json::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        Json::Array(items) => items
            .iter()
            .filter_map(|i| {
                Some((
                    i["Name"].as_str()?.to_owned(),
                    i["Value"].as_str()?.to_owned(),
                ))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Binds the state machines of the rendered orchestration stack.
pub fn bind(rendered: &Rendered) -> anyhow::Result<Bound> {
    if !rendered.stacks.iter().any(|s| s.name == ORCHESTRATION) {
        bail!("the rendered stacks have no {ORCHESTRATION} stack");
    }
    let model = Model::new(&rendered.stacks);
    let pseudo = Pseudo {
        partition: "aws",
        region: &rendered.env.region,
        account: ACCOUNT,
    };
    let mut bound = Bound::default();
    for machine in model.state_machines() {
        if machine.resource.stack != ORCHESTRATION {
            continue;
        }
        let id = machine.resource.id;
        if !machine.definition().is_object() {
            bail!("{id} has no inline Definition");
        }
        let bindings = bind_substitutions(&model, &machine, &pseudo, &mut bound)?;
        register_targets(&model, &machine, &pseudo, &mut bound)?;
        let mut definition = machine.definition().clone();
        substitute(&mut definition, &bindings);
        bound.machines.insert(
            id.to_owned(),
            Machine {
                arn: local_value(machine.resource, &pseudo)?,
                definition,
            },
        );
    }
    Ok(bound)
}

/// Each placeholder of a state machine → the local name of what it is
/// bound to; the buckets among them are registered.
fn bind_substitutions(
    model: &Model<'_>,
    machine: &StateMachine<'_, '_>,
    pseudo: &Pseudo<'_>,
    bound: &mut Bound,
) -> anyhow::Result<BTreeMap<String, String>> {
    let id = machine.resource.id;
    let mut bindings = BTreeMap::new();
    for (name, value) in machine.substitutions() {
        let resource = match model.resolve(machine.resource.stack, value) {
            Ok(Resolved::Resource(resource)) => resource,
            _ => {
                bail!("{id}: ${{{name}}} = {value} resolves to no resource of the rendered stacks")
            }
        };
        let local = local_value(resource, pseudo).with_context(|| format!("{id}: ${{{name}}}"))?;
        if resource.kind == "AWS::S3::Bucket" {
            bound.buckets.insert(local.clone(), resource.id.to_owned());
        }
        bindings.insert(name.clone(), local);
    }
    Ok(bindings)
}

/// Registers what the tasks call (functions, job definitions, topics) under
/// the local names their placeholders are bound to, each checked to be of
/// the kind its task's integration needs.
fn register_targets(
    model: &Model<'_>,
    machine: &StateMachine<'_, '_>,
    pseudo: &Pseudo<'_>,
    bound: &mut Bound,
) -> anyhow::Result<()> {
    let id = machine.resource.id;
    for task in machine.tasks() {
        let task = task.with_context(|| format!("{id} cannot be simulated"))?;
        let local = |target: &Target| -> anyhow::Result<(&Resource<'_>, String)> {
            let resource = machine.target(model, target).with_context(|| {
                format!(
                    "{id}: state {}: {} names no {} of the rendered stacks",
                    task.state, target.parameter, target.kind
                )
            })?;
            Ok((resource, local_value(resource, pseudo)?))
        };
        match &task.integration {
            Integration::LambdaInvoke { function } => {
                let (function, arn) = local(function)?;
                bound.functions.insert(
                    arn,
                    Function {
                        logical_id: function.id.to_owned(),
                        environment: literal_variables(
                            &function.properties["Environment"]["Variables"],
                        ),
                    },
                );
            }
            Integration::BatchSubmitJob { queue, definition } => {
                local(queue)?;
                let (definition, arn) = local(definition)?;
                bound.jobs.insert(arn, job_definition(definition));
            }
            Integration::SnsPublish { topic } => {
                bound.topics.insert(local(topic)?.1);
            }
            // Every state machine is bound (`Bound::machine_arns`).
            Integration::StartExecution { state_machine } => {
                local(state_machine)?;
            }
        }
    }
    Ok(())
}

/// What the runner needs of a job definition to emulate Batch.
fn job_definition(resource: &Resource<'_>) -> JobDefinition {
    let p = resource.properties;
    JobDefinition {
        // Batch's default: one attempt, no retry.
        attempts: p["RetryStrategy"]["Attempts"].as_u64().unwrap_or(1),
        evaluate_on_exit: p["RetryStrategy"]["EvaluateOnExit"].clone(),
        platform: p["PlatformCapabilities"][0]
            .as_str()
            .unwrap_or("EC2")
            .to_owned(),
        environment: literal_variables(&p["ContainerProperties"]["Environment"]),
    }
}

/// What a placeholder bound to `resource` becomes locally: its ARN, made
/// of its name (its logical id where CloudFormation would generate one);
/// a bucket's name, which is what `Ref` gives and the workflows take.
fn local_value(resource: &Resource<'_>, pseudo: &Pseudo<'_>) -> anyhow::Result<String> {
    let Some(named) = resource.named_kind() else {
        bail!(
            "names a {} ({}); teach src/infra/model/names.rs its name and ARN",
            resource.kind,
            resource.id
        );
    };
    let name = resource
        .physical_name(pseudo)
        .unwrap_or_else(|| resource.id.to_owned());
    Ok(if resource.kind == "AWS::S3::Bucket" {
        name
    } else {
        named.arn(&name, pseudo)
    })
}

impl Bound {
    pub fn machine(&self, logical_id: &str) -> anyhow::Result<&Machine> {
        self.machines
            .get(logical_id)
            .with_context(|| format!("the orchestration stack has no {logical_id}"))
    }

    /// The ARNs of every state machine, as startExecution targets.
    pub fn machine_arns(&self) -> Json {
        self.machines
            .values()
            .map(|m| (m.arn.clone(), json!({})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_every_placeholder_of_both_machines_to_a_local_name() {
        let root = crate::project_root();
        let rendered =
            stockcast::infra::render(&stockcast::infra::Sources::in_project(&root), "dev")
                .expect("dev renders");
        let bound = bind(&rendered).expect("binds");
        for id in ["TrainingStateMachine", "DailyStateMachine"] {
            let text = bound.machine(id).expect("machine").definition.to_string();
            assert!(!text.contains("${"), "{id} still has a placeholder: {text}");
        }
        let logical: Vec<&str> = bound
            .functions
            .values()
            .map(|f| f.logical_id.as_str())
            .collect();
        for id in ["IngestFunction", "GateFunction", "MonitorFunction"] {
            assert!(logical.contains(&id), "{id} not bound: {logical:?}");
        }
        let job = bound
            .jobs
            .values()
            .next()
            .expect("the training job definition");
        assert!(job.attempts > 1, "the Spot retry strategy is read");
        assert!(job.evaluate_on_exit.is_array());
        assert_eq!(bound.topics.len(), 1);
        assert!(
            bound.buckets.values().any(|id| id == "DataBucket"),
            "the data bucket is bound: {:?}",
            bound.buckets
        );
    }
}
