//! The walk-forward backtest of PROTOCOL.md: every model is refitted from
//! scratch at every origin on the trailing window that ends there, and
//! judged on the values after it.
//!
//! `window_at` is the only place that cuts data for a model, so the
//! no-look-ahead property is a property of this one function (and is
//! tested as such). Origins, series and models are independent work items,
//! run in parallel on the current rayon pool; results come back in a fixed
//! order, so the output does not depend on the thread count.

mod metrics;
mod output;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::models::{FittedModel, Forecast, MAX_HORIZON, ModelError, ModelKind, Window};
use crate::series::PriceSeries;

pub use metrics::{
    AggregateMetrics, HorizonMetrics, SeriesMetrics, aggregate, defined, independent_outcomes,
    series_metrics, wilson_band,
};
pub use output::{read_forecasts_csv, write_forecasts_csv};

/// The constants of PROTOCOL §2. `Protocol::default()` is the benchmark;
/// the training step may use a shorter window or test region for short series.
///
/// | Name | Default | Purpose |
/// |---|---|---|
/// | `test_rows` | 500 | the last rows, in which targets lie |
/// | `spacing` | 5 | rows between origins |
/// | `window` | 1000 | trailing training window, origin included |
/// | `horizons` | 1, 5, 21 | reported horizons |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub test_rows: usize,
    pub spacing: usize,
    pub window: usize,
    pub horizons: Vec<usize>,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            test_rows: 500,
            spacing: 5,
            window: 1000,
            horizons: vec![1, 5, 21],
        }
    }
}

/// Relative tolerance below which a change counts as "no change" (dir_acc).
pub const NO_CHANGE_EPSILON: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BacktestError {
    #[error(
        "series {series} has {rows} rows, but the protocol needs at least {needed} \
         (test region {test_rows} + window {window})"
    )]
    TooShort {
        series: String,
        rows: usize,
        needed: usize,
        test_rows: usize,
        window: usize,
    },
    #[error("invalid protocol: {0}")]
    InvalidProtocol(String),
    #[error("no models to backtest")]
    NoModels,
    #[error("stopped before every origin was fitted")]
    Stopped,
}

impl Protocol {
    pub fn max_horizon(&self) -> usize {
        self.horizons.iter().copied().max().unwrap_or(0)
    }

    /// Checks the constants fit together.
    pub fn check(&self) -> Result<(), BacktestError> {
        let bad = |s: String| Err(BacktestError::InvalidProtocol(s));
        if self.horizons.is_empty() || self.horizons.contains(&0) {
            return bad(format!(
                "horizons should be non-empty and positive, but are {:?}",
                self.horizons
            ));
        }
        if self.max_horizon() > crate::models::MAX_HORIZON {
            return bad(format!(
                "horizons should be at most {}, but include {}",
                crate::models::MAX_HORIZON,
                self.max_horizon()
            ));
        }
        if self.spacing == 0 || self.window < 3 {
            return bad("spacing should be positive and window at least 3".into());
        }
        if self.test_rows < self.max_horizon() {
            return bad(format!(
                "test_rows {} should be at least the largest horizon {}",
                self.test_rows,
                self.max_horizon()
            ));
        }
        Ok(())
    }

    /// `K = floor((T − Hmax) / S) + 1`, the origins per series.
    pub fn origin_count(&self) -> usize {
        self.test_rows.saturating_sub(self.max_horizon()) / self.spacing.max(1) + 1
    }

    /// How many of a series' latest rows the backtest and the training
    /// window read: the test region and one window before it.
    pub fn used_rows(&self) -> usize {
        self.test_rows + self.window
    }

