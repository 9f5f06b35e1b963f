//! The quality step: checks every curated series before anything trains on
//! it, and lists every problem found (not just the first).
//!
//! The rows the models use, the training window and the backtest region
//! before it (the last `test_rows + window` rows), are judged strictly: a
//! problem there skips the symbol. Older history no model reads is judged
//! leniently: a gap in 1998 is a warning, not a reason to stop. A symbol
//! that fails is skipped and named while the others go on; a run where
//! every symbol fails stops, with nothing trained.

use chrono::NaiveDate;

use crate::calendar;
use crate::config::QualityPolicy;
use crate::ids::{RunId, Symbol};
use crate::layout;
use crate::series::{self, Bar, ProblemKind};
use crate::steps::{
    ErrorName, QualityCheck, QualityInput, QualityIssue, QualityOutput, Severity, StepError,
};
use crate::store::Store;

/// Split ratios whose unadjusted jump would show in a price series.
const SPLIT_RATIOS: [f64; 8] = [2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 1.5];

/// The price a model forecasts: the adjusted close where there is one.
fn target(bar: &Bar) -> f64 {
    bar.adj_close.unwrap_or(bar.close)
}

/// Checks one series' bars. `used_rows` is how many of the latest rows the
/// models read (`test_rows + window`); `today` is the date freshness is
/// judged at.
pub fn check_bars(
    symbol: &Symbol,
    bars: &[Bar],
    policy: &QualityPolicy,
    used_rows: usize,
    today: NaiveDate,
) -> Vec<QualityIssue> {
    let mut findings = Findings {
        symbol,
        first_used: bars.len().saturating_sub(used_rows),
        issues: Vec::new(),
    };
    findings.bar_problems(bars);
    findings.length(bars, used_rows);
    findings.day_to_day(bars, policy);
    findings.unchanged(bars, policy);
    findings.freshness(bars, policy, today);
    findings.issues
}

/// The issues of one series so far, in the order the checks run.
struct Findings<'a> {
    symbol: &'a Symbol,
    /// The first row the models read; a finding before it is old history.
    first_used: usize,
    issues: Vec<QualityIssue>,
}

impl Findings<'_> {
    /// A finding at a row weighs by where the row is.
    fn at(&self, row: usize) -> Severity {
        if row < self.first_used {
            Severity::Warning
        } else {
            Severity::Error
        }
    }

    fn push(&mut self, check: QualityCheck, severity: Severity, detail: String) {
        self.issues.push(QualityIssue {
            symbol: self.symbol.clone(),
            check,
            detail,
            severity,
        });
    }

    /// The problems the loader refuses a series for, at their rows.
    fn bar_problems(&mut self, bars: &[Bar]) {
        for p in series::bar_problems(bars) {
            let check = match p.kind {
                ProblemKind::DuplicateDate => QualityCheck::DuplicateDates,
                ProblemKind::Order => QualityCheck::Order,
                ProblemKind::NonPositive => QualityCheck::NonPositive,
                ProblemKind::HighLow => QualityCheck::HighLow,
            };
            let severity = self.at(p.index);
            self.push(
                check,
                severity,
                format!("row {}: {}", p.index + 1, p.detail),
            );
        }
    }

    fn length(&mut self, bars: &[Bar], used_rows: usize) {
        if bars.len() < used_rows {
            self.push(
                QualityCheck::TooShort,
                Severity::Error,
                format!(
                    "{} rows, but training and its backtest need {used_rows}",
                    bars.len()
                ),
            );
        }
    }

    /// Calendar gaps and split-like jumps between consecutive rows in date
    /// order (a pair out of order is already a problem of its own).
    fn day_to_day(&mut self, bars: &[Bar], policy: &QualityPolicy) {
        for (i, pair) in bars.windows(2).enumerate() {
            let severity = self.at(i + 1);
            let (before, after) = (&pair[0], &pair[1]);
            if after.date <= before.date {
                continue;
            }
            self.gap(before, after, severity);
            self.jump(before, after, severity, policy);
        }
    }

    fn gap(&mut self, before: &Bar, after: &Bar, severity: Severity) {
        let missing = calendar::trading_days_between(before.date, after.date);
        if let Some(first) = missing.first() {
            self.push(
                QualityCheck::Gaps,
                severity,
                format!(
                    "{} trading day(s) missing between {} and {} (first: {first})",
                    missing.len(),
                    before.date,
                    after.date,
                ),
            );
        }
    }

    fn jump(&mut self, before: &Bar, after: &Bar, severity: Severity, policy: &QualityPolicy) {
        let ratio = target(after) / target(before);
        if let Some(split) = SPLIT_RATIOS.iter().find(|&&k| {
            (ratio * k - 1.0).abs() <= policy.split_tolerance
                || (ratio / k - 1.0).abs() <= policy.split_tolerance
        }) {
            self.push(
                QualityCheck::UnexplainedJump,
                severity,
                format!(
                    "{}: the price moved ×{ratio:.4} in one day, like an unadjusted {split}:1 split",
                    after.date
                ),
            );
        }
    }

    fn unchanged(&mut self, bars: &[Bar], policy: &QualityPolicy) {
        for run in unchanged_runs(bars, policy.max_unchanged_days) {
            let (from, to) = (&bars[run.start], &bars[run.end - 1]);
            let days = run.end - run.start - 1;
            if run.end == bars.len() {
                self.push(
                    QualityCheck::Unchanged,
                    Severity::Error,
                    format!(
                        "stopped moving: the price has been {} since {} ({days} trading days unchanged, limit {})",
                        target(from),
                        from.date,
                        policy.max_unchanged_days
                    ),
                );
            } else {
                // A halt that ended is history, not a reason to skip the
                // symbol; it is reported wherever it is.
                self.push(
                    QualityCheck::Unchanged,
                    Severity::Warning,
                    format!(
                        "the price stayed {} from {} to {} ({days} trading days unchanged)",
                        target(from),
                        from.date,
                        to.date
                    ),
                );
            }
        }
    }

    fn freshness(&mut self, bars: &[Bar], policy: &QualityPolicy, today: NaiveDate) {
        if let (Some(limit), Some(last)) = (policy.max_staleness_days, bars.last()) {
            let age = (today - last.date).num_days();
            if age > i64::from(limit) {
                self.push(
                    QualityCheck::Freshness,
                    Severity::Error,
                    format!("last close {} is {age} days old (limit {limit})", last.date),
                );
            }
        }
    }
}

