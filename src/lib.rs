//! stockcast: honest daily stock forecasting.
//!
//! The library holds every piece of logic the pipeline runs: price series
//! and their validation ([`series`]), forecasting models behind one trait
//! ([`models`]), the walk-forward backtest that judges them ([`backtest`]),
//! storage with create-only and compare-and-swap writes ([`store`]), the
//! registry and promotion gate ([`registry`], [`gate`]), the step contracts
//! shared with the workflows ([`steps`]) and the steps themselves. The
//! operator tool (`xtask`), the Lambdas and the Batch job are thin clients.

// The modules by tier; a tier uses the ones above it, never those below.

// Core forecasting: price series, features, models and the backtest that
// judges them (with its plot). Pure computation on data handed in: no
// storage, no network, no clock.
pub mod backtest;
pub mod calendar;
pub mod features;
pub mod models;
pub mod plot;
pub mod rng;
pub mod series;

// Pipeline steps and storage: the step contracts, the settings and the
// steps themselves (ingest, quality, train, gate, promotion, approval), the
// typed names and key layout of the store, the one module that talks to
// storage and the registry kept in it, the price and news vendors, the
// synthetic universe that stands in for them at scale, the local runner,
// and the MLflow mirror.
pub mod approval;
pub mod config;
pub mod digest;
pub mod gate;
pub mod ids;
pub mod ingest;
pub mod layout;
pub mod map_run;
pub mod mlflow;
pub mod pipeline;
pub mod plan;
pub mod promotion;
pub mod quality;
pub mod registry;
pub mod secrets;
pub mod steps;
pub mod store;
pub mod synthetic;
pub mod train;
pub mod universe;
pub mod vendors;

// Serving: the serving core (the model cache and the choice of model for a
// request), the prediction API over it and the monitor that scores what it
// served.
pub mod api;
pub mod monitor;
pub mod serving;

// Infrastructure: the templates and their checks, what a deployed task does
// with its event, the binaries' logging and the spend cap.
pub mod functions;
pub mod infra;
pub mod logging;
#[cfg(feature = "spend-cap")]
pub mod spend_cap;

/// The name serde gives a unit enum variant (`"atr_14"`): what tables,
/// artifacts and errors show, so `Display` cannot drift from the JSON.
pub(crate) fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
