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

use super::error::ApiError;
use crate::config::GatePolicy;
use crate::ingest::{CuratedError, curated_key, read_curated};
use crate::models::{FittedModel, ModelKind, Window};
use crate::registry::{Registry, VersionMetrics};
use crate::store::Version;

/// A model ready to forecast from the latest data: a production version,
/// or the latest version of a model the gate has not promoted, which is
/// served only when a request names it.
#[derive(Debug)]
pub struct ServedModel {
    pub kind: ModelKind,
    pub version: String,
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
    aliases: Vec<(ModelKind, String, bool)>,
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
    symbols: Mutex<HashMap<String, Arc<SymbolState>>>,
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

    fn cached(&self, symbol: &str) -> Option<Arc<SymbolState>> {
        self.symbols.lock().ok()?.get(symbol).cloned()
    }

    /// The symbol's production models; `None` if the store knows nothing of it.
    pub async fn symbol(&self, symbol: &str) -> Result<Option<Arc<SymbolState>>, ApiError> {
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
            map.insert(symbol.to_owned(), state.clone());
        }
        Ok(Some(state))
    }

    async fn fingerprint(&self, symbol: &str) -> Result<Fingerprint, ApiError> {
        let store = self.registry.store();
        let data = store.head(&curated_key(symbol)).await?;
        let prefix = format!("models/{symbol}/");
        let keys = store.list(&prefix).await?;
        // The newest complete version of each model (version ids sort by
        // time), from the same listing.
        let mut latest: HashMap<ModelKind, &str> = HashMap::new();
        for rest in keys.iter().filter_map(|k| k.strip_prefix(&prefix)) {
            let Some((model, version)) = rest
                .strip_suffix("/lineage.json")
                .and_then(|r| r.split_once("/versions/"))
            else {
                continue;
            };
            if let Ok(model) = model.parse::<ModelKind>() {
                let newest = latest.entry(model).or_insert(version);
                *newest = (*newest).max(version);
            }
        }
        let mut aliases = Vec::new();
        for key in &keys {
            let Some(model) = key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix("/aliases/production.json"))
                .and_then(|m| m.parse::<ModelKind>().ok())
            else {
                continue;
            };
            if let Some(alias) = self.registry.production(symbol, model).await? {
                latest.remove(&model);
                aliases.push((model, alias.version, true));
            }
        }
        aliases.extend(latest.into_iter().map(|(m, v)| (m, v.to_owned(), false)));
        aliases.sort();
        Ok(Fingerprint { data, aliases })
    }

    async fn load(
        &self,
        symbol: &str,
        fingerprint: Fingerprint,
        checked: Instant,
    ) -> Result<SymbolState, ApiError> {
        let store = self.registry.store();
        let series = match read_curated(store, symbol).await {
            Ok(found) => found.map(|curated| curated.series),
            Err(CuratedError::Store(e)) => return Err(e.into()),
            Err(CuratedError::Invalid(e)) => {
                return Err(ApiError::unavailable(format!(
                    "the latest data of {symbol} is unreadable: {e}"
                )));
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
                        .map_err(|e| ApiError::unavailable(format!("{symbol} {kind}: {e}")))?
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
