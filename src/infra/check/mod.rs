//! The project's own checks of the rendered stacks: the wiring that cfn-lint,
//! checkov and asl-validator cannot see because it spans a template, its
//! state machine definitions and the other stacks.
//!
//! - every `Fn::ImportValue` names an export of a stack deployed before the
//!   importing one (`STACKS` order), and no export name is exported twice;
//! - every `${Placeholder}` of a state machine is bound, and every binding used;
//! - every Task's resource resolves to a resource or an export of the stacks;
//! - every state machine role allows what its tasks call, and what its
//!   Distributed Maps need (child executions of itself, the ItemReader's
//!   and ResultWriter's objects; `fanout`);
//! - a Batch array's job definition retries a child alone (`fanout`);
//! - a day's runs stay within the vendor's daily quota (`fanout`);
//! - no role allows a write action on `*` without a written reason
//!   (`Metadata: {stockcast: {wildcard_reasons: {<Sid>: why}}}`);
//! - every function has an error alarm and a log group with retention;
//! - the budget exists and notifies someone.

mod fanout;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value as Json;

use super::model::{Integration, Model, Pattern, Resource, StateMachine, Task, Unresolved};
use super::render::Rendered;

/// One problem, named by stack, resource and check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub stack: String,
    pub resource: String,
    pub check: &'static str,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}: {}: {}",
            self.stack, self.resource, self.check, self.message
        )
    }
}

/// Runs every check; an empty list means the stacks are wired right.
pub fn check(rendered: &Rendered) -> Vec<Finding> {
    let model = Model::new(&rendered.stacks);
    let mut findings = Vec::new();
    check_imports(rendered, &model, &mut findings);
    check_state_machines(&model, &mut findings);
    fanout::check(rendered, &model, &mut findings);
    check_wildcards(&model, &mut findings);
    check_functions(&model, &mut findings);
    check_budget(&model, &mut findings);
    check_spend_cap(&model, &mut findings);
    findings.sort();
    findings
}

pub(super) fn finding(r: &Resource<'_>, check: &'static str, message: String) -> Finding {
    Finding {
        stack: r.stack.to_owned(),
        resource: r.id.to_owned(),
        check,
        message,
    }
}

/// The argument of every `Fn::ImportValue` in a JSON value.
fn imports<'j>(value: &'j Json, out: &mut Vec<&'j Json>) {
    match value {
        Json::Array(items) => items.iter().for_each(|v| imports(v, out)),
        Json::Object(map) => {
            for (key, v) in map {
                if key == "Fn::ImportValue" {
                    out.push(v);
                } else {
                    imports(v, out);
                }
            }
        }
        _ => {}
    }
}

/// Every import names an export of an earlier stack: CloudFormation fails a
/// create whose import does not exist yet, and refuses to delete a stack
/// whose exports are imported, so imports must follow the deployment order.
fn check_imports(rendered: &Rendered, model: &Model<'_>, findings: &mut Vec<Finding>) {
    for (position, stack) in rendered.stacks.iter().enumerate() {
        let template = &stack.template;
        let places = ["Resources", "Outputs"].into_iter().flat_map(|section| {
            template[section]
                .as_object()
                .into_iter()
                .flatten()
                .map(move |(id, value)| {
                    let place = if section == "Outputs" {
                        format!("Outputs.{id}")
                    } else {
                        id.clone()
                    };
                    (place, value)
                })
        });
        for (place, value) in places {
            let mut found = Vec::new();
            imports(value, &mut found);
            let mut messages = BTreeSet::new();
            for import in found {
                let Some(name) = import.as_str() else {
                    messages.insert(format!(
                        "imports {import}, a computed name that no check can follow; import a literal name"
                    ));
                    continue;
                };
                match model.export(name) {
                    None => {
                        messages.insert(Unresolved::NoExport(name.to_owned()).to_string());
                    }
                    Some(export) if model.position(export.stack) >= Some(position) => {
                        messages.insert(format!(
                            "imports {name} from stack {}, which is not deployed before {}",
                            export.stack, stack.name
                        ));
                    }
                    Some(_) => {}
                }
            }
            findings.extend(messages.into_iter().map(|message| Finding {
                stack: stack.name.clone(),
                resource: place.clone(),
                check: "imports",
                message,
            }));
        }
    }
    for duplicate in model.duplicate_exports() {
        let name = duplicate.name;
        let first = model.export(name).map_or("", |export| export.stack);
        findings.push(Finding {
            stack: duplicate.stack.to_owned(),
            resource: format!("Outputs.{}", duplicate.output),
            check: "imports",
            message: format!("exports {name}, which stack {first} exports too"),
        });
    }
}

