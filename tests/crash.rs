//! Crash safety of the registry and the curated data (issue 20, item 6):
//! each of the steps ingest (from the bundled sample and from a vendor),
//! train, gate (evaluate) and promote is stopped at every one of its
//! writes, as if the process had been killed there, on the local folder
//! and on S3 (moto). After the "restart" (the same store, no faults) the
//! store must be consistent, and a re-run must finish the work.
//!
//! The vendor ingest asks the fake vendor of tests/vendors.rs for Alpha
//! Vantage prices and news, and its first price answer is a throttle: each
//! answer is a raw object of its own, written before it is parsed, and the
//! news sentiment file is a write point too. After a crash every raw object
//! there is must be a whole answer, and the sentiment file must be valid
//! and keep every day it had.
//!
//! A crash at write N is `Faults::crash_at(N)`: write N and every later
//! one fail, reads still work. A counting run first lists the step's write
//! points, so a write added to a step is crashed at too, and the expected
//! count below (the one docs/ARCHITECTURE.md states) fails loudly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::NaiveDate;
use stockcast::backtest::Protocol;
use stockcast::config::{Approval, GatePolicy, PipelineConfig};
use stockcast::ids::{RunId, Symbol, VersionId};
use stockcast::ingest::{IngestContext, ingest};
use stockcast::layout::{self, Alias, VersionFile};
use stockcast::models::ModelKind;
use stockcast::promotion;
use stockcast::registry::{AliasRecord, Registry, StagingRecord};
use stockcast::series::{Bar, DailySentiment, PriceSeries, parse_sentiment_csv};
use stockcast::steps::{
    Candidate, Decision, ErrorName, GateInput, IngestInput, PromoteInput, Source, StepError,
    TrainInput, Verdict,
};
use stockcast::store::{Faults, Store};
use stockcast::train::{TrainContext, train};
use stockcast::vendors::alpha_vantage::{self, DailyFunction};

use crate::vendors::{AV_NEWS, AV_THROTTLE_NOTE, av_daily, client, fake_vendor, input};
use test_support::{runtime, sample_dir, temp_root};

const SYMBOL: &str = "IBM";

fn symbol() -> Symbol {
    Symbol::from_static(SYMBOL)
}
const MODELS: [ModelKind; 2] = [ModelKind::Naive, ModelKind::LinregLag5];

/// The steps crashed, and the number of writes each makes in its scenario.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Sample source: the raw file, then the curated compare-and-swap.
    Ingest,
    /// Alpha Vantage prices and news from a fake vendor: the throttle and
    /// the series stored raw, the news stored raw, the sentiment file's
    /// compare-and-swap, then the curated one.
    VendorIngest,
    /// Two models: five files per version, then the run record.
    Train,
    /// The gate under manual approval: linreg_lag5 staged (naive, a
    /// baseline, is promoted without approval), then the decisions record.
    Evaluate,
    /// Naive promoted over a production version (production, previous,
    /// history), linreg_lag5 approved (production, history, staging cleared).
    Promote,
}

impl Step {
    const ALL: [Step; 5] = [
        Step::Ingest,
        Step::VendorIngest,
        Step::Train,
        Step::Evaluate,
        Step::Promote,
    ];

    fn expected_writes(self) -> usize {
        match self {
            Step::Ingest => 2,
            Step::VendorIngest => 2 + 1 + 1 + 1,
            Step::Train => 2 * 5 + 1,
            Step::Evaluate => 1 + 1,
            Step::Promote => 6,
        }
    }
}

/// A small protocol: two origins, so a training run takes milliseconds.
fn config() -> PipelineConfig {
    PipelineConfig {
        protocol: Protocol {
            test_rows: 40,
            spacing: 20,
            window: 200,
            horizons: vec![1, 5],
        },
        // Every non-baseline candidate waits for approval, whatever its score.
        gate: GatePolicy {
            approval: Approval::Manual,
            min_improvement_over_naive_pct: -1e9,
            ..GatePolicy::default()
        },
        ..PipelineConfig::default()
    }
}

fn full_series() -> PriceSeries {
    PriceSeries::from_csv_path(&sample_dir().join(format!("{SYMBOL}.csv"))).expect("sample")
}

