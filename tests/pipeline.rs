//! The local pipeline end to end, on a temporary store.

use std::sync::Arc;

use stockcast::config::PipelineConfig;

use stockcast::ids::{RunId, Symbol};
use stockcast::layout::{self, VersionFile};
use stockcast::models::ModelKind;
use stockcast::pipeline::{LocalPipeline, PipelineError, RunReport};
use stockcast::registry::Registry;
use stockcast::series::{Bar, PriceSeries};
use stockcast::steps::{ErrorName, QualityCheck, RunInput, Severity, Source, Verdict};
use stockcast::store::Store;

use test_support::{runtime, sample_dir, temp_root};

fn pipeline(store: &Store) -> LocalPipeline {
    LocalPipeline {
        store: store.clone(),
        config: PipelineConfig::default(),
        sample_dir: sample_dir(),
        git_commit: Some("0123abc".into()),
    }
}

fn input(run_id: &str, symbols: &[&str]) -> RunInput {
    RunInput {
        run_id: RunId::new(run_id).expect("valid run id"),
        env: "test".into(),
        symbols: symbols
            .iter()
            .map(|s| Symbol::new(*s).expect("valid symbol"))
            .collect(),
        models: vec![
            ModelKind::Naive,
            ModelKind::Drift,
            ModelKind::LinregLag5,
            ModelKind::Arima,
        ],
        horizons: vec![1, 5, 21],
        source: Source::Sample,
        sentiment: None,
    }
}

async fn run(store: &Store, run_id: &str, symbols: &[&str]) -> Result<RunReport, PipelineError> {
    pipeline(store)
        .run(input(run_id, symbols), Arc::new(|| {}))
        .await
}

#[test]
fn first_run_promotes_and_second_run_compares_with_production() {
    let dir = temp_root();
    let store = Store::local(dir.path()).expect("store");
    let registry = Registry::new(store.clone());
    runtime().block_on(async {
        let first = run(&store, "run-1", &["MSFT", "GOOG"])
            .await
            .expect("first run");
        assert_eq!(
            first.ingest.iter().map(|i| i.rows_added).sum::<usize>(),
            3270 + 2148
        );
        let train = first.train.as_ref().expect("trained");
        assert_eq!(train.candidates.len(), 8);
        assert!(train.failures.is_empty(), "{:?}", train.failures);
        let gate = first.gate.as_ref().expect("gated");
        // Decided concurrently, answered in the candidates' order.
        let decided: Vec<_> = (gate.decisions.iter())
            .map(|d| (&d.symbol, d.model, &d.version))
            .collect();
        let candidates: Vec<_> = (train.candidates.iter())
            .map(|c| (&c.symbol, c.model, &c.version))
            .collect();
        assert_eq!(decided, candidates);
        for d in &gate.decisions {
            let production = registry
                .production(&d.symbol, d.model)
                .await
                .expect("reads");
            match d.decision {
                Verdict::Promote => {
                    assert_eq!(production.expect("alias").version, d.version);
                    assert!(
                        d.production.is_none(),
                        "first run has no production to compare"
                    );
                }
                _ => assert!(
                    production.is_none(),
                    "{} {} was not promoted",
                    d.symbol,
                    d.model
                ),
            }
            // Baselines are always servable.
            if d.model.is_baseline() {
                assert_eq!(d.decision, Verdict::Promote);
            }
        }
        // Every version has its five files, lineage last-written and complete.
        let c = &train.candidates[0];
        for file in [
            VersionFile::Model,
            VersionFile::Metrics,
            VersionFile::Lineage,
            VersionFile::BacktestCsv,
            VersionFile::PlotPng,
        ] {
            let key = layout::version_file(&c.symbol, c.model, &c.version, file);
            assert!(store.get(&key).await.expect("reads").is_some(), "{key}");
        }
        let lineage = registry
            .lineage(&c.symbol, c.model, &c.version)
            .await
            .expect("lineage");
        assert_eq!(lineage.git_commit.as_deref(), Some("0123abc"));
        assert_eq!(lineage.run_id, "run-1");
        assert_eq!(lineage.data_key, layout::curated(&c.symbol));
        let manifest = store
            .get("runs/run-1/manifest.json")
            .await
            .expect("reads")
            .expect("manifest");
        let manifest: serde_json::Value = serde_json::from_slice(&manifest.bytes).expect("json");
        assert_eq!(
            manifest["input"]["symbols"],
            serde_json::json!(["MSFT", "GOOG"])
        );
        assert!(
            store
                .get("decisions/run-1.json")
                .await
                .expect("reads")
                .is_some()
        );

        // Second run: nothing new to ingest, new candidates, compared with production.
        let second = run(&store, "run-2", &["MSFT", "GOOG"])
            .await
            .expect("second run");
        assert_eq!(second.ingest.iter().map(|i| i.rows_added).sum::<usize>(), 0);
        let gate = second.gate.as_ref().expect("gated");
        let learned_in_production: Vec<_> = first
            .gate
            .as_ref()
            .expect("gated")
            .decisions
            .iter()
            .filter(|d| d.decision == Verdict::Promote && !d.model.is_baseline())
            .collect();
        assert!(
            !learned_in_production.is_empty(),
            "some learned model should beat naive somewhere"
        );
        for before in learned_in_production {
            let now = gate
                .decisions
                .iter()
                .find(|d| d.symbol == before.symbol && d.model == before.model)
                .expect("decided again");
            assert_eq!(
                now.production, before.metric,
                "compared with production on the same origins"
            );
            assert!(
                now.reasons.iter().any(|r| r.contains("production")),
                "{:?}",
                now.reasons
            );
            assert_ne!(now.version, before.version);
            let alias = registry
                .production(&now.symbol, now.model)
                .await
                .expect("reads")
                .expect("alias");
            if now.decision == Verdict::Promote {
                assert_eq!(alias.previous.as_deref(), Some(before.version.as_str()));
            }
        }
        assert_eq!(
            registry
                .versions(&Symbol::from_static("MSFT"), ModelKind::Arima)
                .await
                .expect("lists")
                .len(),
            2
        );
    });
}

