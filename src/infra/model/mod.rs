//! One model of an environment's rendered stacks, shared by everything that
//! reads them: the checks (`check.rs`), the cost estimate (`cost/`) and the
//! simulation (`cargo xtask simulate`).
//!
//! It indexes the resources and exports of all stacks and answers, as
//! CloudFormation would, what an expression points to: an
//! `Fn::ImportValue` to its export's value in the exporting stack, a `Ref`
//! or `Fn::GetAtt` to a resource of the same stack, an ARN written out
//! (`!Sub 'arn:…:job-definition/name'`) to the resource with that name
//! (`names.rs`). State machines are read through `machine.rs`, their Task
//! states through `integration.rs`.

mod integration;
mod machine;
mod names;

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::render::RenderedStack;

pub use integration::{Integration, Pattern, Target, Task, UnknownIntegration};
pub use machine::{StateMachine, placeholders, substitute};
pub use names::{NAMED_KINDS, NamedKind, Pseudo};

/// A resource of the rendered stacks.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub stack: &'a str,
    /// Its logical id.
    pub id: &'a str,
    /// Its CloudFormation type.
    pub kind: &'a str,
    pub properties: &'a Json,
    pub metadata: &'a Json,
}

impl<'a> Resource<'a> {
    /// `stack/LogicalId`, as the estimate names resources.
    pub fn key(&self) -> String {
        format!("{}/{}", self.stack, self.id)
    }

    /// What the model knows of its kind's name and ARN, if anything.
    pub fn named_kind(&self) -> Option<&'static NamedKind> {
        NamedKind::of(self.kind)
    }

    /// Its name property as written: a literal, or the text of a `!Sub`.
    pub fn name_text(&self) -> Option<&'a str> {
        let name = &self.properties[self.named_kind()?.name_property];
        name.as_str().or_else(|| name["Fn::Sub"].as_str())
    }

    /// Its name once deployed with `pseudo`'s pseudo parameters; `None`
    /// where the templates leave it to CloudFormation or build it from
    /// other resources.
    pub fn physical_name(&self, pseudo: &Pseudo<'_>) -> Option<String> {
        let name = pseudo.fill(self.name_text()?);
        (!name.contains("${")).then_some(name)
    }
}

/// An output's export.
#[derive(Debug, Clone, Copy)]
pub struct Export<'a> {
    /// The stack that exports it.
    pub stack: &'a str,
    pub value: &'a Json,
}

/// An export whose name an earlier stack already exports.
#[derive(Debug, Clone, Copy)]
pub struct DuplicateExport<'a> {
    pub stack: &'a str,
    /// The output's logical id.
    pub output: &'a str,
    pub name: &'a str,
}

/// What an expression points to.
#[derive(Debug, Clone, Copy)]
pub enum Resolved<'m, 'a> {
    Resource(&'m Resource<'a>),
    /// A pseudo parameter (`Ref: AWS::Region`).
    Pseudo,
    /// A literal, or text that names no resource of the stacks.
    Unnamed,
}

/// Why an expression points to nothing CloudFormation could deploy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("imports {0}, which no stack exports")]
    NoExport(String),
    #[error("refers to {id}, which is not a resource of stack {stack}")]
    NoResource { stack: String, id: String },
}

/// Every resource and export of one environment's stacks.
#[derive(Debug)]
pub struct Model<'a> {
    resources: Vec<Resource<'a>>,
    /// By export name; the first stack to export a name keeps it.
    exports: BTreeMap<&'a str, Export<'a>>,
    /// Stack names in deployment order.
    order: Vec<&'a str>,
    duplicate_exports: Vec<DuplicateExport<'a>>,
}

impl<'a> Model<'a> {
    /// Indexes the stacks, given in deployment order.
    pub fn new(stacks: &'a [RenderedStack]) -> Self {
        let mut model = Model {
            resources: Vec::new(),
            exports: BTreeMap::new(),
            order: Vec::new(),
            duplicate_exports: Vec::new(),
        };
        for stack in stacks {
            model.add_stack(stack);
        }
        model
    }

    fn add_stack(&mut self, stack: &'a RenderedStack) {
        let name = stack.name.as_str();
        self.order.push(name);
        let section = |key: &str| stack.template[key].as_object().into_iter().flatten();
        for (id, r) in section("Resources") {
            self.resources.push(Resource {
                stack: name,
                id,
                kind: r["Type"].as_str().unwrap_or(""),
                properties: &r["Properties"],
                metadata: &r["Metadata"],
            });
        }
        for (output, value) in section("Outputs") {
            let Some(export) = value["Export"]["Name"].as_str() else {
                continue;
            };
            if self.exports.contains_key(export) {
                self.duplicate_exports.push(DuplicateExport {
                    stack: name,
                    output,
                    name: export,
                });
            } else {
                let value = &value["Value"];
                self.exports.insert(export, Export { stack: name, value });
            }
        }
    }

    pub fn resources(&self) -> &[Resource<'a>] {
        &self.resources
    }