/// The vendor's price answers, one per request: a throttle, then the
/// series (which repeats).
fn daily_answers() -> [String; 2] {
    [AV_THROTTLE_NOTE.to_owned(), av_daily(SYMBOL, true)]
}

/// The series the vendor serves.
fn vendor_series() -> PriceSeries {
    let body = av_daily(SYMBOL, true);
    let bars = alpha_vantage::parse_daily(body.as_bytes(), SYMBOL, DailyFunction::Adjusted)
        .expect("the vendor's series parses");
    PriceSeries::new(SYMBOL, bars).expect("valid")
}

/// The news sentiment from before the vendor ingest: a day its news does not cover.
const SEEDED_SENTIMENT: &str = "date,score,articles\n2024-11-22,-0.15,4\n";

async fn run_train(
    store: &Store,
    run_id: &'static str,
) -> Result<Vec<(ModelKind, VersionId)>, StepError> {
    let ctx = TrainContext {
        store: store.clone(),
        config: config(),
        git_commit: None,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let input = TrainInput {
        run_id: RunId::from_static(run_id),
        symbols: vec![symbol()],
        models: MODELS.to_vec(),
        shard: stockcast::universe::Shard::WHOLE,
    };
    let output = train(&ctx, &input, Arc::new(|| {})).await?;
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    Ok(output
        .candidates
        .into_iter()
        .map(|c| (c.model, c.version))
        .collect())
}

fn decision(model: ModelKind, version: &VersionId, verdict: Verdict) -> Decision {
    Decision {
        symbol: symbol(),
        model,
        version: version.clone(),
        decision: verdict,
        reasons: vec!["crash test".into()],
        metric: None,
        naive: None,
        production: None,
    }
}

/// The store a step starts from, built once and copied for every crash point.
struct Seed {
    template: Store,
    _dir: tempfile::TempDir,
    /// The gate's input.
    gate: Option<GateInput>,
    /// The promote step's input.
    promote: Option<PromoteInput>,
}

async fn seed(step: Step) -> Seed {
    let dir = temp_root();
    let template = Store::local(dir.path()).expect("store");
    seed_curated(step, &template).await;
    let (gate, promote) = match step {
        Step::Evaluate => (Some(seed_gate(&template).await), None),
        Step::Promote => (None, Some(seed_promote(&template).await)),
        Step::Ingest | Step::VendorIngest | Step::Train => (None, None),
    };
    Seed {
        template,
        _dir: dir,
        gate,
        promote,
    }
}

/// The curated data a step starts from (and the news, for the vendor ingest).
async fn seed_curated(step: Step, template: &Store) {
    let bars = match step {
        // Ingest adds the rest of the file to the first 2000 days.
        Step::Ingest => full_series().bars[..2000].to_vec(),
        // The vendor adds its later days to its first, and its news to an earlier day's.
        Step::VendorIngest => {
            template
                .create(&layout::sentiment(&symbol()), SEEDED_SENTIMENT)
                .await
                .expect("seeds the news");
            vendor_series().bars[..1].to_vec()
        }
        Step::Train | Step::Evaluate | Step::Promote => full_series().bars,
    };
    let curated = PriceSeries::new(SYMBOL, bars).expect("valid");
    template
        .create(&layout::curated(&symbol()), curated.to_csv())
        .await
        .expect("seeds curated");
}

/// A trained run, whose candidates are the gate's input.
async fn seed_gate(template: &Store) -> GateInput {
    let run = run_train(template, "seed-1").await.expect("trains");
    GateInput {
        run_id: RunId::from_static("seed-1"),
        candidates: run
            .into_iter()
            .map(|(model, version)| Candidate {
                symbol: symbol(),
                model,
                metrics_key: layout::version_file(&symbol(), model, &version, VersionFile::Metrics),
                version,
            })
            .collect(),
    }
}

/// Naive in production from a first run; a second run's naive to promote
/// and its linreg_lag5 staged, approved.
async fn seed_promote(template: &Store) -> PromoteInput {
    let registry = Registry::new(template.clone());
    let first = run_train(template, "seed-1").await.expect("trains");
    let second = run_train(template, "seed-2").await.expect("trains");
    let version = |run: &[(ModelKind, VersionId)], model| {
        run.iter()
            .find(|(m, _)| *m == model)
            .map(|(_, v)| v.clone())
            .expect("a candidate")
    };
    let naive = ModelKind::Naive;
    let linreg = ModelKind::LinregLag5;
    registry
        .promote(
            &symbol(),
            naive,
            &version(&first, naive),
            &RunId::from_static("seed-1"),
            "seed",
        )
        .await
        .expect("promotes");
    let staged = version(&second, linreg);
    registry
        .stage(
            &symbol(),
            linreg,
            &staged,
            &RunId::from_static("seed-2"),
            "needs approval",
        )
        .await
        .expect("stages");
    PromoteInput {
        run_id: RunId::from_static("seed-2"),
        decisions: vec![
            decision(naive, &version(&second, naive), Verdict::Promote),
            decision(linreg, &staged, Verdict::NeedsApproval),
        ],
        approved: true,
    }
}

/// Copies every object of `from` into the empty store `to`.
async fn copy_store(from: &Store, to: &Store) {
    for key in from.list("").await.expect("lists") {
        let object = from.get(&key).await.expect("reads").expect("listed");
        to.create(&key, object.bytes).await.expect("copies");
    }
}

async fn run_step(step: Step, seed: &Seed, store: &Store) -> Result<(), StepError> {
    match step {
        Step::Ingest => {
            let ctx = IngestContext {
                store: store.clone(),
                sample_dir: sample_dir(),
                vendors: None,
            };
            let input = IngestInput {
                run_id: RunId::from_static("crash"),
                symbol: symbol(),
                source: Source::Sample,
                sentiment: None,
            };
            ingest(&ctx, &input).await.map(|_| ())
        }
        Step::VendorIngest => ingest_from_vendor(store).await,
        Step::Train => run_train(store, "crash").await.map(|_| ()),
        Step::Evaluate => {
            let input = seed.gate.as_ref().expect("a gate input");
            promotion::evaluate(&Registry::new(store.clone()), &config().gate, input)
                .await
                .map(|_| ())
        }
        Step::Promote => {
            let input = seed.promote.as_ref().expect("a promote input");
            promotion::promote(&Registry::new(store.clone()), input)
                .await
                .map(|_| ())
        }
    }
}

/// An ingest of Alpha Vantage prices and news from a fresh fake vendor,
/// so that every run (the counting one, the crashed one, the re-run) is
/// throttled once before it gets the series.
async fn ingest_from_vendor(store: &Store) -> Result<(), StepError> {
    let vendor = fake_vendor().await;
    for answer in daily_answers() {
        vendor.av.push(200, answer);
    }
    vendor.news.push(200, AV_NEWS);
    let ctx = IngestContext {
        store: store.clone(),
        sample_dir: sample_dir(),
        vendors: Some(client(&vendor.url)),
    };
    ingest(&ctx, &input(SYMBOL, Source::AlphaVantage))
        .await
        .map(|_| ())
}

fn curated_bars(bytes: &[u8]) -> BTreeMap<NaiveDate, Bar> {
    PriceSeries::from_csv_bytes(&symbol(), "curated", bytes)
        .expect("curated data stays valid")
        .bars
        .into_iter()
        .map(|b| (b.date, b))
        .collect()
}

async fn read_curated(store: &Store) -> BTreeMap<NaiveDate, Bar> {
    let object = store
        .get(&layout::curated(&symbol()))
        .await
        .expect("reads")
        .expect("curated data is never lost");
    curated_bars(&object.bytes)
}

/// The news sentiment file's days; none without a file. Fails on an invalid file.
async fn read_sentiment(store: &Store, what: &str) -> Vec<DailySentiment> {
    let key = layout::sentiment(&symbol());
    match store.get(&key).await.expect("reads") {
        Some(object) => parse_sentiment_csv(&key, &object.bytes)
            .unwrap_or_else(|e| panic!("{what}: the sentiment file is invalid: {e}")),
        None => Vec::new(),
    }
}

/// What the source answered for the raw object `key`: the sample file, the
/// news, or the vendor's price answer of the attempt the key names.
fn raw_answer(key: &str) -> Option<Vec<u8>> {
    if key.starts_with(&layout::raw_prefix(Source::Sample.name(), &symbol())) {
        return std::fs::read(sample_dir().join(format!("{SYMBOL}.csv"))).ok();
    }
    let name = key
        .strip_prefix(&layout::raw_prefix(Source::AlphaVantage.name(), &symbol()))?
        .strip_suffix(".json")?;
    let (what, attempt) = name.rsplit_once('-')?;
    let attempt: usize = attempt.parse().ok()?;
    if what.ends_with("-news") && attempt == 0 {
        Some(AV_NEWS.as_bytes().to_vec())
    } else if what.ends_with("-daily") {
        daily_answers().get(attempt).map(|a| a.as_bytes().to_vec())
    } else {
        None
    }
}

/// Every raw object there is is whole (byte for byte the answer of its
/// attempt) and parses; the news sentiment file, where there is one, is
/// valid and keeps every day it had.
async fn assert_raw_and_news(store: &Store, news_before: &[DailySentiment], what: &str) {
    for key in store.list("raw/").await.expect("lists") {
        let object = store.get(&key).await.expect("reads").expect("listed");
        let answer = raw_answer(&key)
            .unwrap_or_else(|| panic!("{what}: {key} is not an answer this test gave"));
        assert!(
            object.bytes == answer,
            "{what}: {key} is not the whole answer"
        );
        let parses = if key.ends_with(".csv") {
            PriceSeries::from_csv_bytes(&symbol(), &key, &object.bytes).is_ok()
        } else {
            serde_json::from_slice::<serde_json::Value>(&object.bytes).is_ok()
        };
        assert!(parses, "{what}: {key} does not parse");
    }
    let news = read_sentiment(store, what).await;
    for day in news_before {
        assert!(
            news.contains(day),
            "{what}: the news of {} is lost",
            day.date
        );
    }
}

/// Fails unless `version` is listed and every one of its files is there and reads.
async fn assert_complete(registry: &Registry, model: ModelKind, version: &VersionId, what: &str) {
    let listed = registry.versions(&symbol(), model).await.expect("lists");
    assert!(
        listed.iter().any(|v| v == version),
        "{what}: {model} {version} is not a complete version"
    );
    for file in [VersionFile::BacktestCsv, VersionFile::PlotPng] {
        let key = layout::version_file(&symbol(), model, version, file);
        let object = registry.store().get(&key).await.expect("reads");
        assert!(
            object.is_some_and(|o| !o.bytes.is_empty()),
            "{what}: {key} is missing"
        );
    }
    registry
        .fitted_model(&symbol(), model, version)
        .await
        .unwrap_or_else(|e| panic!("{what}: {model} {version}: {e}"));
    registry
        .metrics(&symbol(), model, version)
        .await
        .unwrap_or_else(|e| panic!("{what}: {model} {version}: {e}"));
    registry
        .lineage(&symbol(), model, version)
        .await
        .unwrap_or_else(|e| panic!("{what}: {model} {version}: {e}"));
}

/// The invariants that hold after any crash. `finished`: after a re-run,
/// when the derived records must have caught up with the aliases too.
async fn assert_consistent(
    store: &Store,
    curated_before: &BTreeMap<NaiveDate, Bar>,
    finished: bool,
    what: &str,
) {
    let registry = Registry::new(store.clone());
    // No curated row is lost (the sample corrects no day, so rows are equal).
    let curated = read_curated(store).await;
    for (date, bar) in curated_before {
        assert_eq!(curated.get(date), Some(bar), "{what}: curated row {date}");
    }
    for model in MODELS {
        // Aliases name complete versions.
        let production: Option<AliasRecord> =
            registry.production(&symbol(), model).await.expect("reads");
        let previous: Option<AliasRecord> = registry
            .read_json(&layout::alias(&symbol(), model, Alias::Previous))
            .await
            .expect("reads");
        let staging: Option<StagingRecord> =
            registry.staging(&symbol(), model).await.expect("reads");
        let named = production
            .iter()
            .flat_map(|p| [Some(p.version.clone()), p.previous.clone()])
            .chain([previous.as_ref().map(|p| p.version.clone())])
            .chain([staging.and_then(|s| s.version)])
            .flatten();
        for version in named {
            assert_complete(&registry, model, &version, what).await;
        }
        // History never names a move production did not make, and lags it
        // by at most the one move a crash interrupted.
        let history = registry.history(&symbol(), model).await.expect("reads");
        for record in &history {
            assert_complete(&registry, model, &record.version, what).await;
        }
        let Some(production) = production else {
            assert!(
                history.is_empty(),
                "{what}: {model} history without production"
            );
            continue;
        };
        let last = history.last();
        if finished {
            assert_eq!(
                last,
                Some(&production),
                "{what}: {model} history and production"
            );
            if let Some(p) = &production.previous {
                assert_eq!(
                    previous.map(|r| r.version).as_ref(),
                    Some(p),
                    "{what}: {model} previous.json and production"
                );
            }
        } else {
            assert!(
                last == Some(&production)
                    || last.map(|r| &r.version) == production.previous.as_ref(),
                "{what}: {model} history {history:?} against production {production:?}"
            );
        }
    }
    // A finished training run lists only complete versions.
    for key in store.list("runs/").await.expect("lists") {
        let object = store.get(&key).await.expect("reads").expect("listed");
        let output: stockcast::steps::TrainOutput =
            serde_json::from_slice(&object.bytes).expect("a train output");
        for c in output.candidates {
            assert_complete(&registry, c.model, &c.version, what).await;
        }
    }
}

/// What the finished step must have left, beyond consistency.
async fn assert_done(step: Step, seed: &Seed, store: &Store, what: &str) {
    let registry = Registry::new(store.clone());
    match step {
        Step::Ingest => {
            let expected: Vec<Bar> = full_series().bars;
            let curated: Vec<Bar> = read_curated(store).await.into_values().collect();
            assert_eq!(curated, expected, "{what}: the whole file is curated");
        }
        Step::VendorIngest => {
            let curated: Vec<Bar> = read_curated(store).await.into_values().collect();
            assert_eq!(
                curated,
                vendor_series().bars,
                "{what}: the vendor's series is curated"
            );
            let mut expected =
                parse_sentiment_csv("seed", SEEDED_SENTIMENT.as_bytes()).expect("valid");
            expected
                .extend(alpha_vantage::parse_sentiment(AV_NEWS.as_bytes(), SYMBOL).expect("news"));
            assert_eq!(
                read_sentiment(store, what).await,
                expected,
                "{what}: the news is merged"
            );
        }
        Step::Train => {
            let recorded = store
                .get(&layout::run_train_shard(&RunId::from_static("crash"), 0))
                .await
                .expect("reads");
            assert!(recorded.is_some(), "{what}: the run is recorded");
        }
        Step::Evaluate => {
            let input = seed.gate.as_ref().expect("a gate input");
            let decisions = store
                .get(&layout::decisions(&input.run_id))
                .await
                .expect("reads");
            assert!(decisions.is_some(), "{what}: the decisions are recorded");
            for c in input.candidates.iter().filter(|c| !c.model.is_baseline()) {
                let staged = registry.staging(&symbol(), c.model).await.expect("reads");
                assert_eq!(
                    staged.and_then(|s| s.version).as_ref(),
                    Some(&c.version),
                    "{what}: {} waits for approval",
                    c.model
                );
            }
        }
        Step::Promote => {
            let input = seed.promote.as_ref().expect("a promote input");
            for d in &input.decisions {
                let production = registry
                    .production(&symbol(), d.model)
                    .await
                    .expect("reads")
                    .expect("production");
                assert_eq!(
                    production.version, d.version,
                    "{what}: {} production",
                    d.model
                );
                let staged = registry.staging(&symbol(), d.model).await.expect("reads");
                assert!(staged.is_none(), "{what}: {} staging is cleared", d.model);
            }
        }
    }
}

/// Crashes `step` at each of its writes on fresh stores from `new_store`.
async fn crash_everywhere<F, Fut>(step: Step, new_store: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = (Store, Option<tempfile::TempDir>)>,
{
    let seed = seed(step).await;
    let counted = {
        let (store, _dir) = new_store(format!("{step:?}-count").to_lowercase()).await;
        copy_store(&seed.template, &store).await;
        let faults = Faults::counting();
        run_step(step, &seed, &store.with_faults(faults.clone()))
            .await
            .unwrap_or_else(|e| panic!("{step:?} without faults: {e}"));
        faults.writes()
    };
    assert_eq!(
        counted.len(),
        step.expected_writes(),
        "{step:?} writes {counted:#?}: its write points changed; update `expected_writes` and the crash points in docs/ARCHITECTURE.md"
    );
    for (n, key) in counted.iter().enumerate() {
        let what = format!("{step:?} crashed at write {n} ({key})");
        let (store, _dir) = new_store(format!("{step:?}-{n}").to_lowercase()).await;
        copy_store(&seed.template, &store).await;
        let before = read_curated(&store).await;
        let news_before = read_sentiment(&store, "before").await;
        let crashed = run_step(step, &seed, &store.with_faults(Faults::crash_at(n))).await;
        let error = crashed.expect_err(&what);
        assert_eq!(error.name, ErrorName::StorageUnavailable, "{what}: {error}");
        // The restart: the same store, without faults.
        assert_consistent(&store, &before, false, &what).await;
        assert_raw_and_news(&store, &news_before, &what).await;
        run_step(step, &seed, &store)
            .await
            .unwrap_or_else(|e| panic!("{what}: the re-run failed: {e}"));
        let rerun = format!("{what}, re-run");
        assert_consistent(&store, &before, true, &rerun).await;
        assert_raw_and_news(&store, &news_before, &rerun).await;
        assert_done(step, &seed, &store, &what).await;
    }
}

#[test]
fn every_write_point_survives_a_crash_on_the_local_store() {
    runtime().block_on(async {
        for step in Step::ALL {
            crash_everywhere(step, |_| async {
                let dir = temp_root();
                (Store::local(dir.path()).expect("store"), Some(dir))
            })
            .await;
        }
    });
}

#[test]
fn every_write_point_survives_a_crash_on_s3() {
    let Some(moto) = test_support::Moto::start() else {
        return;
    };
    let moto = &moto;
    runtime().block_on(async {
        for step in Step::ALL {
            crash_everywhere(step, |name| async move {
                (moto.s3_store(&format!("crash-{name}")), None)
            })
            .await;
        }
    });
}

#[test]
fn a_storage_error_writing_a_version_fails_the_training_step() {
    // Not a crash: one failed write (throttling that outlasted the retries)
    // and the process goes on. Training used to record that version as a
    // model failure in a finished run, which a retry then returned as is.
    runtime().block_on(async {
        let seed = seed(Step::Train).await;
        let dir = temp_root();
        let store = Store::local(dir.path()).expect("store");
        copy_store(&seed.template, &store).await;
        let faults = Faults::fail_once_at(0);
        let error = run_step(Step::Train, &seed, &store.with_faults(faults.clone()))
            .await
            .expect_err("the write failed");
        assert_eq!(error.name, ErrorName::StorageUnavailable, "{error}");
        assert!(
            faults.writes()[0].ends_with("/model.json"),
            "{:?}",
            faults.writes()
        );
        let recorded = store
            .get(&layout::run_train_shard(&RunId::from_static("crash"), 0))
            .await
            .expect("reads");
        assert!(
            recorded.is_none(),
            "a failed run is not recorded as finished"
        );
        run_step(Step::Train, &seed, &store)
            .await
            .expect("the retry trains every model");
        assert_done(Step::Train, &seed, &store, "after one failed write").await;
    });
}

#[test]
fn a_storage_error_writing_the_news_fails_the_ingest() {
    // Not a crash: one failed write of the raw news or of the sentiment
    // file, and the process goes on. Every failure of the news used to be
    // a warning, so the step succeeded without the day's news and the
    // workflow, which retries `Storage.Unavailable`, never saw it.
    runtime().block_on(async {
        let seed = seed(Step::VendorIngest).await;
        let sentiment = layout::sentiment(&symbol());
        for n in [2, 3] {
            let dir = temp_root();
            let store = Store::local(dir.path()).expect("store");
            copy_store(&seed.template, &store).await;
            let faults = Faults::fail_once_at(n);
            let failed = run_step(
                Step::VendorIngest,
                &seed,
                &store.with_faults(faults.clone()),
            )
            .await;
            let key = faults.writes()[n].clone();
            let what = format!("write {n} ({key}) failed");
            assert!(key.ends_with("-news-0.json") || key == sentiment, "{what}");
            let error = failed.expect_err(&what);
            assert_eq!(error.name, ErrorName::StorageUnavailable, "{what}: {error}");
            run_step(Step::VendorIngest, &seed, &store)
                .await
                .unwrap_or_else(|e| panic!("{what}: the retry failed: {e}"));
            assert_done(Step::VendorIngest, &seed, &store, &what).await;
        }
    });
}
