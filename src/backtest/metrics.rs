//! The accuracy metrics of PROTOCOL §4, per (series, model, horizon) and
//! aggregated over series.

use serde::{Deserialize, Serialize};

use super::{ForecastRow, NO_CHANGE_EPSILON};

/// The metrics of one horizon over a set of origins: what a version's
/// metrics.json and the API report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonMetrics {
    pub horizon: usize,
    pub n: usize,
    /// The error metrics are `None` (JSON `null`) where they cannot be
    /// computed, never a number: MASE over a flat window (naive's in-sample
    /// error is zero), MAPE over a zero price, anything over a non-finite
    /// forecast. A NaN would compare false both ways and slip through a gate.
    pub mae: Option<f64>,
    pub rmse: Option<f64>,
    pub mape: Option<f64>,
    pub mase: Option<f64>,
    pub n_dir: usize,
    pub dir_acc: Option<f64>,
    pub coverage80: Option<f64>,
    pub width80_rel: Option<f64>,
}

/// Metrics of one model on one series at one horizon, over its origins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesMetrics {
    pub series: String,
    pub model: String,
    #[serde(flatten)]
    pub metrics: HorizonMetrics,
    pub failures: usize,
}

/// Unweighted means over series (PROTOCOL §4, "Aggregate over series").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateMetrics {
    pub model: String,
    pub horizon: usize,
    pub n_series: usize,
    /// Undefined (`None`) where any series' is.
    pub mase: Option<f64>,
    pub mape: Option<f64>,
    pub dir_acc: Option<f64>,
    pub coverage80: Option<f64>,
    /// 95 % Wilson band of coverage80 over the independent outcomes of the
    /// pooled origins of every series (`independent_outcomes`): a nominal
    /// 0.8 outside it is a miscalibration, not chance.
    #[serde(default)]
    pub coverage80_band: Option<[f64; 2]>,
    pub width80_rel: Option<f64>,
    pub n_dir: usize,
    pub failures: usize,
}

/// Two-sided 95 % standard normal quantile.
const Z95: f64 = 1.959963984540054;

/// How many of `n` origins `spacing` rows apart are independent outcomes at
/// horizon `h`: consecutive origins' h-step periods share `h − spacing`
/// steps, so where `h > spacing` whether one interval covered says much of
/// whether the next did, and only about every `h / spacing`-th is news
/// (n·spacing/h, at least 1). A binomial band over all n would claim at a
/// month the precision of 4 times as many outcomes as there are.
pub fn independent_outcomes(n: usize, spacing: usize, h: usize) -> usize {
    if h <= spacing || n == 0 {
        return n;
    }
    (n * spacing / h).max(1)
}

/// The 95 % Wilson score interval of a proportion `p` observed over `n` trials.
pub fn wilson_band(p: f64, n: usize) -> Option<[f64; 2]> {
    if n == 0 || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let n = n as f64;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some([(centre - half).max(0.0), (centre + half).min(1.0)])
}