/// The runs of rows `start..end` over which the price did not change for
/// more than `max_days` days.
fn unchanged_runs(bars: &[Bar], max_days: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for end in 1..=bars.len() {
        if end < bars.len() && target(&bars[end]) == target(&bars[start]) {
            continue;
        }
        if end - start - 1 > max_days {
            runs.push(start..end);
        }
        start = end;
    }
    runs
}

/// Runs the quality step over the curated series of the run's symbols and
/// records every finding, warnings included, in `runs/<run_id>/quality.json`
/// (a re-run of the step rewrites it), and the symbols that passed in
/// `runs/<run_id>/passed.json`. A symbol whose ingestion failed is skipped
/// with the vendor's error. Returns every finding.
pub async fn check(
    store: &Store,
    input: &QualityInput,
    policy: &QualityPolicy,
    used_rows: usize,
    today: NaiveDate,
) -> Result<QualityOutput, StepError> {
    let symbols = run_symbols(store, input).await?;
    let mut failed = input.ingest_failed.clone();
    if let Some(manifest) = &input.ingest_manifest {
        failed.extend(crate::map_run::failed_symbols(store, manifest).await?);
    }
    let mut issues = Vec::new();
    for symbol in &symbols {
        if let Some(failure) = failed.iter().find(|f| &f.symbol == symbol) {
            issues.push(QualityIssue {
                symbol: symbol.clone(),
                check: QualityCheck::IngestFailed,
                detail: format!("{}: {}", failure.error, failure.cause),
                severity: Severity::Error,
            });
            continue;
        }
        issues.extend(check_symbol(store, symbol, policy, used_rows, today).await?);
    }
    let mut output = verdict(&symbols, issues);
    output.passed_count = output.passed.len();
    output.shards =
        crate::universe::shard_count(output.passed_count, input.shard_size.unwrap_or(usize::MAX));
    let passed_key = layout::run_passed(&input.run_id);
    store
        .put_derived(&passed_key, crate::registry::pretty_json(&output.passed))
        .await?;
    output.passed_key = Some(passed_key);
    store
        .put_derived(
            &layout::run_quality(&input.run_id),
            crate::registry::pretty_json(&output),
        )
        .await?;
    Ok(output)
}

/// The run's symbols: inline, or the JSON array at `symbols_key`.
async fn run_symbols(store: &Store, input: &QualityInput) -> Result<Vec<Symbol>, StepError> {
    match &input.symbols_key {
        _ if !input.symbols.is_empty() => Ok(input.symbols.clone()),
        Some(key) => read_symbol_list(store, key).await,
        None => Err(StepError::new(
            ErrorName::InvalidInput,
            "the quality step needs symbols or symbols_key",
        )),
    }
}

