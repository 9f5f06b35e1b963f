//! The scenarios of `cargo xtask simulate`: what each one sets up, the
//! path of states it must take, and what the store must hold afterwards.
//!
//! Paths are written as `cargo xtask simulate` prints them: top-level
//! states joined by " → ", a Map's iterations in braces by item, a state's
//! errors in parentheses with what the workflow did about them (retry,
//! caught), and the emulated Batch attempts of a job in brackets.

use stockcast::config::{Approval as ApprovalMode, GatePolicy};
use stockcast::models::ModelKind;
use stockcast::steps::Source;

use super::check::{self, Outcome};

pub const SYMBOLS: [&str; 2] = ["AAPL", "IBM"];
/// The fast models: the backtest refits every model at ~500 origins.
pub const MODELS: [ModelKind; 3] = [ModelKind::Naive, ModelKind::Drift, ModelKind::LinregLag5];
/// With ARIMA (~5 ms a fit) the backtest lasts about a second, a wide
/// window for a Spot interruption to land in.
const MODELS_WITH_ARIMA: [ModelKind; 4] = [
    ModelKind::Naive,
    ModelKind::Drift,
    ModelKind::LinregLag5,
    ModelKind::Arima,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workflow {
    Training,
    Daily,
}

impl Workflow {
    /// The state machine's logical id in the orchestration stack.
    pub fn logical_id(self) -> &'static str {
        match self {
            Workflow::Training => "TrainingStateMachine",
            Workflow::Daily => "DailyStateMachine",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Workflow::Training => "training",
            Workflow::Daily => "daily",
        }
    }
}

/// What the store holds before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSeed {
    Empty,
    /// A previous run trained and promoted the same symbols and models.
    Trained,
    /// Curated prices without their last `n` days (for a vendor to bring).
    AllButLast(usize),
}

/// The prices the sample source (and the fake vendor) serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prices {
    Bundled,
    /// `days` trading days missing from the rows the models use, in each
    /// of `symbols`.
    Gap {
        symbols: &'static [&'static str],
        days: usize,
    },
    /// Re-dated to end yesterday, as the monitor needs.
    Recent,
}

/// How the scenario answers a `.waitForTaskToken` approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Approve,
    Reject,
    /// Nobody answers before the state's TimeoutSeconds.
    Timeout,
}

pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub workflow: Workflow,
    pub source: Source,
    pub models: &'static [ModelKind],
    pub store: StoreSeed,
    pub prices: Prices,
    /// Changes to the environment's gate policy.
    pub gate: fn(&mut GatePolicy),
    /// A symbol the fake vendor throttles until the step gives up once.
    pub throttle: Option<&'static str>,
    /// Served forecasts off by this fraction are recorded before the run.
    pub served_bias: Option<f64>,
    /// Batch attempts (1-based) that get a Spot interruption.
    pub interrupt: &'static [u32],
    /// The array child (AWS_BATCH_JOB_ARRAY_INDEX) they are sent to; `None`:
    /// the job itself, when it is not an array.
    pub interrupt_child: Option<u32>,
    pub answer: Option<Answer>,
    /// The gate function is pointed at an MLflow server that is not there.
    pub mlflow_down: bool,
    /// `None`: the execution must succeed.
    pub error: Option<&'static str>,
    pub path: &'static str,
    pub check: fn(&Outcome) -> Vec<String>,
}

fn keep(_: &mut GatePolicy) {}

fn manual(gate: &mut GatePolicy) {
    gate.approval = ApprovalMode::Manual;
    // The candidates tie the production versions the store was seeded with
    // (same code, same data); a learned model reaches the approval only if
    // a tie passes, which prod's 1 % margin over production would refuse.
    gate.min_improvement_over_production_pct = 0.0;
}

