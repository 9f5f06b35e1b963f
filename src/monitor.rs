//! The monitor step: how good were the forecasts production actually
//! served, now that their days have come?
//!
//! Every daily run does two things per symbol:
//! 1. **records** the forecast the API serves for the latest data (the
//!    default model, through the API's own cache and selection) under
//!    `forecasts/<symbol>/<origin date>.json`, written once;
//! 2. **scores** the recorded forecasts whose target days are now in the
//!    curated data: absolute error against the realised close, next to the
//!    naive forecast's (the close at the origin) and the direction.
//!
//! The aggregates over the lookback window, `mase_ratio` (model error over
//! naive error on the same points: above 1, production is worse than doing
//! nothing) and `directional_accuracy`, are what the Lambda publishes to
//! CloudWatch; drift is declared when the ratio passes the threshold over
//! enough points.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::config::GatePolicy;
use crate::ids::{RunId, Symbol, VersionId};
use crate::layout;
use crate::models::ModelKind;
use crate::registry::{Registry, pretty_json};
use crate::series::PriceSeries;
use crate::serving::{self, ModelCache, ServingError};
use crate::steps::{ErrorName, MonitorInput, MonitorMetrics, MonitorOutput, StepError};
use crate::store::{Store, StoreError};

/// The monitor's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorPolicy {
    /// Drift when realised model error over naive error exceeds this.
    pub drift_mase_ratio: f64,
    /// Fewer realised points than this never declare drift (noise).
    pub min_points: usize,
    /// Forecasts whose origin is older than this many days are not scored.
    pub lookback_days: i64,
    /// Horizons recorded, in trading days.
    pub horizons: Vec<usize>,
    /// Latest values a model is re-anchored on (as the API does).
    pub anchor_window: usize,
}

impl Default for MonitorPolicy {
    fn default() -> Self {
        MonitorPolicy {
            drift_mase_ratio: 1.2,
            min_points: 20,
            lookback_days: 90,
            horizons: vec![1, 5, 21],
            anchor_window: 1000,
        }
    }
}

/// One served forecast, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedForecast {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub version: VersionId,
    /// The last day of data the forecast was made from.
    pub origin: NaiveDate,
    /// The target value at the origin: the naive forecast of every horizon.
    pub last_value: f64,
    pub points: Vec<ServedPoint>,
    pub recorded_at: String,
    pub run_id: RunId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedPoint {
    /// Trading days after the origin.
    pub h: usize,
    pub date: NaiveDate,
    pub forecast: f64,
}

/// Running sums over scored points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    pub points: usize,
    pub model_abs_error: f64,
    pub naive_abs_error: f64,
    pub direction_hits: usize,
    pub direction_points: usize,
}

impl Score {
    /// Scores one recorded forecast against the realised series: a point
    /// counts once the series has a value `h` trading rows after the origin.
    pub fn add(&mut self, record: &ServedForecast, dates: &[NaiveDate], target: &[f64]) {
        let Ok(origin) = dates.binary_search(&record.origin) else {
            return;
        };
        for point in &record.points {
            let Some(&actual) = target.get(origin + point.h) else {
                continue;
            };
            self.points += 1;
            self.model_abs_error += (point.forecast - actual).abs();
            self.naive_abs_error += (record.last_value - actual).abs();
            let moved = actual - record.last_value;
            let called = point.forecast - record.last_value;
            if moved != 0.0 && called != 0.0 {
                self.direction_points += 1;
                if moved.signum() == called.signum() {
                    self.direction_hits += 1;
                }
            }
        }
    }

    pub fn mase_ratio(&self) -> Option<f64> {
        (self.naive_abs_error > 0.0).then(|| self.model_abs_error / self.naive_abs_error)
    }

    pub fn directional_accuracy(&self) -> Option<f64> {
        (self.direction_points > 0)
            .then(|| self.direction_hits as f64 / self.direction_points as f64)
    }
}

