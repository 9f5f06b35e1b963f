//! A state machine resource read as Step Functions reads it: its inline
//! definition, the `${Placeholders}` its `DefinitionSubstitutions` bind,
//! and its Task states.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::integration::{Target, Task, UnknownIntegration};
use super::{Model, Resource};

/// An `AWS::StepFunctions::StateMachine` of the model.
#[derive(Debug, Clone, Copy)]
pub struct StateMachine<'m, 'a> {
    pub resource: &'m Resource<'a>,
}

impl<'m, 'a> StateMachine<'m, 'a> {
    /// The inline `Definition` (not an object where it is missing or an S3 location).
    pub fn definition(&self) -> &'a Json {
        &self.resource.properties["Definition"]
    }

    /// `DefinitionSubstitutions`: placeholder name → the expression bound to it.
    pub fn substitutions(&self) -> impl Iterator<Item = (&'a String, &'a Json)> + use<'a> {
        self.resource.properties["DefinitionSubstitutions"]
            .as_object()
            .into_iter()
            .flatten()
    }

    /// The expression the first placeholder of `text` is bound to.
    pub fn binding(&self, text: Option<&str>) -> Option<&'a Json> {
        let name = placeholders(text?).into_iter().next()?;
        self.resource.properties["DefinitionSubstitutions"].get(name)
    }

    /// Every placeholder the definition uses.
    pub fn used_placeholders(&self) -> BTreeSet<&'a str> {
        let mut texts = Vec::new();
        strings(self.definition(), &mut texts);
        texts.iter().flat_map(|t| placeholders(t)).collect()
    }

    /// Every Task state, in nested Map and Parallel states too, unparsed.
    pub fn task_states(&self) -> Vec<(&'a str, &'a Json)> {
        let mut out = Vec::new();
        task_states(self.definition(), &mut out);
        out
    }

    /// Every Map state whose items run as child executions
    /// (`ProcessorConfig.Mode: DISTRIBUTED`), with its name.
    pub fn distributed_maps(&self) -> Vec<(&'a str, &'a Json)> {
        let mut out = Vec::new();
        distributed_maps(self.definition(), &mut out);
        out
    }

    /// The name Step Functions knows the machine by.
    pub fn name(&self) -> Option<&'a str> {
        self.resource.properties["StateMachineName"].as_str()
    }

    /// Every Task state, parsed.
    pub fn tasks(&self) -> Vec<Result<Task, UnknownIntegration>> {
        self.task_states()
            .into_iter()
            .map(|(state, task)| Task::parse(state, task))
            .collect()
    }

    /// The resource a task's target names, through its placeholder's
    /// binding, if it is of the kind the target must name.
    pub fn target(&self, model: &'m Model<'a>, target: &Target) -> Option<&'m Resource<'a>> {
        let bound = self.binding(target.text.as_deref())?;
        model.resource_of_kind(self.resource.stack, bound, target.kind)
    }
}

/// The `${Name}` placeholders in a text (not `${AWS::…}` pseudo parameters).
pub fn placeholders(text: &str) -> Vec<&str> {
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
                out.push(name);
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// Replaces `${Name}` in every string of a definition, as
/// `DefinitionSubstitutions` does when the state machine is created.
pub fn substitute(value: &mut Json, bindings: &BTreeMap<String, String>) {
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

/// Every string in a JSON value, depth first.
fn strings<'j>(value: &'j Json, out: &mut Vec<&'j str>) {
    match value {
        Json::String(s) => out.push(s),
        Json::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Json::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn distributed_maps<'j>(definition: &'j Json, out: &mut Vec<(&'j str, &'j Json)>) {
    for (name, state) in definition["States"].as_object().into_iter().flatten() {
        if state["Type"] == "Map" {
            if state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED" {
                out.push((name, state));
            }
            distributed_maps(&state["ItemProcessor"], out);
        }
        for branch in state["Branches"].as_array().into_iter().flatten() {
            distributed_maps(branch, out);
        }
    }
}

fn task_states<'j>(definition: &'j Json, out: &mut Vec<(&'j str, &'j Json)>) {
    let Some(states) = definition["States"].as_object() else {
        return;
    };
    for (name, state) in states {
        match state["Type"].as_str() {
            Some("Task") => out.push((name, state)),
            Some("Map") => {
                task_states(&state["ItemProcessor"], out);
                task_states(&state["Iterator"], out);
            }
            Some("Parallel") => {
                for branch in state["Branches"].as_array().into_iter().flatten() {
                    task_states(branch, out);
                }
            }
            _ => {}
        }
    }
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
}
