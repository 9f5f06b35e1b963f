//! The model registry: versions with their metrics and lineage, and the
//! aliases that name which version is live.
//!
//! Layout (the same keys locally and on S3):
//! `models/<symbol>/<model>/versions/<version>/{model.json, metrics.json,
//! backtest.csv, plot.png, lineage.json}` and
//! `models/<symbol>/<model>/aliases/{production,previous,staging}.json`.
//!
//! Every version file is create-only and `lineage.json` is written last: a
//! version without it is an interrupted write and is never listed, so a
//! half-finished training run cannot be mistaken for a finished one.
//! `production.json` carries the previous version inside it, so a promotion
//! or rollback is one compare-and-swap: production and previous move
//! together or not at all. Each move is then recorded under `history/` and
//! copied to `previous.json`; a move that stops between the swap and those
//! writes (a crash) leaves history one move behind production, and the next
//! move of that alias, or a retry of the same one, writes what is missing
//! first (issue 20).
//! `staging.json` names the candidate waiting for a person's approval; it is
//! cleared (to `"version": null`) with a compare-and-swap rather than
//! deleted, because a delete cannot be conditional and an answer to an older
//! run must never clear a newer run's candidate.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use crate::backtest::HorizonMetrics;
use crate::backtest::Protocol;
use crate::config::GateMetric;
use crate::ids::{RunId, Symbol, VersionId};
use crate::layout::{self, Alias, ModelKey, VersionFile};
use crate::models::{FittedModel, ModelKind};
use crate::steps::{Candidate, Promotion};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{key} is not valid: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{symbol}/{model} has no version {version}")]
    NoSuchVersion {
        symbol: Symbol,
        model: ModelKind,
        version: VersionId,
    },
    #[error("{symbol}/{model} has no production version")]
    NoProduction { symbol: Symbol, model: ModelKind },
    #[error("{symbol}/{model} has no previous version to roll back to; name one with --to")]
    NothingToRollBackTo { symbol: Symbol, model: ModelKind },
}

/// `metrics.json`: a version's backtest, with naive's on the same origins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMetrics {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub version: VersionId,
    pub run_id: RunId,
    pub protocol: Protocol,
    pub origins: usize,
    pub first_origin: Option<NaiveDate>,
    pub last_origin: Option<NaiveDate>,
    pub data_through: Option<NaiveDate>,
    pub failures: usize,
    pub horizons: Vec<HorizonMetrics>,
    pub naive: Vec<HorizonMetrics>,
}

/// The metric at a horizon: `None` where the horizon was not scored or its
/// metric is undefined.
fn pick(rows: &[HorizonMetrics], metric: GateMetric, horizon: usize) -> Option<f64> {
    rows.iter()
        .find(|m| m.horizon == horizon)
        .and_then(|m| match metric {
            GateMetric::Mase => m.mase,
            GateMetric::Mape => m.mape,
        })
}

impl VersionMetrics {
    pub fn metric(&self, metric: GateMetric, horizon: usize) -> Option<f64> {
        pick(&self.horizons, metric, horizon)
    }

    pub fn naive_metric(&self, metric: GateMetric, horizon: usize) -> Option<f64> {
        pick(&self.naive, metric, horizon)
    }

    /// Whether the backtest scored this horizon (its metrics may still be
    /// undefined).
    pub fn has_horizon(&self, horizon: usize) -> bool {
        self.horizons.iter().any(|m| m.horizon == horizon)
    }

    /// Whether two versions were evaluated on the same origins of the same data.
    pub fn same_origins(&self, other: &VersionMetrics) -> bool {
        self.protocol == other.protocol
            && (self.first_origin, self.last_origin, self.data_through)
                == (other.first_origin, other.last_origin, other.data_through)
    }
}

/// `lineage.json`: what a version was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub version: VersionId,
    pub run_id: RunId,
    pub data_key: String,
    pub data_digest: String,
    /// SHA-256 of the news sentiment file the features read, where there
    /// was one (absent in versions written before features existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment_digest: Option<String>,
    pub data_rows: usize,
    pub data_through: Option<NaiveDate>,
    pub git_commit: Option<String>,
    pub config_digest: String,
    pub code_version: String,
    pub created_at: String,
}

/// An alias file: which version it names, and the one it named before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasRecord {
    pub version: VersionId,
    pub previous: Option<VersionId>,
    pub run_id: RunId,
    pub reason: String,
    pub updated_at: String,
}

/// `staging.json`: the version waiting for approval, or `None` once it was
/// approved, rejected or timed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingRecord {
    pub version: Option<VersionId>,
    pub run_id: RunId,
    pub reason: String,
    pub updated_at: String,
}