/// The serving core's errors as the workflow names them: storage keeps its
/// own transient/permanent names, an unreadable record or price file is for
/// a person, a model that cannot re-anchor or forecast is the model's.
impl From<ServingError> for StepError {
    fn from(e: ServingError) -> Self {
        let name = match e {
            ServingError::Store(store) => return store.into(),
            ServingError::Registry(_) => ErrorName::RegistryInvalid,
            ServingError::UnreadableData { .. } => ErrorName::DataQualityFailed,
            ServingError::AnchorFailed { .. } | ServingError::ForecastFailed { .. } => {
                ErrorName::ModelFailed
            }
            ServingError::NoSuchModel { .. }
            | ServingError::NoProductionModel { .. }
            | ServingError::NoData { .. } => ErrorName::RegistryInvalid,
        };
        StepError::new(name, e.to_string())
    }
}

/// Records today's served forecasts and scores the past ones.
pub async fn monitor(
    store: &Store,
    gate: &GatePolicy,
    policy: &MonitorPolicy,
    input: &MonitorInput,
    today: NaiveDate,
) -> Result<MonitorOutput, StepError> {
    let cache = ModelCache::new(
        Registry::new(store.clone()),
        Duration::ZERO,
        policy.anchor_window,
    );
    let mut score = Score::default();
    let mut recorded = Vec::new();
    let since = today - chrono::Duration::days(policy.lookback_days);
    let symbols = match &input.symbols_key {
        Some(key) if input.symbols.is_empty() => {
            crate::quality::read_symbol_list(store, key).await?
        }
        _ => input.symbols.clone(),
    };
    for symbol in &symbols {
        let Some(last_value) = score_symbol(store, symbol, since, &mut score).await? else {
            continue;
        };
        if let Some(key) = record(&cache, gate, policy, symbol, last_value, &input.run_id).await? {
            recorded.push(key);
        }
    }
    let (drift, reason) = drift(&score, policy);
    Ok(MonitorOutput {
        drift,
        metrics: MonitorMetrics {
            scored_points: score.points,
            mase_ratio: score.mase_ratio(),
            directional_accuracy: score.directional_accuracy(),
        },
        reason,
        recorded,
    })
}

/// Scores a symbol's recorded forecasts within the lookback; returns its
/// latest value, or `None` where it has no curated data.
async fn score_symbol(
    store: &Store,
    symbol: &Symbol,
    since: NaiveDate,
    score: &mut Score,
) -> Result<Option<f64>, StepError> {
    let key = layout::curated(symbol);
    let Some(object) = store.get(&key).await? else {
        return Ok(None);
    };
    let series = PriceSeries::from_csv_bytes(symbol, &key, &object.bytes)
        .map_err(|e| StepError::new(ErrorName::DataQualityFailed, e.to_string()))?;
    let dates: Vec<NaiveDate> = series.bars.iter().map(|b| b.date).collect();
    let target = series.target();
    for record_key in store.list(&layout::forecasts(symbol)).await? {
        let Some(object) = store.get(&record_key).await? else {
            continue;
        };
        let record: ServedForecast = serde_json::from_slice(&object.bytes).map_err(|e| {
            StepError::new(
                ErrorName::RegistryInvalid,
                format!("{record_key} is not a served forecast: {e}"),
            )
        })?;
        if record.origin >= since {
            score.add(&record, &dates, &target);
        }
    }
    Ok(target.last().copied())
}

