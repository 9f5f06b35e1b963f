//! Mirrors the store into an MLflow tracking server, idempotently.
//!
//! The store is the source of truth and MLflow a view of it: every write
//! here is preceded by a read that finds what is already there, so a
//! second sync writes nothing and an interrupted one resumes.
//!
//! - The experiment is looked up by name, created only if missing.
//! - One `runs/search` lists the experiment's runs; each carries the tag
//!   `stockcast.key` (`run/<run id>` for a pipeline run,
//!   `version/<symbol>/<model>/<version>` for a version's child run). A run
//!   marked FINISHED is complete and left alone. A run still RUNNING is a
//!   sync that stopped half-way: its params, metrics (fixed timestamps, so
//!   MLflow de-duplicates them), tags and artifacts (overwritten) are logged
//!   again and then it is finished.
//! - A registered model `stockcast.<symbol>.<model>` gets one version per
//!   registry version, found by its `stockcast.version` tag before one is
//!   created (MLflow's version creation is not idempotent).
//! - Aliases are compared with the store's and only the differences are
//!   written: production first, then previous and staging, so a sync that
//!   stops half-way leaves production right; the next one finishes.
//!
//! Two syncs at once could both create the same run; run one at a time.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::client::{Client, MlflowError};
use super::record::{RunRecord, pipeline_record, version_record};
use super::source::{StoredRun, StoredVersion, registered_model_name, snapshot, version_files};
use crate::ids::RunId;
use crate::layout::{self, VersionFile};
use crate::registry::{Registry, RegistryError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Mlflow(#[from] MlflowError),
    #[error("failed to read the store: {0}")]
    Registry(#[from] RegistryError),
    #[error("failed to read the store: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the run {run_id} stores artifacts at {uri}, which only MLflow's Python client can write; start the server without --no-serve-artifacts (it then proxies mlflow-artifacts:/)"
    )]
    ArtifactsNotProxied { run_id: String, uri: String },
    #[error("{name}: the store's {alias} is version {version}, which is not in MLflow")]
    AliasTarget {
        name: String,
        alias: String,
        version: String,
    },
    #[error("{name} is not a valid MLflow model name (no / or : allowed)")]
    InvalidName { name: String },
}

/// How many objects of each kind a sync wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub experiments: usize,
    pub runs: usize,
    /// Runs found half-written and completed.
    pub runs_resumed: usize,
    pub params: usize,
    pub metrics: usize,
    pub artifacts: usize,
    pub registered_models: usize,
    pub model_versions: usize,
    pub aliases_set: usize,
    pub aliases_removed: usize,
}

impl Counts {
    /// Whether the sync changed anything in MLflow.
    pub fn wrote_anything(&self) -> bool {
        *self != Counts::default()
    }
}

/// What a sync did, and where to look.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    pub experiment_id: String,
    pub counts: Counts,
    /// Pipeline run id → UI URL of its MLflow run.
    pub run_urls: BTreeMap<String, String>,
    /// (registered model, MLflow version, UI URL) of every production alias.
    pub production: Vec<(String, String, String)>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "created {} experiment(s), {} run(s) ({} resumed), {} registered model(s), {} version(s); logged {} params, {} metrics, {} artifacts; set {} alias(es), removed {}",
            c.experiments,
            c.runs,
            c.runs_resumed,
            c.registered_models,
            c.model_versions,
            c.params,
            c.metrics,
            c.artifacts,
            c.aliases_set,
            c.aliases_removed
        )?;
        if let Some((run_id, url)) = self.run_urls.iter().next_back() {
            writeln!(f, "latest run {run_id}: {url}")?;
        }
        for (name, version, url) in &self.production {
            writeln!(f, "{name} production = version {version}: {url}")?;
        }
        Ok(())
    }
}

/// The MLflow state of one run found by `runs/search`.
#[derive(Debug, Clone)]
struct FoundRun {
    id: String,
    finished: bool,
    artifact_uri: String,
}