    pub fn of_kind<'m>(&'m self, kind: &str) -> impl Iterator<Item = &'m Resource<'a>> {
        self.resources.iter().filter(move |r| r.kind == kind)
    }

    pub fn get(&self, stack: &str, id: &str) -> Option<&Resource<'a>> {
        self.resources
            .iter()
            .find(|r| r.stack == stack && r.id == id)
    }

    /// A stack's place in the deployment order.
    pub fn position(&self, stack: &str) -> Option<usize> {
        self.order.iter().position(|s| *s == stack)
    }

    pub fn export(&self, name: &str) -> Option<&Export<'a>> {
        self.exports.get(name)
    }

    pub fn duplicate_exports(&self) -> &[DuplicateExport<'a>] {
        &self.duplicate_exports
    }

    /// Every state machine of every stack.
    pub fn state_machines(&self) -> impl Iterator<Item = StateMachine<'_, 'a>> {
        self.of_kind("AWS::StepFunctions::StateMachine")
            .map(|resource| StateMachine { resource })
    }

    /// What `value`, written in `stack`, points to.
    pub fn resolve(&self, stack: &str, value: &Json) -> Result<Resolved<'_, 'a>, Unresolved> {
        if let Some(name) = value["Fn::ImportValue"].as_str() {
            let export = self
                .exports
                .get(name)
                .ok_or_else(|| Unresolved::NoExport(name.to_owned()))?;
            return self.resolve(export.stack, export.value);
        }
        let id = value["Ref"]
            .as_str()
            .or_else(|| value["Fn::GetAtt"].get(0).and_then(Json::as_str));
        if let Some(id) = id {
            if id.starts_with("AWS::") {
                return Ok(Resolved::Pseudo);
            }
            return self.get(stack, id).map(Resolved::Resource).ok_or_else(|| {
                Unresolved::NoResource {
                    stack: stack.to_owned(),
                    id: id.to_owned(),
                }
            });
        }
        let text = value["Fn::Sub"].as_str().or(value.as_str());
        Ok(text
            .and_then(|arn| self.named_by_arn(arn))
            .map_or(Resolved::Unnamed, Resolved::Resource))
    }

    /// The resource of `kind` that `value`, written in `stack`, points to.
    pub fn resource_of_kind(&self, stack: &str, value: &Json, kind: &str) -> Option<&Resource<'a>> {
        match self.resolve(stack, value) {
            Ok(Resolved::Resource(r)) if r.kind == kind => Some(r),
            _ => None,
        }
    }

    /// The resource an ARN written out in a template names.
    fn named_by_arn(&self, arn: &str) -> Option<&Resource<'a>> {
        let (named, name) = names::parse_arn(arn)?;
        self.of_kind(named.kind)
            .find(|r| r.name_text() == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stacks() -> Vec<RenderedStack> {
        let stack = |name: &str, template: Json| RenderedStack {
            name: name.into(),
            stack_name: format!("test-{name}"),
            template,
        };
        vec![
            stack(
                "app",
                json!({
                    "Resources": {
                        "Job": {"Type": "AWS::Batch::JobDefinition", "Properties": {"JobDefinitionName": "train"}},
                        "Queue": {"Type": "AWS::Batch::JobQueue", "Properties": {"JobQueueName": "train"}},
                        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "fn"}}},
                    "Outputs": {
                        "FnArn": {"Value": {"Fn::GetAtt": ["Fn", "Arn"]}, "Export": {"Name": "FnArn"}},
                        "JobArn": {"Value": {"Fn::Sub": "arn:${AWS::Partition}:batch:${AWS::Region}:${AWS::AccountId}:job-definition/train"},
                            "Export": {"Name": "JobArn"}}}
                }),
            ),
            stack(
                "late",
                json!({"Outputs": {"Again": {"Value": "x", "Export": {"Name": "FnArn"}}}}),
            ),
        ]
    }

    fn resolved(model: &Model<'_>, value: Json) -> Result<String, Unresolved> {
        Ok(match model.resolve("late", &value)? {
            Resolved::Resource(r) => r.key(),
            Resolved::Pseudo => "pseudo".into(),
            Resolved::Unnamed => "unnamed".into(),
        })
    }

    #[test]
    fn expressions_resolve_as_cloudformation_resolves_them() {
        let stacks = stacks();
        let model = Model::new(&stacks);
        assert_eq!(
            resolved(&model, json!({"Fn::ImportValue": "FnArn"})),
            Ok("app/Fn".into())
        );
        // A job definition and a queue may share a name: the ARN says which.
        assert_eq!(
            resolved(&model, json!({"Fn::ImportValue": "JobArn"})),
            Ok("app/Job".into())
        );
        assert_eq!(
            resolved(&model, json!({"Ref": "AWS::Region"})),
            Ok("pseudo".into())
        );
        assert_eq!(resolved(&model, json!("literal")), Ok("unnamed".into()));
        assert_eq!(
            resolved(&model, json!({"Ref": "Fn"})),
            Err(Unresolved::NoResource {
                stack: "late".into(),
                id: "Fn".into()
            })
        );
        assert_eq!(
            resolved(&model, json!({"Fn::ImportValue": "Gone"})),
            Err(Unresolved::NoExport("Gone".into()))
        );
        assert_eq!(model.duplicate_exports()[0].stack, "late");
        assert_eq!(model.position("late"), Some(1));
    }
}
