//! The project's own checks of the rendered stacks: the wiring that cfn-lint,
//! checkov and asl-validator cannot see because it spans a template, its
//! state machine definitions and the other stacks.
//!
//! - every `Fn::ImportValue` names an export of a stack deployed before the
//!   importing one (`STACKS` order), and no export name is exported twice;
//! - every `${Placeholder}` of a state machine is bound, and every binding used;
//! - every Task's resource resolves to a resource or an export of the stacks;
//! - every state machine role allows what its tasks call;
//! - no role allows a write action on `*` without a written reason
//!   (`Metadata: {stockcast: {wildcard_reasons: {<Sid>: why}}}`);
//! - every function has an error alarm and a log group with retention;
//! - the budget exists and notifies someone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value as Json;

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

struct Resource<'a> {
    stack: &'a str,
    id: &'a str,
    kind: &'a str,
    properties: &'a Json,
    metadata: &'a Json,
}

/// Everything the checks look up, across all stacks of one environment.
struct Model<'a> {
    resources: Vec<Resource<'a>>,
    /// Export name → (stack, value).
    exports: BTreeMap<String, (&'a str, &'a Json)>,
    /// Stack names in deployment order.
    order: Vec<&'a str>,
    /// Exports whose name an earlier stack already exports: (stack, output, name).
    duplicate_exports: Vec<(&'a str, &'a str, &'a str)>,
}

impl<'a> Model<'a> {
    fn new(rendered: &'a Rendered) -> Self {
        let mut resources = Vec::new();
        let mut exports = BTreeMap::new();
        let mut order = Vec::new();
        let mut duplicate_exports = Vec::new();
        for stack in &rendered.stacks {
            let name = stack.name.as_str();
            order.push(name);
            if let Some(map) = stack.template["Resources"].as_object() {
                for (id, r) in map {
                    resources.push(Resource {
                        stack: name,
                        id,
                        kind: r["Type"].as_str().unwrap_or(""),
                        properties: &r["Properties"],
                        metadata: &r["Metadata"],
                    });
                }
            }
            if let Some(outputs) = stack.template["Outputs"].as_object() {
                for (id, output) in outputs {
                    if let Some(export) = output["Export"]["Name"].as_str() {
                        if exports.contains_key(export) {
                            duplicate_exports.push((name, id.as_str(), export));
                        } else {
                            exports.insert(export.to_owned(), (name, &output["Value"]));
                        }
                    }
                }
            }
        }
        Model {
            resources,
            exports,
            order,
            duplicate_exports,
        }
    }

    /// A stack's place in the deployment order.
    fn position(&self, stack: &str) -> Option<usize> {
        self.order.iter().position(|s| *s == stack)
    }

    fn of_kind(&self, kind: &str) -> impl Iterator<Item = &Resource<'a>> {
        self.resources.iter().filter(move |r| r.kind == kind)
    }

    fn find(&self, stack: &str, id: &str) -> Option<&Resource<'a>> {
        self.resources
            .iter()
            .find(|r| r.stack == stack && r.id == id)
    }

    /// Whether a value names something that exists: a resource of its stack
    /// (Ref/GetAtt), an export of any stack (ImportValue), or a pseudo/literal.
    fn resolves(&self, stack: &str, value: &Json) -> Result<(), String> {
        if let Some(name) = value["Fn::ImportValue"].as_str() {
            let (from, exported) = self
                .exports
                .get(name)
                .ok_or_else(|| format!("imports {name}, which no stack exports"))?;
            return self.resolves(from, exported);
        }
        let target = value["Ref"]
            .as_str()
            .or_else(|| value["Fn::GetAtt"].get(0).and_then(Json::as_str));
        match target {
            Some(id) if id.starts_with("AWS::") => Ok(()),
            Some(id) if self.find(stack, id).is_some() => Ok(()),
            Some(id) => Err(format!(
                "refers to {id}, which is not a resource of stack {stack}"
            )),
            None => Ok(()),
        }
    }
}

/// Runs every check; an empty list means the stacks are wired right.
pub fn check(rendered: &Rendered) -> Vec<Finding> {
    let model = Model::new(rendered);
    let mut findings = Vec::new();
    check_imports(rendered, &model, &mut findings);
    check_state_machines(&model, &mut findings);
    check_wildcards(&model, &mut findings);
    check_functions(&model, &mut findings);
    check_budget(&model, &mut findings);
    check_spend_cap(&model, &mut findings);
    findings.sort();
    findings
}

