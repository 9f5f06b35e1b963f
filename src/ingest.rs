//! The ingest step: fetch a symbol's prices, store the response unchanged
//! (create-only, before parsing), then merge the parsed bars into the
//! curated series with a compare-and-swap. Where the input names a
//! sentiment source, the symbol's news sentiment is fetched too, from that
//! vendor whatever the price source is; the vendor's failure to answer is
//! a warning, a storage failure fails the step as it would for prices.
//!
//! Merging is by date: new days are added, a day the source reports with
//! different values is corrected and the correction is reported, never
//! silently dropped. Two ingests of one symbol at once both land: the loser
//! of the compare-and-swap re-reads and merges again.

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};

use crate::ids::Symbol;
use crate::layout;
use crate::series::{Bar, PriceSeries};
use crate::steps::{ErrorName, IngestInput, IngestOutput, SentimentSource, Source, StepError};
use crate::store::{Store, StoreError};
use crate::vendors::alpha_vantage::{self, DailyFunction};
use crate::vendors::{self, Request, VendorClient, VendorError};

/// Why a symbol's curated data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CuratedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invalid(#[from] crate::series::SeriesError),
}

/// A symbol's curated data as training and serving read it.
#[derive(Debug, Clone)]
pub struct Curated {
    /// The prices, with the news sentiment attached (none without a file).
    pub series: PriceSeries,
    /// SHA-256 of the price file, for lineage.
    pub digest: String,
    /// SHA-256 of the sentiment file, where there is one.
    pub sentiment_digest: Option<String>,
}

/// A symbol's curated prices and news; `None` without a price file.
pub async fn read_curated(store: &Store, symbol: &Symbol) -> Result<Option<Curated>, CuratedError> {
    let key = layout::curated(symbol);
    let Some(object) = store.get(&key).await? else {
        return Ok(None);
    };
    let series = PriceSeries::from_csv_bytes(symbol, &key, &object.bytes)?;
    let news_key = layout::sentiment(symbol);
    let (sentiment, sentiment_digest) = match store.get(&news_key).await? {
        Some(news) => (
            crate::series::parse_sentiment_csv(&news_key, &news.bytes)?,
            Some(crate::digest::sha256_hex(&news.bytes)),
        ),
        None => (Vec::new(), None),
    };
    Ok(Some(Curated {
        series: series.with_sentiment(sentiment),
        digest: crate::digest::sha256_hex(&object.bytes),
        sentiment_digest,
    }))
}

/// Whether a symbol can have news sentiment. Alpha Vantage's news feed is
/// per company ticker: an index (`^GSPC`) or a Yahoo currency or futures
/// symbol (`EURUSD=X`) has none, and asking would spend a request of the
/// vendor's daily limit on an error reply.
pub fn has_news(symbol: &str) -> bool {
    !symbol.starts_with('^') && !symbol.contains('=')
}

/// Where the ingest of `input` fetches news sentiment from, if anywhere.
pub fn news_source(input: &IngestInput) -> Option<SentimentSource> {
    input.sentiment.filter(|_| has_news(&input.symbol))
}

/// A request the ingest step sends to a vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VendorRequest {
    /// The symbol's daily prices.
    DailyPrices(Source),
    /// The symbol's news sentiment.
    NewsSentiment(SentimentSource),
}

impl VendorRequest {
    /// The vendor, as sources are named (`alpha-vantage`).
    pub fn vendor(self) -> &'static str {
        match self {
            VendorRequest::DailyPrices(source) => source.name(),
            VendorRequest::NewsSentiment(source) => source.name(),
        }
    }

    /// What is asked for, in the vendor's words.
    pub fn what(self) -> &'static str {
        match self {
            VendorRequest::DailyPrices(Source::AlphaVantage) => DailyFunction::Adjusted.name(),
            VendorRequest::DailyPrices(Source::Yahoo) => "chart",
            VendorRequest::DailyPrices(Source::Sample) => "sample file",
            VendorRequest::NewsSentiment(SentimentSource::AlphaVantage) => "NEWS_SENTIMENT",
        }
    }
}

