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
use crate::ingest::{IngestContext, ingest};
use crate::promotion;
use crate::quality;
use crate::registry::{Registry, pretty_json};
use crate::steps::{
    ApprovalRequest, ErrorName, GateInput, GateOutput, IngestInput, IngestOutput, PromoteInput,
    PromoteOutput, QualityInput, QualityOutput, RunInput, StepError, TrainInput, TrainOutput,
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
    pub run_id: String,
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

pub fn manifest_key(run_id: &str) -> String {
    format!("runs/{run_id}/manifest.json")
}

/// A run id that sorts by time: `2026-11-27T09-00-12Z-local`.
pub fn new_run_id(kind: &str) -> String {
    format!("{}-{kind}", Utc::now().format("%Y-%m-%dT%H-%M-%SZ"))
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
        let step = |step: &'static str| move |error: StepError| PipelineError::Step { step, error };
        let started_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        // A vendor where prices or news come from one.
        let vendors = match (input.source, input.sentiment) {
            (crate::steps::Source::Sample, None) => None,
            _ => Some(
                crate::vendors::VendorClient::new(crate::vendors::VendorConfig::from_env())
                    .map_err(|e| step("ingest")(e.into()))?,
            ),
        };
        let ingest_context = IngestContext {
            store: self.store.clone(),
            sample_dir: self.sample_dir.clone(),
            vendors,
        };
        let mut ingested = Vec::new();
        for symbol in &input.symbols {
            let step_input = IngestInput {
                run_id: input.run_id.clone(),
                symbol: symbol.clone(),
                source: input.source,
                sentiment: input.sentiment,
            };
            ingested.push(
                ingest(&ingest_context, &step_input)
                    .await
                    .map_err(step("ingest"))?,
            );
        }
        let quality = quality::check(
            &self.store,
            &QualityInput {
                run_id: input.run_id.clone(),
                symbols: input.symbols.clone(),
            },
            &self.config.quality,
            self.config.protocol.used_rows(),
            Utc::now().date_naive(),
        )
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
        let train_context = TrainContext {
            store: self.store.clone(),
            config: self.config.clone(),
            git_commit: self.git_commit.clone(),
            stop: Default::default(),
        };
        let trained = train(
            &train_context,
            &TrainInput {
                run_id: input.run_id.clone(),
                symbols: report.quality.passed.clone(),
                models: input.models.clone(),
            },
            progress,
        )
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
        // As the training workflow: a run with a candidate waiting for
        // approval promotes nothing until the answer (which promotes all).
        let promoted = if decided.needs_approval {
            // Nothing waits locally: the staged candidates stay until
            // `cargo xtask approve --root …` or `reject` answers.
            let request = ApprovalRequest {
                run_id: input.run_id.clone(),
                task_token: approval::LOCAL_TOKEN.to_owned(),
                decisions: decided.decisions.clone(),
            };
            approval::request(&self.store, &request)
                .await
                .map_err(step("approval"))?;
            PromoteOutput {
                promoted: Vec::new(),
            }
        } else {
            promotion::promote(
                &registry,
                &PromoteInput {
                    run_id: input.run_id.clone(),
                    decisions: decided.decisions.clone(),
                    approved: false,
                },
            )
            .await
            .map_err(step("promote"))?
        };
        report.artifacts = trained
            .candidates
            .iter()
            .map(|c| c.metrics_key.trim_end_matches("metrics.json").to_owned())
            .chain([promotion::decisions_key(&input.run_id)])
            .collect();
        report.train = Some(trained);
        report.gate = Some(decided);
        report.promote = Some(promoted);
        self.finish(&mut report).await.map_err(step("manifest"))?;
        Ok(report)
    }

    async fn finish(&self, report: &mut RunReport) -> Result<(), StepError> {
        report.finished_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.store
            .create(&manifest_key(&report.run_id), pretty_json(report))
            .await?;
        Ok(())
    }
}
