//! The store's layout: every key the pipeline reads or writes is built here
//! from checked names ([`Symbol`], [`RunId`], [`VersionId`]) and parsed back
//! here, so no other module formats or strips a key. The same keys serve a
//! local folder and an S3 bucket.
//!
//! ```text
//! raw/<source>/<symbol>/<day>/<digest>.csv            sample files, by content
//! raw/<vendor>/<symbol>/<day>/<time>-<what>-<n>.json  vendor responses, one per attempt
//! curated/<symbol>.csv, curated/<symbol>.sentiment.csv
//! models/<symbol>/<model>/versions/<version>/{model.json, metrics.json,
//!                                             backtest.csv, plot.png, lineage.json}
//! models/<symbol>/<model>/aliases/{production,previous,staging}.json
//! models/<symbol>/<model>/history/<time>-<version>.json
//! runs/<run_id>/{manifest,train,quality,symbols,passed}.json
//! runs/<run_id>/train/shard-<n>.json, runs/<run_id>/ingest/<map run>/…  (the ingest Map's results)
//! universes/<env>.txt
//! decisions/<run_id>.json, approvals/<run_id>.json
//! forecasts/<symbol>/<origin>.json
//! ```

use chrono::{DateTime, NaiveDate, Utc};

use crate::ids::{RunId, Symbol, VersionId};
use crate::models::ModelKind;
use crate::series::SENTIMENT_SUFFIX;

/// Everything under the registry.
pub const MODELS: &str = "models/";

/// The names a version of a (symbol, model) can go by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alias {
    /// The version the API serves.
    Production,
    /// An informational copy of the version production replaced.
    Previous,
    /// The candidate waiting for a person's approval.
    Staging,
}

impl Alias {
    pub const ALL: [Alias; 3] = [Alias::Production, Alias::Previous, Alias::Staging];

    pub fn name(self) -> &'static str {
        match self {
            Alias::Production => "production",
            Alias::Previous => "previous",
            Alias::Staging => "staging",
        }
    }
}

/// The files of a version, `Lineage` last: a version without it is an
/// interrupted write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VersionFile {
    Model,
    BacktestCsv,
    PlotPng,
    Metrics,
    Lineage,
}

impl VersionFile {
    pub fn name(self) -> &'static str {
        match self {
            VersionFile::Model => "model.json",
            VersionFile::BacktestCsv => "backtest.csv",
            VersionFile::PlotPng => "plot.png",
            VersionFile::Metrics => "metrics.json",
            VersionFile::Lineage => "lineage.json",
        }
    }
}

/// A symbol's merged, validated prices.
pub fn curated(symbol: &Symbol) -> String {
    format!("curated/{symbol}.csv")
}

/// A symbol's news sentiment per day.
pub fn sentiment(symbol: &Symbol) -> String {
    format!("curated/{symbol}{SENTIMENT_SUFFIX}")
}

/// Where the raw responses of one source for one symbol live.
pub fn raw_prefix(source: &str, symbol: &Symbol) -> String {
    format!("raw/{source}/{symbol}/")
}

/// A bundled sample file, keyed by content, so a re-run stores nothing new.
pub fn raw_sample(source: &str, symbol: &Symbol, day: NaiveDate, digest: &str) -> String {
    let short = digest.get(..16).unwrap_or(digest);
    format!("{}{day}/{short}.csv", raw_prefix(source, symbol))
}