    /// Origins `o_k = N − T − 1 + S·k` for `k = 0..K` (PROTOCOL §3).
    pub fn origins(&self, series: &str, rows: usize) -> Result<Vec<usize>, BacktestError> {
        self.check()?;
        let needed = self.used_rows();
        if rows < needed {
            return Err(BacktestError::TooShort {
                series: series.to_owned(),
                rows,
                needed,
                test_rows: self.test_rows,
                window: self.window,
            });
        }
        let count = self.origin_count();
        let first = rows - self.test_rows - 1;
        Ok((0..count).map(|k| first + self.spacing * k).collect())
    }
}

/// The model's view at `origin`: the `window` rows ending at and including
/// it, and the dates (`dates`: the series' own) of the rows after it as
/// calendar labels. No value after `origin` is reachable from the window.
pub fn window_at<'a>(
    target: &'a [f64],
    series: &'a PriceSeries,
    dates: &'a [NaiveDate],
    origin: usize,
    window: usize,
) -> Window<'a> {
    let start = origin + 1 - window;
    let future_end = (origin + 1 + MAX_HORIZON).min(dates.len());
    let origin_day = series.bars[origin].date;
    let known_news = series.sentiment.partition_point(|d| d.date <= origin_day);
    Window {
        target: &target[start..=origin],
        bars: &series.bars[start..=origin],
        future: dates.get(origin + 1..future_end).unwrap_or_default(),
        sentiment: &series.sentiment[..known_news],
    }
}

/// Fits `model` at `origin` and forecasts up to the protocol's largest horizon.
pub fn forecast_at(
    target: &[f64],
    series: &PriceSeries,
    dates: &[NaiveDate],
    model: ModelKind,
    origin: usize,
    protocol: &Protocol,
) -> Result<Forecast, ModelError> {
    let window = window_at(target, series, dates, origin, protocol.window);
    fit_and_forecast(&window, model, protocol).map(|(_, f)| f)
}

/// Fits `model` on `window` and forecasts up to the protocol's largest
/// horizon, also returning the fitted model (whose ensemble weights the
/// report shows).
fn fit_and_forecast(
    window: &Window<'_>,
    model: ModelKind,
    protocol: &Protocol,
) -> Result<(FittedModel, Forecast), ModelError> {
    let fitted = model.fit(window)?;
    let forecast = fitted.forecast(protocol.max_horizon())?;
    Ok((fitted, forecast))
}

/// One forecast of one origin at one horizon: a row of the forecasts CSV.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastRow {
    pub series: String,
    /// A model name: one of ours, or a peer's when read from a reference file.
    pub model: String,
    pub origin_row: usize,
    pub origin_date: NaiveDate,
    pub h: usize,
    pub target_date: NaiveDate,
    pub y_origin: f64,
    pub actual: f64,
    pub forecast: f64,
    pub lo80: Option<f64>,
    pub hi80: Option<f64>,
    pub mase_scale: f64,
    /// The model failed here; `forecast` is `y_origin` (PROTOCOL §4).
    pub failed: bool,
}

/// Fit + predict time of one model, summed over its origins (PROTOCOL §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelTiming {
    pub model: ModelKind,
    pub fits: usize,
    pub seconds: f64,
    pub ms_per_fit: f64,
}

/// The ensemble's combination at one origin: which members it averaged,
/// chosen by the validation inside that origin's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleWeights {
    pub series: String,
    pub origin_row: usize,
    pub origin_date: NaiveDate,
    /// Weight of every member that could be fitted (0 when left out).
    pub weights: BTreeMap<String, f64>,
    /// Scaled validation loss of the chosen combination and of the simple
    /// average it had to beat.
    pub validation_loss: f64,
    pub simple_average_loss: f64,
}

impl EnsembleWeights {
    fn of(fitted: &FittedModel, series: &PriceSeries, origin: usize) -> Option<EnsembleWeights> {
        let ensemble = fitted.as_ensemble()?;
        let mut weights: BTreeMap<String, f64> = ensemble
            .validation
            .available
            .iter()
            .map(|k| (k.name().to_owned(), 0.0))
            .collect();
        for (kind, weight) in ensemble.weights() {
            weights.insert(kind.name().to_owned(), weight);
        }
        Some(EnsembleWeights {
            series: series.name.clone(),
            origin_row: origin,
            origin_date: series.bars[origin].date,
            weights,
            validation_loss: ensemble.validation.loss,
            simple_average_loss: ensemble.validation.simple_average_loss,
        })
    }
}

