//! `cargo xtask`: the operator tool of stockcast.
//!
//! Every command is a thin client of the `stockcast` library; this file only
//! parses flags, moves to the project root and dispatches. Errors are printed
//! once, here, with their whole chain.

mod backtest;
mod bench;
mod bench_api;
mod ci;
mod flags;
mod infra;
mod local;
mod serve;
mod simulate;
mod table;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = flags::Cli::parse();
    if let Err(e) = std::env::set_current_dir(project_root()) {
        eprintln!("xtask: cannot enter the project root: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        flags::Command::Backtest(cmd) => cmd.run(),
        flags::Command::Bench(cmd) => cmd.run(),
        flags::Command::Ci(cmd) => cmd.run(),
        flags::Command::Local(cmd) => cmd.run(),
        flags::Command::Models(cmd) => cmd.run(),
        flags::Command::Rollback(cmd) => cmd.run(),
        flags::Command::Tools(cmd) => cmd.run(),
        flags::Command::Serve(cmd) => cmd.run(),
        flags::Command::BenchApi(cmd) => cmd.run(),
        flags::Command::Render(cmd) => cmd.run(),
        flags::Command::Check(cmd) => cmd.run(),
        flags::Command::Ingest(cmd) => cmd.run(),
        flags::Command::Simulate(cmd) => cmd.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask's manifest lives one level below it.
fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
