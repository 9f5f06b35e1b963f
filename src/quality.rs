//! The quality step: checks every curated series before anything trains on
//! it, and lists every problem found (not just the first). A failed check
//! stops the pipeline: nothing is trained on bad data.

use chrono::NaiveDate;

use crate::calendar;
use crate::config::QualityPolicy;
use crate::ingest::curated_key;
use crate::series::{self, Bar, ProblemKind};
use crate::steps::{QualityCheck, QualityInput, QualityIssue, QualityOutput, StepError};
use crate::store::Store;

/// Split ratios whose unadjusted jump would show in a price series.
const SPLIT_RATIOS: [f64; 8] = [2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 1.5];

/// Checks one series' bars; `today` is the date freshness is judged at.
pub fn check_bars(
    symbol: &str,
    bars: &[Bar],
    policy: &QualityPolicy,
    min_rows: usize,
    today: NaiveDate,
) -> Vec<QualityIssue> {
    let mut issues = Vec::new();
    let mut issue = |check, detail: String| {
        issues.push(QualityIssue {
            symbol: symbol.to_owned(),
            check,
            detail,
        })
    };
    for p in series::bar_problems(bars) {
        let check = match p.kind {
            ProblemKind::DuplicateDate => QualityCheck::DuplicateDates,
            ProblemKind::Order => QualityCheck::Order,
            ProblemKind::NonPositive => QualityCheck::NonPositive,
            ProblemKind::HighLow => QualityCheck::HighLow,
        };
        issue(check, format!("row {}: {}", p.index + 1, p.detail));
    }
    if bars.len() < min_rows {
        issue(
            QualityCheck::TooShort,
            format!(
                "{} rows, but training and its backtest need {min_rows}",
                bars.len()
            ),
        );
    }
    for pair in bars.windows(2) {
        if pair[1].date <= pair[0].date {
            continue;
        }
        let missing = calendar::trading_days_between(pair[0].date, pair[1].date);
        if !missing.is_empty() {
            issue(
                QualityCheck::Gaps,
                format!(
                    "{} trading day(s) missing between {} and {} (first: {})",
                    missing.len(),
                    pair[0].date,
                    pair[1].date,
                    missing[0]
                ),
            );
        }
        let target = |b: &Bar| b.adj_close.unwrap_or(b.close);
        let ratio = target(&pair[1]) / target(&pair[0]);
        if let Some(split) = SPLIT_RATIOS.iter().find(|&&k| {
            (ratio * k - 1.0).abs() <= policy.split_tolerance
                || (ratio / k - 1.0).abs() <= policy.split_tolerance
        }) {
            issue(
                QualityCheck::UnexplainedJump,
                format!(
                    "{}: the price moved ×{ratio:.4} in one day, like an unadjusted {split}:1 split",
                    pair[1].date
                ),
            );
        }
    }
    if let (Some(limit), Some(last)) = (policy.max_staleness_days, bars.last()) {
        let age = (today - last.date).num_days();
        if age > i64::from(limit) {
            issue(
                QualityCheck::Freshness,
                format!("last close {} is {age} days old (limit {limit})", last.date),
            );
        }
    }
    issues
}

/// Runs the quality step over the curated series of `input.symbols`.
pub async fn check(
    store: &Store,
    input: &QualityInput,
    policy: &QualityPolicy,
    min_rows: usize,
    today: NaiveDate,
) -> Result<QualityOutput, StepError> {
    let mut issues = Vec::new();
    for symbol in &input.symbols {
        let key = curated_key(symbol);
        let Some(object) = store.get(&key).await? else {
            issues.push(QualityIssue {
                symbol: symbol.clone(),
                check: QualityCheck::Missing,
                detail: format!("{key} does not exist: ingest the symbol first"),
            });
            continue;
        };
        match series::parse_bars(&key, &object.bytes) {
            Ok((bars, _)) => issues.extend(check_bars(symbol, &bars, policy, min_rows, today)),
            Err(e) => issues.push(QualityIssue {
                symbol: symbol.clone(),
                check: QualityCheck::Unreadable,
                detail: e.to_string(),
            }),
        }
    }
    Ok(QualityOutput {
        ok: issues.is_empty(),
        issues,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(symbol: &str) -> Vec<Bar> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("data/sample/{symbol}.csv"));
        crate::series::PriceSeries::from_csv_path(&path)
            .expect("loads")
            .bars
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).expect("valid date")
    }

    #[test]
    fn sample_data_passes() {
        for symbol in ["AAPL", "GOOG", "GSPC", "IBM", "MSFT"] {
            let issues = check_bars(
                symbol,
                &sample(symbol),
                &QualityPolicy::default(),
                1500,
                today(),
            );
            assert!(issues.is_empty(), "{symbol}: {issues:?}");
        }
    }

    #[test]
    fn finds_each_kind_of_problem() {
        let mut bars = sample("IBM")[..300].to_vec();
        bars[10].close = -1.0;
        bars[20] = bars[19];
        bars.remove(40);
        // An unadjusted 2:1 split: every later price halves.
        for b in &mut bars[100..] {
            b.adj_close = b.adj_close.map(|v| v / 2.0);
        }
        bars[200].low = Some(1e9);
        let policy = QualityPolicy {
            max_staleness_days: Some(5),
            ..QualityPolicy::default()
        };
        let issues = check_bars("IBM", &bars, &policy, 1500, today());
        let checks: std::collections::BTreeSet<QualityCheck> =
            issues.iter().map(|i| i.check).collect();
        for expected in [
            QualityCheck::NonPositive,
            QualityCheck::DuplicateDates,
            QualityCheck::Gaps,
            QualityCheck::UnexplainedJump,
            QualityCheck::HighLow,
            QualityCheck::Freshness,
            QualityCheck::TooShort,
        ] {
            assert!(
                checks.contains(&expected),
                "{expected:?} not found in {issues:#?}"
            );
        }
    }
}