/// A model failure at one origin, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub series: String,
    pub model: ModelKind,
    pub origin_row: usize,
    pub reason: String,
}

/// Everything one backtest produced, in series → model → origin → horizon order.
#[derive(Debug, Clone)]
pub struct BacktestRun {
    pub protocol: Protocol,
    pub series: Vec<String>,
    pub models: Vec<ModelKind>,
    pub rows: Vec<ForecastRow>,
    pub failures: Vec<Failure>,
    /// The ensemble's weights at every origin where it was fitted.
    pub ensemble_weights: Vec<EnsembleWeights>,
    pub timing: Vec<ModelTiming>,
    pub threads: usize,
    pub wall_seconds: f64,
}

/// Counts work items for a progress display before `run` starts.
pub fn count_fits(
    series: &[PriceSeries],
    models: &[ModelKind],
    protocol: &Protocol,
) -> Result<usize, BacktestError> {
    let mut n = 0;
    for s in series {
        n += protocol.origins(&s.name, s.len())?.len() * models.len();
    }
    Ok(n)
}

/// Runs the walk-forward backtest of every model on every series on the
/// current rayon pool; `progress` is called once per fitted origin.
pub fn run(
    series: &[PriceSeries],
    models: &[ModelKind],
    protocol: &Protocol,
    progress: &(dyn Fn() + Sync),
) -> Result<BacktestRun, BacktestError> {
    run_stoppable(series, models, protocol, progress, &AtomicBool::new(false))
}