/// The Allow statements of a role: inline policies and AWS::IAM::Policy resources attached to it.
pub(super) fn allow_statements<'j>(model: &'j Model<'_>, role: &'j Resource<'_>) -> Vec<&'j Json> {
    let mut out = Vec::new();
    let mut documents: Vec<&Json> = role.properties["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| &p["PolicyDocument"])
        .collect();
    for policy in model.of_kind("AWS::IAM::Policy") {
        let attached = policy.properties["Roles"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["Ref"].as_str() == Some(role.id));
        if attached && policy.stack == role.stack {
            documents.push(&policy.properties["PolicyDocument"]);
        }
    }
    for document in documents {
        let statements = match &document["Statement"] {
            Json::Array(items) => items.iter().collect(),
            single @ Json::Object(_) => vec![single],
            _ => Vec::new(),
        };
        out.extend(statements.into_iter().filter(|s| s["Effect"] == "Allow"));
    }
    out
}

fn as_list(value: &Json) -> Vec<&Json> {
    match value {
        Json::Array(items) => items.iter().collect(),
        Json::Null => Vec::new(),
        other => vec![other],
    }
}

/// AWS's simple patterns, ignoring case: exact, or a prefix followed by one
/// trailing `*` (IAM actions; Batch's `OnExitCode`, which is digits).
fn glob_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value
            .to_ascii_lowercase()
            .starts_with(&prefix.to_ascii_lowercase()),
        None => pattern.eq_ignore_ascii_case(value),
    }
}

/// Whether a statement resource covers `expected`: the same expression, or
/// a `!Sub` built from it (`${Arn}:*`), or text containing it.
fn resource_matches(resource: &Json, expected: &Json) -> bool {
    if resource == expected {
        return true;
    }
    if let Some(parts) = resource["Fn::Sub"].as_array()
        && let Some(vars) = parts.get(1).and_then(Json::as_object)
    {
        return vars.values().any(|v| v == expected);
    }
    match (
        resource["Fn::Sub"].as_str().or(resource.as_str()),
        expected.as_str(),
    ) {
        (Some(text), Some(needle)) => text.contains(needle),
        _ => false,
    }
}

pub(super) fn allows(statements: &[&Json], action: &str, expected: &Json) -> bool {
    statements.iter().any(|s| {
        as_list(&s["Action"])
            .iter()
            .any(|a| a.as_str().is_some_and(|p| glob_matches(p, action)))
            && as_list(&s["Resource"])
                .iter()
                .any(|r| resource_matches(r, expected))
    })
}

/// The checks of every state machine: its definition's placeholders, what
/// they are bound to, and its role's permissions for each task's call.
fn check_state_machines(model: &Model<'_>, findings: &mut Vec<Finding>) {
    for machine in model.state_machines() {
        if !machine.definition().is_object() {
            findings.push(finding(
                machine.resource,
                "definition",
                "has no inline Definition object".into(),
            ));
            continue;
        }
        check_placeholders(model, &machine, findings);
        let Some(role) = role_of(model, &machine) else {
            findings.push(finding(
                machine.resource,
                "roles",
                "RoleArn is not !GetAtt of a role in this stack".into(),
            ));
            continue;
        };
        let statements = allow_statements(model, role);
        for task in machine.tasks() {
            match task {
                Ok(task) => check_task(&machine, role, &statements, &task, findings),
                Err(unknown) => findings.push(finding(
                    machine.resource,
                    "task resources",
                    unknown.to_string(),
                )),
            }
        }
    }
}

