//! The whole pipeline in one process: ingest → quality → train → gate →
//! promote (or stage, where approval is manual), calling each step through
//! the same typed contracts the Step Functions workflows use, against the
//! same store layout.
//!
//! This is what `cargo xtask local` runs on the embedded default (a local
//! folder). Every run writes an experiment manifest under `runs/<run-id>/`
//! listing its parameters, outputs, metrics and artifacts.

use std::path::PathBuf;

use chrono::Utc;
use serde::Serialize;

use crate::approval;
use crate::config::PipelineConfig;
use crate::ids::{IdError, RunId, Symbol};
use crate::ingest::{IngestContext, ingest};
use crate::layout;
use crate::promotion;
use crate::quality;
use crate::registry::{Registry, pretty_json};
use crate::steps::{
    ApprovalRequest, ErrorName, GateInput, GateOutput, IngestFailure, IngestInput, IngestOutput,
    PromoteInput, PromoteOutput, QualityInput, QualityOutput, RunInput, StepError, TrainInput,
    TrainOutput,
};
use crate::store::Store;
use crate::train::{Progress, TrainContext, train};

/// Everything a local run needs.
#[derive(Debug, Clone)]
pub struct LocalPipeline {
    pub store: Store,
    pub config: PipelineConfig,
    pub sample_dir: PathBuf,
    pub git_commit: Option<String>,
}

/// What each step of a run returned.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: RunId,
    pub input: RunInput,
    pub config: PipelineConfig,
    pub started_at: String,
    pub finished_at: String,
    pub ingest: Vec<IngestOutput>,
    pub quality: QualityOutput,
    pub train: Option<TrainOutput>,
    pub gate: Option<GateOutput>,
    pub promote: Option<PromoteOutput>,
    /// Keys of every object the run wrote to the registry.
    pub artifacts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("step {step} failed: {error}")]
    Step {
        step: &'static str,
        error: StepError,
    },
    #[error("data quality checks failed for every symbol; nothing was trained:\n{}", list_issues(.0))]
    QualityFailed(Box<RunReport>),
}

impl PipelineError {
    pub fn name(&self) -> ErrorName {
        match self {
            PipelineError::Step { error, .. } => error.name,
            PipelineError::QualityFailed(_) => ErrorName::DataQualityFailed,
        }
    }
}

