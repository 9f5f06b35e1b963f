//! `cargo xtask`: the operator tool of stockcast.
//!
//! Every command is a thin client of the `stockcast` library; this file only
//! parses flags, moves to the project root and dispatches. Errors are printed
//! once, here, with their whole chain.

mod ablation;
#[cfg(feature = "aws")]
mod aws;
mod backtest;
mod bench;
mod bench_api;
mod ci;
mod cost;
mod flags;
mod infra;
mod local;
mod mlflow;
mod package;
mod process;
mod serve;
mod simulate;
mod step;
mod table;
mod tools;
mod usage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = flags::Cli::parse();
    if let Err(e) = std::env::set_current_dir(project_root()) {
        eprintln!("xtask: cannot enter the project root: {e}");
        return ExitCode::from(2);
    }
    if cli.command.needs_aws() && !cfg!(feature = "aws") {
        return with_aws_feature();
    }
    let result = match cli.command {
        flags::Command::Ablation(cmd) => cmd.run(),
        flags::Command::Backtest(cmd) => cmd.run(),
        flags::Command::Bench(cmd) => cmd.run(),
        flags::Command::Ci(cmd) => cmd.run(),
        flags::Command::Local(cmd) => cmd.run(),
        flags::Command::Models(cmd) => cmd.run(),
        flags::Command::Mlflow(cmd) => cmd.run(),
        flags::Command::Rollback(cmd) => cmd.run(),
        flags::Command::Tools(cmd) => cmd.run(),
        flags::Command::Serve(cmd) => cmd.run(),
        flags::Command::BenchApi(cmd) => cmd.run(),
        flags::Command::Render(cmd) => cmd.run(),
        flags::Command::Check(cmd) => cmd.run(),
        flags::Command::Cost(cmd) => cmd.run(),
        flags::Command::Ingest(cmd) => cmd.run(),
        flags::Command::Simulate(cmd) => cmd.run(),
        flags::Command::Step(cmd) => cmd.run(),
        flags::Command::Package(cmd) => cmd.run(),
        flags::Command::Approve(cmd) if cmd.root.is_some() => cmd.run_local(true),
        flags::Command::Reject(cmd) if cmd.root.is_some() => cmd.run_local(false),
        #[cfg(feature = "aws")]
        flags::Command::Bootstrap(cmd) => cmd.run(),
        #[cfg(feature = "aws")]
        flags::Command::Deploy(cmd) => cmd.run(),
        #[cfg(feature = "aws")]
        flags::Command::Run(cmd) => cmd.run(),
        #[cfg(feature = "aws")]
        flags::Command::Status(cmd) => cmd.run(),
        #[cfg(feature = "aws")]
        flags::Command::Approve(cmd) => cmd.run(true),
        #[cfg(feature = "aws")]
        flags::Command::Reject(cmd) => cmd.run(false),
        #[cfg(feature = "aws")]
        flags::Command::Destroy(cmd) => cmd.run(),
        #[cfg(feature = "aws")]
        flags::Command::Resume(cmd) => cmd.run(),
        #[cfg(not(feature = "aws"))]
        _ => unreachable!("AWS commands re-run with the aws feature"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: many errors already quote
/// their source in their own message, which `{:#}` would repeat.
pub(crate) fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Runs this command again from an xtask built with the `aws` feature. The
/// AWS SDK takes minutes to compile, so only the commands that talk to AWS
/// pay for it, on first use.
fn with_aws_feature() -> ExitCode {
    let mut cargo =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--bin",
            "xtask",
            "--features",
            "aws",
            "--",
        ])
        .args(std::env::args_os().skip(1));
    // The re-run prints its own errors: only its exit code is passed on.
    match process::status("running xtask with the aws feature", &mut cargo) {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask's manifest lives one level below it.
fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
