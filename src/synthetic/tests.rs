use super::*;
use crate::backtest::Protocol;
use crate::config::QualityPolicy;
use crate::quality::check_bars;

fn day(s: &str) -> NaiveDate {
    s.parse().expect("valid date")
}

/// A Sunday: the series end on the Friday before.
fn end() -> NaiveDate {
    day("2026-11-29")
}

fn universe(count: usize, seed: u64) -> SyntheticUniverse {
    SyntheticUniverse::new(count, seed, DEFAULT_ROWS, end()).expect("a valid universe")
}

fn csv(universe: &SyntheticUniverse) -> Vec<String> {
    universe.series().map(|(_, s)| s.to_csv()).collect()
}

#[test]
fn symbols_are_numbered_from_one_and_valid() {
    assert_eq!(symbol(0), "SYN0001");
    assert_eq!(symbol(499), "SYN0500");
    assert_eq!(symbol(9_999), "SYN10000");
    let names: Vec<Symbol> = universe(3, 1).series().map(|(s, _)| s).collect();
    assert_eq!(names, universe(3, 1).symbols());
    assert_eq!(names, ["SYN0001", "SYN0002", "SYN0003"]);
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
    let first = csv(&universe(4, 7));
    assert_eq!(first, csv(&universe(4, 7)));
    let other = csv(&universe(4, 8));
    for (a, b) in first.iter().zip(&other) {
        assert_ne!(a, b);
    }
    // The series of one universe differ from each other too.
    assert_ne!(first[0], first[1]);
}

#[test]
fn a_symbol_is_the_same_series_in_a_universe_of_any_size() {
    let small = csv(&universe(3, 11));
    let large = csv(&universe(6, 11));
    assert_eq!(small[..], large[..3]);
}

#[test]
fn a_later_end_adds_days_and_changes_none() {
    let today = universe(2, 5);
    let later = SyntheticUniverse::new(2, 5, DEFAULT_ROWS, day("2027-01-15")).expect("valid");
    for ((_, now), (_, then)) in today.series().zip(later.series()) {
        let first = then.bars[0].date;
        let overlap: Vec<&Bar> = now.bars.iter().filter(|b| b.date >= first).collect();
        assert!(overlap.len() > DEFAULT_ROWS - 40, "{}", overlap.len());
        for bar in overlap {
            assert_eq!(then.bars.iter().find(|b| b.date == bar.date), Some(bar));
        }
        assert!(then.bars.last().expect("rows").date > now.bars.last().expect("rows").date);
    }
}

#[test]
fn series_have_the_rows_asked_for_on_trading_days_ending_at_the_end_date() {
    for (symbol, series) in universe(3, 2).series() {
        assert_eq!(series.name, symbol.as_str());
        assert_eq!(series.len(), DEFAULT_ROWS);
        assert_eq!(series.bars.last().expect("rows").date, day("2026-11-27"));
        assert!(series.bars.iter().all(|b| calendar::is_trading_day(b.date)));
        // Written and read back through the price file format.
        let read =
            PriceSeries::from_csv_bytes(&series.name, "synthetic", series.to_csv().as_bytes())
                .expect("reads back");
        assert_eq!(read, series);
    }
}

/// Every check of the quality step, freshness included (the series end on
/// the last trading day), finds nothing: no error and no warning.
#[test]
fn the_quality_checks_pass_on_every_series() {
    let policy = QualityPolicy {
        max_staleness_days: Some(4),
        ..QualityPolicy::default()
    };
    let used_rows = Protocol::default().used_rows();
    for (symbol, series) in universe(100, 3).series() {
        let issues = check_bars(&symbol, &series.bars, &policy, used_rows, end());
        assert!(issues.is_empty(), "{symbol}: {issues:?}");
    }
}

#[test]
fn bad_sizes_are_refused_with_the_reason() {
    assert_eq!(
        SyntheticUniverse::new(0, 1, DEFAULT_ROWS, end()),
        Err(SyntheticError::NoSymbols)
    );
    assert_eq!(
        SyntheticUniverse::new(1, 1, 1, end()),
        Err(SyntheticError::TooFewRows(1))
    );
    let error = SyntheticUniverse::new(1, 1, 20_000, end()).expect_err("too long");
    assert!(
        error
            .to_string()
            .starts_with("20000 rows should end on 2026-11-29, but only ")
            && error.to_string().contains("synthetic epoch 1990-01-02"),
        "{error}"
    );
}

/// Log returns of the closes, with the regime each was drawn in.
fn returns(seed: u64) -> Vec<(f64, Regime)> {
    let dates: Vec<NaiveDate> = universe(1, 0).dates;
    walk(seed, &dates)
        .windows(2)
        .map(|pair| ((pair[1].bar.close / pair[0].bar.close).ln(), pair[1].regime))
        .collect()
}

fn std_dev(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

/// The statistics the module's documentation states, over 20 walks of
/// about 9,300 days each: the volatility of each regime, the share of
/// stormy days, fat tails, and no memory in the returns.
#[test]
fn the_statistics_are_those_documented() {
    let all: Vec<(f64, Regime)> = (0..20).flat_map(returns).collect();
    let of = |regime| -> Vec<f64> {
        all.iter()
            .filter(|(_, r)| *r == regime)
            .map(|(x, _)| *x)
            .collect()
    };
    let (calm, stormy) = (of(Regime::Calm), of(Regime::Stormy));
    // Cents and the reflections add a little noise to the drawn volatility.
    assert!(
        (std_dev(&calm) - REGIMES.calm_vol).abs() < 0.0005,
        "{}",
        std_dev(&calm)
    );
    assert!(
        (std_dev(&stormy) - REGIMES.stormy_vol).abs() < 0.0015,
        "{}",
        std_dev(&stormy)
    );
    let share = stormy.len() as f64 / all.len() as f64;
    assert!(
        (share - REGIMES.stormy_share()).abs() < 0.05,
        "stormy share {share}"
    );
    // The mixture of the two regimes has fat tails (a normal's kurtosis is 3).
    let pooled: Vec<f64> = all.iter().map(|(x, _)| *x).collect();
    let sd = std_dev(&pooled);
    let mean = pooled.iter().sum::<f64>() / pooled.len() as f64;
    let kurtosis = pooled
        .iter()
        .map(|x| ((x - mean) / sd).powi(4))
        .sum::<f64>()
        / pooled.len() as f64;
    assert!(kurtosis > 5.0, "kurtosis {kurtosis}");
    // Returns do not predict the next return; their sizes do (clustering).
    let autocorrelation = |values: &[f64]| {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
        values
            .windows(2)
            .map(|w| (w[0] - mean) * (w[1] - mean))
            .sum::<f64>()
            / var
    };
    for seed in 0..5 {
        let series: Vec<f64> = returns(seed).iter().map(|(x, _)| *x).collect();
        let rho = autocorrelation(&series);
        assert!(rho.abs() < 0.05, "seed {seed}: lag-1 autocorrelation {rho}");
        let sizes: Vec<f64> = series.iter().map(|x| x.abs()).collect();
        let clustering = autocorrelation(&sizes);
        assert!(
            clustering > 0.15,
            "seed {seed}: |r| autocorrelation {clustering}"
        );
    }
}
