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
/// The series a scale scenario's universe holds, besides [`GONE`].
pub const SCALE_SERIES: usize = 47;
/// Symbols of a scale universe that the vendor does not know (delisted):
/// their ingest children fail with Vendor.UnknownSymbol, 3 of 50 (6 %),
/// within dev's tolerated 10 %.
pub const GONE: [&str; 3] = ["GONE1", "GONE2", "GONE3"];
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

/// What the execution is started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartInput {
    /// Every field of a run, the symbols listed (what `cargo xtask run`
    /// used to send).
    Full,
    /// Every field but the symbols: the plan reads the environment's universe.
    Universe,
    /// `{}`: every field from the environment's defaults, the run id from
    /// the execution's name.
    Empty,
    /// The console's default input, `{"Comment": "Insert your JSON here"}`.
    Console,
}

impl StartInput {
    /// Whether the run's fields come from the environment's defaults.
    pub fn uses_defaults(self) -> bool {
        matches!(self, StartInput::Empty | StartInput::Console)
    }
}

/// The symbols the environment's universe holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Universe {
    /// AAPL and IBM, from the bundled sample files.
    Sample,
    /// `SCALE_SERIES` generated series and `GONE`, symbols the vendor does
    /// not know (delisted).
    Scale,
}

impl Universe {
    pub fn symbols(self) -> Vec<String> {
        match self {
            Universe::Sample => SYMBOLS.map(str::to_owned).to_vec(),
            Universe::Scale => super::seed::generated_symbols(SCALE_SERIES)
                .into_iter()
                .chain(GONE.map(str::to_owned))
                .collect(),
        }
    }
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
    pub start: StartInput,
    pub universe: Universe,
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
    pub path: String,
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
        start: StartInput::Full,
        universe: Universe::Sample,
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
        path: String::new(),
        check: |_| Vec::new(),
    };
    vec![
        Scenario {
            path: SUCCESS.into(),
            check: check::promoted,
            ..training(
                "success",
                "every symbol ingested, quality ok, trained, gated, promoted",
            )
        },
        Scenario {
            mlflow_down: true,
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → TrainShards → TrainArray → MergeTraining → GateEvaluate → GateDecision → Promote → NotifyPromoted → MirrorToMlflow(Service.Unavailable→retry, Service.Unavailable→retry, Service.Unavailable→caught) → NotifyMirrorFailed → Done".into(),
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
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol(Vendor.Throttled→retry)} → Quality → QualityOk → Monitor → DriftDetected → Done".into(),
            check: check::throttled_then_complete,
            ..training(
                "vendor-throttle",
                "Yahoo throttles IBM until the step gives up; the workflow retries it",
            )
        },
        Scenario {
            models: &MODELS_WITH_ARIMA,
            interrupt: &[1],
            interrupt_child: Some(0),
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → TrainShards → TrainArray[child 0: attempt 1: Spot interruption, exit 143 -> RETRY; attempt 2: exit 0] → MergeTraining → GateEvaluate → GateDecision → Promote → NotifyPromoted → MirrorToMlflow → Done".into(),
            check: check::interrupted_once,
            ..training(
                "spot-interrupted-once",
                "a Spot interruption of the first training attempt; the job definition retries it",
            )
        },
        Scenario {
            models: &MODELS_WITH_ARIMA,
            interrupt: &[1, 2, 3],
            interrupt_child: Some(0),
            error: Some("States.TaskFailed"),
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → TrainShards → TrainArray[child 0: attempt 1: Spot interruption, exit 143 -> RETRY; attempt 2: Spot interruption, exit 143 -> RETRY; attempt 3: Spot interruption, exit 143 -> no attempts left](States.TaskFailed→caught) → NotifyFailure → Failed(States.TaskFailed)".into(),
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
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → NotifyQualitySkipped → TrainShards → TrainOne → MergeTraining → GateEvaluate → GateDecision → Promote → NotifyPromoted → MirrorToMlflow → Done".into(),
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
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → NotifyQualityFailed → QualityFailed(Data.QualityFailed)".into(),
            check: check::quality_failed,
            ..training(
                "quality-failed",
                "recent trading days missing from every symbol: no training, an alert",
            )
        },
        Scenario {
            models: &[ModelKind::LinregLag5],
            gate: |gate| gate.min_improvement_over_naive_pct = 50.0,
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → TrainShards → TrainArray → MergeTraining → GateEvaluate → GateDecision → NotifyRejected → MirrorToMlflow → Done".into(),
            check: check::rejected,
            ..training(
                "candidate-rejected",
                "no candidate beats naive by the required 50 %",
            )
        },
        Scenario {
            gate: manual,
            answer: Some(Answer::Approve),
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → TrainShards → TrainArray → MergeTraining → GateEvaluate → GateDecision → NotifyApprovalNeeded → WaitForApproval → PromoteApproved → NotifyPromoted → MirrorToMlflow → Done".into(),
            check: check::approved,
            ..training("approval-approved", "manual approval: a person approves")
        },
        Scenario {
            gate: manual,
            answer: Some(Answer::Reject),
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → TrainShards → TrainArray → MergeTraining → GateEvaluate → GateDecision → NotifyApprovalNeeded → WaitForApproval(Gate.ApprovalRejected→caught) → WithdrawAfterRejection → NotifyApprovalRejected → MirrorToMlflow → Done".into(),
            check: check::approval_rejected,
            ..training("approval-rejected", "manual approval: a person rejects")
        },
        Scenario {
            gate: manual,
            answer: Some(Answer::Timeout),
            error: Some("Gate.ApprovalTimeout"),
            path: "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → TrainShards → TrainArray → MergeTraining → GateEvaluate → GateDecision → NotifyApprovalNeeded → WaitForApproval(States.Timeout→caught) → WithdrawAfterTimeout → NotifyApprovalTimeout → ApprovalTimedOut(Gate.ApprovalTimeout)".into(),
            check: check::approval_timed_out,
            ..training(
                "approval-timeout",
                "manual approval: nobody answers within the timeout",
            )
        },
        daily_drift(
            StartInput::Full,
            "daily-drift",
            "served forecasts far worse than naive: the daily run starts training",
        ),
        Scenario {
            start: StartInput::Empty,
            path: SUCCESS.into(),
            check: check::promoted,
            ..training(
                "console-empty-training",
                "started with {}: the environment's defaults, the same end as success",
            )
        },
        Scenario {
            start: StartInput::Console,
            path: SUCCESS.into(),
            check: check::promoted,
            ..training(
                "console-default-training",
                "started with the console's default input: the same end as success",
            )
        },
        daily_drift(
            StartInput::Empty,
            "console-empty-daily",
            "started with {}: the same end as daily-drift",
        ),
        daily_drift(
            StartInput::Console,
            "console-default-daily",
            "started with the console's default input: the same end as daily-drift",
        ),
        Scenario {
            start: StartInput::Universe,
            universe: Universe::Scale,
            source: Source::Yahoo,
            store: StoreSeed::AllButLast(40),
            interrupt: &[1],
            interrupt_child: Some(1),
            path: scale_path(),
            check: check::scale_trained,
            ..training(
                "scale-training",
                "50 symbols: 3 unknown to the vendor, tolerated, named and not trained; \
                 training shard 1 Spot-interrupted once and retried alone",
            )
        },
    ]
}