/// [`run`], giving up with `Stopped` soon after `stop` is set (a Spot
/// interruption): origins not yet started are skipped.
pub fn run_stoppable(
    series: &[PriceSeries],
    models: &[ModelKind],
    protocol: &Protocol,
    progress: &(dyn Fn() + Sync),
    stop: &AtomicBool,
) -> Result<BacktestRun, BacktestError> {
    if models.is_empty() {
        return Err(BacktestError::NoModels);
    }
    let started = Instant::now();
    let inputs = RunInputs::new(series, protocol);
    let tasks = tasks(series, models, protocol)?;
    let outcomes = fit_all(&inputs, &tasks, progress, stop)?;
    let mut results = Results::with_capacity(tasks.len() * protocol.horizons.len());
    for (&task, outcome) in tasks.iter().zip(outcomes) {
        results.add(&inputs, task, outcome);
    }
    Ok(BacktestRun {
        protocol: protocol.clone(),
        series: series.iter().map(|s| s.name.clone()).collect(),
        models: models.to_vec(),
        timing: results.timing(),
        rows: results.rows,
        failures: results.failures,
        ensemble_weights: results.ensemble_weights,
        threads: rayon::current_num_threads(),
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// One work item: a model fitted at one origin of one series.
#[derive(Debug, Clone, Copy)]
struct Task {
    series: usize,
    model: ModelKind,
    origin: usize,
}

/// What one task gave: the forecast or why there is none, the time it
/// took, and the ensemble's weights where an ensemble was fitted.
#[derive(Debug)]
struct Outcome {
    result: Result<Forecast, ModelError>,
    elapsed: Duration,
    weights: Option<EnsembleWeights>,
}

/// The series of a run with their targets and dates, computed once.
#[derive(Debug)]
struct RunInputs<'a> {
    series: &'a [PriceSeries],
    targets: Vec<Vec<f64>>,
    dates: Vec<Vec<NaiveDate>>,
    protocol: &'a Protocol,
}

impl<'a> RunInputs<'a> {
    fn new(series: &'a [PriceSeries], protocol: &'a Protocol) -> Self {
        RunInputs {
            series,
            targets: series.iter().map(PriceSeries::target).collect(),
            dates: series.iter().map(PriceSeries::dates).collect(),
            protocol,
        }
    }

    fn fit(&self, task: Task) -> Outcome {
        let s = task.series;
        let started = Instant::now();
        let window = window_at(
            &self.targets[s],
            &self.series[s],
            &self.dates[s],
            task.origin,
            self.protocol.window,
        );
        let result = fit_and_forecast(&window, task.model, self.protocol);
        let elapsed = started.elapsed();
        let weights = result
            .as_ref()
            .ok()
            .and_then(|(fitted, _)| EnsembleWeights::of(fitted, &self.series[s], task.origin));
        Outcome {
            result: result.map(|(_, f)| f),
            elapsed,
            weights,
        }
    }
}

/// Every (series, model, origin) in the order the results are reported.
fn tasks(
    series: &[PriceSeries],
    models: &[ModelKind],
    protocol: &Protocol,
) -> Result<Vec<Task>, BacktestError> {
    let mut tasks = Vec::new();
    for (s, item) in series.iter().enumerate() {
        let origins = protocol.origins(&item.name, item.len())?;
        for &model in models {
            tasks.extend(origins.iter().map(|&origin| Task {
                series: s,
                model,
                origin,
            }));
        }
    }
    Ok(tasks)
}

/// Fits every task on the current rayon pool; the outcomes come back in
/// task order whatever the thread count.
fn fit_all(
    inputs: &RunInputs<'_>,
    tasks: &[Task],
    progress: &(dyn Fn() + Sync),
    stop: &AtomicBool,
) -> Result<Vec<Outcome>, BacktestError> {
    let outcomes: Option<Vec<Outcome>> = tasks
        .par_iter()
        .map(|&task| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let outcome = inputs.fit(task);
            progress();
            Some(outcome)
        })
        .collect();
    outcomes.ok_or(BacktestError::Stopped)
}

/// The outcomes turned into the run's rows, failures, weights and timing.
#[derive(Debug)]
struct Results {
    rows: Vec<ForecastRow>,
    failures: Vec<Failure>,
    ensemble_weights: Vec<EnsembleWeights>,
    time_per_model: BTreeMap<ModelKind, (usize, Duration)>,
}

impl Results {
    fn with_capacity(rows: usize) -> Self {
        Results {
            rows: Vec::with_capacity(rows),
            failures: Vec::new(),
            ensemble_weights: Vec::new(),
            time_per_model: BTreeMap::new(),
        }
    }

    /// Adds one task's outcome: a failure becomes a row per horizon with
    /// the no-change forecast (PROTOCOL §4) and an entry in `failures`.
    fn add(&mut self, inputs: &RunInputs<'_>, task: Task, outcome: Outcome) {
        self.ensemble_weights.extend(outcome.weights);
        let entry = self.time_per_model.entry(task.model).or_default();
        entry.0 += 1;
        entry.1 += outcome.elapsed;
        let forecast = match outcome.result {
            Ok(f) => Some(f),
            Err(e) => {
                self.failures.push(Failure {
                    series: inputs.series[task.series].name.clone(),
                    model: task.model,
                    origin_row: task.origin,
                    reason: e.to_string(),
                });
                None
            }
        };
        self.rows
            .extend(forecast_rows(inputs, task, forecast.as_ref()));
    }

    fn timing(&self) -> Vec<ModelTiming> {
        self.time_per_model
            .iter()
            .map(|(&model, &(fits, total))| ModelTiming {
                model,
                fits,
                seconds: total.as_secs_f64(),
                ms_per_fit: total.as_secs_f64() * 1e3 / fits.max(1) as f64,
            })
            .collect()
    }
}

/// The rows of one task at the protocol's horizons; without a forecast,
/// the no-change forecast and no interval.
fn forecast_rows<'a>(
    inputs: &'a RunInputs<'_>,
    task: Task,
    forecast: Option<&'a Forecast>,
) -> impl Iterator<Item = ForecastRow> + 'a {
    let Task {
        series: s,
        model,
        origin,
    } = task;
    let (y, item) = (&inputs.targets[s], &inputs.series[s]);
    let scale = mase_scale(&y[origin + 1 - inputs.protocol.window..=origin]);
    inputs.protocol.horizons.iter().map(move |&h| {
        let (point, lo, hi) = match forecast {
            Some(f) => (
                f.mean[h - 1],
                f.lower.as_ref().map(|l| l[h - 1]),
                f.upper.as_ref().map(|u| u[h - 1]),
            ),
            None => (y[origin], None, None),
        };
        ForecastRow {
            series: item.name.clone(),
            model: model.name().to_owned(),
            origin_row: origin,
            origin_date: item.bars[origin].date,
            h,
            target_date: item.bars[origin + h].date,
            y_origin: y[origin],
            actual: y[origin + h],
            forecast: point,
            lo80: lo,
            hi80: hi,
            mase_scale: scale,
            failed: forecast.is_none(),
        }
    })
}

