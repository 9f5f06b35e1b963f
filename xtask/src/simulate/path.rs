//! The path of states an execution took, as one line: top-level states
//! joined by " → "; a Map's iterations in braces, by item, in item order
//! (they run concurrently, so their interleaving is not part of the path);
//! a state's errors in parentheses with what the workflow did about them;
//! emulated Batch attempts in brackets when there was more than one.

use std::collections::BTreeMap;

use super::check::{Event, Note, RunnerResult};

#[derive(Debug, Default)]
struct Step {
    name: String,
    marks: Vec<String>,
    /// Map iterations: label → their steps.
    iterations: BTreeMap<String, Vec<Step>>,
}

impl Step {
    fn new(name: &str) -> Step {
        Step {
            name: name.to_owned(),
            ..Step::default()
        }
    }

    fn render(&self, notes: &[&Note]) -> String {
        let mut text = self.name.clone();
        if !self.iterations.is_empty() {
            let inner: Vec<String> = self
                .iterations
                .iter()
                .map(|(label, steps)| {
                    let steps: Vec<String> = steps.iter().map(|s| s.render(&[])).collect();
                    format!("{label}: {}", steps.join(" → "))
                })
                .collect();
            text.push_str(&format!("{{{}}}", inner.join(", ")));
        }
        let notes: Vec<&str> = notes
            .iter()
            .filter(|n| n.state == self.name)
            .map(|n| n.note.as_str())
            .collect();
        // A job that succeeded at its first attempt has nothing to tell.
        if notes.len() > 1 || notes.first().is_some_and(|n| !n.ends_with("exit 0")) {
            text.push_str(&format!("[{}]", notes.join("; ")));
        }
        if !self.marks.is_empty() {
            text.push_str(&format!("({})", self.marks.join(", ")));
        }
        text
    }
}

/// Applies a failed/retried/caught event to the step it belongs to.
fn mark(step: Option<&mut Step>, event: &Event) {
    let Some(step) = step else { return };
    match event.kind.as_str() {
        "StateFailed" => step.marks.push(event.error.clone().unwrap_or_default()),
        "StateRetried" => {
            if let Some(last) = step.marks.last_mut() {
                last.push_str("→retry");
            }
        }
        "StateCaught" => {
            if let Some(last) = step.marks.last_mut() {
                last.push_str("→caught");
            }
        }
        _ => {}
    }
}

pub fn path(result: &RunnerResult) -> String {
    let mut top: Vec<Step> = Vec::new();
    for event in &result.events {
        let inner = match (&event.map, event.index) {
            (Some(map), Some(index)) => Some((map, index)),
            _ => None,
        };
        let scope: &mut Vec<Step> = match inner {
            Some((map, index)) => {
                let label = result
                    .map_labels
                    .get(&format!("{map}/{index}"))
                    .cloned()
                    .unwrap_or_else(|| index.to_string());
                let Some(parent) = top.iter_mut().rev().find(|s| &s.name == map) else {
                    continue;
                };
                parent.iterations.entry(label).or_default()
            }
            None => &mut top,
        };
        if event.kind == "StateEntered" {
            scope.push(Step::new(&event.state));
        } else {
            mark(
                scope.iter_mut().rev().find(|s| s.name == event.state),
                event,
            );
        }
    }
    let notes: Vec<&Note> = result.notes.iter().collect();
    top.iter()
        .map(|s| s.render(&notes))
        .collect::<Vec<_>>()
        .join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, state: &str, inner: Option<usize>, error: Option<&str>) -> Event {
        Event {
            kind: kind.into(),
            state: state.into(),
            map: inner.map(|_| "Ingest".into()),
            index: inner,
            error: error.map(Into::into),
        }
    }

    #[test]
    fn renders_map_iterations_by_label_errors_and_job_attempts() {
        let result = RunnerResult {
            status: "FAILED".into(),
            output: serde_json::Value::Null,
            error: None,
            cause: None,
            events: vec![
                event("StateEntered", "Ingest", None, None),
                event("StateEntered", "IngestSymbol", Some(1), None),
                event("StateEntered", "IngestSymbol", Some(0), None),
                event(
                    "StateFailed",
                    "IngestSymbol",
                    Some(1),
                    Some("Vendor.Throttled"),
                ),
                event("StateRetried", "IngestSymbol", Some(1), None),
                event("StateExited", "IngestSymbol", Some(0), None),
                event("StateExited", "Ingest", None, None),
                event("StateEntered", "Train", None, None),
                event("StateFailed", "Train", None, Some("States.TaskFailed")),
                event("StateCaught", "Train", None, None),
                event("StateEntered", "Failed", None, None),
                event("StateFailed", "Failed", None, Some("States.TaskFailed")),
            ],
            map_labels: [
                ("Ingest/0".into(), "AAPL".into()),
                ("Ingest/1".into(), "IBM".into()),
            ]
            .into(),
            notes: vec![Note {
                state: "Train".into(),
                note: "attempt 1: exit 1 -> EXIT".into(),
            }],
            notifications: vec![],
            executions: vec![],
            batch_jobs: vec![],
        };
        assert_eq!(
            path(&result),
            "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol(Vendor.Throttled→retry)} → Train[attempt 1: exit 1 -> EXIT](States.TaskFailed→caught) → Failed(States.TaskFailed)"
        );
    }
}