/// The path of a training run of the sample universe (two symbols: a
/// shard each) that promotes.
const SUCCESS: &str = "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → TrainShards → TrainArray → MergeTraining → GateEvaluate → GateDecision → Promote → NotifyPromoted → MirrorToMlflow → Done";
/// The path of a daily run that finds drift and starts training.
const DAILY_DRIFT: &str = "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol} → Quality → QualityOk → Monitor → DriftDetected → StartTraining → Done";

/// A daily run whose served forecasts were far worse than naive.
fn daily_drift(start: StartInput, name: &'static str, about: &'static str) -> Scenario {
    Scenario {
        workflow: Workflow::Daily,
        start,
        universe: Universe::Sample,
        source: Source::Sample,
        models: &MODELS,
        store: StoreSeed::Empty,
        prices: Prices::Recent,
        gate: keep,
        throttle: None,
        served_bias: Some(0.05),
        interrupt: &[],
        interrupt_child: None,
        answer: None,
        mlflow_down: false,
        error: None,
        path: DAILY_DRIFT.into(),
        check: check::drift_started_training,
        name,
        about,
    }
}

/// The scale scenario's path: every symbol's ingest child (the unknown
/// ones failing, not retried), the skipped ones notified, four shards
/// whose child 1 is interrupted once.
fn scale_path() -> String {
    let mut symbols = Universe::Scale.symbols();
    symbols.sort();
    let children: Vec<String> = symbols
        .iter()
        .map(|symbol| match GONE.contains(&symbol.as_str()) {
            true => format!("{symbol}: IngestSymbol(Vendor.UnknownSymbol)"),
            false => format!("{symbol}: IngestSymbol"),
        })
        .collect();
    format!(
        "Plan → Ingest{{{}}} → Quality → QualityOk → NotifyQualitySkipped → TrainShards → \
         TrainArray[child 1: attempt 1: Spot interruption, exit 143 -> RETRY; attempt 2: exit 0] → \
         MergeTraining → GateEvaluate → GateDecision → Promote → NotifyPromoted → MirrorToMlflow → Done",
        children.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const INGEST: &str = "Plan → Ingest{AAPL: IngestSymbol, IBM: IngestSymbol}";

    #[test]
    fn scenario_names_are_unique_and_paths_start_with_the_plan_and_the_map() {
        let scenarios = all();
        let mut names: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), scenarios.len());
        for s in &scenarios {
            assert!(
                s.path.starts_with("Plan → Ingest{"),
                "{}: {}",
                s.name,
                s.path
            );
            assert!(
                s.path.starts_with(INGEST) || s.throttle.is_some() || s.universe == Universe::Scale,
                "{}",
                s.name
            );
            // The console's inputs must end where a full input does.
            if s.start.uses_defaults() {
                let twin = scenarios.iter().find(|t| {
                    t.start == StartInput::Full && t.workflow == s.workflow && t.path == s.path
                });
                assert!(
                    twin.is_some(),
                    "{} ends where no full-input scenario does",
                    s.name
                );
            }
        }
    }
}
