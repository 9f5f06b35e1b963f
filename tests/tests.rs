//! System tests of stockcast: one binary, a module per area.

mod backtest;