#[test]
fn bad_curated_data_stops_the_run_before_training() {
    let dir = temp_root();
    let store = Store::local(dir.path()).expect("store");
    let registry = Registry::new(store.clone());
    runtime().block_on(async {
        run(&store, "run-1", &["IBM"]).await.expect("first run");
        let production_before = registry
            .production(&Symbol::from_static("IBM"), ModelKind::Naive)
            .await
            .expect("reads");
        for (label, corrupt) in [
            ("duplicate", duplicate_a_row as fn(&str) -> String),
            ("negative", negative_price),
        ] {
            let key = layout::curated(&Symbol::from_static("IBM"));
            let object = store.get(&key).await.expect("reads").expect("curated");
            let text = String::from_utf8_lossy(&object.bytes).to_string();
            store
                .update(&key, corrupt(&text), Some(&object.version))
                .await
                .expect("tampers");
            let err = run(&store, &format!("run-{label}"), &["IBM"])
                .await
                .expect_err("quality fails");
            assert_eq!(err.name(), ErrorName::DataQualityFailed);
            let PipelineError::QualityFailed(report) = err else {
                panic!("expected a quality failure");
            };
            let expected = if label == "duplicate" {
                QualityCheck::DuplicateDates
            } else {
                QualityCheck::NonPositive
            };
            assert!(
                report.quality.issues.iter().any(|i| i.check == expected),
                "{:?}",
                report.quality.issues
            );
            assert!(report.train.is_none());
            assert_eq!(
                registry
                    .versions(&Symbol::from_static("IBM"), ModelKind::Naive)
                    .await
                    .expect("lists")
                    .len(),
                1,
                "nothing trained"
            );
            assert_eq!(
                registry
                    .production(&Symbol::from_static("IBM"), ModelKind::Naive)
                    .await
                    .expect("reads"),
                production_before
            );
            // Restore the file for the next case.
            let current = store.get(&key).await.expect("reads").expect("curated");
            store
                .update(&key, text, Some(&current.version))
                .await
                .expect("restores");
        }
    });
}