/// Whether the scored points say production has drifted, and why.
fn drift(score: &Score, policy: &MonitorPolicy) -> (bool, String) {
    match score.mase_ratio() {
        _ if score.points < policy.min_points => (
            false,
            format!(
                "{} realised forecasts in the last {} days; drift needs at least {}",
                score.points, policy.lookback_days, policy.min_points
            ),
        ),
        Some(ratio) if ratio > policy.drift_mase_ratio => (
            true,
            format!(
                "MASE ratio {ratio:.4} over {} realised forecasts exceeds the threshold {:.2}",
                score.points, policy.drift_mase_ratio
            ),
        ),
        Some(ratio) => (
            false,
            format!(
                "MASE ratio {ratio:.4} over {} realised forecasts is within the threshold {:.2}",
                score.points, policy.drift_mase_ratio
            ),
        ),
        None => (
            false,
            "prices did not move over the scored points".to_owned(),
        ),
    }
}

/// Writes the forecast the API serves for `symbol` now, once per origin.
async fn record(
    cache: &ModelCache,
    gate: &GatePolicy,
    policy: &MonitorPolicy,
    symbol: &Symbol,
    last_value: f64,
    run_id: &RunId,
) -> Result<Option<String>, StepError> {
    let Some(state) = cache.symbol(symbol).await? else {
        return Ok(None);
    };
    let (Some(origin), Some(&longest)) = (state.data_through, policy.horizons.iter().max()) else {
        return Ok(None);
    };
    // What the API answers a request without `model_type`; a symbol with
    // no production model yet has nothing served to record.
    let choice = match serving::choose(&state, symbol, None, gate) {
        Ok(choice) => choice,
        Err(ServingError::NoProductionModel { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let points = serving::forecast(&state, symbol, choice.served, longest)?;
    let record = ServedForecast {
        symbol: symbol.clone(),
        model: choice.served.kind,
        version: choice.served.version.clone(),
        origin,
        last_value,
        points: policy
            .horizons
            .iter()
            .filter_map(|&h| {
                let point = points.get(h.checked_sub(1)?)?;
                Some(ServedPoint {
                    h,
                    date: point.date,
                    forecast: point.forecast,
                })
            })
            .collect(),
        recorded_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        run_id: run_id.clone(),
    };
    let key = layout::forecast(symbol, origin);
    match cache
        .registry()
        .store()
        .create(&key, pretty_json(&record))
        .await
    {
        Ok(()) => Ok(Some(key)),
        // Already recorded today (a retry, or a second run): keep the first.
        Err(StoreError::AlreadyExists { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn scores_only_realised_points_against_naive() {
        let dates = vec![
            d("2026-11-02"),
            d("2026-11-03"),
            d("2026-11-04"),
            d("2026-11-05"),
        ];
        let target = vec![100.0, 102.0, 99.0, 104.0];
        let record = ServedForecast {
            symbol: Symbol::from_static("X"),
            model: ModelKind::Arima,
            version: VersionId::from_static("v"),
            origin: d("2026-11-03"),
            last_value: 102.0,
            points: vec![
                ServedPoint {
                    h: 1,
                    date: d("2026-11-04"),
                    forecast: 103.0,
                },
                ServedPoint {
                    h: 2,
                    date: d("2026-11-05"),
                    forecast: 103.0,
                },
                ServedPoint {
                    h: 5,
                    date: d("2026-11-10"),
                    forecast: 110.0,
                },
            ],
            recorded_at: String::new(),
            run_id: RunId::from_static("r"),
        };
        let mut score = Score::default();
        score.add(&record, &dates, &target);
        // h1: |103-99| = 4 vs naive |102-99| = 3, wrong direction;
        // h2: |103-104| = 1 vs naive 2, right direction; h5 not realised.
        assert_eq!(score.points, 2);
        assert_eq!(score.model_abs_error, 5.0);
        assert_eq!(score.naive_abs_error, 5.0);
        assert_eq!(score.mase_ratio(), Some(1.0));
        assert_eq!(score.directional_accuracy(), Some(0.5));
        // A record whose origin is not a day of the series scores nothing.
        let mut other = Score::default();
        other.add(
            &ServedForecast {
                origin: d("2026-11-01"),
                ..record
            },
            &dates,
            &target,
        );
        assert_eq!(other, Score::default());
    }
}
