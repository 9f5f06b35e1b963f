//! Split-conformal calibration of 80 % intervals from the window's own
//! rolling validation (see `validation`).
//!
//! At every inner origin the uncalibrated model forecasts 1..=21 steps with
//! its own interval. Each error is scored against that interval's half-width
//! at its step (`|actual − forecast| / half-width`); the scores of the steps
//! of one horizon group (`STEP_GROUPS`) at every origin are pooled, and
//! their conformal 80 % quantile becomes the factor that scales the final
//! fit's half-widths at those steps. A model whose intervals are right gets
//! factors near 1; intervals that are too narrow (ARIMA's ψ-weight bands,
//! which ignore parameter and order uncertainty) widen.
//!
//! Why groups: a √h-shaped band is too wide at one day and too narrow at a
//! month on daily prices (volatility clusters), so one factor for all steps
//! over-covers the short horizons and under-covers the long ones. One factor
//! per step would rest on eight scores, too few for an 80 % quantile; three
//! groups rest on 24 to 88.

use serde::{Deserialize, Serialize};

use super::validation::{self, InnerForecast};
use super::{MAX_HORIZON, ModelKind, Window};

/// Nominal coverage of the intervals.
pub const LEVEL: f64 = 0.8;

/// The last step of each horizon group: a day to a few days, up to two
/// weeks, up to a month. Fixed by horizon, not fitted to any data.
pub const STEP_GROUPS: [usize; 3] = [3, 10, MAX_HORIZON];

/// What the conformal step found: stored in the artifact, so a served
/// interval can be traced to the evidence that widened it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Factor applied to the model's own half-width at each step `1..=21`.
    pub scales: Vec<f64>,
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
    let rank = rank(n);
    if rank == 0 || rank > n {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q = sorted[rank - 1];
    q.is_finite().then_some(q)
}

/// The conformal rank `⌈(n + 1)·LEVEL⌉` of `n` scores.
fn rank(n: usize) -> usize {
    ((n + 1) as f64 * LEVEL).ceil() as usize
}

impl Calibration {
    /// The factor at step `h` (1-based); the last one beyond the stored steps.
    pub fn scale_at(&self, h: usize) -> f64 {
        self.scales
            .get(h - 1)
            .or(self.scales.last())
            .copied()
            .unwrap_or(1.0)
    }
}

/// `|error| / half_width`, where an error of zero against a zero-width band
/// (a constant series) scores 0 and a non-zero one scores infinity, which
/// no finite factor can fix.
pub fn score(error: f64, half_width: f64) -> f64 {
    if error == 0.0 {
        0.0
    } else {
        error.abs() / half_width
    }
}

/// Scores of inner forecasts against their own intervals: `[step][origin]`.
pub fn scores(inner: &[InnerForecast]) -> Option<Vec<Vec<f64>>> {
    let mut out: Vec<Vec<f64>> = (0..MAX_HORIZON)
        .map(|_| Vec::with_capacity(inner.len()))
        .collect();
    for f in inner {
        let (lower, upper) = (f.forecast.lower.as_ref()?, f.forecast.upper.as_ref()?);
        for (i, actual) in f.actual.iter().enumerate() {
            let error = actual - f.forecast.mean[i];
            out[i].push(score(error, (upper[i] - lower[i]) / 2.0));
        }
    }
    Some(out)
}

/// One factor per step `1..=MAX_HORIZON`: the conformal quantile of the
/// pooled scores of the step's group. `by_step[i]` are step `i + 1`'s scores.
/// A group with too few scores for an 80 % rank (a window with one or two
/// inner origins) takes the quantile of all steps pooled; `None` if even
/// that is missing or not finite.
pub fn step_scales(by_step: &[Vec<f64>]) -> Option<Vec<f64>> {
    let all = conformal_quantile(&by_step.concat());
    let mut scales = Vec::with_capacity(MAX_HORIZON);
    let mut first = 0;
    for last in STEP_GROUPS {
        let pooled: Vec<f64> = by_step.get(first..last)?.concat();
        let q = if rank(pooled.len()) > pooled.len() {
            all
        } else {
            conformal_quantile(&pooled)
        }?;
        scales.extend(std::iter::repeat_n(q, last - first));
        first = last;
    }
    Some(scales)
}

/// Calibrates `kind`'s intervals on `window`; `None` (keep the model's own
/// intervals) when the window is too short for inner origins, the model
/// fails at one of them, or it gives no intervals.
pub fn calibrate(kind: ModelKind, window: &Window<'_>) -> Option<Calibration> {
    let plan = validation::plan(window.len(), kind.min_window())?;
    let inner = validation::inner_forecasts(kind, window, &plan)?;
    let by_step = scores(&inner)?;
    let scales = step_scales(&by_step)?;
    let all: Vec<f64> = by_step.concat();
    let covered = all.iter().filter(|s| **s <= 1.0).count();
    Some(Calibration {
        scales,
        scores: all.len(),
        own_coverage: covered as f64 / all.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Forecast, Z80};
    use crate::rng::Rng;

    #[test]
    fn few_scores_fall_back_to_one_pooled_factor() {
        // One inner origin: steps 1–3 have three scores, too few for their
        // own rank, so they take the quantile of all 21.
        let by_step: Vec<Vec<f64>> = (1..=MAX_HORIZON).map(|h| vec![h as f64]).collect();
        let scales = step_scales(&by_step).expect("pooled");
        // All 21: rank ⌈22 · 0.8⌉ = 18 → 18. Steps 4–10: rank ⌈8 · 0.8⌉ = 7 → 10.
        assert_eq!(scales[0], 18.0);
        assert_eq!(scales[3], 10.0);
        // Steps 11–21: rank ⌈12 · 0.8⌉ = 10 → 20.
        assert_eq!(scales[20], 20.0);
        assert_eq!(step_scales(&by_step[..2]), None);
    }

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
        let (mut covered, mut hits, mut total) = ([0usize; 3], 0usize, 0usize);
        let group = |h: usize| STEP_GROUPS.iter().position(|&last| h <= last).unwrap_or(2);
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
            let scales = step_scales(&scores(&inner).expect("intervals")).expect("enough");
            for h in 1..=MAX_HORIZON {
                for _ in 0..5 {
                    total += 1;
                    if (sigma * rng.normal()).abs() <= scales[h - 1] * own_half_width {
                        covered[group(h)] += 1;
                        hits += 1;
                    }
                }
            }
        }
        // 42,000 fresh draws: the binomial standard error is 0.002.
        let coverage = hits as f64 / total as f64;
        assert!((0.79..=0.82).contains(&coverage), "coverage {coverage}");
        // Each group on its own: 400 · 5 · (3, 7, 11) draws.
        for (g, steps) in [3, 7, 11].into_iter().enumerate() {
            let c = covered[g] as f64 / (400 * 5 * steps) as f64;
            assert!((0.78..=0.83).contains(&c), "group {g}: coverage {c}");
        }
    }

    #[test]
    fn calibration_on_a_random_walk_keeps_a_right_band_about_right() {
        // The random walk's own band is right for a random walk: the factor
        // should be near 1 and its own coverage near 80 %.
        let y = crate::models::tests::random_walk(1000, 21);
        let c = calibrate(ModelKind::Naive, &Window::of_target(&y)).expect("calibrates");
        assert_eq!(c.scores, 8 * MAX_HORIZON);
        assert_eq!(c.scales.len(), MAX_HORIZON);
        for s in &c.scales {
            assert!((0.5..2.0).contains(s), "scales {:?}", c.scales);
        }
    }
}