/// Both tamperings land among the rows the models read (the last 1,500).
fn duplicate_a_row(csv: &str) -> String {
    let mut lines: Vec<&str> = csv.lines().collect();
    let row = lines.len() - 100;
    lines.insert(row, lines[row]);
    lines.join("\n") + "\n"
}

fn negative_price(csv: &str) -> String {
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let row = lines.len() - 200;
    let fields: Vec<&str> = lines[row].split(',').collect();
    lines[row] = format!(
        "{},{},{},{},-5,{},{}",
        fields[0], fields[1], fields[2], fields[3], fields[5], fields[6]
    );
    lines.join("\n") + "\n"
}

/// A sample folder with IBM as it is and `name`: IBM's prices with the rows
/// in `flat` held at the price of the row before them (no jump at the edge).
fn sample_with_flat(
    name: &str,
    flat: impl Fn(usize) -> std::ops::Range<usize>,
) -> tempfile::TempDir {
    let dir = temp_root();
    let ibm = PriceSeries::from_csv_path(&sample_dir().join("IBM.csv")).expect("IBM");
    std::fs::write(dir.path().join("IBM.csv"), ibm.to_csv()).expect("writes");
    let mut bars = ibm.bars.clone();
    let rows = flat(bars.len());
    let held = rows.start.checked_sub(1).map_or(rows.end, |r| r);
    let price = bars[held].adj_close.unwrap_or(bars[held].close);
    for bar in &mut bars[rows] {
        *bar = Bar {
            open: Some(price),
            high: Some(price),
            low: Some(price),
            close: price,
            adj_close: Some(price),
            ..*bar
        };
    }
    let series = PriceSeries {
        name: name.into(),
        bars,
        sentiment: Vec::new(),
    };
    std::fs::write(dir.path().join(format!("{name}.csv")), series.to_csv()).expect("writes");
    dir
}

fn pipeline_on(store: &Store, sample: &std::path::Path) -> LocalPipeline {
    LocalPipeline {
        sample_dir: sample.to_owned(),
        ..pipeline(store)
    }
}

#[test]
fn a_symbol_that_stopped_moving_is_skipped_and_the_others_train() {
    // The issue's case: a price constant for its last 1,600 rows (a halted
    // or pegged instrument) used to end the run on an unreadable metrics file.
    let sample = sample_with_flat("FLAT", |n| n - 1600..n);
    let dir = temp_root();
    let store = Store::local(dir.path()).expect("store");
    let registry = Registry::new(store.clone());
    runtime().block_on(async {
        let report = pipeline_on(&store, sample.path())
            .run(input("run-flat", &["FLAT", "IBM"]), Arc::new(|| {}))
            .await
            .expect("the run completes without FLAT");
        assert_eq!(report.quality.skipped, ["FLAT"]);
        assert_eq!(report.quality.passed, ["IBM"]);
        let flat = report
            .quality
            .issues
            .iter()
            .find(|i| i.symbol == "FLAT")
            .expect("FLAT reported");
        assert_eq!(
            (flat.check, flat.severity),
            (QualityCheck::Unchanged, Severity::Error)
        );
        assert!(flat.detail.contains("stopped moving"), "{}", flat.detail);
        let train = report.train.as_ref().expect("trained");
        assert!(train.candidates.iter().all(|c| c.symbol == "IBM"));
        assert_eq!(train.candidates.len(), 4);
        for model in [ModelKind::Naive, ModelKind::Arima] {
            assert!(
                registry
                    .versions(&Symbol::from_static("FLAT"), model)
                    .await
                    .expect("lists")
                    .is_empty()
            );
            assert!(
                registry
                    .production(&Symbol::from_static("FLAT"), model)
                    .await
                    .expect("reads")
                    .is_none()
            );
        }
    });
}