/// One vendor response: create-only, one per attempt, under the vendor that
/// answered (news may come from another vendor than prices).
pub fn raw_response(
    vendor: &str,
    symbol: &Symbol,
    fetched_at: DateTime<Utc>,
    what: &str,
    attempt: u32,
) -> String {
    format!(
        "{}{}/{}-{what}-{attempt}.json",
        raw_prefix(vendor, symbol),
        fetched_at.date_naive(),
        fetched_at.format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// Everything the registry holds for one symbol.
pub fn symbol_models(symbol: &Symbol) -> String {
    format!("{MODELS}{symbol}/")
}

fn model_dir(symbol: &Symbol, model: ModelKind) -> String {
    format!("{MODELS}{symbol}/{model}")
}

/// The folder of every version of a (symbol, model).
pub fn versions(symbol: &Symbol, model: ModelKind) -> String {
    format!("{}/versions/", model_dir(symbol, model))
}

/// The folder of one version.
pub fn version(symbol: &Symbol, model: ModelKind, version: &VersionId) -> String {
    format!("{}{version}/", versions(symbol, model))
}

pub fn version_file(
    symbol: &Symbol,
    model: ModelKind,
    version_id: &VersionId,
    file: VersionFile,
) -> String {
    format!("{}{}", version(symbol, model, version_id), file.name())
}

pub fn alias(symbol: &Symbol, model: ModelKind, alias: Alias) -> String {
    format!("{}/aliases/{}.json", model_dir(symbol, model), alias.name())
}

/// The production moves of a (symbol, model).
pub fn history(symbol: &Symbol, model: ModelKind) -> String {
    format!("{}/history/", model_dir(symbol, model))
}

/// One production move, sorted by time (`updated_at`, an RFC 3339 instant).
pub fn history_entry(
    symbol: &Symbol,
    model: ModelKind,
    updated_at: &str,
    version: &VersionId,
) -> String {
    format!(
        "{}{}-{version}.json",
        history(symbol, model),
        updated_at.replace([':', '.'], "")
    )
}

/// The local runner's record of a run.
pub fn run_manifest(run_id: &RunId) -> String {
    format!("runs/{run_id}/manifest.json")
}

/// A finished train step's output; a run is trained only once it exists.
pub fn run_train(run_id: &RunId) -> String {
    format!("runs/{run_id}/train.json")
}

/// Every finding of a run's data checks, warnings included.
pub fn run_quality(run_id: &RunId) -> String {
    format!("runs/{run_id}/quality.json")
}

/// The run's symbols as a JSON array, which the ingest Map's ItemReader reads.
pub fn run_symbols(run_id: &RunId) -> String {
    format!("runs/{run_id}/symbols.json")
}

/// The symbols that passed the data checks, as a JSON array: training's
/// and the monitor's input.
pub fn run_passed(run_id: &RunId) -> String {
    format!("runs/{run_id}/passed.json")
}

/// Where the ingest Map's ResultWriter writes (`<prefix>/<map run>/manifest.json`).
pub fn run_ingest_results(run_id: &RunId) -> String {
    format!("runs/{run_id}/ingest")
}

/// One training shard's output (one Batch array child's).
pub fn run_train_shard(run_id: &RunId, index: usize) -> String {
    format!("runs/{run_id}/train/shard-{index}.json")
}

/// An environment's universe, uploaded by `cargo xtask deploy`.
pub fn universe(env: &str) -> String {
    format!("universes/{env}.txt")
}

/// The gate's decisions of a run.
pub fn decisions(run_id: &RunId) -> String {
    format!("decisions/{run_id}.json")
}

/// A pending or answered approval of a run.
pub fn approval(run_id: &RunId) -> String {
    format!("approvals/{run_id}.json")
}

/// The forecasts a symbol was served, one file per origin day.
pub fn forecasts(symbol: &Symbol) -> String {
    format!("forecasts/{symbol}/")
}

pub fn forecast(symbol: &Symbol, origin: NaiveDate) -> String {
    format!("{}{origin}.json", forecasts(symbol))
}

/// A key under `models/`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKey {
    /// A file of a version (`file` as stored, known or not).
    VersionFile {
        symbol: Symbol,
        model: ModelKind,
        version: VersionId,
        file: String,
    },
    Alias {
        symbol: Symbol,
        model: ModelKind,
        alias: Alias,
    },
    History {
        symbol: Symbol,
        model: ModelKind,
    },
}

impl ModelKey {
    /// `None` for a key that is not one of the registry's (an unknown
    /// model, a foreign file): listings skip what they do not know.
    pub fn parse(key: &str) -> Option<ModelKey> {
        let rest = key.strip_prefix(MODELS)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let (symbol, model) = (
            Symbol::new(*parts.first()?).ok()?,
            parts.get(1)?.parse::<ModelKind>().ok()?,
        );
        match parts[2..] {
            ["versions", version, file] => Some(ModelKey::VersionFile {
                symbol,
                model,
                version: VersionId::new(version).ok()?,
                file: file.to_owned(),
            }),
            ["aliases", file] => {
                let name = file.strip_suffix(".json")?;
                let alias = Alias::ALL.into_iter().find(|a| a.name() == name)?;
                Some(ModelKey::Alias {
                    symbol,
                    model,
                    alias,
                })
            }
            ["history", _] => Some(ModelKey::History { symbol, model }),
            _ => None,
        }
    }

    /// The (symbol, model, version) of a complete version's marker file.
    pub fn complete_version(key: &str) -> Option<(Symbol, ModelKind, VersionId)> {
        match ModelKey::parse(key)? {
            ModelKey::VersionFile {
                symbol,
                model,
                version,
                file,
            } if file == VersionFile::Lineage.name() => Some((symbol, model, version)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aapl() -> Symbol {
        Symbol::new("AAPL").expect("valid")
    }

    fn v1() -> VersionId {
        VersionId::new("20261127T090312.114Z-3fa2c1").expect("valid")
    }

    #[test]
    fn keys_read_back_as_what_made_them() {
        let key = version_file(&aapl(), ModelKind::Arima, &v1(), VersionFile::Lineage);
        assert_eq!(
            key,
            "models/AAPL/arima/versions/20261127T090312.114Z-3fa2c1/lineage.json"
        );
        assert_eq!(
            ModelKey::complete_version(&key),
            Some((aapl(), ModelKind::Arima, v1()))
        );
        let metrics = version_file(&aapl(), ModelKind::Arima, &v1(), VersionFile::Metrics);
        assert_eq!(ModelKey::complete_version(&metrics), None);
        for a in Alias::ALL {
            assert_eq!(
                ModelKey::parse(&alias(&aapl(), ModelKind::Naive, a)),
                Some(ModelKey::Alias {
                    symbol: aapl(),
                    model: ModelKind::Naive,
                    alias: a
                })
            );
        }
        let entry = history_entry(&aapl(), ModelKind::Naive, "2026-11-27T09:03:12.114Z", &v1());
        assert_eq!(
            entry,
            "models/AAPL/naive/history/2026-11-27T090312114Z-20261127T090312.114Z-3fa2c1.json"
        );
        assert_eq!(
            ModelKey::parse(&entry),
            Some(ModelKey::History {
                symbol: aapl(),
                model: ModelKind::Naive
            })
        );
    }

    #[test]
    fn foreign_keys_are_not_the_registrys() {
        for key in [
            "curated/AAPL.csv",
            "models/AAPL/no-such-model/aliases/production.json",
            "models/AAPL/naive/aliases/canary.json",
            "models/AAPL/naive/versions/v1",
            "models/../naive/aliases/production.json",
        ] {
            assert_eq!(ModelKey::parse(key), None, "{key}");
        }
    }

    #[test]
    fn raw_keys_name_source_symbol_and_day() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        assert_eq!(
            raw_sample("sample", &aapl(), day, "8c1f0e5b2a7d4c19aa"),
            "raw/sample/AAPL/2026-11-27/8c1f0e5b2a7d4c19.csv"
        );
        let at = DateTime::parse_from_rfc3339("2026-11-27T09:03:12.114Z")
            .expect("instant")
            .with_timezone(&Utc);
        assert_eq!(
            raw_response("yahoo", &aapl(), at, "chart", 2),
            "raw/yahoo/AAPL/2026-11-27/20261127T090312.114Z-chart-2.json"
        );
    }
}
