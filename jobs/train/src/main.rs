//! The training job: AWS Batch runs it on Spot capacity for the training
//! workflow's Train state, with its parameters in the environment exactly
//! as the state's ContainerOverrides set them:
//!
//! | Variable | Example |
//! |---|---|
//! | `STOCKCAST_RUN_ID` | `2026-11-27T09-00-00Z-training` |
//! | `STOCKCAST_SYMBOLS` | `["AAPL","MSFT"]` |
//! | `STOCKCAST_MODELS` | `["naive","drift","linreg_lag5","arima","prophet","theta","ensemble","ridge_features","lstm"]` |
//! | `STOCKCAST_HORIZONS` | `[1,5,21]` (optional) |
//! | `STOCKCAST_BUCKET` or `STOCKCAST_STORE` | the data bucket, or `s3://…` / a folder |
//!
//! It writes the candidate versions and `runs/<run_id>/train.json`, which
//! the gate reads. On SIGTERM (the two-minute Spot interruption notice,
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
use stockcast::steps::{ErrorName, TrainInput};
use stockcast::store::Store;
use stockcast::train::{TrainContext, count_fits, train};

/// The exit code of a process stopped by SIGTERM (128 + 15).
const INTERRUPTED: u8 = 143;
/// A failure a new attempt can fix (storage still unavailable after the
/// store's own retries): EX_TEMPFAIL, which the job definition's
/// RetryStrategy retries like an interruption.
const TEMPORARY: u8 = 75;

struct Job {
    input: TrainInput,
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
        input: TrainInput {
            run_id: {
                let id = var("STOCKCAST_RUN_ID")?;
                RunId::new(id.as_str())
                    .with_context(|| format!("STOCKCAST_RUN_ID={id:?} is not valid"))?
            },
            symbols: json_var("STOCKCAST_SYMBOLS")?,
            models: json_var::<Vec<ModelKind>>("STOCKCAST_MODELS")?,
        },
        horizons: match var("STOCKCAST_HORIZONS") {
            Ok(_) => Some(json_var("STOCKCAST_HORIZONS")?),
            Err(_) => None,
        },
        store: Store::open(&location).with_context(|| format!("cannot open {location}"))?,
    })
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
    let total = count_fits(job.input.symbols.len(), &job.input.models, &config.protocol);
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
    tracing::info!(run_id = %job.input.run_id, symbols = ?job.input.symbols, models = ?job.input.models, total_fits = total, "training");
    match train(&context, &job.input, progress).await {
        Ok(output) => {
            tracing::info!(
                run_id = %job.input.run_id,
                candidates = output.candidates.len(),
                failures = output.failures.len(),
                "trained"
            );
            for failure in &output.failures {
                tracing::warn!(symbol = %failure.symbol, model = %failure.model, reason = %failure.reason, "not trained");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.name == ErrorName::TrainInterrupted => {
            tracing::warn!(error = %e, "interrupted");
            Ok(ExitCode::from(INTERRUPTED))
        }
        Err(e) if e.name.is_retryable() => {
            tracing::error!(error = %e, "training failed; a new attempt can fix it");
            Ok(ExitCode::from(TEMPORARY))
        }
        Err(e) => {
            tracing::error!(error = %e, "training failed");
            Ok(ExitCode::FAILURE)
        }
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