/// The vendor requests one ingest makes when nothing fails (retries and the
/// fallback to Alpha Vantage's unadjusted series come on top). `ingest`
/// follows it; `cargo xtask cost` counts it against the vendors' limits.
pub fn vendor_requests(input: &IngestInput) -> Vec<VendorRequest> {
    let prices =
        (input.source != Source::Sample).then_some(VendorRequest::DailyPrices(input.source));
    prices
        .into_iter()
        .chain(news_source(input).map(VendorRequest::NewsSentiment))
        .collect()
}

/// What the ingest step needs besides its input.
#[derive(Debug, Clone)]
pub struct IngestContext {
    pub store: Store,
    /// Folder of the `sample` source's price files (`<SYMBOL>.csv`).
    pub sample_dir: PathBuf,
    /// The vendors' client; `None` where only the sample source is used.
    pub vendors: Option<VendorClient>,
}

/// The outcome of merging incoming bars into a curated series.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub bars: Vec<Bar>,
    pub added: usize,
    pub corrected: Vec<NaiveDate>,
}

/// Merges `incoming` into `existing` by date (both ascending, unique dates).
pub fn merge(existing: &[Bar], incoming: &[Bar]) -> Merge {
    let mut bars = Vec::with_capacity(existing.len() + incoming.len());
    let (mut i, mut j) = (0, 0);
    let mut added = 0;
    let mut corrected = Vec::new();
    while i < existing.len() || j < incoming.len() {
        match (existing.get(i), incoming.get(j)) {
            (Some(a), Some(b)) if a.date == b.date => {
                if a != b {
                    corrected.push(b.date);
                }
                bars.push(*b);
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.date < b.date => {
                bars.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                bars.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                bars.push(*b);
                added += 1;
                j += 1;
            }
            (None, None) => break,
        }
    }
    Merge {
        bars,
        added,
        corrected,
    }
}

/// Runs the ingest step for one symbol.
pub async fn ingest(ctx: &IngestContext, input: &IngestInput) -> Result<IngestOutput, StepError> {
    let fetched_at = Utc::now();
    let mut warnings = Vec::new();
    let (incoming, raw_key) = match input.source {
        Source::Sample => store_sample(ctx, input, fetched_at).await?,
        source => {
            let client = ctx.vendors.as_ref().ok_or_else(|| {
                StepError::new(
                    ErrorName::VendorBadResponse,
                    format!("source {source} needs a vendor client"),
                )
            })?;
            fetch_vendor(ctx, client, input, fetched_at, &mut warnings).await?
        }
    };
    // News is a feature, not the price series: the vendor's failure is a
    // warning and the prices still land.
    if let Some(news) = news_source(input) {
        let fetched = match ctx.vendors.as_ref() {
            Some(client) => ingest_sentiment(ctx, client, input, news, fetched_at).await,
            None => Err(StepError::new(
                ErrorName::VendorBadResponse,
                format!("sentiment from {news} needs a vendor client"),
            )),
        };
        match fetched {
            // A storage failure is ours, not the vendor's: the step fails
            // with its name, which the workflow retries, rather than
            // succeeding without the day's news.
            Err(e) if is_storage(e.name) => return Err(e),
            Err(e) => warnings.push(format!("news sentiment not updated: {e}")),
            Ok(()) => {}
        }
    }
    let (merged, refused) = merge_into_curated(ctx, input, &incoming).await?;
    warnings.extend(merged.corrected.iter().map(|d| {
        format!("{d}: the source corrected this day's values; the correction was applied")
    }));
    if let Some(reason) = refused {
        warnings.push(format!(
            "curated data not merged, it fails validation: {reason}"
        ));
    }
    Ok(IngestOutput {
        symbol: input.symbol.clone(),
        source: input.source,
        rows_added: merged.added,
        rows_corrected: merged.corrected.len(),
        last_date: merged.bars.last().map(|b| b.date),
        raw_key,
        warnings,
    })
}

fn is_storage(name: ErrorName) -> bool {
    matches!(
        name,
        ErrorName::StorageConflict | ErrorName::StorageUnavailable | ErrorName::StorageRefused
    )
}

/// Reads a bundled sample file and stores it raw first. The sample files
/// are keyed by content, so a re-run stores nothing new.
async fn store_sample(
    ctx: &IngestContext,
    input: &IngestInput,
    fetched_at: chrono::DateTime<Utc>,
) -> Result<(PriceSeries, String), StepError> {
    let (raw, series) = fetch_sample(&ctx.sample_dir, &input.symbol)?;
    let day = series
        .bars
        .last()
        .map(|b| b.date)
        .unwrap_or(fetched_at.date_naive());
    let digest = crate::digest::sha256_hex(&raw);
    let raw_key = layout::raw_sample(input.source.name(), &input.symbol, day, &digest);
    match ctx.store.create(&raw_key, raw).await {
        Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok((series, raw_key)),
        Err(e) => Err(e.into()),
    }
}

/// Merges the incoming bars into the curated series by date (one
/// compare-and-swap). Returns the merge, and why nothing was merged where
/// the curated file fails validation: it is never rewritten then, and the
/// quality step reports it.
async fn merge_into_curated(
    ctx: &IngestContext,
    input: &IngestInput,
    incoming: &PriceSeries,
) -> Result<(Merge, Option<String>), StepError> {
    let key = layout::curated(&input.symbol);
    let mut outcome = None;
    let mut refused = None;
    ctx.store
        .update_with(&key, |current| -> Result<Option<Vec<u8>>, StepError> {
            let existing = match current {
                Some(bytes) => match PriceSeries::from_csv_bytes(&input.symbol, &key, bytes) {
                    Ok(series) => series.bars,
                    Err(e) => {
                        // Never merge into (and so rewrite) a file that fails
                        // validation: leave it as it is for the quality step to report.
                        refused = Some(e.to_string());
                        return Ok(None);
                    }
                },
                None => Vec::new(),
            };
            let merged = merge(&existing, &incoming.bars);
            let changed = merged.added > 0 || !merged.corrected.is_empty();
            let csv = PriceSeries {
                name: input.symbol.to_string(),
                bars: merged.bars.clone(),
                sentiment: Vec::new(),
            }
            .to_csv();
            outcome = Some(merged);
            Ok(changed.then(|| csv.into_bytes()))
        })
        .await?;
    let merged = outcome.unwrap_or(Merge {
        bars: Vec::new(),
        added: 0,
        corrected: Vec::new(),
    });
    Ok((merged, refused))
}

/// Fetches daily bars from a vendor, storing every response before parsing
/// it, retrying throttles and outages with backoff, and falling back from
/// Alpha Vantage's adjusted series when the key's plan refuses it.
async fn fetch_vendor(
    ctx: &IngestContext,
    client: &VendorClient,
    input: &IngestInput,
    fetched_at: chrono::DateTime<Utc>,
    warnings: &mut Vec<String>,
) -> Result<(PriceSeries, String), StepError> {
    let Some(mut request) = vendors::daily_request(input.source) else {
        return Err(StepError::new(
            ErrorName::VendorBadResponse,
            "the sample source has no vendor",
        ));
    };
    let policy = client.config.retry;
    let (mut attempt, mut sent) = (0, 0);
    loop {
        let response = client.fetch(request, &input.symbol).await;
        let (result, raw_key) = match response {
            Ok(response) => {
                let raw_key = layout::raw_response(
                    input.source.name(),
                    &input.symbol,
                    fetched_at,
                    "daily",
                    sent,
                );
                ctx.store.create(&raw_key, response.body.clone()).await?;
                (
                    vendors::parse_daily(request, &response, &input.symbol),
                    raw_key,
                )
            }
            Err(e) => (Err(e), String::new()),
        };
        sent += 1;
        match result {
            Ok(bars) => {
                let series = PriceSeries::new(input.symbol.clone(), bars).map_err(|e| {
                    VendorError::BadResponse(format!("{}: inconsistent data: {e}", input.source))
                })?;
                return Ok((series, raw_key));
            }
            Err(VendorError::PremiumOnly(message))
                if request == Request::AlphaVantageDaily(DailyFunction::Adjusted) =>
            {
                warnings.push(format!(
                    "{message}; fell back to TIME_SERIES_DAILY: closes are unadjusted for splits and dividends"
                ));
                request = Request::AlphaVantageDaily(DailyFunction::Unadjusted);
            }
            Err(e) if e.is_retryable() && attempt + 1 < policy.attempts => {
                tracing::warn!(symbol = %input.symbol, source = %input.source, attempt, error = %e, "retrying");
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fetches news sentiment and merges it, per day, into
/// `curated/<symbol>.sentiment.csv` (`date,score,articles`).
async fn ingest_sentiment(
    ctx: &IngestContext,
    client: &VendorClient,
    input: &IngestInput,
    source: SentimentSource,
    fetched_at: chrono::DateTime<Utc>,
) -> Result<(), StepError> {
    let request = match source {
        SentimentSource::AlphaVantage => Request::AlphaVantageNews,
    };
    let response = client.fetch(request, &input.symbol).await?;
    ctx.store
        .create(
            &layout::raw_response(source.name(), &input.symbol, fetched_at, "news", 0),
            response.body.clone(),
        )
        .await?;
    response.check_status("alpha-vantage")?;
    let days = alpha_vantage::parse_sentiment(&response.body, &input.symbol)?;
    if days.is_empty() {
        return Ok(());
    }
    ctx.store
        .update_with(
            &layout::sentiment(&input.symbol),
            |current| -> Result<Option<Vec<u8>>, StepError> {
                let mut rows: std::collections::BTreeMap<String, String> = current
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default()
                    .lines()
                    .skip(1)
                    .filter_map(|l| Some((l.split(',').next()?.to_owned(), l.to_owned())))
                    .collect();
                for d in &days {
                    rows.insert(
                        d.date.to_string(),
                        format!("{},{},{}", d.date, d.score, d.articles),
                    );
                }
                let mut text = String::from("date,score,articles\n");
                for line in rows.values() {
                    text.push_str(line);
                    text.push('\n');
                }
                Ok(Some(text.into_bytes()))
            },
        )
        .await?;
    Ok(())
}

fn fetch_sample(dir: &Path, symbol: &str) -> Result<(Vec<u8>, PriceSeries), StepError> {
    let path = dir.join(format!("{symbol}.csv"));
    let raw = std::fs::read(&path).map_err(|e| {
        StepError::new(
            ErrorName::VendorUnknownSymbol,
            format!("no sample file for {symbol} ({}: {e})", path.display()),
        )
    })?;
    let series = PriceSeries::from_csv_bytes(symbol, &path.display().to_string(), &raw)
        .map_err(|e| StepError::new(ErrorName::VendorBadResponse, e.to_string()))?;
    Ok((raw, series))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RunId;

    fn bar(day: u32, close: f64) -> Bar {
        Bar::close_only(
            NaiveDate::from_ymd_opt(2024, 1, day).expect("valid date"),
            close,
        )
    }

    #[test]
    fn news_is_asked_for_company_tickers_only_and_only_where_the_input_says() {
        let input = |symbol: &'static str, source, sentiment| IngestInput {
            run_id: RunId::from_static("r"),
            symbol: Symbol::from_static(symbol),
            source,
            sentiment,
        };
        let av = Some(SentimentSource::AlphaVantage);
        let news = VendorRequest::NewsSentiment(SentimentSource::AlphaVantage);
        assert_eq!(
            vendor_requests(&input("AAPL", Source::Yahoo, av)),
            [VendorRequest::DailyPrices(Source::Yahoo), news]
        );
        assert_eq!(vendor_requests(&input("AAPL", Source::Sample, av)), [news]);
        // The price source no longer implies news: the input says.
        assert_eq!(
            vendor_requests(&input("IBM", Source::AlphaVantage, None)),
            [VendorRequest::DailyPrices(Source::AlphaVantage)]
        );
        for index in ["^GSPC", "EURUSD=X"] {
            assert_eq!(
                vendor_requests(&input(index, Source::Yahoo, av)),
                [VendorRequest::DailyPrices(Source::Yahoo)],
                "{index}"
            );
        }
        assert_eq!(
            (news.vendor(), news.what()),
            ("alpha-vantage", "NEWS_SENTIMENT")
        );
    }

    #[test]
    fn merge_adds_new_days_keeps_old_ones_and_applies_corrections() {
        let existing = [bar(2, 1.0), bar(3, 2.0), bar(4, 3.0)];
        let incoming = [bar(3, 2.0), bar(4, 3.5), bar(5, 4.0)];
        let m = merge(&existing, &incoming);
        assert_eq!(
            m.bars,
            vec![bar(2, 1.0), bar(3, 2.0), bar(4, 3.5), bar(5, 4.0)]
        );
        assert_eq!(m.added, 1);
        assert_eq!(m.corrected, vec![bar(4, 0.0).date]);
        let again = merge(&m.bars, &incoming);
        assert_eq!((again.added, again.corrected.len()), (0, 0));
    }
}
