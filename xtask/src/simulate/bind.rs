//! The rendered state machines with their `${Placeholders}` bound to local
//! names, and what each name stands for.
//!
//! Nothing is hard-coded about the wiring: every substitution is resolved
//! through the rendered stacks as CloudFormation would (an import to its
//! export, a `Ref`/`GetAtt` to its resource) and named after that
//! resource, so a substitution that points at the wrong function, job
//! definition or topic runs the wrong local binding, or none, and the
//! scenario fails. The Batch job definition's retry strategy is read from
//! the rendered app stack for the runner to emulate.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use serde_json::{Value as Json, json};
use stockcast::infra::{Rendered, RenderedStack};

/// The account id of every local ARN (AWS's documentation account).
const ACCOUNT: &str = "000000000000";

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
}

/// A resource found by following an import or a reference.
struct Found<'a> {
    logical_id: &'a str,
    resource: &'a Json,
}

fn resolve<'a>(stacks: &'a [RenderedStack], stack: &str, value: &Json) -> Option<Found<'a>> {
    if let Some(name) = value["Fn::ImportValue"].as_str() {
        return stacks.iter().find_map(|s| {
            let outputs = s.template["Outputs"].as_object()?;
            let output = outputs
                .values()
                .find(|o| o["Export"]["Name"].as_str() == Some(name))?;
            resolve(stacks, &s.name, &output["Value"])
        });
    }
    let resources = stacks.iter().find(|s| s.name == stack)?.template["Resources"].as_object()?;
    // An ARN spelled out with !Sub (a job definition without its revision)
    // names its resource by the resource's name at its end.
    if let Some(text) = value["Fn::Sub"].as_str() {
        return resources
            .iter()
            .filter(|(_, r)| {
                NAME_PROPERTIES.iter().any(|p| {
                    r["Properties"][*p].as_str().is_some_and(|name| {
                        text.ends_with(&format!("/{name}")) || text.ends_with(&format!(":{name}"))
                    })
                })
            })
            .map(|(logical_id, resource)| Found {
                logical_id,
                resource,
            })
            .next();
    }
    let id = value["Ref"]
        .as_str()
        .or_else(|| value["Fn::GetAtt"].get(0).and_then(Json::as_str))?;
    let (logical_id, resource) = resources.get_key_value(id)?;
    Some(Found {
        logical_id,
        resource,
    })
}

/// The properties that give a resource its name in an ARN.
const NAME_PROPERTIES: [&str; 6] = [
    "FunctionName",
    "JobDefinitionName",
    "JobQueueName",
    "TopicName",
    "StateMachineName",
    "BucketName",
];

/// The name a resource's ARN would carry: its name property, with the
/// pseudo parameters of a `!Sub` filled in locally, else its logical id.
fn physical_name(found: &Found<'_>, property: &str, region: &str) -> String {
    let name = &found.resource["Properties"][property];
    let text = name.as_str().or_else(|| name["Fn::Sub"].as_str()).map(|t| {
        t.replace("${AWS::AccountId}", ACCOUNT)
            .replace("${AWS::Region}", region)
            .replace("${AWS::Partition}", "aws")
    });
    match text {
        Some(text) if !text.contains("${") => text,
        _ => found.logical_id.to_owned(),
    }
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

/// Replaces `${Name}` in every string of a definition, as
/// `DefinitionSubstitutions` does.
fn substitute(value: &mut Json, bindings: &BTreeMap<String, String>) {
    match value {
        Json::String(text) => {
            for (name, local) in bindings {
                *text = text.replace(&format!("${{{name}}}"), local);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|v| substitute(v, bindings)),
        Json::Object(map) => map.values_mut().for_each(|v| substitute(v, bindings)),
        _ => {}
    }
}

/// Binds the state machines of the rendered orchestration stack.
pub fn bind(rendered: &Rendered) -> anyhow::Result<Bound> {
    let region = &rendered.env.region;
    let stacks = &rendered.stacks;
    let orchestration = stacks
        .iter()
        .find(|s| s.name == "orchestration")
        .context("the rendered stacks have no orchestration stack")?;
    let resources = orchestration.template["Resources"]
        .as_object()
        .context("the orchestration stack has no Resources")?;
    let mut bound = Bound::default();
    for (id, machine) in resources {
        if machine["Type"] != "AWS::StepFunctions::StateMachine" {
            continue;
        }
        let properties = &machine["Properties"];
        let mut definition = properties["Definition"].clone();
        if !definition.is_object() {
            bail!("{id} has no inline Definition");
        }
        let mut bindings = BTreeMap::new();
        let substitutions = properties["DefinitionSubstitutions"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, value) in &substitutions {
            let found = resolve(stacks, &orchestration.name, value).with_context(|| {
                format!(
                    "{id}: ${{{name}}} = {value} resolves to no resource of the rendered stacks"
                )
            })?;
            let kind = found.resource["Type"].as_str().unwrap_or("");
            let local = match kind {
                "AWS::Lambda::Function" => {
                    let arn = format!(
                        "arn:aws:lambda:{region}:{ACCOUNT}:function:{}",
                        physical_name(&found, "FunctionName", region)
                    );
                    let environment = literal_variables(
                        &found.resource["Properties"]["Environment"]["Variables"],
                    );
                    bound.functions.insert(
                        arn.clone(),
                        Function {
                            logical_id: found.logical_id.to_owned(),
                            environment,
                        },
                    );
                    arn
                }
                "AWS::Batch::JobDefinition" => {
                    let arn = format!(
                        "arn:aws:batch:{region}:{ACCOUNT}:job-definition/{}",
                        physical_name(&found, "JobDefinitionName", region)
                    );
                    let p = &found.resource["Properties"];
                    bound.jobs.insert(
                        arn.clone(),
                        JobDefinition {
                            // Batch's default: one attempt, no retry.
                            attempts: p["RetryStrategy"]["Attempts"].as_u64().unwrap_or(1),
                            evaluate_on_exit: p["RetryStrategy"]["EvaluateOnExit"].clone(),
                            platform: p["PlatformCapabilities"][0]
                                .as_str()
                                .unwrap_or("EC2")
                                .to_owned(),
                            environment: literal_variables(
                                &p["ContainerProperties"]["Environment"],
                            ),
                        },
                    );
                    arn
                }
                "AWS::Batch::JobQueue" => format!(
                    "arn:aws:batch:{region}:{ACCOUNT}:job-queue/{}",
                    physical_name(&found, "JobQueueName", region)
                ),
                "AWS::SNS::Topic" => {
                    let arn = format!(
                        "arn:aws:sns:{region}:{ACCOUNT}:{}",
                        physical_name(&found, "TopicName", region)
                    );
                    bound.topics.insert(arn.clone());
                    arn
                }
                "AWS::StepFunctions::StateMachine" => format!(
                    "arn:aws:states:{region}:{ACCOUNT}:stateMachine:{}",
                    physical_name(&found, "StateMachineName", region)
                ),
                "AWS::S3::Bucket" => physical_name(&found, "BucketName", region),
                other => bail!(
                    "{id}: ${{{name}}} names a {other} ({}); teach xtask/src/simulate/bind.rs what it is locally",
                    found.logical_id
                ),
            };
            bindings.insert(name.clone(), local);
        }
        substitute(&mut definition, &bindings);
        let name = properties["StateMachineName"]
            .as_str()
            .map_or_else(|| id.clone(), str::to_owned);
        bound.machines.insert(
            id.clone(),
            Machine {
                arn: format!("arn:aws:states:{region}:{ACCOUNT}:stateMachine:{name}"),
                definition,
            },
        );
    }
    Ok(bound)
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
    }
}
