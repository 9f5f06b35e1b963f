//! System tests of stockcast: one binary, a module per area.

mod backtest;
mod harness;
mod pipeline;
mod store;