/// Everything a training run writes for one version.
#[derive(Debug)]
pub struct VersionFiles {
    pub model: FittedModel,
    pub metrics: VersionMetrics,
    pub lineage: Lineage,
    pub backtest_csv: Vec<u8>,
    pub plot_png: Vec<u8>,
}

/// A production alias with its version's metrics, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductionEntry {
    pub symbol: Symbol,
    pub model: ModelKind,
    pub alias: AliasRecord,
    pub metrics: VersionMetrics,
}

fn no_such_version(symbol: &Symbol, model: ModelKind, version: &VersionId) -> RegistryError {
    RegistryError::NoSuchVersion {
        symbol: symbol.clone(),
        model,
        version: version.clone(),
    }
}

/// A new version id: sortable by time, unique across retries of a run.
pub fn new_version_id() -> VersionId {
    let now = Utc::now();
    let entropy =
        crate::digest::sha256_hex(format!("{:?}{:?}", now, std::thread::current().id()).as_bytes());
    VersionId::new(format!(
        "{}-{}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        &entropy[..6]
    ))
    .expect("a timestamp and hex digits make a valid version id")
}

fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
}

impl Registry {
    pub fn new(store: Store) -> Self {
        Registry { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads a JSON file of the registry; `None` if it does not exist, an
    /// error naming the key if it does not parse.
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, RegistryError> {
        let Some(object) = self.store.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&object.bytes)
            .map(Some)
            .map_err(|e| RegistryError::Corrupt {
                key: key.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Writes a version's files, `lineage.json` last, and returns the candidate.
    pub async fn write_version(&self, files: VersionFiles) -> Result<Candidate, RegistryError> {
        let VersionFiles {
            model,
            metrics,
            lineage,
            backtest_csv,
            plot_png,
        } = files;
        let (symbol, kind, version) = (
            metrics.symbol.clone(),
            metrics.model,
            metrics.version.clone(),
        );
        let key = |file: VersionFile| layout::version_file(&symbol, kind, &version, file);
        self.store
            .create(&key(VersionFile::Model), model.to_json())
            .await?;
        self.store
            .create(&key(VersionFile::BacktestCsv), backtest_csv)
            .await?;
        self.store
            .create(&key(VersionFile::PlotPng), plot_png)
            .await?;
        self.store
            .create(&key(VersionFile::Metrics), pretty_json(&metrics))
            .await?;
        self.store
            .create(&key(VersionFile::Lineage), pretty_json(&lineage))
            .await?;
        let metrics_key = key(VersionFile::Metrics);
        Ok(Candidate {
            symbol,
            model: kind,
            version,
            metrics_key,
        })
    }

    /// Complete versions of a (symbol, model), oldest first.
    pub async fn versions(
        &self,
        symbol: &Symbol,
        model: ModelKind,
    ) -> Result<Vec<VersionId>, RegistryError> {
        let keys = self.store.list(&layout::versions(symbol, model)).await?;
        Ok(keys
            .iter()
            .filter_map(|k| ModelKey::complete_version(k))
            .map(|(_, _, version)| version)
            .collect())
    }

    /// Reads one JSON file of a version.
    async fn version_file<T: serde::de::DeserializeOwned>(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        version: &VersionId,
        file: VersionFile,
    ) -> Result<T, RegistryError> {
        self.read_json(&layout::version_file(symbol, model, version, file))
            .await?
            .ok_or_else(|| no_such_version(symbol, model, version))
    }

    pub async fn metrics(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        version: &VersionId,
    ) -> Result<VersionMetrics, RegistryError> {
        self.version_file(symbol, model, version, VersionFile::Metrics)
            .await
    }

    pub async fn lineage(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        version: &VersionId,
    ) -> Result<Lineage, RegistryError> {
        self.version_file(symbol, model, version, VersionFile::Lineage)
            .await
    }

    /// Fails unless `version` is a complete version of (symbol, model).
    async fn ensure_version(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        version: &VersionId,
    ) -> Result<(), RegistryError> {
        if self
            .versions(symbol, model)
            .await?
            .iter()
            .any(|v| v == version)
        {
            Ok(())
        } else {
            Err(no_such_version(symbol, model, version))
        }
    }

    pub async fn fitted_model(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        version: &VersionId,
    ) -> Result<FittedModel, RegistryError> {
        let key = layout::version_file(symbol, model, version, VersionFile::Model);
        let object = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| no_such_version(symbol, model, version))?;
        let text = String::from_utf8_lossy(&object.bytes);
        FittedModel::from_json(&text).map_err(|e| RegistryError::Corrupt {
            key,
            reason: e.to_string(),
        })
    }

    pub async fn production(
        &self,
        symbol: &Symbol,
        model: ModelKind,
    ) -> Result<Option<AliasRecord>, RegistryError> {
        self.read_json(&layout::alias(symbol, model, Alias::Production))
            .await
    }

    /// The version waiting for approval, if any (a cleared record is none).
    pub async fn staging(
        &self,
        symbol: &Symbol,
        model: ModelKind,
    ) -> Result<Option<StagingRecord>, RegistryError> {
        Ok(self
            .read_json::<StagingRecord>(&layout::alias(symbol, model, Alias::Staging))
            .await?
            .filter(|s| s.version.is_some()))
    }

    /// Names `version` as the candidate waiting for approval. A newer
    /// candidate replaces an older one that nobody answered.
    pub async fn stage(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        version: &VersionId,
        run_id: &RunId,
        reason: &str,
    ) -> Result<(), RegistryError> {
        self.ensure_version(symbol, model, version).await?;
        let record = StagingRecord {
            version: Some(version.clone()),
            run_id: run_id.clone(),
            reason: reason.to_owned(),
            updated_at: timestamp(),
        };
        self.store
            .update_with(
                &layout::alias(symbol, model, Alias::Staging),
                |_| -> Result<Option<Vec<u8>>, StoreError> { Ok(Some(pretty_json(&record))) },
            )
            .await?;
        Ok(())
    }

    /// Clears staging if it still names `version` (compare-and-swap), so an
    /// answer to an older run leaves a newer run's candidate alone. Returns
    /// whether it was cleared.
    pub async fn unstage(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        version: &VersionId,
        run_id: &RunId,
        reason: &str,
    ) -> Result<bool, RegistryError> {
        let key = layout::alias(symbol, model, Alias::Staging);
        let cleared = self
            .store
            .update_with(&key, |current| -> Result<Option<Vec<u8>>, RegistryError> {
                let Some(bytes) = current else {
                    return Ok(None);
                };
                let record: StagingRecord =
                    serde_json::from_slice(bytes).map_err(|e| RegistryError::Corrupt {
                        key: key.clone(),
                        reason: e.to_string(),
                    })?;
                if record.version.as_ref() != Some(version) {
                    return Ok(None);
                }
                Ok(Some(pretty_json(&StagingRecord {
                    version: None,
                    run_id: run_id.clone(),
                    reason: reason.to_owned(),
                    updated_at: timestamp(),
                })))
            })
            .await?;
        Ok(cleared)
    }

    /// Every (symbol, model) with a candidate waiting for approval.
    pub async fn staged_models(
        &self,
    ) -> Result<Vec<(Symbol, ModelKind, StagingRecord)>, RegistryError> {
        let mut out = Vec::new();
        for (symbol, model, _) in self.alias_files(Alias::Staging).await? {
            if let Some(record) = self.staging(&symbol, model).await? {
                out.push((symbol, model, record));
            }
        }
        Ok(out)
    }

    /// (symbol, model, key) of every alias file with this name.
    async fn alias_files(
        &self,
        wanted: Alias,
    ) -> Result<Vec<(Symbol, ModelKind, String)>, RegistryError> {
        let keys = self.store.list(layout::MODELS).await?;
        Ok(keys
            .into_iter()
            .filter_map(|key| match ModelKey::parse(&key)? {
                ModelKey::Alias {
                    symbol,
                    model,
                    alias,
                } if alias == wanted => Some((symbol, model, key)),
                _ => None,
            })
            .collect())
    }

    /// Moves production to `version` (keeping the old one as previous) in one
    /// compare-and-swap, retried if another writer moved it meanwhile.
    pub async fn promote(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        version: &VersionId,
        run_id: &RunId,
        reason: &str,
    ) -> Result<Promotion, RegistryError> {
        self.ensure_version(symbol, model, version).await?;
        self.move_production(symbol, model, run_id, reason, |_| Ok(version.clone()))
            .await
    }

    /// Moves production back to its previous version (or to `to`), recording why.
    pub async fn rollback(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        to: Option<&VersionId>,
        reason: &str,
    ) -> Result<Promotion, RegistryError> {
        if let Some(target) = to {
            self.ensure_version(symbol, model, target).await?;
        }
        let run_id = RunId::new(format!("rollback-{}", Utc::now().format("%Y%m%dT%H%M%SZ")))
            .expect("a timestamp makes a valid run id");
        self.move_production(symbol, model, &run_id, reason, |current| {
            match (to, current) {
                (Some(target), _) => Ok(target.clone()),
                (
                    None,
                    Some(AliasRecord {
                        previous: Some(p), ..
                    }),
                ) => Ok(p.clone()),
                (None, Some(_)) => Err(RegistryError::NothingToRollBackTo {
                    symbol: symbol.clone(),
                    model,
                }),
                (None, None) => Err(RegistryError::NoProduction {
                    symbol: symbol.clone(),
                    model,
                }),
            }
        })
        .await
    }

    async fn move_production(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        run_id: &RunId,
        reason: &str,
        target: impl Fn(Option<&AliasRecord>) -> Result<VersionId, RegistryError>,
    ) -> Result<Promotion, RegistryError> {
        let key = layout::alias(symbol, model, Alias::Production);
        let mut moved: Option<AliasRecord> = None;
        let mut previous: Option<VersionId> = None;
        let mut already: Option<AliasRecord> = None;
        let mut replaced: Option<AliasRecord> = None;
        self.store
            .update_with(&key, |current| -> Result<Option<Vec<u8>>, RegistryError> {
                let current: Option<AliasRecord> =
                    match current {
                        Some(bytes) => Some(serde_json::from_slice(bytes).map_err(|e| {
                            RegistryError::Corrupt {
                                key: key.clone(),
                                reason: e.to_string(),
                            }
                        })?),
                        None => None,
                    };
                let version = target(current.as_ref())?;
                // Already there (a retried step whose first attempt wrote):
                // moving again would make production its own previous.
                if let Some(current) = current.as_ref().filter(|c| c.version == version) {
                    already = Some(current.clone());
                    return Ok(None);
                }
                previous = current.as_ref().map(|c| c.version.clone());
                replaced = current;
                let record = AliasRecord {
                    version,
                    previous: previous.clone(),
                    run_id: run_id.clone(),
                    reason: reason.to_owned(),
                    updated_at: timestamp(),
                };
                let bytes = pretty_json(&record);
                moved = Some(record);
                Ok(Some(bytes))
            })
            .await?;
        if let Some(current) = already {
            // A retried move whose first attempt stopped after the alias
            // moved (a crash, a timeout): finish what it derives.
            self.record_move(symbol, model, &current).await?;
            return Ok(Promotion {
                symbol: symbol.clone(),
                model,
                version: current.version,
                previous: current.previous,
            });
        }
        let record = moved.ok_or_else(|| RegistryError::Corrupt {
            key: key.clone(),
            reason: "alias update produced no record".into(),
        })?;
        // The move it replaced may itself have stopped before its history
        // entry: record it first, so the history has every move in order.
        if let Some(replaced) = &replaced {
            self.record_history(symbol, model, replaced).await?;
        }
        self.record_move(symbol, model, &record).await?;
        Ok(Promotion {
            symbol: symbol.clone(),
            model,
            version: record.version,
            previous,
        })
    }

    /// Writes what a production move derives from its record, after the
    /// compare-and-swap that is the move: `previous.json` (an informational
    /// copy; the production record is the truth) and the history entry.
    /// Both writes are idempotent, so finishing a move that stopped halfway
    /// writes only what is missing.
    async fn record_move(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        record: &AliasRecord,
    ) -> Result<(), RegistryError> {
        if let Some(prev) = &record.previous {
            let bytes = pretty_json(&AliasRecord {
                version: prev.clone(),
                previous: None,
                ..record.clone()
            });
            self.store
                .update_with(
                    &layout::alias(symbol, model, Alias::Previous),
                    |current| -> Result<Option<Vec<u8>>, StoreError> {
                        Ok((current != Some(bytes.as_slice())).then(|| bytes.clone()))
                    },
                )
                .await?;
        }
        self.record_history(symbol, model, record).await
    }

    /// Creates the history entry of a production move unless it exists.
    async fn record_history(
        &self,
        symbol: &Symbol,
        model: ModelKind,
        record: &AliasRecord,
    ) -> Result<(), RegistryError> {
        let key = layout::history_entry(symbol, model, &record.updated_at, &record.version);
        if self.store.head(&key).await?.is_some() {
            return Ok(());
        }
        match self.store.create(&key, pretty_json(record)).await {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every production move of (symbol, model), oldest first.
    pub async fn history(
        &self,
        symbol: &Symbol,
        model: ModelKind,
    ) -> Result<Vec<AliasRecord>, RegistryError> {
        let mut records = Vec::new();
        for key in self.store.list(&layout::history(symbol, model)).await? {
            if let Some(record) = self.read_json(&key).await? {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Every production alias in the store, with its version's metrics.
    pub async fn production_models(&self) -> Result<Vec<ProductionEntry>, RegistryError> {
        let mut out = Vec::new();
        for (symbol, model, key) in self.alias_files(Alias::Production).await? {
            let Some(alias) = self.read_json::<AliasRecord>(&key).await? else {
                continue;
            };
            // Production points at a complete version: metrics it cannot
            // read are an error, not a model without a score.
            let metrics = self.metrics(&symbol, model, &alias.version).await?;
            out.push(ProductionEntry {
                symbol,
                model,
                alias,
                metrics,
            });
        }
        Ok(out)
    }
}

/// Pretty-printed JSON with a final newline; the registry's files are read by people too.
pub fn pretty_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Registry types hold only strings, numbers and dates: serialising cannot fail.
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