pub fn all() -> Vec<Scenario> {
    let training = |name, about| Scenario {
        name,
        about,
        workflow: Workflow::Training,
        source: Source::Sample,
        models: &MODELS,
        store: StoreSeed::Trained,
        prices: Prices::Bundled,
        gate: keep,
        throttle: None,
        served_bias: None,
        interrupt: &[],
        interrupt_child: None,
        answer: None,
        mlflow_down: false,
        error: None,
        path: "",
        check: |_| Vec::new(),
    };
    vec![
        Scenario {
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Train → GateEvaluate → GateDecision → Promote → NotifyPromoted → MirrorToMlflow → Done",
            check: check::promoted,
            ..training(
                "success",
                "every symbol ingested, quality ok, trained, gated, promoted",
            )
        },
        Scenario {
            mlflow_down: true,
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Train → GateEvaluate → GateDecision → Promote → NotifyPromoted → MirrorToMlflow(Service.Unavailable→retry, Service.Unavailable→retry, Service.Unavailable→caught) → NotifyMirrorFailed → Done",
            check: check::mirror_failed,
            ..training(
                "mlflow-down",
                "the MLflow server is unreachable: promotion stands, the failure is notified",
            )
        },
        Scenario {
            workflow: Workflow::Daily,
            source: Source::Yahoo,
            store: StoreSeed::AllButLast(40),
            throttle: Some("IBM"),
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol(Vendor.Throttled→retry)} → Quality → QualityOk → Monitor → DriftDetected → Done",
            check: check::throttled_then_complete,
            ..training(
                "vendor-throttle",
                "Yahoo throttles IBM until the step gives up; the workflow retries it",
            )
        },
        Scenario {
            models: &MODELS_WITH_ARIMA,
            interrupt: &[1],
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Train[attempt 1: Spot interruption, exit 143 -> RETRY; attempt 2: exit 0] → GateEvaluate → GateDecision → Promote → NotifyPromoted → MirrorToMlflow → Done",
            check: check::interrupted_once,
            ..training(
                "spot-interrupted-once",
                "a Spot interruption of the first training attempt; the job definition retries it",
            )
        },
        Scenario {
            models: &MODELS_WITH_ARIMA,
            interrupt: &[1, 2, 3],
            error: Some("States.TaskFailed"),
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Train[attempt 1: Spot interruption, exit 143 -> RETRY; attempt 2: Spot interruption, exit 143 -> RETRY; attempt 3: Spot interruption, exit 143 -> no attempts left](States.TaskFailed→caught) → NotifyFailure → Failed(States.TaskFailed)",
            check: check::training_failed,
            ..training(
                "spot-interrupted-always",
                "every attempt interrupted: the failure is caught and notified",
            )
        },
        Scenario {
            store: StoreSeed::Empty,
            prices: Prices::Gap {
                symbols: &["IBM"],
                days: 5,
            },
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → NotifyQualitySkipped → Train → GateEvaluate → GateDecision → Promote → NotifyPromoted → MirrorToMlflow → Done",
            check: check::quality_skipped,
            ..training(
                "quality-skipped",
                "five trading days missing from IBM's recent prices: IBM skipped and alerted, AAPL trained",
            )
        },
        Scenario {
            store: StoreSeed::Empty,
            prices: Prices::Gap {
                symbols: &["AAPL", "IBM"],
                days: 5,
            },
            error: Some("Data.QualityFailed"),
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → NotifyQualityFailed → QualityFailed(Data.QualityFailed)",
            check: check::quality_failed,
            ..training(
                "quality-failed",
                "recent trading days missing from every symbol: no training, an alert",
            )
        },
        Scenario {
            models: &[ModelKind::LinregLag5],
            gate: |gate| gate.min_improvement_over_naive_pct = 50.0,
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Train → GateEvaluate → GateDecision → NotifyRejected → MirrorToMlflow → Done",
            check: check::rejected,
            ..training(
                "candidate-rejected",
                "no candidate beats naive by the required 50 %",
            )
        },
        Scenario {
            gate: manual,
            answer: Some(Answer::Approve),
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Train → GateEvaluate → GateDecision → NotifyApprovalNeeded → WaitForApproval → PromoteApproved → NotifyPromoted → MirrorToMlflow → Done",
            check: check::approved,
            ..training("approval-approved", "manual approval: a person approves")
        },
        Scenario {
            gate: manual,
            answer: Some(Answer::Reject),
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Train → GateEvaluate → GateDecision → NotifyApprovalNeeded → WaitForApproval(Gate.ApprovalRejected→caught) → WithdrawAfterRejection → NotifyApprovalRejected → MirrorToMlflow → Done",
            check: check::approval_rejected,
            ..training("approval-rejected", "manual approval: a person rejects")
        },
        Scenario {
            gate: manual,
            answer: Some(Answer::Timeout),
            error: Some("Gate.ApprovalTimeout"),
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Train → GateEvaluate → GateDecision → NotifyApprovalNeeded → WaitForApproval(States.Timeout→caught) → WithdrawAfterTimeout → NotifyApprovalTimeout → ApprovalTimedOut(Gate.ApprovalTimeout)",
            check: check::approval_timed_out,
            ..training(
                "approval-timeout",
                "manual approval: nobody answers within the timeout",
            )
        },
        Scenario {
            workflow: Workflow::Daily,
            store: StoreSeed::Empty,
            prices: Prices::Recent,
            served_bias: Some(0.05),
            path: "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Monitor → DriftDetected → StartTraining → Done",
            check: check::drift_started_training,
            ..training(
                "daily-drift",
                "served forecasts far worse than naive: the daily run starts training",
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const INGEST: &str = "Ingest{AAPL: IngestSymbol, IBM: IngestSymbol}";

    #[test]
    fn scenario_names_are_unique_and_paths_use_the_map_of_every_symbol() {
        let scenarios = all();
        let mut names: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), scenarios.len());
        for s in &scenarios {
            assert!(s.path.starts_with("Ingest{"), "{}: {}", s.name, s.path);
            assert!(
                s.path.contains(INGEST) || s.throttle.is_some(),
                "{}",
                s.name
            );
        }
    }
}