/// Mirrors everything in `registry` into `experiment` on the server.
pub async fn sync(
    client: &Client,
    registry: &Registry,
    experiment: &str,
) -> Result<SyncReport, MirrorError> {
    let snapshot = snapshot(registry).await?;
    let mut report = SyncReport::default();
    let experiment_id = ensure_experiment(client, experiment, &mut report.counts).await?;
    let mut found = find_runs(client, &experiment_id).await?;
    let mut mirror = Mirror {
        client,
        registry,
        experiment_id: experiment_id.clone(),
        counts: Counts::default(),
    };
    // (symbol, model) → store version → MLflow version number.
    let mut versions: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    let mut known_models: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (run_id, run) in &snapshot.runs {
        let parent = mirror.pipeline_run(run_id, run, &mut found).await?;
        report
            .run_urls
            .insert(run_id.to_string(), client.run_url(&experiment_id, &parent));
        for version in &run.versions {
            let child = mirror.version_run(version, &parent, &mut found).await?;
            let name = registered_model_name(&version.symbol, version.model);
            if !known_models.contains_key(&name) {
                let existing = mirror.ensure_registered_model(&name).await?;
                known_models.insert(name.clone(), existing);
            }
            let by_version = known_models.entry(name.clone()).or_default();
            let number = match by_version.get(version.version.as_str()) {
                Some(number) => number.clone(),
                None => {
                    let number = mirror.create_version(&name, version, &child).await?;
                    by_version.insert(version.version.to_string(), number.clone());
                    number
                }
            };
            versions
                .entry((version.symbol.to_string(), version.model.to_string()))
                .or_default()
                .insert(version.version.to_string(), number);
        }
    }
    for stored in &snapshot.aliases {
        let key = (stored.symbol.to_string(), stored.model.to_string());
        let numbers = versions.get(&key).cloned().unwrap_or_default();
        if let Some(entry) = mirror.mirror_aliases(stored, &numbers).await? {
            report.production.push(entry);
        }
    }
    report.experiment_id = experiment_id;
    let experiments = report.counts.experiments;
    report.counts = Counts {
        experiments,
        ..mirror.counts
    };
    Ok(report)
}

