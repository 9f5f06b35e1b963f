//! Split-conformal calibration of 80 % intervals from the window's own
//! rolling validation (see `validation`).
//!
//! At every inner origin the uncalibrated model forecasts 1..=21 steps with
//! its own interval. Each error is scored against that interval's half-width
//! at its step (`|actual − forecast| / half-width`), the scores of all steps
//! and origins are pooled, and their conformal 80 % quantile becomes one
//! factor that scales the final fit's half-widths. A model whose intervals
//! are right gets a factor near 1; intervals that are too narrow (ARIMA's
//! ψ-weight bands, which ignore parameter and order uncertainty) widen.
//!
//! Pooling over steps assumes the model's own bands grow with the horizon
//! at the right rate and fixes their level only; one factor per step would
//! rest on eight scores each, too few for an 80 % quantile.

use serde::{Deserialize, Serialize};

use super::validation::{self, InnerForecast};
use super::{MAX_HORIZON, ModelKind, Window};

/// Nominal coverage of the intervals.
pub const LEVEL: f64 = 0.8;

/// What the conformal step found: stored in the artifact, so a served
/// interval can be traced to the evidence that widened it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Factor applied to the model's own half-widths.
    pub scale: f64,
    /// How many validation errors the factor rests on.
    pub scores: usize,
    /// Share of those errors the model's own intervals covered.
    pub own_coverage: f64,
}

/// The conformal quantile of `scores`: the `⌈(n + 1)·LEVEL⌉`-th smallest,
/// which covers a new exchangeable score with probability at least `LEVEL`.
/// `None` when there are too few scores for that rank or it is not finite.
pub fn conformal_quantile(scores: &[f64]) -> Option<f64> {
    let n = scores.len();
    let rank = ((n + 1) as f64 * LEVEL).ceil() as usize;
    if rank == 0 || rank > n {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q = sorted[rank - 1];
    q.is_finite().then_some(q)
}

/// Scores of inner forecasts against their own intervals. An error of zero
/// against a zero-width band (a constant series) scores 0; a non-zero error
/// against one scores infinity, which no finite factor can fix.
pub fn scores(inner: &[InnerForecast]) -> Option<Vec<f64>> {
    let mut out = Vec::with_capacity(inner.len() * MAX_HORIZON);
    for f in inner {
        let (lower, upper) = (f.forecast.lower.as_ref()?, f.forecast.upper.as_ref()?);
        for (i, actual) in f.actual.iter().enumerate() {
            let error = (actual - f.forecast.mean[i]).abs();
            let half_width = (upper[i] - lower[i]) / 2.0;
            out.push(if error == 0.0 {
                0.0
            } else {
                error / half_width
            });
        }
    }
    Some(out)
}

/// Calibrates `kind`'s intervals on `window`; `None` (keep the model's own
/// intervals) when the window is too short for inner origins, the model
/// fails at one of them, or it gives no intervals.
pub fn calibrate(kind: ModelKind, window: &Window<'_>) -> Option<Calibration> {
    let plan = validation::plan(window.len(), kind.min_window())?;
    let inner = validation::inner_forecasts(kind, window, &plan)?;
    let scores = scores(&inner)?;
    let scale = conformal_quantile(&scores)?;
    let covered = scores.iter().filter(|s| **s <= 1.0).count();
    Some(Calibration {
        scale,
        scores: scores.len(),
        own_coverage: covered as f64 / scores.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Forecast, Z80};
    use crate::testutil::Rng;

    #[test]
    fn quantile_rank_is_the_finite_sample_one() {
        // n = 9: ⌈10 · 0.8⌉ = 8th smallest.
        let scores: Vec<f64> = (1..=9).map(f64::from).rev().collect();
        assert_eq!(conformal_quantile(&scores), Some(8.0));
        // n = 3: rank ⌈3.2⌉ = 4 > 3, no quantile.
        assert_eq!(conformal_quantile(&[1.0, 2.0, 3.0]), None);
        assert_eq!(
            conformal_quantile(&[1.0, 2.0, 3.0, 4.0, f64::INFINITY]),
            None
        );
    }

    /// The split-conformal promise on data with a known variance: an interval
    /// that starts at half the right width (a model that underestimates σ
    /// twofold) is widened from calibration scores to nominal coverage of
    /// fresh draws.
    #[test]
    fn conformal_scale_reaches_nominal_coverage_with_known_variance() {
        let mut rng = Rng::new(17);
        let sigma = 2.0;
        let own_half_width = 0.5 * Z80 * sigma;
        let (mut covered, mut total) = (0usize, 0usize);
        for _ in 0..400 {
            // One calibration set of the size a protocol window provides.
            let inner: Vec<InnerForecast> = (0..8)
                .map(|origin| InnerForecast {
                    origin,
                    forecast: Forecast {
                        mean: vec![0.0; MAX_HORIZON],
                        lower: Some(vec![-own_half_width; MAX_HORIZON]),
                        upper: Some(vec![own_half_width; MAX_HORIZON]),
                    },
                    actual: (0..MAX_HORIZON).map(|_| sigma * rng.normal()).collect(),
                    mae_scale: 1.0,
                    naive_sigma: 1.0,
                })
                .collect();
            let scores = scores(&inner).expect("intervals");
            let scale = conformal_quantile(&scores).expect("enough scores");
            for _ in 0..50 {
                total += 1;
                if (sigma * rng.normal()).abs() <= scale * own_half_width {
                    covered += 1;
                }
            }
        }
        let coverage = covered as f64 / total as f64;
        // 20,000 fresh draws: the binomial standard error is 0.003.
        assert!((0.79..=0.82).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn calibration_on_a_random_walk_keeps_a_right_band_about_right() {
        // The random walk's own band is right for a random walk: the factor
        // should be near 1 and its own coverage near 80 %.
        let y = crate::models::tests::random_walk(1000, 21);
        let c = calibrate(ModelKind::Naive, &Window::of_target(&y)).expect("calibrates");
        assert_eq!(c.scores, 8 * MAX_HORIZON);
        assert!((0.6..1.6).contains(&c.scale), "scale {}", c.scale);
    }
}
