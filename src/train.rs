//! The train step: for every symbol and model, backtest on the most recent
//! test region (PROTOCOL.md), fit on the latest window, and write a
//! candidate version with its metrics, plot and lineage.
//!
//! All backtests of a run go to one parallel `backtest::run`, which is
//! where the time goes; writing the versions afterwards is cheap. Naive is
//! always backtested too, because every version's metrics carry naive's on
//! the same origins for the gate and the API.
//!
//! A run is trained in shards (one per Batch array child, or one): each
//! writes `runs/<run_id>/train/shard-<n>.json`, and the merge step gathers
//! them into `runs/<run_id>/train.json`, which is when the run is finished:
//! the gate reads its candidates from there, and nothing else. A stop request (SIGTERM on
//! a Spot interruption) is honoured until the backtests are done; then the
//! versions and the run record are written, which takes seconds, well
//! inside the grace period before SIGKILL. A retry of a finished run
//! returns the recorded output instead of training again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use rayon::prelude::*;

use crate::backtest::{self, ForecastRow, Protocol, window_at};
use crate::config::PipelineConfig;
use crate::ids::{RunId, Symbol};
use crate::ingest::{Curated, CuratedError, read_curated};
use crate::layout;
use crate::models::ModelKind;
use crate::registry::{
    HorizonMetrics, Lineage, Registry, VersionFiles, VersionMetrics, new_version_id,
};
use crate::series::PriceSeries;
use crate::steps::{ErrorName, MergeOutput, StepError, TrainFailure, TrainInput, TrainOutput};
use crate::store::Store;

/// The training job's exit codes that its job definition's RetryStrategy
/// retries (stacks/app.yaml) and `cargo xtask status` names.
pub mod exit_code {
    /// Stopped on SIGTERM before writing anything (128 + 15): a Spot
    /// interruption notice, or the job being stopped.
    pub const INTERRUPTED: u8 = 143;
    /// A failure a new attempt can fix (storage still unavailable after the
    /// store's own retries): EX_TEMPFAIL.
    pub const TEMPORARY: u8 = 75;
}

/// What the train step needs besides its input.
#[derive(Debug, Clone)]
pub struct TrainContext {
    pub store: Store,
    pub config: PipelineConfig,
    /// The commit the code was built from, for lineage.
    pub git_commit: Option<String>,
    /// Set to stop the run before anything is written.
    pub stop: Arc<AtomicBool>,
}

/// The recorded output of a finished (merged) train step, if it finished.
pub async fn recorded_output(
    store: &Store,
    run_id: &RunId,
) -> Result<Option<TrainOutput>, StepError> {
    read_output(store, &layout::run_train(run_id)).await
}

/// A train output at `key` (a shard's or the merged run's), if written.
async fn read_output(store: &Store, key: &str) -> Result<Option<TrainOutput>, StepError> {
    let Some(object) = store.get(key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&object.bytes)
        .map(Some)
        .map_err(|e| {
            StepError::new(
                ErrorName::RegistryInvalid,
                format!("{key} is not a train output: {e}"),
            )
        })
}

fn interrupted() -> StepError {
    StepError::new(
        ErrorName::TrainInterrupted,
        "stopped on request before any version was written; a retry starts over",
    )
}

/// Called once per fitted backtest origin.
pub type Progress = Arc<dyn Fn() + Send + Sync>;

struct Loaded {
    symbol: Symbol,
    series: PriceSeries,
    digest: String,
    sentiment_digest: Option<String>,
}

/// Counts the backtest fits a run will make, for a progress display.
pub fn count_fits(symbols: usize, models: &[ModelKind], protocol: &Protocol) -> usize {
    let mut all: Vec<ModelKind> = models.to_vec();
    if !all.contains(&ModelKind::Naive) {
        all.push(ModelKind::Naive);
    }
    symbols * all.len() * protocol.origin_count()
}

