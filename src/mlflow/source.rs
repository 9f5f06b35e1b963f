//! What the mirror reads from the store: every complete registry version
//! grouped by the pipeline run that made it, each run's manifest and gate
//! decisions, and every (symbol, model)'s aliases.
//!
//! Only small JSON files are read up front; a version's artifacts are read
//! when they are uploaded, so a sync with nothing to do reads little.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::models::ModelKind;
use crate::pipeline::manifest_key;
use crate::promotion::decisions_key;
use crate::registry::{Lineage, Registry, RegistryError, VersionMetrics, model_prefix};
use crate::store::StoreError;

/// The aliases the store knows, by name. `previous` is the one production
/// carries (the production record is the truth; `previous.json` is a copy).
pub const ALIASES: [&str; 3] = ["production", "previous", "staging"];

/// One complete version of the registry.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub symbol: String,
    pub model: ModelKind,
    pub version: String,
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

/// The aliases of one (symbol, model): alias name → store version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAliases {
    pub symbol: String,
    pub model: ModelKind,
    pub aliases: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    /// Pipeline run id → run, in run id (time) order.
    pub runs: BTreeMap<String, StoredRun>,
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
    let keys = registry.store().list("models/").await?;
    let mut snapshot = Snapshot::default();
    let mut models: Vec<(String, ModelKind)> = Vec::new();
    for key in &keys {
        // models/<symbol>/<model>/versions/<version>/lineage.json
        let parts: Vec<&str> = key.split('/').collect();
        let [_, symbol, model, "versions", version, "lineage.json"] = parts[..] else {
            continue;
        };
        let Ok(model) = model.parse::<ModelKind>() else {
            continue;
        };
        let lineage = registry.lineage(symbol, model, version).await?;
        let metrics = registry.metrics(symbol, model, version).await?;
        if !models.iter().any(|(s, m)| s == symbol && *m == model) {
            models.push((symbol.to_owned(), model));
        }
        snapshot
            .runs
            .entry(lineage.run_id.clone())
            .or_default()
            .versions
            .push(StoredVersion {
                symbol: symbol.to_owned(),
                model,
                version: version.to_owned(),
                metrics,
                lineage,
                decision: None,
            });
    }
    for (run_id, run) in &mut snapshot.runs {
        run.manifest = registry.read_json(&manifest_key(run_id)).await?;
        let decisions = registry.read_json::<Value>(&decisions_key(run_id)).await?;
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
        .find(|d| d.get("version").and_then(Value::as_str) == Some(&version.version))?;
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
    symbol: &str,
    model: ModelKind,
) -> Result<StoredAliases, RegistryError> {
    let mut aliases = BTreeMap::new();
    if let Some(production) = registry.production(symbol, model).await? {
        if let Some(previous) = &production.previous {
            aliases.insert("previous".to_owned(), previous.clone());
        }
        aliases.insert("production".to_owned(), production.version);
    }
    if let Some(version) = registry
        .staging(symbol, model)
        .await?
        .and_then(|staging| staging.version)
    {
        aliases.insert("staging".to_owned(), version);
    }
    Ok(StoredAliases {
        symbol: symbol.to_owned(),
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
    let prefix = format!(
        "{}/versions/{}/",
        model_prefix(&version.symbol, version.model),
        version.version
    );
    let keys = registry.store().list(&prefix).await?;
    Ok(keys
        .into_iter()
        .filter_map(|k| Some((k.strip_prefix(&prefix)?.to_owned(), k.clone())))
        .collect())
}
