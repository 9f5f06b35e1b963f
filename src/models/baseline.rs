//! The two baselines of PROTOCOL §6, exactly: the random walk (`naive`) and
//! the random walk with drift (`drift`), both with 80 % intervals.
//!
//! They are the yardstick of the promotion gate, so their arithmetic follows
//! the protocol's formulas term for term; the tests reproduce the reference
//! implementation to 1e-12.

use serde::{Deserialize, Serialize};

use super::{Forecast, Forecaster, ModelError, Predict, Window, symmetric_interval};

/// Random walk: every forecast is the last value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Naive;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedNaive {
    pub last: f64,
    /// Standard deviation of one-step changes over the window.
    pub sigma: f64,
}

impl Forecaster for Naive {
    type Fitted = FittedNaive;

    fn fit(&self, window: &Window<'_>) -> Result<FittedNaive, ModelError> {
        let w = window.target;
        let n = w.len();
        let sum_sq: f64 = w.windows(2).map(|p| (p[1] - p[0]).powi(2)).sum();
        Ok(FittedNaive {
            last: w[n - 1],
            sigma: (sum_sq / (n - 1) as f64).sqrt(),
        })
    }
}

impl Predict for FittedNaive {
    fn forecast(&self, steps: usize) -> Forecast {
        symmetric_interval(vec![self.last; steps], |h| self.sigma * (h as f64).sqrt())
    }
}

/// Random walk with drift: the line from the window's first to its last value, extended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drift;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedDrift {
    pub last: f64,
    /// Mean one-step change over the window.
    pub slope: f64,
    /// Standard deviation of one-step changes around the slope.
    pub sigma: f64,
    /// Window length, which widens the interval for the slope's uncertainty.
    pub window: usize,
}

impl Forecaster for Drift {
    type Fitted = FittedDrift;

    fn fit(&self, window: &Window<'_>) -> Result<FittedDrift, ModelError> {
        let w = window.target;
        let n = w.len();
        let slope = (w[n - 1] - w[0]) / (n - 1) as f64;
        let sum_sq: f64 = w.windows(2).map(|p| (p[1] - p[0] - slope).powi(2)).sum();
        Ok(FittedDrift {
            last: w[n - 1],
            slope,
            sigma: (sum_sq / (n - 2) as f64).sqrt(),
            window: n,
        })
    }
}

impl Predict for FittedDrift {
    fn forecast(&self, steps: usize) -> Forecast {
        let mean = (1..=steps)
            .map(|h| self.last + self.slope * h as f64)
            .collect();
        let n_diffs = (self.window - 1) as f64;
        symmetric_interval(mean, |h| {
            let h = h as f64;
            self.sigma * (h * (1.0 + h / n_diffs)).sqrt()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn naive_by_hand() {
        let w = [1.0, 2.0, 4.0, 3.0];
        let f = Naive.fit(&Window::of_target(&w)).expect("fits").forecast(4);
        // One-step changes 1, 2, -1: σ² = 6/3.
        let sigma = 2.0_f64.sqrt();
        assert_eq!(f.mean, vec![3.0; 4]);
        let upper = f.upper.expect("interval");
        assert_relative_eq!(
            upper[3],
            3.0 + super::super::Z80 * sigma * 2.0,
            max_relative = 1e-15
        );
    }

    #[test]
    fn drift_by_hand() {
        let w = [1.0, 2.0, 4.0, 4.0];
        let fitted = Drift.fit(&Window::of_target(&w)).expect("fits");
        assert_relative_eq!(fitted.slope, 1.0);
        // Changes minus slope: 0, 1, -1 → σ² = 2/2.
        assert_relative_eq!(fitted.sigma, 1.0);
        let f = fitted.forecast(2);
        assert_eq!(f.mean, vec![5.0, 6.0]);
        let lower = f.lower.expect("interval");
        assert_relative_eq!(
            lower[1],
            6.0 - super::super::Z80 * (2.0_f64 * (1.0 + 2.0 / 3.0)).sqrt()
        );
    }
}
