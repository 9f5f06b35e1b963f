//! `theta`: the standard Theta method of Assimakopoulos & Nikolopoulos in
//! the form Hyndman & Billah (2003) showed it to be, as R's `forecast::thetaf`
//! and statsforecast's standard Theta compute it: simple exponential
//! smoothing (SES) plus half the slope of the window's least-squares line.
//!
//! With `ℓ` the last SES level, `α` the smoothing weight, `b` the OLS slope
//! of the values on time and `n` the window length, the forecast `h` steps
//! ahead is `ℓ + (b/2)·(h − 1 + (1 − (1 − α)ⁿ)/α)` and its 80 % interval
//! `± z·σ·√(1 + (h − 1)·α²)`, σ² being the SES one-step error variance.
//!
//! The classical method first tests for seasonality and deseasonalises; daily
//! prices have no calendar seasonality to speak of (and trading-day rows have
//! no fixed period), so the test is skipped, as the issue that added the
//! model decided.

use serde::{Deserialize, Serialize};

use super::calibration::Calibration;
use super::{Forecast, Forecaster, ModelError, Predict, Window, symmetric_interval};

/// SES needs a few one-step errors to choose α and estimate σ.
pub const MIN_WINDOW: usize = 4;

/// The smoothing weight is searched in `[ALPHA_MIN, 1]`: a weight of zero
/// would ignore every value after the first, and `(1 − (1 − α)ⁿ)/α` needs α > 0.
const ALPHA_MIN: f64 = 1e-4;
/// A coarse grid brackets the minimum (SES's sum of squares can have more
/// than one local minimum on short windows); golden-section search refines it.
const ALPHA_GRID: usize = 20;
const GOLDEN_ITERATIONS: usize = 40;

#[derive(Debug, Clone, Copy, Default)]
pub struct Theta;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedTheta {
    /// SES smoothing weight.
    pub alpha: f64,
    /// Last SES level: the flat part of every forecast.
    pub level: f64,
    /// Half the least-squares slope of the window on time (the θ = 2 line's trend).
    pub half_slope: f64,
    /// Window length, which enters the trend term's `(1 − α)ⁿ`.
    pub window: usize,
    /// Standard deviation of SES one-step errors.
    pub sigma: f64,
    /// The split-conformal widening of the interval (see `calibration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

impl Forecaster for Theta {
    type Fitted = FittedTheta;