/// A symbol list the pipeline wrote (`runs/<run_id>/{symbols,passed}.json`).
pub async fn read_symbol_list(store: &Store, key: &str) -> Result<Vec<Symbol>, StepError> {
    let object = store.get(key).await?.ok_or_else(|| {
        StepError::new(
            ErrorName::RegistryInvalid,
            format!("{key} does not exist: the run's plan or quality step did not write it"),
        )
    })?;
    serde_json::from_slice(&object.bytes).map_err(|e| {
        StepError::new(
            ErrorName::RegistryInvalid,
            format!("{key} is not a list of symbols: {e}"),
        )
    })
}

/// The findings on one symbol's curated series.
async fn check_symbol(
    store: &Store,
    symbol: &Symbol,
    policy: &QualityPolicy,
    used_rows: usize,
    today: NaiveDate,
) -> Result<Vec<QualityIssue>, StepError> {
    let key = layout::curated(symbol);
    let error = |check, detail| QualityIssue {
        symbol: symbol.clone(),
        check,
        detail,
        severity: Severity::Error,
    };
    let Some(object) = store.get(&key).await? else {
        return Ok(vec![error(
            QualityCheck::Missing,
            format!("{key} does not exist: ingest the symbol first"),
        )]);
    };
    Ok(match series::parse_bars(&key, &object.bytes) {
        Ok((bars, _)) => check_bars(symbol, &bars, policy, used_rows, today),
        Err(e) => vec![error(QualityCheck::Unreadable, e.to_string())],
    })
}

/// What the workflow state carries: the errors (why a symbol was skipped,
/// which the alerts list; the first [`STATE_ISSUES`]) and a count of the
/// warnings, whose text stays in the run's quality report, and the passed
/// symbols by key, so the state stays small whatever the universe's size
/// (Step Functions caps it at 256 KB).
pub fn for_state(mut output: QualityOutput, run_id: &RunId) -> QualityOutput {
    output.warnings = output
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Warning)
        .count();
    output.issues.retain(|i| i.severity == Severity::Error);
    output.issues.truncate(STATE_ISSUES);
    // The next steps read the list at `passed_key`.
    output.passed.clear();
    output.report_key = Some(layout::run_quality(run_id));
    output
}

/// The errors a state carries at most (the alerts quote them); the report
/// has every finding. Fifty findings are a few KB.
pub const STATE_ISSUES: usize = 50;