#[test]
fn nothing_is_promoted_on_an_undefined_metric() {
    // Flat up to the test region, moving inside it: the data checks only
    // warn (the halt ended), but the first origins' windows are flat, so
    // MASE's scale is zero there and MASE cannot be computed.
    let sample = sample_with_flat("HALTED", |n| 0..n - 500);
    let dir = temp_root();
    let store = Store::local(dir.path()).expect("store");
    let registry = Registry::new(store.clone());
    runtime().block_on(async {
        let mut run_input = input("run-halted", &["HALTED"]);
        // The baselines, which fit any window and are otherwise always
        // promoted; the gate's unit tests cover the learned models.
        run_input.models = vec![ModelKind::Naive, ModelKind::Drift];
        let report = pipeline_on(&store, sample.path())
            .run(run_input, Arc::new(|| {}))
            .await
            .expect("the run completes");
        assert_eq!(report.quality.passed, ["HALTED"]);
        assert!(
            report
                .quality
                .issues
                .iter()
                .all(|i| i.severity == Severity::Warning),
            "{:?}",
            report.quality.issues
        );
        let train = report.train.as_ref().expect("trained");
        for c in &train.candidates {
            // The metrics file says so in JSON, and reads back.
            let metrics = registry
                .metrics(&c.symbol, c.model, &c.version)
                .await
                .expect("metrics.json reads back");
            assert!(metrics.horizons.iter().all(|h| h.mase.is_none()), "{c:?}");
        }
        let gate = report.gate.as_ref().expect("gated");
        assert!(!gate.decisions.is_empty());
        for d in &gate.decisions {
            assert_eq!(d.decision, Verdict::Reject, "{d:?}");
            assert!(
                d.reasons.iter().any(|r| r.contains("undefined")),
                "{:?}",
                d.reasons
            );
            assert!(
                registry
                    .production(&d.symbol, d.model)
                    .await
                    .expect("reads")
                    .is_none()
            );
        }
    });
}

/// A symbol the source does not have is skipped and named, as the ingest
/// Map's tolerated failures are: the others train, and a run where it was
/// the only symbol stops at the data checks with the vendor's error.
#[test]
fn a_missing_symbol_is_skipped_with_the_vendors_error() {
    let dir = temp_root();
    let store = Store::local(dir.path()).expect("store");
    let alone = runtime()
        .block_on(run(&store, "run-x", &["NOPE"]))
        .expect_err("nothing to train");
    assert_eq!(alone.name(), ErrorName::DataQualityFailed);
    let text = alone.to_string();
    assert!(
        text.contains("NOPE IngestFailed")
            && text.contains("Vendor.UnknownSymbol: no sample file for NOPE"),
        "{text}"
    );
    let mut pipeline = pipeline(&store);
    pipeline.config.protocol.test_rows = 20;
    let report = runtime()
        .block_on(pipeline.run(
            RunInput {
                models: vec![ModelKind::Naive],
                ..input("run-y", &["NOPE", "MSFT"])
            },
            Arc::new(|| {}),
        ))
        .expect("MSFT trains");
    assert_eq!(report.quality.skipped, [Symbol::from_static("NOPE")]);
    assert_eq!(report.quality.passed, [Symbol::from_static("MSFT")]);
    let trained = report.train.expect("trained");
    assert!(
        trained
            .candidates
            .iter()
            .all(|c| c.symbol.as_str() == "MSFT")
    );
}