/// The role a state machine runs as (`RoleArn: !GetAtt Role.Arn`).
pub(super) fn role_of<'m, 'a>(
    model: &'m Model<'a>,
    machine: &StateMachine<'m, 'a>,
) -> Option<&'m Resource<'a>> {
    machine.resource.properties["RoleArn"]["Fn::GetAtt"]
        .get(0)
        .and_then(Json::as_str)
        .and_then(|id| model.get(machine.resource.stack, id))
}

/// Every placeholder is bound, every binding used, and every binding
/// points to something the stacks have.
fn check_placeholders(
    model: &Model<'_>,
    machine: &StateMachine<'_, '_>,
    findings: &mut Vec<Finding>,
) {
    let used = machine.used_placeholders();
    let substitutions: BTreeMap<&str, &Json> = machine
        .substitutions()
        .map(|(name, value)| (name.as_str(), value))
        .collect();
    for name in &used {
        if !substitutions.contains_key(name) {
            findings.push(finding(
                machine.resource,
                "placeholders",
                format!("${{{name}}} is used but not bound in DefinitionSubstitutions"),
            ));
        }
    }
    for (name, value) in substitutions {
        if !used.contains(&name) {
            findings.push(finding(
                machine.resource,
                "placeholders",
                format!("{name} is bound but never used"),
            ));
        }
        if let Err(e) = model.resolve(machine.resource.stack, value) {
            findings.push(finding(
                machine.resource,
                "task resources",
                format!("${{{name}}} {e}"),
            ));
        }
    }
}

/// The IAM action a task's call needs on each resource it names.
fn action(integration: &Integration) -> &'static str {
    match integration {
        Integration::LambdaInvoke { .. } => "lambda:InvokeFunction",
        Integration::BatchSubmitJob { .. } => "batch:SubmitJob",
        Integration::SnsPublish { .. } => "sns:Publish",
        Integration::StartExecution { .. } => "states:StartExecution",
    }
}

/// The EventBridge rule Step Functions manages to wait for a `.sync` call.
fn managed_rule(integration: &Integration) -> Option<&'static str> {
    match integration {
        Integration::BatchSubmitJob { .. } => Some("rule/StepFunctionsGetEventsForBatchJobsRule"),
        Integration::StartExecution { .. } => {
            Some("rule/StepFunctionsGetEventsForStepFunctionsExecutionRule")
        }
        Integration::LambdaInvoke { .. } | Integration::SnsPublish { .. } => None,
    }
}

/// What a task needs its role to allow: (action, resource), the resource
/// `None` where the target is not a bound placeholder.
fn needs(machine: &StateMachine<'_, '_>, task: &Task) -> Vec<(&'static str, Option<Json>)> {
    let mut need: Vec<(&str, Option<Json>)> = task
        .integration
        .targets()
        .into_iter()
        .map(|target| {
            let bound = machine.binding(target.text.as_deref()).cloned();
            (action(&task.integration), bound)
        })
        .collect();
    if task.pattern == Pattern::Sync
        && let Some(rule) = managed_rule(&task.integration)
    {
        for action in ["events:PutTargets", "events:PutRule", "events:DescribeRule"] {
            need.push((action, Some(Json::String(rule.into()))));
        }
    }
    need
}

/// The role allows everything the task's call needs.
fn check_task(
    machine: &StateMachine<'_, '_>,
    role: &Resource<'_>,
    statements: &[&Json],
    task: &Task,
    findings: &mut Vec<Finding>,
) {
    let state = &task.state;
    for (action, resource) in needs(machine, task) {
        match resource {
            None => findings.push(finding(
                machine.resource,
                "task resources",
                format!("state {state}: its {action} target is not a bound ${{Placeholder}}"),
            )),
            Some(resource) if !allows(statements, action, &resource) => findings.push(finding(
                role,
                "roles",
                format!(
                    "does not allow {action} on {} (state {state} of {})",
                    serde_json::to_string(&resource).unwrap_or_default(),
                    machine.resource.id
                ),
            )),
            Some(_) => {}
        }
    }
}