fn finding(r: &Resource<'_>, check: &'static str, message: String) -> Finding {
    Finding {
        stack: r.stack.to_owned(),
        resource: r.id.to_owned(),
        check,
        message,
    }
}

/// Every string in a JSON value, depth first.
fn strings(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::String(s) => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Json::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The `${Name}` placeholders in a text (not `${AWS::…}` pseudo parameters).
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find('}') {
            let name = &rest[..end];
            if !name.is_empty()
                && !name.contains("::")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                out.push(name.to_owned());
            }
            rest = &rest[end + 1..];
        }
    }
    out
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
                match model.exports.get(name) {
                    None => {
                        messages.insert(format!("imports {name}, which no stack exports"));
                    }
                    Some((from, _)) if model.position(from) >= Some(position) => {
                        messages.insert(format!(
                            "imports {name} from stack {from}, which is not deployed before {}",
                            stack.name
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
    for (stack, output, name) in &model.duplicate_exports {
        let first = model.exports.get(*name).map_or("", |(s, _)| *s);
        findings.push(Finding {
            stack: (*stack).to_owned(),
            resource: format!("Outputs.{output}"),
            check: "imports",
            message: format!("exports {name}, which stack {first} exports too"),
        });
    }
}

/// Every Task state of a definition, in nested Map and Parallel states too.
fn tasks<'j>(definition: &'j Json, out: &mut Vec<(&'j str, &'j Json)>) {
    let Some(states) = definition["States"].as_object() else {
        return;
    };
    for (name, state) in states {
        match state["Type"].as_str() {
            Some("Task") => out.push((name, state)),
            Some("Map") => {
                tasks(&state["ItemProcessor"], out);
                tasks(&state["Iterator"], out);
            }
            Some("Parallel") => {
                for branch in state["Branches"].as_array().into_iter().flatten() {
                    tasks(branch, out);
                }
            }
            _ => {}
        }
    }
}

/// The Allow statements of a role: inline policies and AWS::IAM::Policy resources attached to it.
fn allow_statements<'j>(model: &'j Model<'_>, role: &'j Resource<'_>) -> Vec<&'j Json> {
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

fn action_matches(pattern: &str, action: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => action
            .to_ascii_lowercase()
            .starts_with(&prefix.to_ascii_lowercase()),
        None => pattern.eq_ignore_ascii_case(action),
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

fn allows(statements: &[&Json], action: &str, expected: &Json) -> bool {
    statements.iter().any(|s| {
        as_list(&s["Action"])
            .iter()
            .any(|a| a.as_str().is_some_and(|p| action_matches(p, action)))
            && as_list(&s["Resource"])
                .iter()
                .any(|r| resource_matches(r, expected))
    })
}

fn check_state_machines(model: &Model<'_>, findings: &mut Vec<Finding>) {
    for machine in model.of_kind("AWS::StepFunctions::StateMachine") {
        let definition = &machine.properties["Definition"];
        if !definition.is_object() {
            findings.push(finding(
                machine,
                "definition",
                "has no inline Definition object".into(),
            ));
            continue;
        }
        let substitutions = machine.properties["DefinitionSubstitutions"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut texts = Vec::new();
        strings(definition, &mut texts);
        let used: BTreeSet<String> = texts.iter().flat_map(|t| placeholders(t)).collect();
        for name in &used {
            if !substitutions.contains_key(name) {
                findings.push(finding(
                    machine,
                    "placeholders",
                    format!("${{{name}}} is used but not bound in DefinitionSubstitutions"),
                ));
            }
        }
        for (name, value) in &substitutions {
            if !used.contains(name) {
                findings.push(finding(
                    machine,
                    "placeholders",
                    format!("{name} is bound but never used"),
                ));
            }
            if let Err(e) = model.resolves(machine.stack, value) {
                findings.push(finding(
                    machine,
                    "task resources",
                    format!("${{{name}}} {e}"),
                ));
            }
        }
        let role = machine.properties["RoleArn"]["Fn::GetAtt"]
            .get(0)
            .and_then(Json::as_str)
            .and_then(|id| model.find(machine.stack, id));
        let Some(role) = role else {
            findings.push(finding(
                machine,
                "roles",
                "RoleArn is not !GetAtt of a role in this stack".into(),
            ));
            continue;
        };
        let statements = allow_statements(model, role);
        let bound = |text: Option<&str>| -> Option<Json> {
            let name = placeholders(text?).into_iter().next()?;
            substitutions.get(&name).cloned()
        };
        let mut all_tasks = Vec::new();
        tasks(definition, &mut all_tasks);
        for (state, task) in all_tasks {
            let integration = task["Resource"].as_str().unwrap_or("");
            let parameters = if task["Parameters"].is_object() {
                &task["Parameters"]
            } else {
                &task["Arguments"]
            };
            let mut need: Vec<(&str, Option<Json>)> = Vec::new();
            if integration.starts_with("arn:aws:states:::lambda:invoke") {
                need.push((
                    "lambda:InvokeFunction",
                    bound(parameters["FunctionName"].as_str()),
                ));
            } else if integration.starts_with("arn:aws:states:::batch:submitJob") {
                need.push(("batch:SubmitJob", bound(parameters["JobQueue"].as_str())));
                need.push((
                    "batch:SubmitJob",
                    bound(parameters["JobDefinition"].as_str()),
                ));
                if integration.ends_with(".sync") {
                    let rule = Json::String("rule/StepFunctionsGetEventsForBatchJobsRule".into());
                    for action in ["events:PutTargets", "events:PutRule", "events:DescribeRule"] {
                        need.push((action, Some(rule.clone())));
                    }
                }
            } else if integration.starts_with("arn:aws:states:::sns:publish") {
                need.push(("sns:Publish", bound(parameters["TopicArn"].as_str())));
            } else if integration.starts_with("arn:aws:states:::states:startExecution") {
                need.push((
                    "states:StartExecution",
                    bound(parameters["StateMachineArn"].as_str()),
                ));
                // Waiting for the child (.sync, .sync:2) is done through a
                // managed EventBridge rule, like Batch's .sync.
                if integration.contains(".sync") {
                    let rule = Json::String(
                        "rule/StepFunctionsGetEventsForStepFunctionsExecutionRule".into(),
                    );
                    for action in ["events:PutTargets", "events:PutRule", "events:DescribeRule"] {
                        need.push((action, Some(rule.clone())));
                    }
                }
            } else {
                findings.push(finding(
                    machine,
                    "task resources",
                    format!("state {state}: integration {integration:?} is not one this check knows; teach check.rs its permissions"),
                ));
                continue;
            }
            for (action, resource) in need {
                match resource {
                    None => findings.push(finding(
                        machine,
                        "task resources",
                        format!(
                            "state {state}: its {action} target is not a bound ${{Placeholder}}"
                        ),
                    )),
                    Some(resource) if !allows(&statements, action, &resource) => {
                        findings.push(Finding {
                            stack: role.stack.to_owned(),
                            resource: role.id.to_owned(),
                            check: "roles",
                            message: format!(
                                "does not allow {action} on {} (state {state} of {})",
                                serde_json::to_string(&resource).unwrap_or_default(),
                                machine.id
                            ),
                        })
                    }
                    Some(_) => {}
                }
            }
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
    let Some(function) = function.and_then(|f| model.find(stack, f)) else {
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
        .and_then(|r| model.find(stack, r));
    let statements = role.map(|r| allow_statements(model, r)).unwrap_or_default();
    let missing: Vec<&str> = ["scheduler:UpdateSchedule", "apigateway:PATCH"]
        .into_iter()
        .filter(|action| {
            !statements.iter().any(|s| {
                as_list(&s["Action"])
                    .iter()
                    .any(|a| a.as_str().is_some_and(|p| action_matches(p, action)))
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
    fn placeholders_skip_pseudo_parameters() {
        assert_eq!(
            placeholders("${A}:${AWS::Region}/${B_2}${"),
            vec!["A", "B_2"]
        );
    }

    #[test]
    fn wildcard_actions_and_read_only_verbs() {
        assert!(action_matches("lambda:*", "lambda:InvokeFunction"));
        assert!(!action_matches("lambda:Get*", "lambda:InvokeFunction"));
        assert!(is_read_only("batch:DescribeJobs"));
        assert!(!is_read_only("cloudwatch:PutMetricData"));
    }
}
