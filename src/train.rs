//! The train step: for every symbol and model, backtest on the most recent
//! test region (PROTOCOL.md), fit on the latest window, and write a
//! candidate version with its metrics, plot and lineage.
//!
//! All backtests of a run go to one parallel `backtest::run`, which is
//! where the time goes; writing the versions afterwards is cheap. Naive is
//! always backtested too, because every version's metrics carry naive's on
//! the same origins for the gate and the API.
//!
//! A run is finished when `runs/<run_id>/train.json` exists: the gate reads
//! its candidates from there, and nothing else. A stop request (SIGTERM on
//! a Spot interruption) is honoured until the backtests are done; then the
//! versions and the run record are written, which takes seconds, well
//! inside the grace period before SIGKILL. A retry of a finished run
//! returns the recorded output instead of training again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;

use crate::backtest::{self, ForecastRow, Protocol, window_at};
use crate::config::PipelineConfig;
use crate::ingest::{Curated, CuratedError, curated_key, read_curated};
use crate::models::ModelKind;
use crate::registry::{
    HorizonMetrics, Lineage, Registry, VersionFiles, VersionMetrics, new_version_id,
};
use crate::series::PriceSeries;
use crate::steps::{ErrorName, StepError, TrainFailure, TrainInput, TrainOutput};
use crate::store::Store;

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

/// Where a finished train step records its output.
pub fn train_output_key(run_id: &str) -> String {
    format!("runs/{run_id}/train.json")
}

/// The recorded output of a finished train step, if it finished.
pub async fn recorded_output(
    store: &Store,
    run_id: &str,
) -> Result<Option<TrainOutput>, StepError> {
    let key = train_output_key(run_id);
    let Some(object) = store.get(&key).await? else {
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
    if let Some(done) = recorded_output(&ctx.store, &input.run_id).await? {
        return Ok(done);
    }
    let protocol = ctx.config.protocol.clone();
    let mut failures = Vec::new();
    let mut loaded = Vec::new();
    for symbol in &input.symbols {
        let key = curated_key(symbol);
        let fail_all = |reason: String| {
            input.models.iter().map(move |&model| TrainFailure {
                symbol: symbol.clone(),
                model,
                reason: reason.clone(),
            })
        };
        let Curated {
            series,
            digest,
            sentiment_digest,
        } = match read_curated(&ctx.store, symbol).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                failures.extend(fail_all(format!("{key} does not exist")));
                continue;
            }
            Err(CuratedError::Store(e)) => return Err(e.into()),
            Err(CuratedError::Invalid(e)) => {
                failures.extend(fail_all(e.to_string()));
                continue;
            }
        };
        if protocol.origins(symbol, series.len()).is_ok() {
            loaded.push(Loaded {
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
    let mut models = vec![ModelKind::Naive];
    models.extend(
        input
            .models
            .iter()
            .copied()
            .filter(|m| *m != ModelKind::Naive),
    );
    let series: Vec<PriceSeries> = loaded.iter().map(|l| l.series.clone()).collect();
    let run = {
        let (models, protocol, stop) = (models.clone(), protocol.clone(), ctx.stop.clone());
        tokio::task::spawn_blocking(move || {
            backtest::run_stoppable(&series, &models, &protocol, &|| progress(), &stop)
        })
        .await
        .map_err(|e| StepError::new(ErrorName::TrainFailed, format!("the backtest stopped: {e}")))?
        .map_err(|e| match e {
            backtest::BacktestError::Stopped => interrupted(),
            e => StepError::new(ErrorName::TrainFailed, e.to_string()),
        })?
    };
    if ctx.stop.load(Ordering::Relaxed) {
        return Err(interrupted());
    }
    let registry = Registry::new(ctx.store.clone());
    let mut candidates = Vec::new();
    for item in &loaded {
        let rows_of = |model: ModelKind| -> Vec<ForecastRow> {
            run.rows
                .iter()
                .filter(|r| r.series == item.series.name && r.model == model.name())
                .cloned()
                .collect()
        };
        let naive = horizon_metrics(&rows_of(ModelKind::Naive), &protocol);
        for &model in &input.models {
            let rows = rows_of(model);
            // A model that cannot be fitted is this run's finding; storage
            // that fails is the step's error, retried, never recorded as a
            // model failure in a finished run (issue 20).
            match candidate_files(ctx, item, model, &rows, &naive, &input.run_id) {
                Ok(files) => candidates.push(registry.write_version(files).await?),
                Err(reason) => failures.push(TrainFailure {
                    symbol: item.series.name.clone(),
                    model,
                    reason,
                }),
            }
        }
    }
    let output = TrainOutput {
        candidates,
        failures,
    };
    ctx.store
        .create(
            &train_output_key(&input.run_id),
            crate::registry::pretty_json(&output),
        )
        .await?;
    Ok(output)
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
    run_id: &str,
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
        symbol: series.name.clone(),
        model,
        version: version.clone(),
        run_id: run_id.to_owned(),
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
    let title = crate::plot::PlotTitle {
        symbol: series.name.clone(),
        model: model.name().to_owned(),
        version: version.clone(),
        horizon: plotted_h,
        mase: metrics
            .horizons
            .iter()
            .find(|m| m.horizon == plotted_h)
            .and_then(|m| m.mase),
        naive_mase: naive
            .iter()
            .find(|m| m.horizon == plotted_h)
            .and_then(|m| m.mase),
    };
    let plot_png =
        crate::plot::backtest_png(&title, &actual, &plotted).map_err(|e| e.to_string())?;
    let lineage = Lineage {
        symbol: series.name.clone(),
        model,
        version,
        run_id: run_id.to_owned(),
        data_key: curated_key(&series.name),
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