/// Read-only action verbs; everything else counts as a write.
fn is_read_only(action: &str) -> bool {
    let verb = action.split(':').nth(1).unwrap_or(action);
    [
        "Get", "List", "Describe", "BatchGet", "Query", "Scan", "Head",
    ]
    .iter()
    .any(|p| verb.starts_with(p))
}

fn check_wildcards(model: &Model<'_>, findings: &mut Vec<Finding>) {
    for role in model.of_kind("AWS::IAM::Role") {
        let reasons = &role.metadata["stockcast"]["wildcard_reasons"];
        for statement in allow_statements(model, role) {
            let on_everything = as_list(&statement["Resource"])
                .iter()
                .any(|r| r.as_str() == Some("*"));
            if !on_everything {
                continue;
            }
            let writes: Vec<&str> = as_list(&statement["Action"])
                .iter()
                .filter_map(|a| a.as_str())
                .filter(|a| !is_read_only(a))
                .collect();
            if writes.is_empty() {
                continue;
            }
            let sid = statement["Sid"].as_str().unwrap_or("");
            let reason = reasons[sid].as_str().unwrap_or("").trim();
            if sid.is_empty() || reason.is_empty() {
                findings.push(finding(
                    role,
                    "wildcard writes",
                    format!(
                        "statement {sid:?} allows {} on \"*\" with no reason in Metadata.stockcast.wildcard_reasons",
                        writes.join(", ")
                    ),
                ));
            }
        }
    }
}

fn check_functions(model: &Model<'_>, findings: &mut Vec<Finding>) {
    for function in model.of_kind("AWS::Lambda::Function") {
        let Some(name) = function.properties["FunctionName"].as_str() else {
            findings.push(finding(
                function,
                "alarms",
                "has no fixed FunctionName, so its alarms cannot name it".into(),
            ));
            continue;
        };
        let alarmed = model.of_kind("AWS::CloudWatch::Alarm").any(|alarm| {
            let p = alarm.properties;
            p["Namespace"] == "AWS/Lambda"
                && p["MetricName"] == "Errors"
                && as_list(&p["Dimensions"])
                    .iter()
                    .any(|d| d["Name"] == "FunctionName" && d["Value"] == name)
        });
        if !alarmed {
            findings.push(finding(
                function,
                "alarms",
                format!("no AWS/Lambda Errors alarm names {name}"),
            ));
        }
        let log_group = format!("/aws/lambda/{name}");
        let retained = model.of_kind("AWS::Logs::LogGroup").any(|g| {
            g.properties["LogGroupName"] == log_group.as_str()
                && g.properties["RetentionInDays"].is_number()
        });
        if !retained {
            findings.push(finding(
                function,
                "log retention",
                format!("no log group {log_group} with RetentionInDays"),
            ));
        }
    }
}

fn check_budget(model: &Model<'_>, findings: &mut Vec<Finding>) {
    let notified = model.of_kind("AWS::Budgets::Budget").any(|b| {
        b.properties["NotificationsWithSubscribers"]
            .as_array()
            .is_some_and(|n| !n.is_empty())
    });
    if !notified {
        findings.push(Finding {
            stack: "*".into(),
            resource: "-".into(),
            check: "budget",
            message: "no AWS::Budgets::Budget with notifications in any stack".into(),
        });
    }
}

