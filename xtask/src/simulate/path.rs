//! The path of states an execution took, as one line: top-level states
//! joined by " → "; a Map's iterations in braces, by item, in item order
//! (they run concurrently, so their interleaving is not part of the path),
//! an inline Map's from the execution's events, a Distributed Map's from
//! its child executions (`map_runs`); a state's errors in parentheses with
//! what the workflow did about them; emulated Batch attempts in brackets
//! when there was more than one (for an array job, of each child that had
//! something to tell).

use std::collections::BTreeMap;

use super::check::{Event, MapRun, Note, RunnerResult};

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
        let mine: Vec<&Note> = notes
            .iter()
            .copied()
            .filter(|n| n.state == self.name)
            .collect();
        if let Some(attempts) = render_attempts(&mine) {
            text.push_str(&format!("[{attempts}]"));
        }
        if !self.marks.is_empty() {
            text.push_str(&format!("({})", self.marks.join(", ")));
        }
        text
    }
}

/// The attempts worth telling: a job's, or each array child's, unless it
/// succeeded at its first attempt.
fn render_attempts(notes: &[&Note]) -> Option<String> {
    let mut by_job: BTreeMap<Option<u32>, Vec<&str>> = BTreeMap::new();
    for note in notes {
        by_job.entry(note.child).or_default().push(&note.note);
    }
    let told: Vec<String> = by_job
        .into_iter()
        .filter(|(_, attempts)| attempts.len() > 1 || !attempts[0].ends_with("exit 0"))
        .map(|(child, attempts)| match child {
            None => attempts.join("; "),
            Some(index) => format!("child {index}: {}", attempts.join("; ")),
        })
        .collect();
    (!told.is_empty()).then(|| told.join(" | "))
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

/// Adds one event to the steps of its scope: a new step, or a mark on the
/// latest step of that name.
fn apply(scope: &mut Vec<Step>, event: &Event) {
    if event.kind == "StateEntered" {
        scope.push(Step::new(&event.state));
    } else {
        mark(
            scope.iter_mut().rev().find(|s| s.name == event.state),
            event,
        );
    }
}

/// Gives each top-level step that ran a Distributed Map (the n-th step of
/// that name, the n-th run of it) its children's paths, by label.
fn attach_map_runs(top: &mut [Step], map_runs: &[MapRun]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for step in top {
        let nth = seen.entry(step.name.clone()).or_default();
        let run = map_runs.iter().filter(|r| r.state == step.name).nth(*nth);
        *nth += 1;
        for child in run.map(|r| r.children.as_slice()).unwrap_or_default() {
            let steps = step.iterations.entry(child.label.clone()).or_default();
            for event in &child.events {
                apply(steps, event);
            }
        }
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
        apply(scope, event);
    }
    attach_map_runs(&mut top, &result.map_runs);
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
            map_runs: vec![],
            notes: vec![Note {
                state: "Train".into(),
                child: None,
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

    fn child(
        index: usize,
        label: &str,
        events: Vec<Event>,
    ) -> super::super::map_run::ChildExecution {
        super::super::map_run::ChildExecution {
            index,
            label: label.into(),
            input: serde_json::Value::Null,
            status: "SUCCEEDED".into(),
            error: None,
            events,
        }
    }

    #[test]
    fn renders_distributed_map_children_and_the_array_children_with_something_to_tell() {
        let note = |child, note: &str| Note {
            state: "TrainArray".into(),
            child: Some(child),
            note: note.into(),
        };
        let result = RunnerResult {
            status: "SUCCEEDED".into(),
            output: serde_json::Value::Null,
            error: None,
            cause: None,
            events: vec![
                event("StateEntered", "Ingest", None, None),
                event("StateExited", "Ingest", None, None),
                event("StateEntered", "TrainArray", None, None),
                event("StateExited", "TrainArray", None, None),
            ],
            map_labels: BTreeMap::new(),
            map_runs: vec![MapRun {
                state: "Ingest".into(),
                map_run_arn: "arn:aws:states:us-east-1:0:mapRun:m/Ingest:1".into(),
                status: "SUCCEEDED".into(),
                cause: None,
                item_count: Some(2),
                tolerated_failure_percentage: Some(10.0),
                tolerated_failure_count: None,
                result_writer: None,
                children: vec![
                    child(
                        1,
                        "ZZZ",
                        vec![
                            event("StateEntered", "IngestSymbol", None, None),
                            event(
                                "StateFailed",
                                "IngestSymbol",
                                None,
                                Some("Vendor.UnknownSymbol"),
                            ),
                        ],
                    ),
                    child(
                        0,
                        "AAPL",
                        vec![event("StateEntered", "IngestSymbol", None, None)],
                    ),
                ],
            }],
            notes: vec![
                note(0, "attempt 1: exit 0"),
                note(1, "attempt 1: Spot interruption, exit 143 -> RETRY"),
                note(1, "attempt 2: exit 0"),
                note(2, "attempt 1: exit 0"),
            ],
            notifications: vec![],
            executions: vec![],
            batch_jobs: vec![],
        };
        assert_eq!(
            path(&result),
            "Ingest{AAPL: IngestSymbol, ZZZ: IngestSymbol(Vendor.UnknownSymbol)} → TrainArray[child 1: attempt 1: Spot interruption, exit 143 -> RETRY; attempt 2: exit 0]"
        );
    }
}
