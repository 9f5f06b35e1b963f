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
    let record = std::fs::read(dir.path().join(layout::run_train_shard(
        &RunId::new(run_id).expect("valid run id"),
        0,
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

/// Batch array children: each reads the run's passed list from the store
/// and trains its shard (`AWS_BATCH_JOB_ARRAY_INDEX`); a shard that does not
/// exist or has no symbol fails without retry.
#[test]
fn array_children_train_their_own_shard() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = seeded_store(dir.path(), &["IBM", "MSFT"]);
    let run = RunId::new("r-array").expect("valid run id");
    let passed = layout::run_passed(&run);
    std::fs::create_dir_all(dir.path().join(&passed).parent().expect("a folder")).expect("mkdir");
    std::fs::write(dir.path().join(&passed), r#"["IBM","MSFT"]"#).expect("writes");
    let child = |index: &str, shards: &str| {
        job(dir.path(), run.as_str())
            .env_remove("STOCKCAST_SYMBOLS")
            .env("STOCKCAST_SYMBOLS_KEY", &passed)
            .env("STOCKCAST_SHARDS", shards)
            .env("STOCKCAST_MODELS", r#"["naive"]"#)
            .env("AWS_BATCH_JOB_ARRAY_INDEX", index)
            .output()
            .expect("runs")
    };
    for (index, symbol) in [("0", "IBM"), ("1", "MSFT")] {
        let output = child(index, "2");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
        let record = std::fs::read(dir.path().join(layout::run_train_shard(
            &run,
            index.parse().expect("a number"),
        )))
        .expect("the shard is recorded");
        let trained: TrainOutput = serde_json::from_slice(&record).expect("a train output");
        assert!(
            !trained.candidates.is_empty()
                && trained
                    .candidates
                    .iter()
                    .all(|c| c.symbol.as_str() == symbol),
            "shard {index}: {trained:?}"
        );
    }
    for (index, shards, says) in [
        ("2", "2", "shard 2 of 2 does not exist"),
        ("2", "3", "shard 2 of 3 has no symbol"),
    ] {
        let output = child(index, shards);
        assert_eq!(output.status.code(), Some(1));
        let log = String::from_utf8_lossy(&output.stdout);
        assert!(log.contains(says), "{log}");
    }
    assert_eq!(keys(&store, "runs/r-array/train/").len(), 2);
}
