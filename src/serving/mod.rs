//! The serving core, apart from HTTP: the cache of re-anchored models
//! ([`cache`]) and the choice of the model that answers a request
//! ([`choose`]), with dated forecast points ([`forecast`]). The API (routing,
//! validation, status codes) and the monitor (which records what the API
//! would serve) both call it, so both serve the same model the same way.

pub mod cache;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use self::cache::{ModelCache, ServedModel, SymbolState};
use crate::calendar;
use crate::config::GatePolicy;
use crate::ids::Symbol;
use crate::models::ModelKind;
use crate::registry::RegistryError;
use crate::store::StoreError;

/// Why a symbol could not be served; the API and the monitor each name
/// these in their own terms (a status code, a workflow error name).
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A registry record that cannot be read (never a storage outage).
    #[error(transparent)]
    Registry(RegistryError),
    #[error("the latest data of {symbol} is unreadable: {reason}")]
    UnreadableData { symbol: Symbol, reason: String },
    #[error("{symbol} {model}: {reason}")]
    AnchorFailed {
        symbol: Symbol,
        model: ModelKind,
        reason: String,
    },
    #[error("{symbol} has no {model} model; available: {available}")]
    NoSuchModel {
        symbol: Symbol,
        model: ModelKind,
        available: String,
    },
    #[error("{symbol} has no production model yet: run the training pipeline")]
    NoProductionModel { symbol: Symbol },
    #[error("the model could not forecast: {reason}")]
    ForecastFailed { reason: String },
    /// A forecast is dated from the last curated day; without one there is
    /// no honest date to give (never 1970-01-01).
    #[error("{symbol} has no curated prices to date a forecast from: ingest it first")]
    NoData { symbol: Symbol },
}

impl From<RegistryError> for ServingError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Store(s) => ServingError::Store(s),
            other => ServingError::Registry(other),
        }
    }
}

/// The model that answers a request, and why it was chosen.
#[derive(Debug)]
pub struct Choice<'a> {
    pub served: &'a ServedModel,
    pub selection: String,
}

/// A named model if the symbol has it (promoted or not: Prophet users ask
/// for Prophet), otherwise the best production model by the gate's metric.
pub fn choose<'a>(
    state: &'a SymbolState,
    symbol: &Symbol,
    requested: Option<ModelKind>,
    gate: &GatePolicy,
) -> Result<Choice<'a>, ServingError> {
    let Some(kind) = requested else {
        let best = state
            .default_model(gate)
            .ok_or_else(|| ServingError::NoProductionModel {
                symbol: symbol.clone(),
            })?;
        let mut selection = format!(
            "best production model by {} h{}",
            gate.metric.name(),
            gate.horizon
        );
        if best.kind.is_baseline() {
            selection.push_str(" (a baseline: no learned model beats it for this symbol)");
        }
        return Ok(Choice {
            served: best,
            selection,
        });
    };
    let served = state
        .models
        .iter()
        .find(|m| m.kind == kind)
        .ok_or_else(|| ServingError::NoSuchModel {
            symbol: symbol.clone(),
            model: kind,
            available: state
                .models
                .iter()
                .map(|m| m.kind.name())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let selection = if served.promoted {
        "requested".to_owned()
    } else {
        format!(
            "requested; not in production: the gate has not promoted {kind} for {symbol}, \
             so its latest version is served as asked (GET /models lists production)"
        )
    };
    Ok(Choice { served, selection })
}

/// One forecast step, dated by the US trading calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    pub step: usize,
    pub date: NaiveDate,
    pub forecast: f64,
    pub lo80: Option<f64>,
    pub hi80: Option<f64>,
}

/// The next `days` trading days' forecasts of a served model, dated from the
/// last curated day.
pub fn forecast(
    state: &SymbolState,
    symbol: &Symbol,
    served: &ServedModel,
    days: usize,
) -> Result<Vec<ForecastPoint>, ServingError> {
    let forecast = served
        .anchored
        .forecast(days)
        .map_err(|e| ServingError::ForecastFailed {
            reason: e.to_string(),
        })?;
    let data_through = state.data_through.ok_or_else(|| ServingError::NoData {
        symbol: symbol.clone(),
    })?;
    let dates = calendar::next_trading_days(data_through, days);
    Ok((0..days)
        .zip(dates)
        .filter_map(|(i, date)| {
            Some(ForecastPoint {
                step: i + 1,
                date,
                forecast: *forecast.mean.get(i)?,
                lo80: forecast.lower.as_ref().and_then(|l| l.get(i).copied()),
                hi80: forecast.upper.as_ref().and_then(|u| u.get(i).copied()),
            })
        })
        .collect())
}
