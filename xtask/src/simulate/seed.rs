//! What a scenario's store and sample folder hold before the workflow
//! runs, built with the library's own steps (ingest, the local pipeline,
//! through `test_support::seed`), so the fixtures are exactly what a
//! previous run would have left.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use chrono::{Duration, NaiveDate};
use stockcast::ids::{RunId, Symbol, VersionId};
use stockcast::layout;
use stockcast::monitor::{ServedForecast, ServedPoint};
use stockcast::series::{Bar, PriceSeries};
use stockcast::store::Store;

/// The bundled sample series of `symbols`.
pub fn bundled(symbols: &[&str]) -> anyhow::Result<BTreeMap<String, Vec<Bar>>> {
    symbols
        .iter()
        .map(|&symbol| {
            let path =
                Path::new("data/sample").join(format!("{}.csv", symbol.trim_start_matches('^')));
            let series = PriceSeries::from_csv_path(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            Ok((symbol.to_owned(), series.bars))
        })
        .collect()
}

/// The symbols of [`generated`] series: `GEN01`, `GEN02`, …
pub fn generated_symbols(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("GEN{i:02}")).collect()
}

/// `n` series made from the bundled samples (AAPL, GOOG, IBM, MSFT, the
/// S&P 500 index, in turn), each scaled by its own factor: real daily
/// prices that pass the quality checks, as many as a scale scenario needs.
pub fn generated(n: usize) -> anyhow::Result<BTreeMap<String, Vec<Bar>>> {
    let sources: Vec<Vec<Bar>> = bundled(&["AAPL", "GOOG", "IBM", "MSFT", "^GSPC"])?
        .into_values()
        .collect();
    Ok(generated_symbols(n)
        .into_iter()
        .enumerate()
        .map(|(i, symbol)| {
            let factor = 1.0 + (i / sources.len()) as f64 * 0.25;
            let bars = sources[i % sources.len()]
                .iter()
                .map(|bar| scaled(bar, factor))
                .collect();
            (symbol, bars)
        })
        .collect())
}

/// A bar with every price multiplied by `factor`.
fn scaled(bar: &Bar, factor: f64) -> Bar {
    Bar {
        open: bar.open.map(|p| p * factor),
        high: bar.high.map(|p| p * factor),
        low: bar.low.map(|p| p * factor),
        close: bar.close * factor,
        adj_close: bar.adj_close.map(|p| p * factor),
        ..*bar
    }
}

/// Writes a sample folder (`<symbol>.csv` per series) the sample source reads.
pub fn write_sample(dir: &Path, series: &BTreeMap<String, Vec<Bar>>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (symbol, bars) in series {
        // The sample source reads bars as they are; validation is the quality step's job.
        let csv = PriceSeries {
            name: symbol.clone(),
            bars: bars.clone(),
            sentiment: Vec::new(),
        }
        .to_csv();
        // The sample source reads `<symbol>.csv`, the symbol as given.
        let path = dir.join(format!("{symbol}.csv"));
        std::fs::write(&path, csv).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Drops `n` trading days from among the last 100 rows, which every model
/// reads: a gap the quality step must catch (an older one only warns).
pub fn with_gap(mut bars: Vec<Bar>, n: usize) -> Vec<Bar> {
    let start = bars.len().saturating_sub(100);
    bars.drain(start..(start + n).min(bars.len()));
    bars
}

/// The same prices on the trading days that end on the last trading day
/// before `today`, so the monitor (which judges by today's date) finds
/// recent realised prices.
pub fn redated(bars: &[Bar], today: NaiveDate) -> Vec<Bar> {
    let mut dates = Vec::with_capacity(bars.len());
    let mut day = today - Duration::days(1);
    while dates.len() < bars.len() {
        if stockcast::calendar::is_trading_day(day) {
            dates.push(day);
        }
        day -= Duration::days(1);
    }
    dates.reverse();
    bars.iter()
        .zip(dates)
        .map(|(bar, date)| Bar { date, ..*bar })
        .collect()
}

/// Ingests `series` into the store through the sample source.
pub async fn ingest_sample(
    store: &Store,
    sample_dir: &Path,
    series: &BTreeMap<String, Vec<Bar>>,
) -> anyhow::Result<()> {
    write_sample(sample_dir, series)?;
    let symbols: Vec<&String> = series.keys().collect();
    test_support::seed::ingested(store, sample_dir, &symbols).await?;
    Ok(())
}

/// Records forecasts "served" over the last `n` trading days of a series,
/// each `bias` off the realised price one day later: the monitor scores
/// them and sees a model much worse than naive.
pub async fn served_forecasts(
    store: &Store,
    symbol: &str,
    bars: &[Bar],
    n: usize,
    bias: f64,
) -> anyhow::Result<()> {
    let symbol = Symbol::new(symbol)?;
    let target = |b: &Bar| b.adj_close.unwrap_or(b.close);
    let first = bars.len().saturating_sub(n + 1);
    for pair in bars[first..].windows(2) {
        let (origin, next) = (&pair[0], &pair[1]);
        let record = ServedForecast {
            symbol: symbol.clone(),
            model: stockcast::models::ModelKind::Naive,
            version: VersionId::from_static("seeded"),
            origin: origin.date,
            last_value: target(origin),
            points: vec![ServedPoint {
                h: 1,
                date: next.date,
                forecast: target(origin) * (1.0 + bias),
            }],
            recorded_at: format!("{}T21:00:00Z", origin.date),
            run_id: RunId::from_static("seed"),
        };
        let bytes = serde_json::to_vec_pretty(&record)?;
        store
            .create(&layout::forecast(&symbol, origin.date), bytes)
            .await
            .with_context(|| format!("seeding a served forecast of {symbol} failed"))?;
    }
    Ok(())
}

/// Copies a folder tree (a seeded store into a scenario's own).
pub fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    test_support::copy_tree(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}
