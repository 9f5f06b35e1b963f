//! System tests of stockcast: one binary, a module per area.

mod backtest;
mod cost;
mod crash;
mod infra;
mod pipeline;
mod store;
mod vendors;
mod workflows;
