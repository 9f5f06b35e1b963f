//! What the store and the execution must show after each scenario. Every
//! check returns the problems it found, as sentences; none means it passed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;
use stockcast::ids::{Symbol, VersionId};
use stockcast::layout::{self, Alias, VersionFile};
use stockcast::models::ModelKind;
use stockcast::steps::{RunInput, Source};

pub use super::map_run::MapRun;

/// What the runner reports (tests/simulate/runner.mjs).
#[derive(Debug, Clone, Deserialize)]
pub struct RunnerResult {
    pub status: String,
    #[serde(default)]
    pub output: Json,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
    pub events: Vec<Event>,
    pub map_labels: BTreeMap<String, String>,
    /// Every Distributed Map run, in the order they started.
    #[serde(default)]
    pub map_runs: Vec<MapRun>,
    pub notes: Vec<Note>,
    pub notifications: Vec<Notification>,
    pub executions: Vec<Execution>,
    pub batch_jobs: Vec<Json>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    #[serde(default)]
    pub map: Option<String>,
    #[serde(default)]
    pub index: Option<usize>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Note {
    pub state: String,
    /// The array child the note is about (`None`: the job itself).
    #[serde(default)]
    pub child: Option<u32>,
    pub note: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    pub subject: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Execution {
    pub state_machine: String,
    pub input: Json,
}

/// The registry's state that scenarios compare before and after a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The production version of every (symbol, model), if any.
    pub production: BTreeMap<(String, ModelKind), Option<String>>,
    /// The complete versions (with lineage.json) of every (symbol, model).
    pub versions: BTreeMap<(String, ModelKind), BTreeSet<String>>,
    /// The staging record of every (symbol, model) that has one.
    pub staging: BTreeMap<(String, ModelKind), Json>,
}

fn read_json(path: &Path) -> Option<Json> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

impl Snapshot {
    pub fn take(store: &Path, symbols: &[String]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for name in symbols {
            let Ok(symbol) = Symbol::new(name) else {
                continue;
            };
            let name = name.clone();
            for model in ModelKind::ALL {
                let alias =
                    read_json(&store.join(layout::alias(&symbol, model, Alias::Production)));
                let version = alias.and_then(|a| a["version"].as_str().map(str::to_owned));
                snapshot.production.insert((name.clone(), model), version);
                if let Some(staging) =
                    read_json(&store.join(layout::alias(&symbol, model, Alias::Staging)))
                {
                    snapshot.staging.insert((name.clone(), model), staging);
                }
                let complete = std::fs::read_dir(store.join(layout::versions(&symbol, model)))
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                    .filter_map(|e| VersionId::new(e.file_name().to_string_lossy()).ok())
                    .filter(|v| {
                        let lineage = layout::version_file(&symbol, model, v, VersionFile::Lineage);
                        store.join(lineage).exists()
                    })
                    .map(|v| v.to_string())
                    .collect();
                snapshot.versions.insert((name.clone(), model), complete);
            }
        }
        snapshot
    }
}

/// Everything a check may look at.
pub struct Outcome {
    pub store: PathBuf,
    /// The run the execution must plan to.
    pub input: RunInput,
    /// What the execution was started with.
    pub given: Json,
    pub result: RunnerResult,
    pub before: Snapshot,
    pub after: Snapshot,
    /// The fake vendor's requests: (symbol, status).
    pub requests: Vec<(String, u16)>,
    /// 429 answers the fake vendor gave before serving a symbol.
    pub throttles: usize,
    /// Rows of every symbol's full price series.
    pub full_rows: BTreeMap<String, usize>,
    pub execution_id: String,
    pub task_token: String,
    pub training_arn: String,
    pub drift_threshold: f64,
}

impl Outcome {
    fn key(&self, key: &str) -> PathBuf {
        self.store.join(key)
    }

    fn train_output(&self) -> Option<Json> {
        read_json(&self.key(&layout::run_train(&self.input.run_id)))
    }

    fn decisions(&self) -> Vec<Json> {
        read_json(&self.key(&layout::decisions(&self.input.run_id)))
            .and_then(|d| d["decisions"].as_array().cloned())
            .unwrap_or_default()
    }

    fn approval(&self) -> Option<Json> {
        read_json(&self.key(&layout::approval(&self.input.run_id)))
    }