/// A metric's value where it is a number; `None` for the NaN of 0/0 and the
/// infinity of x/0.
pub fn defined(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// Computes the metrics of one (series, model, horizon) from its rows.
pub fn metrics_of(rows: &[&ForecastRow]) -> Option<SeriesMetrics> {
    let first = rows.first()?;
    let n = rows.len() as f64;
    let mut abs_sum = 0.0;
    let mut sq_sum = 0.0;
    let mut ape_sum = 0.0;
    let mut scaled_sum = 0.0;
    let mut n_dir = 0;
    let mut hits = 0;
    for r in rows {
        let e = r.actual - r.forecast;
        abs_sum += e.abs();
        sq_sum += e * e;
        ape_sum += e.abs() / r.actual.abs();
        scaled_sum += e.abs() / r.mase_scale;
        let tolerance = NO_CHANGE_EPSILON * r.y_origin;
        let (moved, predicted) = (r.actual - r.y_origin, r.forecast - r.y_origin);
        if moved.abs() > tolerance && predicted.abs() > tolerance {
            n_dir += 1;
            if moved.signum() == predicted.signum() {
                hits += 1;
            }
        }
    }
    let failures = rows.iter().filter(|r| r.failed).count();
    let intervals: Option<Vec<(f64, f64)>> = rows.iter().map(|r| r.lo80.zip(r.hi80)).collect();
    let (coverage80, width80_rel) = match intervals {
        Some(bands) if failures == 0 => {
            let covered = rows
                .iter()
                .zip(&bands)
                .filter(|(r, (lo, hi))| *lo <= r.actual && r.actual <= *hi)
                .count();
            let width: f64 = rows
                .iter()
                .zip(&bands)
                .map(|(r, (lo, hi))| (hi - lo) / r.y_origin)
                .sum();
            (Some(covered as f64 / n), Some(width / n))
        }
        _ => (None, None),
    };
    Some(SeriesMetrics {
        series: first.series.clone(),
        model: first.model.clone(),
        metrics: HorizonMetrics {
            horizon: first.h,
            n: rows.len(),
            mae: defined(abs_sum / n),
            rmse: defined((sq_sum / n).sqrt()),
            mape: defined(100.0 * ape_sum / n),
            mase: defined(scaled_sum / n),
            n_dir,
            dir_acc: (n_dir > 0).then(|| hits as f64 / n_dir as f64),
            coverage80,
            width80_rel,
        },
        failures,
    })
}

/// Metrics for every (series, model, horizon) in the rows, in row order.
/// A failure anywhere in a (series, model) voids its interval metrics at
/// every horizon (PROTOCOL §4).
pub fn series_metrics(rows: &[ForecastRow], horizons: &[usize]) -> Vec<SeriesMetrics> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        if groups.last() != Some(&(r.series.as_str(), r.model.as_str())) {
            groups.push((r.series.as_str(), r.model.as_str()));
        }
    }
    let mut out = Vec::new();
    for (series, model) in groups {
        let of_group: Vec<&ForecastRow> = rows
            .iter()
            .filter(|r| r.series == series && r.model == model)
            .collect();
        let any_failure = of_group.iter().any(|r| r.failed);
        for &h in horizons {
            let at_h: Vec<&ForecastRow> = of_group.iter().copied().filter(|r| r.h == h).collect();
            if let Some(mut m) = metrics_of(&at_h) {
                if any_failure {
                    m.metrics.coverage80 = None;
                    m.metrics.width80_rel = None;
                }
                m.failures = of_group.iter().filter(|r| r.failed && r.h == h).count();
                out.push(m);
            }
        }
    }
    out
}