/// Which symbols go on: those without an error.
pub fn verdict(symbols: &[Symbol], issues: Vec<QualityIssue>) -> QualityOutput {
    let failed = |symbol: &Symbol| {
        issues
            .iter()
            .any(|i| &i.symbol == symbol && i.severity == Severity::Error)
    };
    let (skipped, passed): (Vec<Symbol>, Vec<Symbol>) =
        symbols.iter().cloned().partition(|s| failed(s));
    QualityOutput {
        ok: skipped.is_empty(),
        any_passed: !passed.is_empty(),
        passed_count: passed.len(),
        passed,
        skipped,
        issues,
        warnings: 0,
        report_key: None,
        passed_key: None,
        shards: 1,
    }
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
                &Symbol::from_static(symbol),
                &sample(symbol),
                &QualityPolicy::default(),
                1500,
                today(),
            );
            assert!(issues.is_empty(), "{symbol}: {issues:?}");
        }
    }

    #[tokio::test]
    async fn the_run_keeps_every_finding_and_the_state_only_the_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::local(dir.path()).expect("store");
        // IBM with one missing day long before the rows in use: a warning.
        let mut bars = sample("IBM");
        bars.remove(100);
        let series = crate::series::PriceSeries::new("IBM", bars).expect("valid");
        let ibm = Symbol::from_static("IBM");
        store
            .create(&layout::curated(&ibm), series.to_csv())
            .await
            .expect("writes");
        // MSFT was never ingested: an error.
        let input = QualityInput {
            run_id: RunId::from_static("r1"),
            symbols: vec![ibm, Symbol::from_static("MSFT")],
            symbols_key: None,
            ingest_manifest: None,
            ingest_failed: vec![],
            shard_size: None,
        };
        let policy = QualityPolicy::default();
        let all = check(&store, &input, &policy, 1500, today())
            .await
            .expect("checks");
        assert_eq!(all.passed, ["IBM"]);
        assert_eq!(all.skipped, ["MSFT"]);
        let report = store
            .get(&layout::run_quality(&input.run_id))
            .await
            .expect("reads")
            .expect("the run's quality report");
        let recorded: QualityOutput = serde_json::from_slice(&report.bytes).expect("parses");
        assert_eq!(recorded, all);
        let state = for_state(all, &input.run_id);
        assert_eq!(state.warnings, 1);
        assert!(
            state.issues.iter().all(|i| i.severity == Severity::Error) && state.issues.len() == 1,
            "{:?}",
            state.issues
        );
        assert_eq!(state.report_key.as_deref(), Some("runs/r1/quality.json"));
        // A re-run of the step rewrites the report rather than failing.
        check(&store, &input, &policy, 1500, today())
            .await
            .expect("checks again");
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
        let issues = check_bars(&Symbol::from_static("IBM"), &bars, &policy, 1500, today());
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

    #[test]
    fn old_history_warns_and_the_rows_in_use_stop_the_symbol() {
        let bars = sample("IBM");
        let used = 1500;
        let first_used = bars.len() - used;
        // A missing day long before the rows any model reads …
        let mut old_gap = bars.clone();
        old_gap.remove(100);
        let issues = check_bars(
            &Symbol::from_static("IBM"),
            &old_gap,
            &QualityPolicy::default(),
            used,
            today(),
        );
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            (issues[0].check, issues[0].severity),
            (QualityCheck::Gaps, Severity::Warning)
        );
        // … and the same gap among them.
        let mut recent_gap = bars.clone();
        recent_gap.remove(first_used + 10);
        let issues = check_bars(
            &Symbol::from_static("IBM"),
            &recent_gap,
            &QualityPolicy::default(),
            used,
            today(),
        );
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            (issues[0].check, issues[0].severity),
            (QualityCheck::Gaps, Severity::Error)
        );
        // The first row in use is judged with the one before it as strictly
        // (removing a row shifts the region by one: the gap lands between
        // the first row in use and the one before it) …
        let mut boundary = bars.clone();
        boundary.remove(first_used - 1);
        let issues = check_bars(
            &Symbol::from_static("IBM"),
            &boundary,
            &QualityPolicy::default(),
            used,
            today(),
        );
        assert_eq!(issues[0].severity, Severity::Error, "{issues:?}");
        // … and a gap one row earlier is history.
        let mut before = bars.clone();
        before.remove(first_used - 2);
        let issues = check_bars(
            &Symbol::from_static("IBM"),
            &before,
            &QualityPolicy::default(),
            used,
            today(),
        );
        assert_eq!(issues[0].severity, Severity::Warning, "{issues:?}");
    }

    #[test]
    fn a_price_that_stopped_moving_is_an_error_and_a_halt_that_ended_a_warning() {
        let policy = QualityPolicy::default();
        let flat = |bars: &mut [Bar]| {
            let price = bars[0].close;
            for b in bars {
                (b.open, b.high, b.low) = (Some(price), Some(price), Some(price));
                (b.close, b.adj_close) = (price, Some(price));
            }
        };
        let mut stopped = sample("IBM");
        let n = stopped.len();
        // 11 unchanged days after the first: one more than the limit of 10.
        flat(&mut stopped[n - 12..]);
        let issues = check_bars(
            &Symbol::from_static("FLAT"),
            &stopped,
            &policy,
            1500,
            today(),
        );
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].check, QualityCheck::Unchanged);
        assert_eq!(issues[0].severity, Severity::Error);
        assert!(issues[0].detail.contains("stopped moving"), "{issues:?}");
        // Exactly the limit is allowed.
        let mut at_limit = sample("IBM");
        flat(&mut at_limit[n - 11..]);
        assert!(
            check_bars(
                &Symbol::from_static("FLAT"),
                &at_limit,
                &policy,
                1500,
                today()
            )
            .is_empty()
        );
        // A halt in the middle that ended.
        let mut halted = sample("IBM");
        flat(&mut halted[n - 100..n - 70]);
        let issues = check_bars(
            &Symbol::from_static("HALT"),
            &halted,
            &policy,
            1500,
            today(),
        );
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].severity, Severity::Warning);
    }

    #[test]
    fn the_verdict_skips_failing_symbols_and_stops_only_when_none_pass() {
        let symbols: Vec<Symbol> = ["AAPL", "FLAT", "IBM"].map(Symbol::from_static).to_vec();
        let issue = |symbol: &str, severity| QualityIssue {
            symbol: Symbol::new(symbol).expect("valid symbol"),
            check: QualityCheck::Gaps,
            detail: String::new(),
            severity,
        };
        let out = verdict(
            &symbols,
            vec![
                issue("FLAT", Severity::Error),
                issue("IBM", Severity::Warning),
            ],
        );
        assert!(out.any_passed && !out.ok);
        assert_eq!(out.passed, ["AAPL", "IBM"]);
        assert_eq!(out.skipped, ["FLAT"]);
        let none = verdict(
            &symbols,
            symbols.iter().map(|s| issue(s, Severity::Error)).collect(),
        );
        assert!(!none.any_passed && !none.ok);
        assert!(none.passed.is_empty());
        let all = verdict(&symbols, vec![issue("IBM", Severity::Warning)]);
        assert!(all.ok && all.any_passed);
    }
}
