//! What a Task state calls, parsed once from its `Resource` and parameters:
//! the checks derive the role's permissions from it, the estimate what it
//! costs, the simulation what to bind it to.
//!
//! A new integration is taught here first; the exhaustive matches of the
//! checks (`check.rs`), the estimate (`cost/usage.rs`) and the simulation
//! (`xtask/src/simulate/bind.rs`) then ask for what each of them needs.
//! A Distributed Map is a Map state, not a Task: its body's tasks are
//! found like an inline Map's (`StateMachine::task_states`), and what it
//! adds (child executions, an item reader) belongs beside them.

use serde_json::Value as Json;

/// The prefix of every optimised service integration.
const SERVICE_INTEGRATION: &str = "arn:aws:states:::";

/// A parameter of a task that names a resource (`FunctionName:
/// ${IngestFunctionArn}`), with the kind it must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The parameter (`FunctionName`).
    pub parameter: &'static str,
    /// The CloudFormation type it must name (`AWS::Lambda::Function`).
    pub kind: &'static str,
    /// Its text, where it is one (`${IngestFunctionArn}`).
    pub text: Option<String>,
}

/// The service call of a Task state, with the resources it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integration {
    /// `lambda:invoke`.
    LambdaInvoke { function: Target },
    /// `batch:submitJob`.
    BatchSubmitJob { queue: Target, definition: Target },
    /// `sns:publish`.
    SnsPublish { topic: Target },
    /// `states:startExecution`: a state machine starts another.
    StartExecution { state_machine: Target },
}

/// How the workflow waits for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Until the service accepts the call.
    RequestResponse,
    /// Until the job or the execution ends (`.sync`, `.sync:2`; the latter
    /// only changes the form of the output), through a rule Step Functions
    /// manages in EventBridge.
    Sync,
    /// Until someone answers with the task token (`.waitForTaskToken`).
    WaitForTaskToken,
}

/// A Task state, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The state's name.
    pub state: String,
    pub integration: Integration,
    pub pattern: Pattern,
    /// `Parameters` (JSONPath states) or `Arguments` (JSONata states).
    pub parameters: Json,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "state {state}: integration {resource:?} is not one infra::model knows; teach src/infra/model/integration.rs to parse it, then the checks, the estimate and the simulation what it needs"
)]
pub struct UnknownIntegration {
    pub state: String,
    pub resource: String,
}

impl Integration {
    /// The resources the call names, in the order it names them.
    pub fn targets(&self) -> Vec<&Target> {
        match self {
            Integration::LambdaInvoke { function } => vec![function],
            Integration::BatchSubmitJob { queue, definition } => vec![queue, definition],
            Integration::SnsPublish { topic } => vec![topic],
            Integration::StartExecution { state_machine } => vec![state_machine],
        }
    }
}

impl Task {
    /// Parses a Task state named `state`.
    pub fn parse(state: &str, task: &Json) -> Result<Task, UnknownIntegration> {
        let resource = task["Resource"].as_str().unwrap_or("");
        let unknown = || UnknownIntegration {
            state: state.to_owned(),
            resource: resource.to_owned(),
        };
        let call = resource
            .strip_prefix(SERVICE_INTEGRATION)
            .ok_or_else(unknown)?;
        let (call, suffix) = call.split_once('.').unwrap_or((call, ""));
        let pattern = match suffix {
            "" => Pattern::RequestResponse,
            "sync" | "sync:2" => Pattern::Sync,
            "waitForTaskToken" => Pattern::WaitForTaskToken,
            _ => return Err(unknown()),
        };
        let parameters = if task["Parameters"].is_object() {
            task["Parameters"].clone()
        } else {
            task["Arguments"].clone()
        };
        let target = |parameter: &'static str, kind: &'static str| Target {
            parameter,
            kind,
            text: parameters[parameter].as_str().map(str::to_owned),
        };
        let integration = match call {
            "lambda:invoke" => Integration::LambdaInvoke {
                function: target("FunctionName", "AWS::Lambda::Function"),
            },
            "batch:submitJob" => Integration::BatchSubmitJob {
                queue: target("JobQueue", "AWS::Batch::JobQueue"),
                definition: target("JobDefinition", "AWS::Batch::JobDefinition"),
            },
            "sns:publish" => Integration::SnsPublish {
                topic: target("TopicArn", "AWS::SNS::Topic"),
            },
            "states:startExecution" => Integration::StartExecution {
                state_machine: target("StateMachineArn", "AWS::StepFunctions::StateMachine"),
            },
            _ => return Err(unknown()),
        };
        Ok(Task {
            state: state.to_owned(),
            integration,
            pattern,
            parameters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_task_is_parsed_with_its_pattern_and_targets() {
        let task = Task::parse(
            "Train",
            &json!({"Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
                "Parameters": {"JobQueue": "${JobQueueArn}", "JobDefinition": "${JobDefinitionArn}"}}),
        )
        .expect("parses");
        assert_eq!(task.pattern, Pattern::Sync);
        let targets: Vec<(&str, Option<&str>)> = task
            .integration
            .targets()
            .into_iter()
            .map(|t| (t.parameter, t.text.as_deref()))
            .collect();
        assert_eq!(
            targets,
            [
                ("JobQueue", Some("${JobQueueArn}")),
                ("JobDefinition", Some("${JobDefinitionArn}"))
            ]
        );
        let wait = Task::parse(
            "Wait",
            &json!({"Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Arguments": {"FunctionName": "f"}}),
        )
        .expect("parses");
        assert_eq!(wait.pattern, Pattern::WaitForTaskToken);
        assert_eq!(
            wait.integration.targets()[0].text.as_deref(),
            Some("f"),
            "JSONata tasks name their targets in Arguments"
        );
    }

    #[test]
    fn an_integration_nobody_knows_is_an_error() {
        for resource in [
            "arn:aws:states:::dynamodb:putItem",
            "arn:aws:states:::lambda:invoke.eventually",
            "arn:aws:lambda:us-east-1:1:function:f",
        ] {
            let err = Task::parse("Put", &json!({"Resource": resource})).expect_err("unknown");
            assert_eq!(err.resource, resource);
        }
    }
}