pub async fn train(
    ctx: &TrainContext,
    input: &TrainInput,
    progress: Progress,
) -> Result<TrainOutput, StepError> {
    let key = layout::run_train_shard(&input.run_id, input.shard.index);
    if let Some(done) = read_output(&ctx.store, &key).await? {
        return Ok(done);
    }
    let (loaded, mut failures) = load_all(ctx, input).await?;
    let rows = backtest_all(ctx, &loaded, &input.models, progress).await?;
    let rows = by_series_and_model(rows);
    let none = Vec::new();
    let rows_of = |item: &Loaded, model: ModelKind| -> &[ForecastRow] {
        (rows.get(item.series.name.as_str()))
            .and_then(|models| models.get(model.name()))
            .unwrap_or(&none)
    };
    let registry = Registry::new(ctx.store.clone());
    let mut candidates = Vec::new();
    // A few symbols at a time are made on the rayon pool (each model's final
    // fit, metrics and plot: a second or more a symbol), then written one
    // after another in the symbols' order, so the store sees the same writes
    // in the same order as from one thread.
    for chunk in loaded.chunks(rayon::current_num_threads().max(1) * 2) {
        let made: Vec<Vec<Result<VersionFiles, String>>> = chunk
            .par_iter()
            .map(|item| {
                let naive = horizon_metrics(rows_of(item, ModelKind::Naive), &ctx.config.protocol);
                (input.models.iter())
                    .map(|&model| {
                        candidate_files(
                            ctx,
                            item,
                            model,
                            rows_of(item, model),
                            &naive,
                            &input.run_id,
                        )
                    })
                    .collect()
            })
            .collect();
        for (item, files) in chunk.iter().zip(made) {
            for (&model, files) in input.models.iter().zip(files) {
                // A model that cannot be fitted is this run's finding; storage
                // that fails is the step's error, retried, never recorded as a
                // model failure in a finished run (issue 20).
                match files {
                    Ok(files) => candidates.push(registry.write_version(files).await?),
                    Err(reason) => failures.push(TrainFailure {
                        symbol: item.symbol.clone(),
                        model,
                        reason,
                    }),
                }
            }
        }
    }
    let output = TrainOutput {
        candidates,
        failures,
    };
    ctx.store
        .create(&key, crate::registry::pretty_json(&output))
        .await?;
    Ok(output)
}

/// Where a training job finds the run's symbols: inline
/// (`STOCKCAST_SYMBOLS`), or the quality step's list in the store
/// (`STOCKCAST_SYMBOLS_KEY`), which keeps the job's container overrides
/// under Batch's 8 KB whatever the universe's size.
#[derive(Debug, Clone, PartialEq)]
pub enum RunSymbols {
    Inline(Vec<Symbol>),
    Stored(String),
}

/// The input of one shard of a run: its part of the run's symbols. A shard
/// that does not exist or has no symbol is `Step.InvalidInput` (the job
/// fails, and with it the run; production is unchanged).
pub async fn shard_input(
    store: &Store,
    run_id: RunId,
    symbols: RunSymbols,
    models: Vec<ModelKind>,
    shard: crate::universe::Shard,
) -> Result<TrainInput, StepError> {
    let all = match symbols {
        RunSymbols::Inline(list) => list,
        RunSymbols::Stored(key) => crate::quality::read_symbol_list(store, &key).await?,
    };
    let mine = crate::universe::select(&all, shard)
        .map_err(|e| StepError::new(ErrorName::InvalidInput, format!("run {run_id}: {e}")))?;
    Ok(TrainInput {
        run_id,
        symbols: mine.to_vec(),
        models,
        shard,
    })
}

