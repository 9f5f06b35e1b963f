//! `linreg_lag5` of PROTOCOL §6: ordinary least squares of the next log
//! return on the five previous ones, with an intercept, fitted with
//! linfa-linear and forecast recursively.
//!
//! The protocol gives it no interval. Ours is `f·(1 ± z·σ·√h)`, σ being the
//! regression's residual standard deviation in log returns (the lags'
//! coefficients are small on prices, so returns are nearly independent and
//! their variance adds up over the steps), widened or narrowed by the
//! conformal calibration of `calibration`. The point forecasts stay the
//! protocol's exactly.

use linfa::prelude::*;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::calibration::Calibration;
use super::{Forecast, Forecaster, ModelError, ModelKind, Predict, Window, symmetric_interval};

/// Number of lagged returns used as features.
pub const LAGS: usize = 5;

/// Enough rows that the regression is over-determined several times over.
pub const MIN_WINDOW: usize = 4 * (LAGS + 1) + LAGS + 1;

#[derive(Debug, Clone, Copy, Default)]
pub struct LinregLag5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedLinregLag5 {
    pub intercept: f64,
    /// Coefficients of lag 1 (the latest return) to lag 5.
    pub coefficients: [f64; LAGS],
    /// The window's last five log returns, oldest first.
    pub recent_returns: [f64; LAGS],
    pub last: f64,
    /// Residual standard deviation of the regression, in log returns.
    /// (Absent in artifacts written before intervals existed, which then
    /// forecast without one.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// The split-conformal widening of the interval (see `calibration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

impl Forecaster for LinregLag5 {
    type Fitted = FittedLinregLag5;

    fn fit(&self, window: &Window<'_>) -> Result<FittedLinregLag5, ModelError> {
        let w = window.target;
        let returns: Vec<f64> = w.windows(2).map(|p| p[1].ln() - p[0].ln()).collect();
        let rows = returns.len() - LAGS;
        let mut features = Array2::<f64>::zeros((rows, LAGS));
        for (row, j) in (LAGS..returns.len()).enumerate() {
            for k in 1..=LAGS {
                features[[row, k - 1]] = returns[j - k];
            }
        }
        let targets = Array1::from(returns[LAGS..].to_vec());
        let dataset = Dataset::new(features, targets);
        let fitted = LinearRegression::new()
            .fit(&dataset)
            .map_err(|e| ModelError::Estimation {
                model: ModelKind::LinregLag5,
                reason: e.to_string(),
            })?;
        let mut coefficients = [0.0; LAGS];
        for (c, p) in coefficients.iter_mut().zip(fitted.params()) {
            *c = *p;
        }
        let mut recent_returns = [0.0; LAGS];
        recent_returns.copy_from_slice(&returns[returns.len() - LAGS..]);
        let intercept = fitted.intercept();
        let sum_sq: f64 = dataset
            .records()
            .outer_iter()
            .zip(dataset.targets())
            .map(|(lags, target)| {
                let fit = intercept
                    + lags
                        .iter()
                        .zip(&coefficients)
                        .map(|(x, c)| x * c)
                        .sum::<f64>();
                (target - fit).powi(2)
            })
            .sum();
        // Six estimated coefficients.
        let dof = rows.saturating_sub(LAGS + 1).max(1) as f64;
        let sigma = (sum_sq / dof).sqrt();
        Ok(FittedLinregLag5 {
            intercept,
            coefficients,
            recent_returns,
            last: w[w.len() - 1],
            sigma: Some(sigma),
            calibration: None,
        })
    }
}

impl FittedLinregLag5 {
    /// The same coefficients applied from the end of `y` (at least six values).
    pub fn anchored(&self, y: &[f64]) -> FittedLinregLag5 {
        let n = y.len();
        let mut recent_returns = [0.0; LAGS];
        for (k, slot) in recent_returns.iter_mut().enumerate() {
            let j = n - 1 - LAGS + k;
            *slot = y[j + 1].ln() - y[j].ln();
        }
        FittedLinregLag5 {
            recent_returns,
            last: y[n - 1],
            ..self.clone()
        }
    }
}

impl Predict for FittedLinregLag5 {
    fn forecast(&self, steps: usize) -> Forecast {
        let mut history: Vec<f64> = self.recent_returns.to_vec();
        let mut cumulative = 0.0;
        let mut mean = Vec::with_capacity(steps);
        for _ in 0..steps {
            let n = history.len();
            let predicted = self.intercept
                + (1..=LAGS)
                    .map(|k| self.coefficients[k - 1] * history[n - k])
                    .sum::<f64>();
            history.push(predicted);
            cumulative += predicted;
            mean.push(self.last * cumulative.exp());
        }
        let Some(sigma) = self.sigma else {
            return Forecast {
                mean,
                lower: None,
                upper: None,
            };
        };
        let scale = |h: usize| self.calibration.as_ref().map_or(1.0, |c| c.scale_at(h));
        let levels = mean.clone();
        symmetric_interval(mean, |h| {
            scale(h) * sigma * (h as f64).sqrt() * levels[h - 1]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn recovers_a_known_autoregression_of_returns() {
        // r_t = 0.001 + 0.3 r_{t-1} - 0.2 r_{t-3} + noise
        let mut rng = crate::rng::Rng::new(11);
        let mut r = vec![0.0; 5];
        for _ in 0..5000 {
            let n = r.len();
            r.push(0.001 + 0.3 * r[n - 1] - 0.2 * r[n - 3] + 0.01 * rng.normal());
        }
        let mut level = 50.0;
        let y: Vec<f64> = std::iter::once(level)
            .chain(r.iter().map(|x| {
                level *= x.exp();
                level
            }))
            .collect();
        let fitted = LinregLag5.fit(&Window::of_target(&y)).expect("fits");
        let expected = [0.3, 0.0, -0.2, 0.0, 0.0];
        for (c, e) in fitted.coefficients.iter().zip(expected) {
            assert_abs_diff_eq!(*c, e, epsilon = 0.04);
        }
        assert_abs_diff_eq!(fitted.intercept, 0.001, epsilon = 0.0005);
    }
}
