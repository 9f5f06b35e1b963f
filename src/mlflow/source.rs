//! What the mirror reads from the store: every complete registry version
//! grouped by the pipeline run that made it, each run's manifest and gate
//! decisions, and every (symbol, model)'s aliases.
//!
//! Only small JSON files are read up front; a version's artifacts are read
//! when they are uploaded, so a sync with nothing to do reads little.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::ids::{RunId, Symbol, VersionId};
use crate::layout::{self, Alias, ModelKey};
use crate::models::ModelKind;
use crate::registry::{Lineage, Registry, RegistryError, VersionMetrics};
use crate::store::StoreError;

/// One complete version of the registry.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub version: VersionId,
    pub metrics: VersionMetrics,
    pub lineage: Lineage,
    /// The gate's verdict (`promote`, `reject`, `needs_approval`) and reasons.
    pub decision: Option<(String, Vec<String>)>,
}

/// One pipeline run and the versions it made.
#[derive(Debug, Clone, Default)]
pub struct StoredRun {
    pub manifest: Option<Value>,
    pub has_decisions: bool,
    pub versions: Vec<StoredVersion>,
}

/// The aliases of one (symbol, model): alias → store version. `previous`
/// is the one production carries (the production record is the truth;
/// `previous.json` is a copy).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAliases {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub aliases: BTreeMap<Alias, VersionId>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    /// Pipeline run id → run, in run id (time) order.
    pub runs: BTreeMap<RunId, StoredRun>,
    pub aliases: Vec<StoredAliases>,
}

/// The MLflow registered model of a (symbol, model). MLflow refuses `/`
/// and `:` in names; the store's symbols never hold them (they are path
/// parts of its keys, and `:` is refused by the symbol rules), so the
/// mapping is one to one.
pub fn registered_model_name(symbol: &str, model: ModelKind) -> String {
    format!("stockcast.{symbol}.{model}")
}

/// Reads the whole registry's state.
pub async fn snapshot(registry: &Registry) -> Result<Snapshot, RegistryError> {
    let keys = registry.store().list(layout::MODELS).await?;
    let mut snapshot = Snapshot::default();
    let mut models: Vec<(Symbol, ModelKind)> = Vec::new();
    for (symbol, model, version) in keys.iter().filter_map(|k| ModelKey::complete_version(k)) {
        let lineage = registry.lineage(&symbol, model, &version).await?;
        let metrics = registry.metrics(&symbol, model, &version).await?;
        if !models.iter().any(|(s, m)| *s == symbol && *m == model) {
            models.push((symbol.clone(), model));
        }
        snapshot
            .runs
            .entry(lineage.run_id.clone())
            .or_default()
            .versions
            .push(StoredVersion {
                symbol,
                model,
                version,
                metrics,
                lineage,
                decision: None,
            });
    }
    for (run_id, run) in &mut snapshot.runs {
        run.manifest = registry.read_json(&layout::run_manifest(run_id)).await?;
        let decisions = registry
            .read_json::<Value>(&layout::decisions(run_id))
            .await?;
        run.has_decisions = decisions.is_some();
        for version in &mut run.versions {
            version.decision = decisions.as_ref().and_then(|d| decision_of(d, version));
        }
    }
    for (symbol, model) in models {
        snapshot
            .aliases
            .push(stored_aliases(registry, &symbol, model).await?);
    }
    Ok(snapshot)
}

fn decision_of(decisions: &Value, version: &StoredVersion) -> Option<(String, Vec<String>)> {
    let entry = decisions
        .get("decisions")?
        .as_array()?
        .iter()
        .find(|d| d.get("version").and_then(Value::as_str) == Some(version.version.as_str()))?;
    let verdict = entry.get("decision")?.as_str()?.to_owned();
    let reasons = entry
        .get("reasons")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Some((verdict, reasons))
}

async fn stored_aliases(
    registry: &Registry,
    symbol: &Symbol,
    model: ModelKind,
) -> Result<StoredAliases, RegistryError> {
    let mut aliases = BTreeMap::new();
    if let Some(production) = registry.production(symbol, model).await? {
        if let Some(previous) = &production.previous {
            aliases.insert(Alias::Previous, previous.clone());
        }
        aliases.insert(Alias::Production, production.version);
    }
    if let Some(version) = registry
        .staging(symbol, model)
        .await?
        .and_then(|staging| staging.version)
    {
        aliases.insert(Alias::Staging, version);
    }
    Ok(StoredAliases {
        symbol: symbol.clone(),
        model,
        aliases,
    })
}

/// A version's files under its folder (`model.json`, `plot.png`, …), as
/// (file name, key), in name order.
pub async fn version_files(
    registry: &Registry,
    version: &StoredVersion,
) -> Result<Vec<(String, String)>, StoreError> {
    let prefix = layout::version(&version.symbol, version.model, &version.version);
    let keys = registry.store().list(&prefix).await?;
    Ok(keys
        .into_iter()
        .filter_map(|key| match ModelKey::parse(&key)? {
            ModelKey::VersionFile { file, .. } => Some((file, key)),
            _ => None,
        })
        .collect())
}