/// Gathers the outputs of a run's `shards` training shards into
/// `runs/<run_id>/train.json`, the one record the gate reads. A shard
/// without output (a child that never wrote it) fails the run with
/// `Train.Incomplete`, naming the shards: a run judged on part of its
/// symbols would look complete. A re-run returns the merged record.
pub async fn merge(store: &Store, run_id: &RunId, shards: usize) -> Result<MergeOutput, StepError> {
    let train_key = layout::run_train(run_id);
    let merged = match recorded_output(store, run_id).await? {
        Some(merged) => merged,
        None => {
            let merged = gather(store, run_id, shards).await?;
            match store
                .create(&train_key, crate::registry::pretty_json(&merged))
                .await
            {
                // Another attempt merged the same shards first.
                Ok(()) | Err(crate::store::StoreError::AlreadyExists { .. }) => merged,
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok(MergeOutput {
        shards,
        candidates: merged.candidates.len(),
        failures: merged.failures.len(),
        train_key,
    })
}

/// Every shard's output, in shard order.
async fn gather(store: &Store, run_id: &RunId, shards: usize) -> Result<TrainOutput, StepError> {
    if shards == 0 {
        return Err(StepError::new(
            ErrorName::InvalidInput,
            "merge: a run has at least one training shard",
        ));
    }
    let mut merged = TrainOutput {
        candidates: Vec::new(),
        failures: Vec::new(),
    };
    let mut missing = Vec::new();
    for index in 0..shards {
        match read_output(store, &layout::run_train_shard(run_id, index)).await? {
            Some(output) => {
                merged.candidates.extend(output.candidates);
                merged.failures.extend(output.failures);
            }
            None => missing.push(index.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(StepError::new(
            ErrorName::TrainIncomplete,
            format!(
                "training shard(s) {} of {shards} wrote no output under runs/{run_id}/train/: nothing is judged, production is unchanged",
                missing.join(", ")
            ),
        ));
    }
    Ok(merged)
}

/// Reads every symbol's curated data; a symbol that is missing, invalid
/// or too short fails its models, and the others go on.
async fn load_all(
    ctx: &TrainContext,
    input: &TrainInput,
) -> Result<(Vec<Loaded>, Vec<TrainFailure>), StepError> {
    let protocol = &ctx.config.protocol;
    let mut failures = Vec::new();
    let mut loaded = Vec::new();
    for symbol in &input.symbols {
        let fail_all = |reason: String| {
            input.models.iter().map(move |&model| TrainFailure {
                symbol: symbol.clone(),
                model,
                reason: reason.clone(),
            })
        };
        let curated = match read_curated(&ctx.store, symbol).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                let key = layout::curated(symbol);
                failures.extend(fail_all(format!("{key} does not exist")));
                continue;
            }
            Err(CuratedError::Store(e)) => return Err(e.into()),
            Err(CuratedError::Invalid(e)) => {
                failures.extend(fail_all(e.to_string()));
                continue;
            }
        };
        let Curated {
            series,
            digest,
            sentiment_digest,
        } = curated;
        if protocol.origins(symbol, series.len()).is_ok() {
            loaded.push(Loaded {
                symbol: symbol.clone(),
                digest,
                series,
                sentiment_digest,
            });
        } else {
            failures.extend(fail_all(format!(
                "{} rows, but the backtest needs {}",
                series.len(),
                protocol.used_rows()
            )));
        }
    }
    Ok((loaded, failures))
}

/// Every backtest of the run in one parallel call, naive always included
/// (every version's metrics carry naive's on the same origins).
async fn backtest_all(
    ctx: &TrainContext,
    loaded: &[Loaded],
    models: &[ModelKind],
    progress: Progress,
) -> Result<Vec<ForecastRow>, StepError> {
    let mut all = vec![ModelKind::Naive];
    all.extend(models.iter().copied().filter(|m| *m != ModelKind::Naive));
    let series: Vec<PriceSeries> = loaded.iter().map(|l| l.series.clone()).collect();
    let (protocol, stop) = (ctx.config.protocol.clone(), ctx.stop.clone());
    let run = tokio::task::spawn_blocking(move || {
        backtest::run_stoppable(&series, &all, &protocol, &|| progress(), &stop)
    })
    .await
    .map_err(|e| StepError::new(ErrorName::TrainFailed, format!("the backtest stopped: {e}")))?
    .map_err(|e| match e {
        backtest::BacktestError::Stopped => interrupted(),
        e => StepError::new(ErrorName::TrainFailed, e.to_string()),
    })?;
    if ctx.stop.load(Ordering::Relaxed) {
        return Err(interrupted());
    }
    Ok(run.rows)
}

/// The backtest's rows by series name and model name, each in the run's order.
fn by_series_and_model(
    rows: Vec<ForecastRow>,
) -> HashMap<String, HashMap<String, Vec<ForecastRow>>> {
    let mut out: HashMap<String, HashMap<String, Vec<ForecastRow>>> = HashMap::new();
    for row in rows {
        (out.entry(row.series.clone()).or_default())
            .entry(row.model.clone())
            .or_default()
            .push(row);
    }
    out
}

fn horizon_metrics(rows: &[ForecastRow], protocol: &Protocol) -> Vec<HorizonMetrics> {
    backtest::series_metrics(rows, &protocol.horizons)
        .iter()
        .map(|m| m.metrics.clone())
        .collect()
}

/// Fits a candidate on the latest window and makes the files of its version.
fn candidate_files(
    ctx: &TrainContext,
    item: &Loaded,
    model: ModelKind,
    rows: &[ForecastRow],
    naive: &[HorizonMetrics],
    run_id: &RunId,
) -> Result<VersionFiles, String> {
    let protocol = &ctx.config.protocol;
    let series = &item.series;
    let target = series.target();
    let last = series.len() - 1;
    let fitted = model
        .fit(&window_at(
            &target,
            series,
            &series.dates(),
            last,
            protocol.window.min(series.len()),
        ))
        .map_err(|e| format!("fitting on the latest window failed: {e}"))?;
    let version = new_version_id();
    let origins: Vec<&ForecastRow> = rows
        .iter()
        .filter(|r| r.h == protocol.horizons[0])
        .collect();
    let metrics = VersionMetrics {
        symbol: item.symbol.clone(),
        model,
        version: version.clone(),
        run_id: run_id.clone(),
        protocol: protocol.clone(),
        origins: origins.len(),
        first_origin: origins.first().map(|r| r.origin_date),
        last_origin: origins.last().map(|r| r.origin_date),
        data_through: series.bars.last().map(|b| b.date),
        failures: origins.iter().filter(|r| r.failed).count(),
        horizons: horizon_metrics(rows, protocol),
        naive: naive.to_vec(),
    };
    let mut backtest_csv = Vec::new();
    backtest::write_forecasts_csv(rows, &mut backtest_csv).map_err(|e| e.to_string())?;
    let plot_png = backtest_plot(ctx, item, &metrics, rows, naive)?;
    let lineage = Lineage {
        symbol: item.symbol.clone(),
        model,
        version,
        run_id: run_id.clone(),
        data_key: layout::curated(&item.symbol),
        data_digest: item.digest.clone(),
        sentiment_digest: item.sentiment_digest.clone(),
        data_rows: series.len(),
        data_through: series.bars.last().map(|b| b.date),
        git_commit: ctx.git_commit.clone(),
        config_digest: ctx.config.digest(),
        code_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    Ok(VersionFiles {
        model: fitted,
        metrics,
        lineage,
        backtest_csv,
        plot_png,
    })
}

/// The backtest's plot at the gate's horizon (the first horizon where the
/// protocol does not score the gate's).
fn backtest_plot(
    ctx: &TrainContext,
    item: &Loaded,
    metrics: &VersionMetrics,
    rows: &[ForecastRow],
    naive: &[HorizonMetrics],
) -> Result<Vec<u8>, String> {
    let (protocol, series) = (&ctx.config.protocol, &item.series);
    let target = series.target();
    let test_start = series.len() - protocol.test_rows;
    let actual: Vec<(usize, chrono::NaiveDate, f64)> = (test_start..series.len())
        .map(|i| (i, series.bars[i].date, target[i]))
        .collect();
    let plotted_h = if protocol.horizons.contains(&ctx.config.gate.horizon) {
        ctx.config.gate.horizon
    } else {
        protocol.horizons[0]
    };
    let plotted: Vec<&ForecastRow> = rows.iter().filter(|r| r.h == plotted_h).collect();
    let mase_at = |m: &[HorizonMetrics]| {
        m.iter()
            .find(|m| m.horizon == plotted_h)
            .and_then(|m| m.mase)
    };
    let title = crate::plot::PlotTitle {
        symbol: item.symbol.to_string(),
        model: metrics.model.name().to_owned(),
        version: metrics.version.to_string(),
        horizon: plotted_h,
        mase: mase_at(&metrics.horizons),
        naive_mase: mase_at(naive),
    };
    crate::plot::backtest_png(&title, &actual, &plotted).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VersionId;
    use crate::steps::Candidate;

    fn shard_output(symbol: &'static str) -> TrainOutput {
        TrainOutput {
            candidates: vec![Candidate {
                symbol: Symbol::from_static(symbol),
                model: ModelKind::Naive,
                version: VersionId::from_static("v1"),
                metrics_key: format!("models/{symbol}/naive/versions/v1/metrics.json"),
            }],
            failures: vec![TrainFailure {
                symbol: Symbol::from_static(symbol),
                model: ModelKind::Lstm,
                reason: "too short".into(),
            }],
        }
    }

    #[tokio::test]
    async fn merge_gathers_every_shard_in_order_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::local(dir.path()).expect("store");
        let run = RunId::from_static("r1");
        for (index, symbol) in [(0, "AAPL"), (1, "MSFT")] {
            store
                .create(
                    &layout::run_train_shard(&run, index),
                    crate::registry::pretty_json(&shard_output(symbol)),
                )
                .await
                .expect("shard");
        }
        let merged = merge(&store, &run, 2).await.expect("merged");
        assert_eq!((merged.candidates, merged.failures), (2, 2));
        let record = recorded_output(&store, &run)
            .await
            .expect("read")
            .expect("train.json");
        let symbols: Vec<&str> = record
            .candidates
            .iter()
            .map(|c| c.symbol.as_str())
            .collect();
        assert_eq!(symbols, ["AAPL", "MSFT"]);
        assert_eq!(merge(&store, &run, 2).await.expect("again"), merged);
    }

    /// A child that never wrote its output fails the run, and nothing is
    /// recorded as trained.
    #[tokio::test]
    async fn a_missing_shard_fails_the_merge_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::local(dir.path()).expect("store");
        let run = RunId::from_static("r1");
        store
            .create(
                &layout::run_train_shard(&run, 0),
                crate::registry::pretty_json(&shard_output("AAPL")),
            )
            .await
            .expect("shard");
        let error = merge(&store, &run, 3).await.expect_err("incomplete");
        assert_eq!(error.name, ErrorName::TrainIncomplete);
        assert!(
            error.message.contains("shard(s) 1, 2 of 3"),
            "{}",
            error.message
        );
        assert!(recorded_output(&store, &run).await.expect("read").is_none());
    }
}
