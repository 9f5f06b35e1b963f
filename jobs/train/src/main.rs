//! The training job: AWS Batch runs it on Spot capacity for the training
//! workflow's Train state, with its parameters in the environment exactly
//! as the state's ContainerOverrides set them:
//!
//! | Variable | Example |
//! |---|---|
//! | `STOCKCAST_RUN_ID` | `2026-11-27T09-00-00Z-training` |
//! | `STOCKCAST_SYMBOLS_KEY` | `runs/<run_id>/passed.json`: the run's symbols in the store |
//! | `STOCKCAST_SYMBOLS` | `["AAPL","MSFT"]`: the symbols inline, where there is no key |
//! | `STOCKCAST_SHARDS` | `4`: the run's shards (optional, default 1) |
//! | `AWS_BATCH_JOB_ARRAY_INDEX` | set by Batch on an array's children: this job's shard (default 0) |
//! | `STOCKCAST_MODELS` | `["naive","drift","linreg_lag5","arima","prophet","theta","ensemble","ridge_features","lstm"]` |
//! | `STOCKCAST_HORIZONS` | `[1,5,21]` (optional) |
//! | `STOCKCAST_BUCKET` or `STOCKCAST_STORE` | the data bucket, or `s3://…` / a folder |
//!
//! It trains its shard of the symbols (`stockcast::universe::select`) and
//! writes the candidate versions and `runs/<run_id>/train/shard-<n>.json`,
//! which the merge step gathers for the gate. On SIGTERM (the two-minute Spot interruption notice,
//! or a job being stopped) it stops before writing anything and exits 143,
//! which the job definition's retry strategy retries; a retry starts over,
//! and a retry of a run that had finished returns its recorded output.
//! Exit codes: 0 done, 1 failed (not retried), 143 interrupted.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use stockcast::ids::RunId;

use anyhow::Context;
use serde::de::DeserializeOwned;
use stockcast::config::PipelineConfig;
use stockcast::models::ModelKind;
use stockcast::steps::{ErrorName, StepError};
use stockcast::store::Store;
use stockcast::train::exit_code::{INTERRUPTED, TEMPORARY};
use stockcast::train::{RunSymbols, TrainContext, count_fits, shard_input, train};
use stockcast::universe::Shard;

struct Job {
    run_id: RunId,
    symbols: RunSymbols,
    models: Vec<ModelKind>,
    shard: Shard,
    horizons: Option<Vec<usize>>,
    store: Store,
}

fn var(name: &str) -> anyhow::Result<String> {
    stockcast::functions::required_var(name).map_err(anyhow::Error::msg)
}

fn json_var<T: DeserializeOwned>(name: &str) -> anyhow::Result<T> {
    let text = var(name)?;
    serde_json::from_str(&text).with_context(|| format!("{name}={text:?} is not valid"))
}

fn job_from_env() -> anyhow::Result<Job> {
    let location = match var("STOCKCAST_STORE") {
        Ok(location) => location,
        Err(_) => format!("s3://{}", var("STOCKCAST_BUCKET")?),
    };
    Ok(Job {
        run_id: {
            let id = var("STOCKCAST_RUN_ID")?;
            RunId::new(id.as_str())
                .with_context(|| format!("STOCKCAST_RUN_ID={id:?} is not valid"))?
        },
        symbols: match var("STOCKCAST_SYMBOLS_KEY") {
            Ok(key) => RunSymbols::Stored(key),
            Err(_) => RunSymbols::Inline(json_var("STOCKCAST_SYMBOLS")?),
        },
        models: json_var::<Vec<ModelKind>>("STOCKCAST_MODELS")?,
        shard: Shard {
            index: optional_number("AWS_BATCH_JOB_ARRAY_INDEX")?.unwrap_or(0),
            count: optional_number("STOCKCAST_SHARDS")?.unwrap_or(1),
        },
        horizons: match var("STOCKCAST_HORIZONS") {
            Ok(_) => Some(json_var("STOCKCAST_HORIZONS")?),
            Err(_) => None,
        },
        store: Store::open(&location).with_context(|| format!("cannot open {location}"))?,
    })
}

/// A count or an index from the environment; `None` where it is not set.
fn optional_number(name: &str) -> anyhow::Result<Option<usize>> {
    match std::env::var(name) {
        Ok(text) if !text.is_empty() => text
            .parse()
            .map(Some)
            .with_context(|| format!("{name}={text:?} is not a number")),
        _ => Ok(None),
    }
}

/// Sets `stop` on SIGTERM or SIGINT.
fn stop_on_signals(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("stop requested: finishing without writing a partial run");
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
}

async fn run() -> anyhow::Result<ExitCode> {
    let job = job_from_env()?;
    let input = match shard_input(&job.store, job.run_id, job.symbols, job.models, job.shard).await
    {
        Ok(input) => input,
        Err(e) => return Ok(failed(&e)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signals(stop.clone())?;
    let mut config = PipelineConfig::default();
    if let Some(horizons) = job.horizons {
        config.protocol.horizons = horizons;
        // Checked once, here, against the variable's name: a bad horizon
        // must not reach every symbol's backtest as a model failure.
        config.protocol.check().with_context(|| {
            format!(
                "STOCKCAST_HORIZONS={:?} is not valid",
                config.protocol.horizons
            )
        })?;
    }
    let total = count_fits(input.symbols.len(), &input.models, &config.protocol);
    let done = Arc::new(AtomicUsize::new(0));
    let progress = {
        let done = done.clone();
        Arc::new(move || {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of((total / 10).max(1)) {
                tracing::info!(fitted = n, total, "backtest progress");
            }
        })
    };
    let context = TrainContext {
        store: job.store,
        config,
        git_commit: std::env::var("STOCKCAST_GIT_COMMIT").ok(),
        stop,
    };
    tracing::info!(run_id = %input.run_id, symbols = ?input.symbols, models = ?input.models, total_fits = total, "training");
    match train(&context, &input, progress).await {
        Ok(output) => {
            tracing::info!(
                run_id = %input.run_id,
                candidates = output.candidates.len(),
                failures = output.failures.len(),
                "trained"
            );
            for failure in &output.failures {
                tracing::warn!(symbol = %failure.symbol, model = %failure.model, reason = %failure.reason, "not trained");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&e)),
    }
}

/// The exit code a step error ends the job with, logged.
fn failed(e: &StepError) -> ExitCode {
    if e.name == ErrorName::TrainInterrupted {
        tracing::warn!(error = %e, "interrupted");
        ExitCode::from(INTERRUPTED)
    } else if e.name.is_retryable() {
        tracing::error!(error = %e, "training failed; a new attempt can fix it");
        ExitCode::from(TEMPORARY)
    } else {
        tracing::error!(error = %e, "training failed");
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    stockcast::logging::init_json();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run()).unwrap_or_else(|e| {
        tracing::error!(error = format!("{e:#}"), "cannot start training");
        ExitCode::FAILURE
    })
}