/// Manual approval on the local pipeline: a passing candidate is staged, not
/// served; `reject` clears staging, `approve` promotes it, and an answer to
/// an older run never clears a newer run's candidate.
#[test]
fn manual_approval_stages_until_an_answer() {
    use stockcast::approval::{LOCAL_TOKEN, answer_local, pending};
    use stockcast::config::Approval;
    use stockcast::steps::ApprovalAnswer;

    let dir = temp_root();
    let store = Store::local(dir.path()).expect("store");
    let registry = Registry::new(store.clone());
    let msft = Symbol::from_static("MSFT");
    let mut manual = pipeline(&store);
    manual.config.gate.approval = Approval::Manual;
    // Any learned candidate passes, so the test is about staging, not scores.
    manual.config.gate.min_improvement_over_naive_pct = -1000.0;
    let models = vec![ModelKind::Naive, ModelKind::LinregLag5];
    let run_manual = |run_id: &'static str| {
        let mut run_input = input(run_id, &["MSFT"]);
        run_input.models = models.clone();
        manual.run(run_input, Arc::new(|| {}))
    };
    let answer = |run_id: &'static str, approve: bool| ApprovalAnswer {
        run_id: RunId::from_static(run_id),
        approve,
        reason: None,
        by: Some("alice".into()),
    };
    let linreg = ModelKind::LinregLag5;
    runtime().block_on(async {
        let first = run_manual("run-1").await.expect("first run");
        let gate = first.gate.as_ref().expect("gated");
        assert!(gate.needs_approval);
        let staged_v1 = gate
            .decisions
            .iter()
            .find(|d| d.model == linreg)
            .map(|d| d.version.clone())
            .expect("a linreg decision");
        // As in the training workflow, nothing goes live before the answer.
        for model in &models {
            assert_eq!(
                registry.production(&msft, *model).await.expect("reads"),
                None
            );
        }
        let staging = registry.staging(&msft, linreg).await.expect("reads");
        assert_eq!(staging.and_then(|s| s.version), Some(staged_v1.clone()));
        let waiting = pending(&store, &RunId::from_static("run-1"))
            .await
            .expect("reads")
            .expect("pending");
        assert_eq!(waiting.task_token, LOCAL_TOKEN);

        let rejected = answer_local(&store, &answer("run-1", false))
            .await
            .expect("rejects");
        assert_eq!(rejected.withdrawn, vec![staged_v1.clone()]);
        assert!(rejected.promoted.is_empty());
        assert_eq!(registry.staging(&msft, linreg).await.expect("reads"), None);
        assert_eq!(
            registry.production(&msft, linreg).await.expect("reads"),
            None
        );

        let second = run_manual("run-2").await.expect("second run");
        let staged_v2 = second
            .gate
            .as_ref()
            .and_then(|g| g.decisions.iter().find(|d| d.model == linreg))
            .map(|d| d.version.clone())
            .expect("a linreg decision");
        // An older run's candidate cannot clear the newer one's staging.
        assert!(
            !registry
                .unstage(
                    &msft,
                    linreg,
                    &staged_v1,
                    &RunId::from_static("run-1"),
                    "stale"
                )
                .await
                .expect("compares")
        );
        assert_eq!(
            registry
                .staging(&msft, linreg)
                .await
                .expect("reads")
                .and_then(|s| s.version),
            Some(staged_v2.clone())
        );

        let approved = answer_local(&store, &answer("run-2", true))
            .await
            .expect("approves");
        assert_eq!(
            approved.promoted.len(),
            2,
            "the baseline and the staged model"
        );
        assert!(
            approved
                .promoted
                .iter()
                .any(|p| p.model == linreg && p.version == staged_v2)
        );
        let live = registry.production(&msft, linreg).await.expect("reads");
        assert_eq!(
            live.as_ref().map(|a| a.version.clone()),
            Some(staged_v2.clone())
        );
        // Promoting it again (a retried step) changes nothing: production
        // never becomes its own previous.
        let again = registry
            .promote(
                &msft,
                linreg,
                &staged_v2,
                &RunId::from_static("run-2"),
                "retried",
            )
            .await
            .expect("promotes");
        assert_eq!(
            again.previous,
            live.as_ref().and_then(|a| a.previous.clone())
        );
        assert_eq!(
            registry.production(&msft, linreg).await.expect("reads"),
            live
        );
        assert_eq!(registry.staging(&msft, linreg).await.expect("reads"), None);

        let again = answer_local(&store, &answer("run-1", true))
            .await
            .expect_err("answered twice");
        assert!(
            again.message.contains("already rejected"),
            "{}",
            again.message
        );
    });
}