/// The experiment's id, creating it if it does not exist.
async fn ensure_experiment(
    client: &Client,
    name: &str,
    counts: &mut Counts,
) -> Result<String, MirrorError> {
    let id_of = |v: &Value| {
        v.pointer("/experiment/experiment_id")
            .or_else(|| v.get("experiment_id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match client
        .get("experiments/get-by-name", &[("experiment_name", name)])
        .await
    {
        Ok(found) => return id_of(&found).ok_or_else(|| bad("experiments/get-by-name")),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let created = client
        .post(
            "experiments/create",
            // Without the kind, MLflow 3's UI shows the experiment as a GenAI one.
            &json!({
                "name": name,
                "tags": [{"key": "mlflow.experimentKind", "value": "custom_model_development"}],
            }),
        )
        .await?;
    counts.experiments += 1;
    id_of(&created).ok_or_else(|| bad("experiments/create"))
}

pub(super) fn bad(path: &str) -> MirrorError {
    MirrorError::Mlflow(MlflowError::BadResponse {
        path: path.to_owned(),
        reason: "an expected field is missing".into(),
    })
}

/// Every active run of the experiment with a `stockcast.key` tag, by key.
async fn find_runs(
    client: &Client,
    experiment_id: &str,
) -> Result<BTreeMap<String, FoundRun>, MirrorError> {
    let mut found = BTreeMap::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut body = json!({
            "experiment_ids": [experiment_id],
            "filter": "tags.`stockcast.key` != ''",
            "max_results": 1000,
        });
        if let Some(token) = &page_token {
            body["page_token"] = json!(token);
        }
        let page = client.post("runs/search", &body).await?;
        for run in page
            .get("runs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let info = run.get("info");
            let field = |name: &str| {
                info.and_then(|i| i.get(name))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let key = run
                .pointer("/data/tags")
                .and_then(|t| tag(t, "stockcast.key"));
            if let Some(key) = key {
                found.insert(
                    key.to_owned(),
                    FoundRun {
                        id: field("run_id"),
                        finished: field("status") == "FINISHED",
                        artifact_uri: field("artifact_uri"),
                    },
                );
            }
        }
        page_token = next_page_token(&page);
        if page_token.is_none() {
            return Ok(found);
        }
    }
}

/// One sync's connection, store and tally.
pub(super) struct Mirror<'a> {
    pub(super) client: &'a Client,
    pub(super) registry: &'a Registry,
    pub(super) experiment_id: String,
    pub(super) counts: Counts,
}

/// MLflow's `runs/log-batch` limits.
const MAX_PARAMS: usize = 100;
const MAX_TAGS: usize = 100;
const MAX_METRICS: usize = 1000;

impl Mirror<'_> {
    /// The parent run of a pipeline run: its id, created and completed if needed.
    async fn pipeline_run(
        &mut self,
        run_id: &RunId,
        run: &StoredRun,
        found: &mut BTreeMap<String, FoundRun>,
    ) -> Result<String, MirrorError> {
        let key = format!("run/{run_id}");
        let mut record = pipeline_record(run_id, run.manifest.as_ref());
        if record.timestamp_ms == 0 {
            record.timestamp_ms = run
                .versions
                .iter()
                .map(|v| super::record::millis(&v.lineage.created_at))
                .min()
                .unwrap_or(0);
        }
        record.tag("mlflow.runName", run_id);
        let mut files = Vec::new();
        if run.manifest.is_some() {
            files.push(("manifest.json".to_owned(), layout::run_manifest(run_id)));
        }
        if run.has_decisions {
            files.push(("decisions.json".to_owned(), layout::decisions(run_id)));
        }
        self.ensure_run(&key, record, &files, found).await
    }

    /// The child run of a version, under its pipeline run's parent.
    async fn version_run(
        &mut self,
        version: &StoredVersion,
        parent: &str,
        found: &mut BTreeMap<String, FoundRun>,
    ) -> Result<String, MirrorError> {
        let key = format!(
            "version/{}/{}/{}",
            version.symbol, version.model, version.version
        );
        if let Some(run) = found.get(&key)
            && run.finished
        {
            return Ok(run.id.clone());
        }
        let model_json = self
            .registry
            .store()
            .get(&layout::version_file(
                &version.symbol,
                version.model,
                &version.version,
                VersionFile::Model,
            ))
            .await?
            .and_then(|o| serde_json::from_slice::<Value>(&o.bytes).ok());
        let mut record = version_record(&version.metrics, &version.lineage, model_json.as_ref());
        record.tag("mlflow.parentRunId", parent);
        record.tag(
            "mlflow.runName",
            format!("{} {}", version.symbol, version.model),
        );
        if let Some((verdict, reasons)) = &version.decision {
            record.tag("stockcast.gate.decision", verdict);
            record.tag("stockcast.gate.reasons", reasons.join("; "));
        }
        let files: Vec<(String, String)> = version_files(self.registry, version)
            .await?
            .into_iter()
            // The model itself goes where the registry version's source points.
            .map(|(name, key)| match name.as_str() {
                "model.json" => ("model/model.json".to_owned(), key),
                _ => (name, key),
            })
            .collect();
        self.ensure_run(&key, record, &files, found).await
    }

    /// Finds the run tagged `key` or creates it; unless it is finished,
    /// logs the record and uploads the files, then finishes it.
    async fn ensure_run(
        &mut self,
        key: &str,
        mut record: RunRecord,
        files: &[(String, String)],
        found: &mut BTreeMap<String, FoundRun>,
    ) -> Result<String, MirrorError> {
        record.tag("stockcast.key", key);
        let run = match found.get(key) {
            Some(run) if run.finished => return Ok(run.id.clone()),
            Some(run) => {
                self.counts.runs_resumed += 1;
                run.clone()
            }
            None => {
                let created = self
                    .client
                    .post(
                        "runs/create",
                        &json!({
                            "experiment_id": self.experiment_id,
                            "start_time": record.timestamp_ms,
                            "tags": [{"key": "stockcast.key", "value": key}],
                        }),
                    )
                    .await?;
                let info = created
                    .pointer("/run/info")
                    .ok_or_else(|| bad("runs/create"))?;
                let field = |name: &str| info.get(name).and_then(Value::as_str).map(str::to_owned);
                let run = FoundRun {
                    id: field("run_id").ok_or_else(|| bad("runs/create"))?,
                    finished: false,
                    artifact_uri: field("artifact_uri").unwrap_or_default(),
                };
                self.counts.runs += 1;
                found.insert(key.to_owned(), run.clone());
                run
            }
        };
        self.log(&run.id, &record).await?;
        let location = run
            .artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .ok_or_else(|| MirrorError::ArtifactsNotProxied {
                run_id: run.id.clone(),
                uri: run.artifact_uri.clone(),
            })?;
        for (name, store_key) in files {
            let Some(object) = self.registry.store().get(store_key).await? else {
                continue;
            };
            self.client
                .put_artifact(location, name, object.bytes.to_vec())
                .await?;
            self.counts.artifacts += 1;
        }
        self.client
            .post(
                "runs/update",
                &json!({
                    "run_id": run.id,
                    "status": "FINISHED",
                    "end_time": record.end_ms.max(record.timestamp_ms),
                }),
            )
            .await?;
        if let Some(entry) = found.get_mut(key) {
            entry.finished = true;
        }
        Ok(run.id)
    }

    /// Logs params, metrics and tags in batches within MLflow's limits.
    async fn log(&mut self, run_id: &str, record: &RunRecord) -> Result<(), MirrorError> {
        let pair = |(k, v): &(String, String)| json!({"key": k, "value": v});
        let metrics: Vec<Value> = record
            .metrics
            .iter()
            .map(|m| {
                json!({"key": m.key, "value": m.value, "timestamp": record.timestamp_ms, "step": m.step})
            })
            .collect();
        let params: Vec<Value> = record.params.iter().map(pair).collect();
        let tags: Vec<Value> = record.tags.iter().map(pair).collect();
        let (mut p, mut m, mut t) = (&params[..], &metrics[..], &tags[..]);
        while !(p.is_empty() && m.is_empty() && t.is_empty()) {
            let (p_now, p_rest) = p.split_at(p.len().min(MAX_PARAMS));
            let (t_now, t_rest) = t.split_at(t.len().min(MAX_TAGS));
            // log-batch also caps the items of one call at 1000 in total.
            let room = MAX_METRICS - p_now.len() - t_now.len();
            let (m_now, m_rest) = m.split_at(m.len().min(room));
            self.client
                .post(
                    "runs/log-batch",
                    &json!({"run_id": run_id, "params": p_now, "metrics": m_now, "tags": t_now}),
                )
                .await?;
            self.counts.params += p_now.len();
            self.counts.metrics += m_now.len();
            (p, m, t) = (p_rest, m_rest, t_rest);
        }
        Ok(())
    }
}

/// The token of the next page of a search answer; `None` on the last page
/// (MLflow answers an empty token there).
pub(super) fn next_page_token(page: &Value) -> Option<String> {
    page.get("next_page_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The value of the tag `key` in MLflow's list of `{"key", "value"}` tags.
pub(super) fn tag<'a>(tags: &'a Value, key: &str) -> Option<&'a str> {
    tags.as_array()?
        .iter()
        .find(|t| t.get("key").and_then(Value::as_str) == Some(key))?
        .get("value")?
        .as_str()
}