    fn fit(&self, window: &Window<'_>) -> Result<FittedTheta, ModelError> {
        let y = window.target;
        let alpha = best_alpha(y);
        Ok(fit_with_alpha(y, alpha))
    }
}

/// The Theta model with a given smoothing weight: SES from `ℓ₀ = y₀`.
///
/// R's `ses` also estimates ℓ₀; over windows of hundreds of values its
/// influence has decayed by `(1 − α)ⁿ`, which for prices (α near 1) is nil,
/// so starting at the first value keeps the fit one-dimensional.
fn fit_with_alpha(y: &[f64], alpha: f64) -> FittedTheta {
    let (level, sse) = ses(y, alpha);
    let n = y.len();
    // n − 1 one-step errors, one estimated parameter (α).
    let sigma = (sse / (n - 2) as f64).sqrt();
    FittedTheta {
        alpha,
        level,
        half_slope: ols_slope(y) / 2.0,
        window: n,
        sigma,
        calibration: None,
    }
}

/// The last SES level and the sum of squared one-step errors.
fn ses(y: &[f64], alpha: f64) -> (f64, f64) {
    let mut level = y[0];
    let mut sse = 0.0;
    for &v in &y[1..] {
        let error = v - level;
        sse += error * error;
        level += alpha * error;
    }
    (level, sse)
}

/// The α in `[ALPHA_MIN, 1]` with the least one-step sum of squares.
fn best_alpha(y: &[f64]) -> f64 {
    let sse = |a: f64| ses(y, a).1;
    let step = (1.0 - ALPHA_MIN) / ALPHA_GRID as f64;
    let grid = |i: usize| ALPHA_MIN + step * i as f64;
    let best_i = (0..=ALPHA_GRID)
        .min_by(|&i, &j| sse(grid(i)).total_cmp(&sse(grid(j))))
        .unwrap_or(ALPHA_GRID);
    let (mut lo, mut hi) = (
        grid(best_i.saturating_sub(1)),
        grid((best_i + 1).min(ALPHA_GRID)),
    );
    let ratio = (5.0_f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - ratio * (hi - lo);
    let mut b = lo + ratio * (hi - lo);
    let (mut fa, mut fb) = (sse(a), sse(b));
    for _ in 0..GOLDEN_ITERATIONS {
        if fa <= fb {
            hi = b;
            (b, fb) = (a, fa);
            a = hi - ratio * (hi - lo);
            fa = sse(a);
        } else {
            lo = a;
            (a, fa) = (b, fb);
            b = lo + ratio * (hi - lo);
            fb = sse(b);
        }
    }
    // The grid point may beat the refined one when the bracket's interior is flat.
    let refined = if fa <= fb { a } else { b };
    if sse(grid(best_i)) < sse(refined) {
        grid(best_i)
    } else {
        refined
    }
}

/// The least-squares slope of `y` on `0..n`.
fn ols_slope(y: &[f64]) -> f64 {
    let n = y.len() as f64;
    let t_mean = (n - 1.0) / 2.0;
    let y_mean = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, v) in y.iter().enumerate() {
        let dt = t as f64 - t_mean;
        sxy += dt * (v - y_mean);
        sxx += dt * dt;
    }
    sxy / sxx
}

impl FittedTheta {
    /// The same α, slope and σ, with the SES level re-run over `y`: forecasts
    /// from the latest data without refitting.
    pub fn anchored(&self, y: &[f64]) -> FittedTheta {
        FittedTheta {
            level: ses(y, self.alpha).0,
            ..self.clone()
        }
    }
}

impl Predict for FittedTheta {
    fn forecast(&self, steps: usize) -> Forecast {
        let alpha = self.alpha;
        let start = (1.0 - (1.0 - alpha).powi(self.window as i32)) / alpha;
        let mean = (1..=steps)
            .map(|h| self.level + self.half_slope * ((h - 1) as f64 + start))
            .collect();
        let scale = |h: usize| self.calibration.as_ref().map_or(1.0, |c| c.scale_at(h));
        symmetric_interval(mean, |h| {
            scale(h) * self.sigma * (1.0 + (h - 1) as f64 * alpha * alpha).sqrt()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Z80;
    use approx::assert_relative_eq;

    #[test]
    fn forecast_and_interval_by_hand() {
        // α = 0.5 from ℓ₀ = 10: errors 2, 0, 2, 2 → levels 11, 11, 12, 13; SSE 12,
        // σ² = 12 / (5 − 2) = 4. OLS slope on t = 0..4: Σ(t − 2)(y − 12) = 9,
        // Σ(t − 2)² = 10 → b = 0.9, b/2 = 0.45. (1 − 0.5⁵)/0.5 = 1.9375.
        let y = [10.0, 12.0, 11.0, 13.0, 14.0];
        let fitted = fit_with_alpha(&y, 0.5);
        assert_relative_eq!(fitted.level, 13.0);
        assert_relative_eq!(fitted.half_slope, 0.45);
        assert_relative_eq!(fitted.sigma, 2.0);
        let f = fitted.forecast(2);
        assert_relative_eq!(f.mean[0], 13.0 + 0.45 * 1.9375, max_relative = 1e-15);
        assert_relative_eq!(f.mean[1], 13.0 + 0.45 * 2.9375, max_relative = 1e-15);
        let (lower, upper) = (f.lower.expect("interval"), f.upper.expect("interval"));
        assert_relative_eq!(upper[0], f.mean[0] + Z80 * 2.0, max_relative = 1e-15);
        // √(1 + 1·0.25)
        assert_relative_eq!(
            lower[1],
            f.mean[1] - Z80 * 2.0 * 1.25_f64.sqrt(),
            max_relative = 1e-15
        );
    }

    #[test]
    fn alpha_minimises_the_one_step_errors() {
        // A local level: y = μ + noise, μ a random walk; SES with α ≈ 0.3 is optimal
        // for a signal-to-noise ratio q = σ²_μ / σ²_ε of α²/(1 − α) ≈ 0.13.
        let mut rng = crate::rng::Rng::new(5);
        let mut mu = 100.0;
        let y: Vec<f64> = (0..2000)
            .map(|_| {
                mu += 0.36 * rng.normal();
                mu + rng.normal()
            })
            .collect();
        let fitted = Theta.fit(&Window::of_target(&y)).expect("fits");
        assert!((fitted.alpha - 0.3).abs() < 0.06, "alpha {}", fitted.alpha);
        let best = ses(&y, fitted.alpha).1;
        for i in 1..=100 {
            let a = i as f64 / 100.0;
            assert!(
                best <= ses(&y, a).1 * (1.0 + 1e-9),
                "α {a} beats {}",
                fitted.alpha
            );
        }
    }

    #[test]
    fn a_random_walk_gets_alpha_near_one_and_half_the_trend() {
        let y: Vec<f64> = (0..500).map(|t| 100.0 + 0.2 * t as f64).collect();
        let fitted = Theta.fit(&Window::of_target(&y)).expect("fits");
        assert_relative_eq!(fitted.half_slope, 0.1, max_relative = 1e-9);
        // A straight line: SES lags it by (1 − α)/α · slope, so α goes to 1.
        assert!(fitted.alpha > 0.99, "alpha {}", fitted.alpha);
    }

    #[test]
    fn anchoring_moves_the_level_only() {
        let y: Vec<f64> = crate::models::tests::random_walk(300, 2);
        let fitted = Theta.fit(&Window::of_target(&y[..200])).expect("fits");
        let later = fitted.anchored(&y);
        assert_eq!(later.alpha, fitted.alpha);
        assert_relative_eq!(later.level, ses(&y, fitted.alpha).0);
    }
}
