//! The per-container cache of production models and latest data.
//!
//! A warm request reads nothing from storage: a symbol's state is reused
//! until it is older than the revalidation interval. Then one cheap check
//! (the curated object's version and the production aliases) decides
//! whether anything changed; only a change reloads and re-anchors models.
//! A promotion is therefore visible within one interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::ServingError;
use crate::config::GatePolicy;
use crate::ids::{Symbol, VersionId};
use crate::ingest::{CuratedError, read_curated};
use crate::layout::{self, Alias, ModelKey};
use crate::models::{FittedModel, ModelKind, Window};
use crate::registry::{Registry, VersionMetrics};
use crate::store::Version;

/// A model ready to forecast from the latest data: a production version,
/// or the latest version of a model the gate has not promoted, which is
/// served only when a request names it.
#[derive(Debug)]
pub struct ServedModel {
    pub kind: ModelKind,
    pub version: VersionId,
    /// Whether `version` is the production version.
    pub promoted: bool,
    pub trained_at: String,
    pub anchored: FittedModel,
    pub metrics: VersionMetrics,
}

/// What changes when data is ingested, a model is trained or promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    data: Option<Version>,
    /// Each model's production version, or its latest version (`false`)
    /// where it has none.
    aliases: Vec<(ModelKind, VersionId, bool)>,
}

#[derive(Debug)]
pub struct SymbolState {
    fingerprint: Fingerprint,
    checked_at: Mutex<Instant>,
    pub data_through: Option<NaiveDate>,
    pub models: Vec<ServedModel>,
}

impl SymbolState {
    /// What a request without `model_type` is served: the production model
    /// with the best backtest score by the gate's metric and horizon.
    pub fn default_model(&self, gate: &GatePolicy) -> Option<&ServedModel> {
        let score = |m: &ServedModel| {
            // An undefined score sorts last.
            m.metrics
                .metric(gate.metric, gate.horizon)
                .unwrap_or(f64::INFINITY)
        };
        self.models
            .iter()
            .filter(|m| m.promoted)
            .min_by(|a, b| score(a).total_cmp(&score(b)))
    }
}

#[derive(Debug)]
pub struct ModelCache {
    registry: Registry,
    revalidate_after: Duration,
    /// Values of the latest data a model is anchored on.
    anchor_window: usize,
    symbols: Mutex<HashMap<Symbol, Arc<SymbolState>>>,
}

impl ModelCache {
    pub fn new(registry: Registry, revalidate_after: Duration, anchor_window: usize) -> Self {
        ModelCache {
            registry,
            revalidate_after,
            anchor_window,
            symbols: Mutex::new(HashMap::new()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn cached(&self, symbol: &Symbol) -> Option<Arc<SymbolState>> {
        self.symbols.lock().ok()?.get(symbol).cloned()
    }

    /// The symbol's production models; `None` if the store knows nothing of it.
    pub async fn symbol(&self, symbol: &Symbol) -> Result<Option<Arc<SymbolState>>, ServingError> {
        let cached = self.cached(symbol);
        if let Some(state) = &cached {
            let fresh = state
                .checked_at
                .lock()
                .map(|t| t.elapsed() < self.revalidate_after)
                .unwrap_or(false);
            if fresh {
                return Ok(Some(state.clone()));
            }
        }
        // The state is as old as the moment storage was read, not the moment
        // the read (or a reload after it) ended: stamping it later would let
        // a slow reload stretch the interval in which a promotion may go
        // unseen (issue 20's load test checks this bound).
        let checked = Instant::now();
        let fingerprint = self.fingerprint(symbol).await?;
        if fingerprint.data.is_none() && fingerprint.aliases.is_empty() {
            return Ok(None);
        }
        if let Some(state) = cached
            && state.fingerprint == fingerprint
        {
            if let Ok(mut t) = state.checked_at.lock() {
                *t = (*t).max(checked);
            }
            return Ok(Some(state));
        }
        let state = Arc::new(self.load(symbol, fingerprint, checked).await?);
        if let Ok(mut map) = self.symbols.lock() {
            map.insert(symbol.clone(), state.clone());
        }
        Ok(Some(state))
    }

    async fn fingerprint(&self, symbol: &Symbol) -> Result<Fingerprint, ServingError> {
        let store = self.registry.store();
        let data = store.head(&layout::curated(symbol)).await?;
        let keys = store.list(&layout::symbol_models(symbol)).await?;
        // The newest complete version of each model (version ids sort by
        // time) and the models with a production alias, from one listing.
        let mut latest: HashMap<ModelKind, VersionId> = HashMap::new();
        let mut in_production = Vec::new();
        for key in &keys {
            match ModelKey::parse(key) {
                Some(ModelKey::VersionFile { .. }) => {
                    if let Some((_, model, version)) = ModelKey::complete_version(key) {
                        let newest = latest.entry(model).or_insert_with(|| version.clone());
                        if version > *newest {
                            *newest = version;
                        }
                    }
                }
                Some(ModelKey::Alias {
                    model,
                    alias: Alias::Production,
                    ..
                }) => in_production.push(model),
                _ => {}
            }
        }
        let mut aliases = Vec::new();
        for model in in_production {
            if let Some(alias) = self.registry.production(symbol, model).await? {
                latest.remove(&model);
                aliases.push((model, alias.version, true));
            }
        }
        aliases.extend(latest.into_iter().map(|(m, v)| (m, v, false)));
        aliases.sort();
        Ok(Fingerprint { data, aliases })
    }

    async fn load(
        &self,
        symbol: &Symbol,
        fingerprint: Fingerprint,
        checked: Instant,
    ) -> Result<SymbolState, ServingError> {
        let store = self.registry.store();
        let series = match read_curated(store, symbol).await {
            Ok(found) => found.map(|curated| curated.series),
            Err(CuratedError::Store(e)) => return Err(e.into()),
            Err(CuratedError::Invalid(e)) => {
                return Err(ServingError::UnreadableData {
                    symbol: symbol.clone(),
                    reason: e.to_string(),
                });
            }
        };
        let mut models = Vec::new();
        for (kind, version, promoted) in &fingerprint.aliases {
            let fitted = self.registry.fitted_model(symbol, *kind, version).await?;
            let anchored = match &series {
                Some(series) => {
                    let target = series.target();
                    let start = target.len().saturating_sub(self.anchor_window);
                    fitted
                        .anchored(&Window {
                            sentiment: &series.sentiment,
                            ..Window::new(&target[start..], &series.bars[start..])
                        })
                        .map_err(|e| ServingError::AnchorFailed {
                            symbol: symbol.clone(),
                            model: *kind,
                            reason: e.to_string(),
                        })?
                }
                None => fitted,
            };
            // A listed version has both files; one that cannot be read is
            // an error to show, not metrics or a date to leave out.
            let metrics = self.registry.metrics(symbol, *kind, version).await?;
            let trained_at = self
                .registry
                .lineage(symbol, *kind, version)
                .await?
                .created_at;
            models.push(ServedModel {
                kind: *kind,
                version: version.clone(),
                promoted: *promoted,
                trained_at,
                anchored,
                metrics,
            });
        }
        Ok(SymbolState {
            data_through: series
                .as_ref()
                .and_then(|s| s.bars.last().map(|b| b.date))
                .or_else(|| models.iter().find_map(|m| m.metrics.data_through)),
            fingerprint,
            checked_at: Mutex::new(checked),
            models,
        })
    }
}