/// Means over series per (model, horizon); a metric is null when any series' is.
/// `spacing` is the rows between origins (the coverage band's independent outcomes).
pub fn aggregate(
    per_series: &[SeriesMetrics],
    models: &[String],
    horizons: &[usize],
    spacing: usize,
) -> Vec<AggregateMetrics> {
    let mut out = Vec::new();
    for model in models {
        for &h in horizons {
            let group: Vec<&SeriesMetrics> = per_series
                .iter()
                .filter(|m| &m.model == model && m.metrics.horizon == h)
                .collect();
            if group.is_empty() {
                continue;
            }
            let n = group.len() as f64;
            let mean_opt = |f: &dyn Fn(&HorizonMetrics) -> Option<f64>| -> Option<f64> {
                let values: Option<Vec<f64>> = group.iter().map(|m| f(&m.metrics)).collect();
                values.map(|v| v.iter().sum::<f64>() / n)
            };
            let coverage80 = mean_opt(&|m| m.coverage80);
            // Pooled over series: the mean of per-series shares weighted by
            // their origins, which the protocol makes equal.
            let trials: usize = group.iter().map(|m| m.metrics.n).sum();
            let covered: Option<f64> = group
                .iter()
                .map(|m| m.metrics.coverage80.map(|c| c * m.metrics.n as f64))
                .sum();
            out.push(AggregateMetrics {
                model: model.clone(),
                horizon: h,
                n_series: group.len(),
                mase: mean_opt(&|m| m.mase),
                mape: mean_opt(&|m| m.mape),
                dir_acc: mean_opt(&|m| m.dir_acc),
                coverage80,
                coverage80_band: covered.and_then(|c| {
                    wilson_band(c / trials as f64, independent_outcomes(trials, spacing, h))
                }),
                width80_rel: mean_opt(&|m| m.width80_rel),
                n_dir: group.iter().map(|m| m.metrics.n_dir).sum(),
                failures: group.iter().map(|m| m.failures).sum(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use chrono::NaiveDate;

    fn row(y_origin: f64, actual: f64, forecast: f64, band: Option<(f64, f64)>) -> ForecastRow {
        let date = NaiveDate::from_ymd_opt(2020, 1, 2).expect("valid date");
        ForecastRow {
            series: "S".into(),
            model: "drift".into(),
            origin_row: 0,
            origin_date: date,
            h: 1,
            target_date: date,
            y_origin,
            actual,
            forecast,
            lo80: band.map(|b| b.0),
            hi80: band.map(|b| b.1),
            mase_scale: 2.0,
            failed: false,
        }
    }

    #[test]
    fn metrics_by_hand() {
        let rows = [
            row(100.0, 110.0, 105.0, Some((95.0, 110.0))), // e = 5, up/up, covered (closed)
            row(100.0, 90.0, 102.0, Some((99.0, 105.0))),  // e = −12, down/up, not covered
            row(100.0, 100.0, 101.0, Some((90.0, 110.0))), // e = −1, no change: dropped from dir_acc
            row(100.0, 104.0, 100.0, Some((90.0, 110.0))), // e = 4, forecast unchanged: dropped
        ];
        let refs: Vec<&ForecastRow> = rows.iter().collect();
        let m = metrics_of(&refs).expect("rows");
        let value = |v: Option<f64>| v.expect("defined");
        assert_relative_eq!(value(m.metrics.mae), (5.0 + 12.0 + 1.0 + 4.0) / 4.0);
        assert_relative_eq!(
            value(m.metrics.rmse),
            ((25.0 + 144.0 + 1.0 + 16.0) / 4.0_f64).sqrt()
        );
        assert_relative_eq!(
            value(m.metrics.mape),
            100.0 * (5.0 / 110.0 + 12.0 / 90.0 + 1.0 / 100.0 + 4.0 / 104.0) / 4.0
        );
        assert_relative_eq!(value(m.metrics.mase), value(m.metrics.mae) / 2.0);
        assert_eq!(m.metrics.n_dir, 2);
        assert_eq!(m.metrics.dir_acc, Some(0.5));
        assert_eq!(m.metrics.coverage80, Some(0.75));
        assert_relative_eq!(
            m.metrics.width80_rel.expect("bands"),
            (15.0 + 6.0 + 20.0 + 20.0) / 100.0 / 4.0
        );
    }

    #[test]
    fn no_change_rule_uses_the_relative_epsilon() {
        // A move of half the tolerance is "no change"; twice the tolerance counts.
        let tiny = 0.5 * NO_CHANGE_EPSILON * 100.0;
        let rows = [
            row(100.0, 100.0 + tiny, 101.0, None),
            row(100.0, 100.0 + 4.0 * tiny, 101.0, None),
        ];
        let refs: Vec<&ForecastRow> = rows.iter().collect();
        let m = metrics_of(&refs).expect("rows");
        assert_eq!(m.metrics.n_dir, 1);
        assert_eq!(m.metrics.coverage80, None, "no intervals → null coverage");
        let naive = [row(100.0, 101.0, 100.0, None)];
        let m = metrics_of(&naive.iter().collect::<Vec<_>>()).expect("rows");
        assert_eq!((m.metrics.n_dir, m.metrics.dir_acc), (0, None));
    }

    #[test]
    fn a_flat_window_leaves_mase_undefined_and_the_json_readable() {
        // A halted price: naive's in-sample error is zero, so MASE is 0/0.
        let mut flat = row(100.0, 100.0, 100.0, Some((100.0, 100.0)));
        flat.mase_scale = 0.0;
        let m = metrics_of(&[&flat]).expect("rows");
        assert_eq!(m.metrics.mase, None);
        assert_eq!(m.metrics.mae, Some(0.0));
        let json = serde_json::to_string(&m.metrics).expect("serialises");
        assert!(json.contains(r#""mase":null"#), "{json}");
        let back: HorizonMetrics = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, m.metrics);
        // One undefined series makes the aggregate undefined, not a mean of the rest.
        let moving = row(100.0, 101.0, 100.0, None);
        let per_series = series_metrics(&[flat, moving], &[1]);
        let agg = aggregate(&per_series, &["drift".to_owned()], &[1], 5);
        assert_eq!(agg[0].mase, None);
    }

    #[test]
    fn a_failure_voids_interval_metrics_and_is_counted() {
        let mut failed = row(100.0, 104.0, 100.0, None);
        failed.failed = true;
        let mut other_h = row(100.0, 104.0, 103.0, Some((90.0, 110.0)));
        other_h.h = 5;
        let rows = vec![
            row(100.0, 101.0, 102.0, Some((90.0, 110.0))),
            failed,
            other_h,
        ];
        let per_series = series_metrics(&rows, &[1, 5]);
        assert_eq!(per_series.len(), 2);
        assert_eq!(per_series[0].failures, 1);
        assert_eq!(per_series[0].metrics.coverage80, None);
        // h = 5 had an interval at its only origin, but the model failed at h = 1's origin.
        assert_eq!(per_series[1].metrics.coverage80, None);
        let agg = aggregate(&per_series, &["drift".to_owned()], &[1, 5], 5);
        assert_eq!(agg[0].failures, 1);
        assert_eq!(agg[0].coverage80, None);
    }

    #[test]
    fn wilson_band_by_hand() {
        // p = 0.8, n = 480: centre (0.8 + 3.8415/960)/(1 + 3.8415/480) = 0.797618;
        // half-width 1.95996/1.008003·√(0.16/480 + 3.8415/921600) = 0.035721.
        let [lo, hi] = wilson_band(0.8, 480).expect("band");
        assert_relative_eq!(lo, 0.761897, epsilon = 1e-5);
        assert_relative_eq!(hi, 0.833339, epsilon = 1e-5);
        assert_eq!(wilson_band(0.5, 0), None);
        let [lo, hi] = wilson_band(1.0, 10).expect("band");
        assert!(lo < 1.0 && (hi - 1.0).abs() < 1e-12, "{lo} {hi}");
    }

    #[test]
    fn overlapping_horizons_count_fewer_independent_outcomes() {
        // 480 origins 5 rows apart: every one at 1 and 5 days; at 21 days
        // each shares 16 of its 21 steps with the next, 480·5/21 = 114.
        assert_eq!(independent_outcomes(480, 5, 1), 480);
        assert_eq!(independent_outcomes(480, 5, 5), 480);
        assert_eq!(independent_outcomes(480, 5, 21), 114);
        assert_eq!(independent_outcomes(2, 5, 21), 1);
        assert_eq!(independent_outcomes(0, 5, 21), 0);
        // So the month's band is about twice as wide as the day's.
        let [lo1, hi1] = wilson_band(0.8, 480).expect("band");
        let [lo21, hi21] = wilson_band(0.8, 114).expect("band");
        assert!(
            (hi21 - lo21) > 1.9 * (hi1 - lo1),
            "{lo21}–{hi21} vs {lo1}–{hi1}"
        );
    }

    #[test]
    fn aggregate_is_the_unweighted_mean_over_series() {
        let mut a = row(100.0, 110.0, 105.0, Some((95.0, 110.0)));
        a.series = "A".into();
        let mut b = row(100.0, 90.0, 95.0, None);
        b.series = "B".into();
        let per_series = series_metrics(&[a, b], &[1]);
        let agg = aggregate(&per_series, &["drift".to_owned()], &[1], 5);
        assert_relative_eq!(agg[0].mase.expect("defined"), (2.5 + 2.5) / 2.0);
        assert_eq!(agg[0].n_dir, 2);
        assert_eq!(agg[0].dir_acc, Some(1.0));
        assert_eq!(agg[0].coverage80, None, "B has no interval");
    }
}
