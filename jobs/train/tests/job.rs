//! The training job binary end to end against a local store, as Batch runs
//! it: parameters in the environment, SIGTERM as the Spot interruption.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use stockcast::ids::RunId;
use stockcast::layout::{self, VersionFile};

use stockcast::steps::TrainOutput;
use stockcast::store::Store;

/// A store with the sample prices of `symbols` ingested.
fn seeded_store(dir: &Path, symbols: &[&str]) -> Store {
    let store = Store::local(dir).expect("store");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(test_support::seed::ingested(
            &store,
            &test_support::sample_dir(),
            symbols,
        ))
        .expect("ingests");
    store
}

fn job(store_dir: &Path, run_id: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stockcast-train"));
    command
        .env("STOCKCAST_STORE", store_dir)
        .env("STOCKCAST_RUN_ID", run_id)
        .env("STOCKCAST_SYMBOLS", r#"["IBM","MSFT"]"#)
        .env("STOCKCAST_MODELS", r#"["naive","arima"]"#)
        .env("STOCKCAST_HORIZONS", "[1,5,21]")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

fn keys(store: &Store, prefix: &str) -> Vec<String> {
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(store.list(prefix))
        .expect("lists")
}

#[test]
fn an_interrupted_run_leaves_nothing_and_its_retry_finishes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = seeded_store(dir.path(), &["IBM", "MSFT"]);
    let run_id = "2026-11-27T09-00-00Z-training";

    // Attempt 1: SIGTERM once the backtest is under way.
    let mut child = job(dir.path(), run_id).spawn().expect("starts the job");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("reads the log");
        let progressing = line.contains("backtest progress");
        log.push(line);
        if progressing {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    log.extend(lines.map_while(Result::ok));
    let exit = child.wait().expect("job exits");
    assert_eq!(exit.code(), Some(143), "log:\n{}", log.join("\n"));
    assert!(
        log.iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every log line is JSON for CloudWatch:\n{}",
        log.join("\n")
    );
    assert!(keys(&store, "models/").is_empty(), "no partial version");
    assert!(keys(&store, "runs/").is_empty(), "no run record");

    // Attempt 2 (the retry): finishes and records the run.
    let output = job(dir.path(), run_id).output().expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let record = std::fs::read(dir.path().join(layout::run_train(
        &RunId::new(run_id).expect("valid run id"),
    )))
    .expect("the run is recorded");
    let trained: TrainOutput = serde_json::from_slice(&record).expect("a train output");
    assert_eq!(trained.candidates.len(), 4, "{trained:?}");
    for candidate in &trained.candidates {
        for file in [
            VersionFile::Model,
            VersionFile::Metrics,
            VersionFile::BacktestCsv,
            VersionFile::PlotPng,
            VersionFile::Lineage,
        ] {
            let key =
                layout::version_file(&candidate.symbol, candidate.model, &candidate.version, file);
            assert!(dir.path().join(&key).exists(), "{key}");
        }
    }

    // A third attempt (Batch retried after the job finished): nothing new.
    let before = keys(&store, "models/");
    let output = job(dir.path(), run_id).output().expect("runs");
    assert!(output.status.success());
    assert_eq!(keys(&store, "models/"), before);
}

#[test]
fn bad_parameters_fail_without_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = job(dir.path(), "r")
        .env("STOCKCAST_MODELS", r#"["prophet2"]"#)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("STOCKCAST_MODELS"), "{log}");
}