/// The in-sample one-step naive MAE of a window: MASE's scale (PROTOCOL §4).
pub fn mase_scale(window: &[f64]) -> f64 {
    let sum: f64 = window.windows(2).map(|p| (p[1] - p[0]).abs()).sum();
    sum / (window.len() - 1) as f64
}

/// The report of PROTOCOL §7: per-series metrics and aggregates computed
/// from a run, beside the run's own protocol, series, failures and weights
/// (borrowed: the report is a view of the run, not a second copy of it) and
/// its timing.
#[derive(Debug, Clone, Serialize)]
pub struct Report<'a> {
    pub protocol: &'a Protocol,
    pub series: &'a [String],
    pub per_series: Vec<SeriesMetrics>,
    pub aggregate: Vec<AggregateMetrics>,
    pub failures: &'a [Failure],
    /// The ensemble's members and weights at every origin, in origin order
    /// per series: how the combination moved over time.
    pub ensemble_weights: &'a [EnsembleWeights],
    pub timing: ReportTiming,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportTiming {
    pub models: Vec<ModelTiming>,
    pub threads: usize,
    pub cores: usize,
    pub parallel_over: &'static str,
    pub wall_seconds: f64,
}

impl BacktestRun {
    pub fn report(&self) -> Report<'_> {
        let per_series = series_metrics(&self.rows, &self.protocol.horizons);
        let names: Vec<String> = self.models.iter().map(|m| m.name().to_owned()).collect();
        let aggregate = aggregate(
            &per_series,
            &names,
            &self.protocol.horizons,
            self.protocol.spacing,
        );
        Report {
            protocol: &self.protocol,
            series: &self.series,
            per_series,
            aggregate,
            failures: &self.failures,
            ensemble_weights: &self.ensemble_weights,
            timing: ReportTiming {
                models: self.timing.clone(),
                threads: self.threads,
                cores: std::thread::available_parallelism().map_or(1, usize::from),
                parallel_over: "series, models and origins (rayon)",
                wall_seconds: self.wall_seconds,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_follow_the_protocol() {
        let p = Protocol::default();
        let origins = p.origins("X", 3270).expect("long enough");
        assert_eq!(origins.len(), 96);
        assert_eq!(origins[0], 3270 - 500 - 1);
        assert_eq!(*origins.last().expect("some"), 3270 - 26);
        let err = p.origins("X", 1499).expect_err("too short");
        assert!(err.to_string().contains("needs at least 1500"), "{err}");
    }

    #[test]
    fn invalid_protocols_are_rejected() {
        let p = Protocol {
            horizons: vec![1, 30],
            ..Protocol::default()
        };
        assert!(p.origins("X", 5000).is_err());
        let p = Protocol {
            spacing: 0,
            ..Protocol::default()
        };
        assert!(p.origins("X", 5000).is_err());
    }
}