/// Every budget enforces itself: a notification at 100 % of ACTUAL spend
/// (or less) goes to a topic whose Lambda subscriber may invoke, disable
/// the schedules and throttle the usage plan (`stockcast::spend_cap`).
fn check_spend_cap(model: &Model<'_>, findings: &mut Vec<Finding>) {
    for budget in model.of_kind("AWS::Budgets::Budget") {
        let topics: Vec<&str> = as_list(&budget.properties["NotificationsWithSubscribers"])
            .into_iter()
            .filter(|n| {
                let n = &n["Notification"];
                n["NotificationType"] == "ACTUAL"
                    && n["ThresholdType"] == "PERCENTAGE"
                    && n["Threshold"].as_f64().is_some_and(|t| t <= 100.0)
            })
            .flat_map(|n| as_list(&n["Subscribers"]))
            .filter(|s| s["SubscriptionType"] == "SNS")
            .filter_map(|s| s["Address"]["Ref"].as_str())
            .collect();
        let results: Vec<_> = topics
            .iter()
            .map(|topic| spend_stop_problem(model, budget.stack, topic))
            .collect();
        // One topic that can stop is enough.
        if results.iter().any(Result::is_ok) {
            continue;
        }
        // A topic with a Lambda subscriber is the one meant to stop: what
        // keeps it from stopping says more than a plain alert topic's lack.
        let why = results
            .into_iter()
            .find_map(|r| match r {
                Err(SpendStopProblem::Subscriber(why)) => Some(why),
                _ => None,
            })
            .unwrap_or_else(|| {
                if topics.is_empty() {
                    "no ACTUAL notification at 100 % or less goes to an SNS topic of its stack"
                        .into()
                } else {
                    format!(
                        "no topic its ACTUAL notifications at 100 % or less go to ({}) has a Lambda subscriber of its stack",
                        topics.join(", ")
                    )
                }
            });
        findings.push(finding(budget, "spend cap", why));
    }
}

enum SpendStopProblem {
    NoSubscriber,
    Subscriber(String),
}

/// What keeps `topic` from stopping the environment, if anything.
fn spend_stop_problem(model: &Model<'_>, stack: &str, topic: &str) -> Result<(), SpendStopProblem> {
    let function = model
        .of_kind("AWS::SNS::Subscription")
        .filter(|s| s.stack == stack && s.properties["TopicArn"]["Ref"] == topic)
        .filter(|s| s.properties["Protocol"] == "lambda")
        .find_map(|s| s.properties["Endpoint"]["Fn::GetAtt"][0].as_str());
    let Some(function) = function.and_then(|f| model.get(stack, f)) else {
        return Err(SpendStopProblem::NoSubscriber);
    };
    let invokable = model.of_kind("AWS::Lambda::Permission").any(|p| {
        p.stack == stack
            && p.properties["FunctionName"]["Ref"] == function.id
            && p.properties["Principal"] == "sns.amazonaws.com"
    });
    if !invokable {
        return Err(SpendStopProblem::Subscriber(format!(
            "SNS may not invoke {} (no AWS::Lambda::Permission)",
            function.id
        )));
    }
    let role = function.properties["Role"]["Fn::GetAtt"][0]
        .as_str()
        .and_then(|r| model.get(stack, r));
    let statements = role.map(|r| allow_statements(model, r)).unwrap_or_default();
    let missing: Vec<&str> = ["scheduler:UpdateSchedule", "apigateway:PATCH"]
        .into_iter()
        .filter(|action| {
            !statements.iter().any(|s| {
                as_list(&s["Action"])
                    .iter()
                    .any(|a| a.as_str().is_some_and(|p| glob_matches(p, action)))
            })
        })
        .collect();
    if !missing.is_empty() {
        return Err(SpendStopProblem::Subscriber(format!(
            "{} may not {}: it cannot stop the schedules and the API",
            function.id,
            missing.join(" or ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_actions_and_read_only_verbs() {
        assert!(glob_matches("lambda:*", "lambda:InvokeFunction"));
        assert!(!glob_matches("lambda:Get*", "lambda:InvokeFunction"));
        assert!(is_read_only("batch:DescribeJobs"));
        assert!(!is_read_only("cloudwatch:PutMetricData"));
    }
}