fn list_issues(report: &RunReport) -> String {
    report
        .quality
        .issues
        .iter()
        .map(|i| {
            format!(
                "  {} {:?} ({:?}): {}",
                i.symbol, i.check, i.severity, i.detail
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A run id that sorts by time: `2026-11-27T09-00-12Z-local`.
pub fn new_run_id(kind: &str) -> Result<RunId, IdError> {
    RunId::new(format!(
        "{}-{kind}",
        Utc::now().format("%Y-%m-%dT%H-%M-%SZ")
    ))
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Names the step an error came from.
fn step(step: &'static str) -> impl Fn(StepError) -> PipelineError {
    move |error| PipelineError::Step { step, error }
}

impl LocalPipeline {
    /// Runs every step. A symbol that fails the data checks is skipped (the
    /// report names it) and the others train; where every symbol fails, the
    /// run stops before training and still writes the manifest.
    pub async fn run(
        &self,
        input: RunInput,
        progress: Progress,
    ) -> Result<RunReport, PipelineError> {
        let started_at = now();
        let (ingested, failed) = self.ingest_all(&input).await.map_err(step("ingest"))?;
        let quality = self
            .check_quality(&input, failed)
            .await
            .map_err(step("quality"))?;
        let mut report = RunReport {
            run_id: input.run_id.clone(),
            input: input.clone(),
            config: self.config.clone(),
            started_at,
            finished_at: String::new(),
            ingest: ingested,
            quality,
            train: None,
            gate: None,
            promote: None,
            artifacts: Vec::new(),
        };
        if !report.quality.any_passed {
            self.finish(&mut report).await.map_err(step("manifest"))?;
            return Err(PipelineError::QualityFailed(Box::new(report)));
        }
        let trained = self
            .train(&input, &report.quality.passed, progress)
            .await
            .map_err(step("train"))?;
        let registry = Registry::new(self.store.clone());
        let gate_input = GateInput {
            run_id: input.run_id.clone(),
            candidates: trained.candidates.clone(),
        };
        let decided = promotion::evaluate(&registry, &self.config.gate, &gate_input)
            .await
            .map_err(step("gate"))?;
        let promoted = self
            .promote_or_stage(&registry, &input.run_id, &decided)
            .await?;
        report.artifacts = trained
            .candidates
            .iter()
            .map(|c| layout::version(&c.symbol, c.model, &c.version))
            .chain([layout::decisions(&input.run_id)])
            .collect();
        report.train = Some(trained);
        report.gate = Some(decided);
        report.promote = Some(promoted);
        self.finish(&mut report).await.map_err(step("manifest"))?;
        Ok(report)
    }

    /// Ingests every symbol of the run, one after the other. A symbol the
    /// vendor fails on is skipped (the quality step names it), as the
    /// workflows' ingest Map goes on without it; any other error stops the
    /// run.
    async fn ingest_all(
        &self,
        input: &RunInput,
    ) -> Result<(Vec<IngestOutput>, Vec<IngestFailure>), StepError> {
        // A vendor where prices or news come from one.
        let vendors = match (input.source, input.sentiment) {
            (crate::steps::Source::Sample, None) => None,
            _ => Some(crate::vendors::VendorClient::new(
                crate::vendors::VendorConfig::from_env(),
            )?),
        };
        let context = IngestContext {
            store: self.store.clone(),
            sample_dir: self.sample_dir.clone(),
            vendors,
        };
        let (mut ingested, mut failed) = (Vec::new(), Vec::new());
        for symbol in &input.symbols {
            let step_input = IngestInput {
                run_id: input.run_id.clone(),
                symbol: symbol.clone(),
                source: input.source,
                sentiment: input.sentiment,
            };
            match ingest(&context, &step_input).await {
                Ok(output) => ingested.push(output),
                Err(e) if e.name.as_str().starts_with("Vendor.") => failed.push(IngestFailure {
                    symbol: symbol.clone(),
                    error: e.name.as_str().to_owned(),
                    cause: e.message,
                }),
                Err(e) => return Err(e),
            }
        }
        Ok((ingested, failed))
    }

    async fn check_quality(
        &self,
        input: &RunInput,
        ingest_failed: Vec<IngestFailure>,
    ) -> Result<QualityOutput, StepError> {
        quality::check(
            &self.store,
            &QualityInput {
                run_id: input.run_id.clone(),
                symbols: input.symbols.clone(),
                symbols_key: None,
                ingest_manifest: None,
                ingest_failed,
                shard_size: None,
            },
            &self.config.quality,
            self.config.protocol.used_rows(),
            Utc::now().date_naive(),
        )
        .await
    }

    async fn train(
        &self,
        input: &RunInput,
        passed: &[Symbol],
        progress: Progress,
    ) -> Result<TrainOutput, StepError> {
        let context = TrainContext {
            store: self.store.clone(),
            config: self.config.clone(),
            git_commit: self.git_commit.clone(),
            stop: Default::default(),
        };
        let train_input = TrainInput {
            run_id: input.run_id.clone(),
            symbols: passed.to_vec(),
            models: input.models.clone(),
            shard: crate::universe::Shard::WHOLE,
        };
        // One shard here; the same merge as the workflows' after it.
        let trained = train(&context, &train_input, progress).await?;
        crate::train::merge(&self.store, &input.run_id, 1).await?;
        Ok(trained)
    }

    /// As the training workflow: a run with a candidate waiting for
    /// approval promotes nothing until the answer (which promotes all).
    async fn promote_or_stage(
        &self,
        registry: &Registry,
        run_id: &RunId,
        decided: &GateOutput,
    ) -> Result<PromoteOutput, PipelineError> {
        if decided.needs_approval {
            // Nothing waits locally: the staged candidates stay until
            // `cargo xtask approve --root …` or `reject` answers.
            let request = ApprovalRequest {
                run_id: run_id.clone(),
                task_token: approval::LOCAL_TOKEN.to_owned(),
                decisions: decided.decisions.clone(),
            };
            approval::request(&self.store, &request)
                .await
                .map_err(step("approval"))?;
            return Ok(PromoteOutput {
                promoted: Vec::new(),
            });
        }
        let input = PromoteInput {
            run_id: run_id.clone(),
            decisions: decided.decisions.clone(),
            approved: false,
        };
        promotion::promote(registry, &input)
            .await
            .map_err(step("promote"))
    }

    async fn finish(&self, report: &mut RunReport) -> Result<(), StepError> {
        report.finished_at = now();
        self.store
            .create(&layout::run_manifest(&report.run_id), pretty_json(report))
            .await?;
        Ok(())
    }
}