    fn subjects(&self) -> Vec<&str> {
        self.result
            .notifications
            .iter()
            .map(|n| n.subject.as_deref().unwrap_or(""))
            .collect()
    }
}

/// Collects problems: `expect(problems, condition, message)`.
fn expect(problems: &mut Vec<String>, ok: bool, message: impl FnOnce() -> String) {
    if !ok {
        problems.push(message());
    }
}

fn expect_subjects(o: &Outcome, p: &mut Vec<String>, expected: &[&str]) {
    let expected: Vec<String> = expected
        .iter()
        .map(|s| format!("stockcast training: {s}"))
        .collect();
    let subjects = o.subjects();
    expect(p, subjects == expected, || {
        format!("notifications {subjects:?}, expected {expected:?}")
    });
}

/// What every scenario must show: the run's identity flows through every
/// state (no ResultPath overwrote it), and every Distributed Map's export
/// holds its children.
pub fn common(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    if o.result.status == "SUCCEEDED" {
        let out = &o.result.output;
        expect(&mut p, out["run_id"] == o.input.run_id.as_str(), || {
            format!(
                "the output's run_id is {}, not {} (started with {})",
                out["run_id"], o.input.run_id, o.given
            )
        });
        let symbols_key = layout::run_symbols(&o.input.run_id);
        expect(&mut p, out["symbols_key"] == symbols_key.as_str(), || {
            format!("the output's symbols_key is {}", out["symbols_key"])
        });
        let planned = read_json(&o.key(&symbols_key));
        expect(
            &mut p,
            planned == Some(serde_json::json!(o.input.symbols)),
            || format!("the plan wrote {planned:?}, not the run's symbols"),
        );
    }
    for run in &o.result.map_runs {
        p.extend(run.problems(&o.store));
    }
    p
}

fn production_unchanged(o: &Outcome, p: &mut Vec<String>) {
    for (key, before) in &o.before.production {
        let after = o.after.production.get(key).cloned().flatten();
        expect(p, &after == before, || {
            format!(
                "production of {} {} moved from {before:?} to {after:?}",
                key.0, key.1
            )
        });
    }
}

/// No version was written for `symbols`.
fn no_new_versions(o: &Outcome, p: &mut Vec<String>, symbols: &[String]) {
    for ((symbol, model), after) in &o.after.versions {
        let before = o.before.versions.get(&(symbol.clone(), *model));
        expect(
            p,
            !symbols.contains(symbol) || before == Some(after),
            || format!("{symbol} {model}: versions were written"),
        );
    }
}

/// The size of the Batch array the run submitted, if it did.
fn array_size(o: &Outcome) -> Option<usize> {
    o.result
        .batch_jobs
        .iter()
        .find_map(|j| j["ArrayProperties"]["Size"].as_u64())
        .map(|size| size as usize)
}

/// The symbols the array child `index` of `shards` trains.
fn shard_symbols(o: &Outcome, index: usize, shards: usize) -> Vec<String> {
    let passed: Vec<Symbol> = passed_quality(o)
        .iter()
        .filter_map(|s| Symbol::new(s).ok())
        .collect();
    let shard = stockcast::universe::Shard {
        index,
        count: shards,
    };
    stockcast::universe::select(&passed, shard)
        .map(|symbols| symbols.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default()
}

/// The symbols the data checks let through (`runs/<run_id>/passed.json`);
/// none where the quality step did not run.
fn passed_quality(o: &Outcome) -> Vec<String> {
    read_json(&o.key(&layout::run_passed(&o.input.run_id)))
        .and_then(|passed| serde_json::from_value(passed).ok())
        .unwrap_or_default()
}

/// The run's candidates: one new complete version per (symbol, model) of
/// the symbols that passed, and decisions with reasons for each;
/// production follows the decisions.
fn trained_and_decided(o: &Outcome, p: &mut Vec<String>, moved: impl Fn(&str) -> bool) {
    let Some(train) = o.train_output() else {
        p.push("no runs/<run_id>/train.json".into());
        return;
    };
    let symbols = passed_quality(o);
    let candidates = train["candidates"].as_array().cloned().unwrap_or_default();
    let expected = symbols.len() * o.input.models.len();
    expect(p, candidates.len() == expected, || {
        format!("{} candidates, expected {expected}", candidates.len())
    });
    for &model in &o.input.models {
        for symbol in &symbols {
            let key = (symbol.clone(), model);
            let (before, after) = (
                o.before.versions.get(&key).map_or(0, BTreeSet::len),
                o.after.versions.get(&key).map_or(0, BTreeSet::len),
            );
            expect(p, after == before + 1, || {
                format!(
                    "{symbol} {model}: {before} versions before, {after} after (expected one more)"
                )
            });
        }
    }
    let decisions = o.decisions();
    expect(p, decisions.len() == candidates.len(), || {
        format!(
            "{} decisions recorded for {} candidates",
            decisions.len(),
            candidates.len()
        )
    });
    for d in &decisions {
        let (symbol, version) = (d["symbol"].as_str().unwrap_or(""), d["version"].as_str());
        let Ok(model) = serde_json::from_value::<ModelKind>(d["model"].clone()) else {
            p.push(format!("a decision names no model: {d}"));
            continue;
        };
        let reasons = d["reasons"].as_array().map_or(0, Vec::len);
        expect(p, reasons > 0, || {
            format!("{symbol} {model}: a decision without reasons")
        });
        let key = (symbol.to_owned(), model);
        let production = o.after.production.get(&key).cloned().flatten();
        let decision = d["decision"].as_str().unwrap_or("");
        if moved(decision) {
            expect(p, production.as_deref() == version, || {
                format!("{symbol} {model} was {decision}d but production is {production:?}")
            });
        } else {
            let before = o.before.production.get(&key).cloned().flatten();
            expect(p, production == before, || {
                format!(
                    "{symbol} {model} ({decision}) moved production from {before:?} to {production:?}"
                )
            });
        }
    }
}

pub fn promoted(o: &Outcome) -> Vec<String> {
    let mut p = promoted_and_notified(o, &["models promoted"]);
    // dev names no MLflow server: the mirror step ran and did nothing.
    let mlflow = &o.result.output["mlflow"];
    expect(&mut p, mlflow["mirrored"] == false, || {
        format!("$.mlflow should say nothing was mirrored: {mlflow}")
    });
    p
}

fn promoted_and_notified(o: &Outcome, subjects: &[&str]) -> Vec<String> {
    let mut p = Vec::new();
    trained_and_decided(o, &mut p, |d| d == "promote");
    let promoted = o.result.output["promote"]["promoted"].as_u64().unwrap_or(0) as usize;
    let decided = o
        .decisions()
        .iter()
        .filter(|d| d["decision"] == "promote")
        .count();
    expect(&mut p, promoted == decided && promoted > 0, || {
        format!("{promoted} promoted in $.promote, {decided} promote decisions")
    });
    expect_subjects(o, &mut p, subjects);
    p
}

/// MLflow was down: production moved all the same, and the failure was
/// notified with the error the mirror step returned.
pub fn mirror_failed(o: &Outcome) -> Vec<String> {
    let mut p = promoted_and_notified(o, &["models promoted", "MLflow mirror failed"]);
    let said = o.result.notifications.last().is_some_and(|n| {
        n.message.contains("Service.Unavailable")
            && n.message.contains("cannot reach the MLflow server")
    });
    expect(&mut p, said, || {
        "the mirror notification does not say MLflow was unreachable".into()
    });
    p
}

/// Array child 0 interrupted once and retried alone; the run promotes.
pub fn interrupted_once(o: &Outcome) -> Vec<String> {
    let mut p = promoted(o);
    p.extend(shards_retried_alone(o, 0));
    p
}

/// Array child 0 interrupted at every attempt: the run fails before the
/// merge, and nothing of shard 0 was written (the other shard trained, its
/// versions never gated).
pub fn training_failed(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    expect(&mut p, o.train_output().is_none(), || {
        "an interrupted job recorded train.json".into()
    });
    expect(&mut p, o.decisions().is_empty(), || {
        "decisions were recorded".into()
    });
    let interrupted = shard_symbols(o, 0, array_size(o).unwrap_or(1));
    expect(&mut p, !interrupted.is_empty(), || {
        "shard 0 has no symbols".into()
    });
    no_new_versions(o, &mut p, &interrupted);
    production_unchanged(o, &mut p);
    expect_subjects(o, &mut p, &["run failed"]);
    let said = first_message(o).contains("States.TaskFailed");
    expect(&mut p, said, || {
        "the failure notification does not name States.TaskFailed".into()
    });
    p
}

pub fn quality_failed(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    expect(&mut p, o.train_output().is_none(), || {
        "training ran on bad data".into()
    });
    expect(&mut p, !o.key("models").exists(), || {
        "models were written".into()
    });
    expect_subjects(o, &mut p, &["data quality failed"]);
    let message = first_message(o);
    expect(
        &mut p,
        ["AAPL", "IBM"]
            .iter()
            .all(|s| message.contains(&format!(r#""symbol":"{s}""#))),
        || format!("the alert does not name both symbols' gaps: {message}"),
    );
    p
}

/// The first notification's text, or "" where nothing was notified.
fn first_message(o: &Outcome) -> &str {
    o.result
        .notifications
        .first()
        .map_or("", |n| n.message.as_str())
}

/// IBM failed its checks: alerted, skipped, and AAPL trained and promoted.
pub fn quality_skipped(o: &Outcome) -> Vec<String> {
    let mut p = promoted_and_notified(o, &["symbols skipped", "models promoted"]);
    let passed = passed_quality(o);
    expect(&mut p, passed == ["AAPL"], || {
        format!("runs/<run_id>/passed.json lists {passed:?}")
    });
    let ibm_trained = o
        .after
        .versions
        .iter()
        .any(|((symbol, _), versions)| symbol == "IBM" && !versions.is_empty());
    expect(&mut p, !ibm_trained, || {
        "IBM was trained on bad data".into()
    });
    let message = first_message(o);
    expect(
        &mut p,
        message.contains("[\"IBM\"]") && message.contains("missing"),
        || format!("the alert does not name IBM and its gap: {message}"),
    );
    p
}

pub fn rejected(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    trained_and_decided(o, &mut p, |_| false);
    let all_rejected = o.decisions().iter().all(|d| d["decision"] == "reject");
    expect(&mut p, all_rejected, || "a decision is not reject".into());
    production_unchanged(o, &mut p);
    expect_subjects(o, &mut p, &["no candidate passed the gate"]);
    p
}

fn answered(o: &Outcome, p: &mut Vec<String>, approve: bool) {
    let record = o.approval().unwrap_or_default();
    expect(p, record["task_token"] == o.task_token.as_str(), || {
        format!(
            "the gate kept token {}, the execution issued {}",
            record["task_token"], o.task_token
        )
    });
    expect(p, record["answer"]["approve"] == approve, || {
        format!("the approval record's answer is {}", record["answer"])
    });
}

/// Every candidate that waited was staged, and its staging was cleared
/// with this reason when the wait ended.
fn staging_cleared(o: &Outcome, p: &mut Vec<String>, reason: &str) {
    for d in o
        .decisions()
        .iter()
        .filter(|d| d["decision"] == "needs_approval")
    {
        let symbol = d["symbol"].as_str().unwrap_or("");
        let Ok(model) = serde_json::from_value::<ModelKind>(d["model"].clone()) else {
            continue;
        };
        let staging = o.after.staging.get(&(symbol.to_owned(), model));
        expect(
            p,
            staging.is_some_and(|s| s["version"].is_null() && s["reason"] == reason),
            || format!("{symbol} {model}: staging should be cleared as {reason:?}, is {staging:?}"),
        );
    }
}

pub fn approved(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    trained_and_decided(o, &mut p, |d| d != "reject");
    let waited = o
        .decisions()
        .iter()
        .any(|d| d["decision"] == "needs_approval");
    expect(&mut p, waited, || "no decision needed approval".into());
    answered(o, &mut p, true);
    staging_cleared(o, &mut p, "approved");
    expect_subjects(o, &mut p, &["approval needed", "models promoted"]);
    p
}

pub fn approval_rejected(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    trained_and_decided(o, &mut p, |_| false);
    production_unchanged(o, &mut p);
    answered(o, &mut p, false);
    staging_cleared(o, &mut p, "rejected");
    expect_subjects(
        o,
        &mut p,
        &["approval needed", "candidates rejected by approver"],
    );
    p
}

pub fn approval_timed_out(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    trained_and_decided(o, &mut p, |_| false);
    production_unchanged(o, &mut p);
    let record = o.approval().unwrap_or_default();
    expect(
        &mut p,
        record["task_token"] == o.task_token.as_str() && record["answer"].is_null(),
        || format!("the approval should be pending with the execution's token: {record}"),
    );
    staging_cleared(o, &mut p, "timed out");
    expect_subjects(o, &mut p, &["approval needed", "approval timed out"]);
    p
}

fn raw_objects(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| {
            if e.path().is_dir() {
                raw_objects(&e.path())
            } else {
                1
            }
        })
        .sum()
}

pub fn throttled_then_complete(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    for symbol in &o.input.symbols {
        let path = o.key(&layout::curated(symbol));
        let rows = stockcast::series::PriceSeries::from_csv_path(&path).map_or(0, |s| s.len());
        let full = o.full_rows.get(symbol.as_str()).copied().unwrap_or(0);
        expect(&mut p, rows == full, || {
            format!("{symbol}: {rows} curated rows, the vendor has {full}")
        });
    }
    let statuses: Vec<u16> = o
        .requests
        .iter()
        .filter(|r| r.0 == "IBM")
        .map(|r| r.1)
        .collect();
    let mut expected = vec![429; o.throttles];
    expected.push(200);
    expect(&mut p, statuses == expected, || {
        format!("IBM's requests were answered {statuses:?}, expected {expected:?}")
    });
    let ibm = Symbol::from_static("IBM");
    let raw = raw_objects(&o.key(&layout::raw_prefix(Source::Yahoo.name(), &ibm)));
    expect(&mut p, raw == o.throttles + 1, || {
        format!(
            "{raw} raw responses of IBM kept, expected every one of {}",
            o.throttles + 1
        )
    });
    expect(&mut p, o.result.notifications.is_empty(), || {
        "a notification was sent".into()
    });
    expect(&mut p, o.result.output["monitor"]["drift"] == false, || {
        "drift was declared".into()
    });
    p
}

pub fn drift_started_training(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    let monitor = &o.result.output["monitor"];
    let ratio = monitor["metrics"]["mase_ratio"].as_f64().unwrap_or(0.0);
    expect(
        &mut p,
        monitor["drift"] == true && ratio > o.drift_threshold,
        || {
            format!(
                "the monitor reported {monitor}, expected drift over {}",
                o.drift_threshold
            )
        },
    );
    expect(&mut p, o.result.executions.len() == 1, || {
        format!(
            "{} executions started, expected 1",
            o.result.executions.len()
        )
    });
    let Some(started) = o.result.executions.first() else {
        return p;
    };
    expect(&mut p, started.state_machine == o.training_arn, || {
        format!(
            "started {}, not the training state machine",
            started.state_machine
        )
    });
    let mut input = started.input.clone();
    let parent = input
        .as_object_mut()
        .and_then(|m| m.remove("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"));
    expect(
        &mut p,
        parent.as_ref().and_then(Json::as_str) == Some(o.execution_id.as_str()),
        || format!("the child names parent {parent:?}, not {}", o.execution_id),
    );
    // The training run plans its own symbols (the universe) and carries
    // over what this run chose.
    let expected = serde_json::json!({
        "run_id": format!("{}-drift", o.input.run_id),
        "models": o.input.models,
        "horizons": o.input.horizons,
        "source": o.input.source,
        "sentiment": o.input.sentiment,
    });
    expect(&mut p, input == expected, || {
        format!("the training input is {input}, expected {expected}")
    });
    expect(&mut p, o.result.notifications.is_empty(), || {
        "a notification was sent".into()
    });
    p
}

/// A 50-symbol universe: the symbols the vendor does not know failed their
/// ingest child once each (not retried), were tolerated, named as skipped
/// and not trained; the other 47 trained in shards, one of which was
/// Spot-interrupted once and retried alone; production follows the gate.
pub fn scale_trained(o: &Outcome) -> Vec<String> {
    let gone = super::scenarios::GONE;
    let mut p = promoted_and_notified(o, &["symbols skipped", "models promoted"]);
    let expected: Vec<String> = o
        .input
        .symbols
        .iter()
        .map(|s| s.to_string())
        .filter(|s| !gone.contains(&s.as_str()))
        .collect();
    let passed = passed_quality(o);
    expect(&mut p, passed == expected, || {
        format!(
            "passed {} symbols, expected the {} the vendor knows",
            passed.len(),
            expected.len()
        )
    });
    let skipped = &o.result.output["quality"]["skipped"];
    expect(&mut p, *skipped == serde_json::json!(gone), || {
        format!("$.quality.skipped is {skipped}, expected {gone:?}")
    });
    let message = o
        .result
        .notifications
        .first()
        .map_or("", |n| n.message.as_str());
    expect(&mut p, gone.iter().all(|s| message.contains(s)), || {
        format!("the skipped alert does not name {gone:?}: {message}")
    });
    for symbol in gone {
        let statuses: Vec<u16> = o
            .requests
            .iter()
            .filter(|r| r.0 == symbol)
            .map(|r| r.1)
            .collect();
        expect(&mut p, statuses == [404], || {
            format!("{symbol}: the vendor was asked {statuses:?}, expected one 404")
        });
        let trained = o
            .after
            .versions
            .iter()
            .any(|((s, _), v)| s == symbol && !v.is_empty());
        expect(&mut p, !trained, || format!("{symbol} was trained"));
    }
    p.extend(ingest_map_tolerated(o, &gone));
    p.extend(shards_retried_alone(o, 1));
    p
}

/// The ingest Map ran a child per symbol, and exactly `gone` failed, at
/// the vendor, within the tolerance.
fn ingest_map_tolerated(o: &Outcome, gone: &[&str]) -> Vec<String> {
    let mut p = Vec::new();
    let Some(run) = o.result.map_runs.iter().find(|r| r.state == "Ingest") else {
        return vec!["no Map Run of Ingest".into()];
    };
    expect(&mut p, run.children.len() == o.input.symbols.len(), || {
        format!(
            "{} ingest children for {} symbols",
            run.children.len(),
            o.input.symbols.len()
        )
    });
    let failed: Vec<(&str, Option<&str>)> = run
        .children
        .iter()
        .filter(|c| c.status != "SUCCEEDED")
        .map(|c| (c.label.as_str(), c.error.as_deref()))
        .collect();
    let expected: Vec<(&str, Option<&str>)> = gone
        .iter()
        .map(|s| (*s, Some("Vendor.UnknownSymbol")))
        .collect();
    expect(&mut p, failed == expected, || {
        format!("the failed ingest children are {failed:?}, expected {expected:?}")
    });
    expect(
        &mut p,
        run.status == "SUCCEEDED" && run.tolerated_failure_percentage.is_some(),
        || {
            format!(
                "the Map Run {} (tolerated: {:?} %)",
                run.status, run.tolerated_failure_percentage
            )
        },
    );
    p
}

/// Training ran as one Batch array of `$.quality.shards` children: every
/// shard wrote its output, child `interrupted` was attempted twice (the
/// Spot interruption), every other child once.
fn shards_retried_alone(o: &Outcome, interrupted: usize) -> Vec<String> {
    let mut p = Vec::new();
    let shards = o.result.output["quality"]["shards"].as_u64().unwrap_or(0) as usize;
    let Some(parent) = o
        .result
        .batch_jobs
        .iter()
        .find(|j| j["ArrayProperties"]["Size"].is_u64())
    else {
        return vec!["no Batch array job ran".into()];
    };
    expect(
        &mut p,
        shards > 1 && parent["ArrayProperties"]["Size"] == shards,
        || {
            format!(
                "an array of {} for {shards} shards",
                parent["ArrayProperties"]["Size"]
            )
        },
    );
    expect(&mut p, parent["Status"] == "SUCCEEDED", || {
        format!("the array ended {}", parent["Status"])
    });
    let attempts: Vec<usize> = o
        .result
        .batch_jobs
        .iter()
        .filter(|j| j["ArrayProperties"]["Index"].is_u64())
        .map(|j| j["Attempts"].as_array().map_or(0, Vec::len))
        .collect();
    let expected: Vec<usize> = (0..shards)
        .map(|i| if i == interrupted { 2 } else { 1 })
        .collect();
    expect(&mut p, attempts == expected, || {
        format!("the children's attempts were {attempts:?}, expected {expected:?}")
    });
    for index in 0..shards {
        let key = layout::run_train_shard(&o.input.run_id, index);
        expect(&mut p, o.key(&key).exists(), || {
            format!("shard {index} wrote no {key}")
        });
    }
    p
}
