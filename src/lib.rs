//! stockcast: honest daily stock forecasting.
//!
//! The library holds every piece of logic the pipeline runs: price series
//! and their validation ([`series`]), forecasting models behind one trait
//! ([`models`]), the walk-forward backtest that judges them ([`backtest`]),
//! storage with create-only and compare-and-swap writes ([`store`]), the
//! registry and promotion gate ([`registry`], [`gate`]), the step contracts
//! shared with the workflows ([`steps`]) and the steps themselves. The
//! operator tool (`xtask`), the Lambdas and the Batch job are thin clients.

pub mod api;
pub mod approval;
pub mod backtest;
pub mod calendar;
pub mod config;
pub mod digest;
pub mod features;
pub mod functions;
pub mod gate;
pub mod ids;
pub mod infra;
pub mod ingest;
pub mod layout;
pub mod logging;
pub mod mlflow;
pub mod models;
pub mod monitor;
pub mod pipeline;
pub mod plot;
pub mod promotion;
pub mod quality;
pub mod registry;
pub mod rng;
pub mod secrets;
pub mod series;
pub mod serving;
#[cfg(feature = "spend-cap")]
pub mod spend_cap;
pub mod steps;
pub mod store;
pub mod train;
pub mod vendors;

/// The name serde gives a unit enum variant (`"atr_14"`): what tables,
/// artifacts and errors show, so `Display` cannot drift from the JSON.
pub(crate) fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
