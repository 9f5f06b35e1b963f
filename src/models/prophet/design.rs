//! Prophet's data preparation, as prophet 1.5.0 does it
//! (`setup_dataframe`, `set_changepoints`, `set_auto_seasonalities`,
//! `fourier_series`): time scaled to [0, 1] over the history, changepoints
//! evenly over the first 80 % of the rows, Fourier terms on days since the
//! Unix epoch. The column order of a design row is the parameter order of
//! the MAP problem: `k`, `m`, one `delta` per changepoint, one `beta` per
//! Fourier term.

use std::f64::consts::PI;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Days from the Unix epoch: the time axis of Prophet's Fourier terms.
fn epoch_days(day: NaiveDate) -> f64 {
    (day - NaiveDate::default()).num_days() as f64
}

/// A periodic component: `order` sine/cosine pairs of period `period` days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seasonality {
    pub period: f64,
    pub order: usize,
}

impl Seasonality {
    pub const YEARLY: Seasonality = Seasonality {
        period: 365.25,
        order: 10,
    };
    pub const WEEKLY: Seasonality = Seasonality {
        period: 7.0,
        order: 3,
    };

    /// Prophet's `auto` rule on a history: yearly when it spans two years,
    /// weekly when it spans two weeks with steps under a week, never daily
    /// on daily data (that needs steps under a day).
    pub fn automatic(dates: &[NaiveDate]) -> Vec<Seasonality> {
        let (Some(first), Some(last)) = (dates.first(), dates.last()) else {
            return Vec::new();
        };
        let span = (*last - *first).num_days();
        let min_step = dates
            .windows(2)
            .map(|d| (d[1] - d[0]).num_days())
            .min()
            .unwrap_or(i64::MAX);
        let mut out = Vec::new();
        if span >= 730 {
            out.push(Self::YEARLY);
        }
        if span >= 14 && min_step < 7 {
            out.push(Self::WEEKLY);
        }
        out
    }
}

/// The number of Fourier columns of a set of seasonalities.
pub fn fourier_columns(seasonalities: &[Seasonality]) -> usize {
    seasonalities.iter().map(|s| 2 * s.order).sum()
}

/// Appends the Fourier terms of `day`: `sin, cos` of each harmonic in turn,
/// with Prophet's order of operations.
pub fn push_fourier(day: NaiveDate, seasonalities: &[Seasonality], out: &mut Vec<f64>) {
    let t = epoch_days(day);
    for s in seasonalities {
        for i in 0..s.order {
            let x = 2.0 * (i + 1) as f64 * PI * t / s.period;
            out.push(x.sin());
            out.push(x.cos());
        }
    }
}

/// The history's time axis: `t = 0` on its first date, `t = 1` on its last.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    pub start: NaiveDate,
    /// Calendar days from the first to the last date of the history.
    pub span_days: i64,
}

impl Timeline {
    pub fn t(&self, day: NaiveDate) -> f64 {
        (day - self.start).num_days() as f64 / self.span_days as f64
    }
}

/// Prophet's potential changepoints: `n` dates at evenly spaced rows of the
/// first `range` of the history (rounded half to even, as numpy does),
/// excluding the first row; fewer when the history is short.
pub fn changepoints(dates: &[NaiveDate], n: usize, range: f64) -> Vec<NaiveDate> {
    let hist_size = (dates.len() as f64 * range).floor() as usize;
    let n = n.min(hist_size.saturating_sub(1));
    if n == 0 {
        return Vec::new();
    }
    let last = (hist_size - 1) as f64;
    let step = last / n as f64;
    (1..=n)
        .map(|i| {
            // numpy's linspace pins its last point to the stop value exactly.
            let x = if i == n { last } else { i as f64 * step };
            dates[x.round_ties_even() as usize]
        })
        .collect()
}

/// The trend of Prophet's `piecewise_linear`: slope `k` plus every change
/// whose time has come, offset kept continuous.
pub fn piecewise_linear(t: f64, k: f64, m: f64, deltas: &[f64], changepoints_t: &[f64]) -> f64 {
    let (mut slope, mut offset) = (k, m);
    for (&d, &s) in deltas.iter().zip(changepoints_t) {
        if s <= t {
            slope += d;
            offset -= s * d;
        }
    }
    slope * t + offset
}

/// One row of the design matrix at time `t` of `day`.
pub fn push_design_row(
    day: NaiveDate,
    t: f64,
    changepoints_t: &[f64],
    seasonalities: &[Seasonality],
    out: &mut Vec<f64>,
) {
    out.push(t);
    out.push(1.0);
    out.extend(
        changepoints_t
            .iter()
            .map(|&s| if s <= t { t - s } else { 0.0 }),
    );
    push_fourier(day, seasonalities, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("valid date")
    }

    #[test]
    fn changepoints_are_prophets() {
        // 1000 rows: hist_size 800, linspace(0, 799, 26) rounded.
        let dates: Vec<NaiveDate> = (0..1000)
            .map(|i| d("2000-01-01") + chrono::Days::new(i))
            .collect();
        let cps = changepoints(&dates, 25, 0.8);
        assert_eq!(cps.len(), 25);
        assert_eq!(cps[0], dates[32]); // 31.96
        assert_eq!(cps[1], dates[64]); // 63.92
        assert_eq!(cps[24], dates[799]);
        // A short history gets fewer changepoints.
        assert_eq!(changepoints(&dates[..20], 25, 0.8).len(), 15);
    }

    #[test]
    fn seasonalities_follow_the_auto_rule() {
        let daily: Vec<NaiveDate> = (0..800)
            .map(|i| d("2000-01-03") + chrono::Days::new(i))
            .collect();
        assert_eq!(
            Seasonality::automatic(&daily),
            vec![Seasonality::YEARLY, Seasonality::WEEKLY]
        );
        assert_eq!(
            Seasonality::automatic(&daily[..100]),
            vec![Seasonality::WEEKLY]
        );
        let weekly: Vec<NaiveDate> = (0..200)
            .map(|i| d("2000-01-03") + chrono::Days::new(7 * i))
            .collect();
        assert_eq!(Seasonality::automatic(&weekly), vec![Seasonality::YEARLY]);
    }

    #[test]
    fn fourier_terms_match_prophets_formula() {
        let mut row = Vec::new();
        push_fourier(d("1970-01-08"), &[Seasonality::WEEKLY], &mut row);
        // t = 7 days: every weekly harmonic is at a whole period.
        for pair in row.chunks(2) {
            assert!(pair[0].abs() < 1e-12 && (pair[1] - 1.0).abs() < 1e-12);
        }
        assert_eq!(row.len(), 6);
    }

    #[test]
    fn the_trend_is_continuous_at_changepoints() {
        let (k, m, deltas, cps) = (0.5, 0.1, [0.3, -0.8], [0.4, 0.7]);
        for &s in &cps {
            let before = piecewise_linear(s - 1e-12, k, m, &deltas, &cps);
            let at = piecewise_linear(s, k, m, &deltas, &cps);
            assert!((before - at).abs() < 1e-9);
        }
        assert!(
            (piecewise_linear(1.0, k, m, &deltas, &cps)
                - (0.5 + 0.3 - 0.8 + 0.1 - 0.4 * 0.3 + 0.7 * 0.8))
                .abs()
                < 1e-12
        );
    }
}
