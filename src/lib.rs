//! stockcast: honest daily stock forecasting.
//!
//! The library holds every piece of logic the pipeline runs: price series
//! and their validation ([`series`]), forecasting models behind one trait
//! ([`models`]) and the walk-forward backtest that judges them
//! ([`backtest`]). The operator tool (`xtask`), the Lambdas and the Batch job
//! are thin clients of it.

pub mod backtest;
pub mod models;
pub mod series;

#[cfg(test)]
mod testutil;
