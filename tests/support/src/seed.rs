//! Stores as earlier runs would have left them, made with the library's own
//! steps (ingest, the local pipeline) on the sample source, so that what a
//! test or a simulation starts from is exactly what a previous run writes.

use std::path::Path;
use std::sync::Arc;

use stockcast::config::PipelineConfig;
use stockcast::ids::{IdError, RunId, Symbol};
use stockcast::ingest::{IngestContext, ingest};
use stockcast::models::ModelKind;
use stockcast::pipeline::{LocalPipeline, PipelineError, RunReport};
use stockcast::steps::{IngestInput, RunInput, Source, StepError};
use stockcast::store::Store;

/// Why a store could not be seeded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seeding {symbol} failed: {error}")]
    Ingest {
        symbol: String,
        #[source]
        error: StepError,
    },
    #[error("seeding production with a local pipeline run failed: {0}")]
    Train(#[from] PipelineError),
    #[error("cannot seed: {0}")]
    Name(#[from] IdError),
}

/// A run of the local pipeline on the sample source.
#[derive(Debug, Clone)]
pub struct SampleRun<'a> {
    pub run_id: &'a str,
    pub env: &'a str,
    pub symbols: &'a [&'a str],
    pub models: &'a [ModelKind],
    /// The settings (the protocol's horizons are the run's).
    pub config: PipelineConfig,
}

/// Ingests, trains, gates and promotes `run` into `store` from the price
/// files in `sample_dir`: production versions to serve, compare against
/// or leave unchanged. Another run adds a version each.
pub async fn trained(
    store: &Store,
    sample_dir: &Path,
    run: SampleRun<'_>,
) -> Result<RunReport, SeedError> {
    let input = RunInput {
        run_id: RunId::new(run.run_id)?,
        env: run.env.to_owned(),
        symbols: run
            .symbols
            .iter()
            .map(|s| Symbol::new(*s))
            .collect::<Result<_, _>>()?,
        models: run.models.to_vec(),
        horizons: run.config.protocol.horizons.clone(),
        source: Source::Sample,
        sentiment: None,
    };
    let pipeline = LocalPipeline {
        store: store.clone(),
        config: run.config,
        sample_dir: sample_dir.to_path_buf(),
        git_commit: None,
    };
    Ok(pipeline.run(input, Arc::new(|| {})).await?)
}

/// Ingests the price files of `symbols` in `sample_dir` into `store`
/// (curated data, nothing trained).
pub async fn ingested<S: AsRef<str>>(
    store: &Store,
    sample_dir: &Path,
    symbols: &[S],
) -> Result<(), SeedError> {
    let context = IngestContext {
        store: store.clone(),
        sample_dir: sample_dir.to_path_buf(),
        vendors: None,
    };
    for symbol in symbols {
        let symbol = symbol.as_ref();
        let input = IngestInput {
            run_id: RunId::from_static("seed"),
            symbol: Symbol::new(symbol)?,
            source: Source::Sample,
            sentiment: None,
        };
        ingest(&context, &input)
            .await
            .map_err(|error| SeedError::Ingest {
                symbol: symbol.to_owned(),
                error,
            })?;
    }
    Ok(())
}
