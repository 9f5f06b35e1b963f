//! `prophet`: Meta's Prophet with its own model and defaults (prophet
//! 1.5.0, the version of the reference run), fitted in pure Rust.
//!
//! Linear growth with 25 potential changepoints over the first 80 % of the
//! history (Laplace prior, `changepoint_prior_scale` 0.05), yearly (order
//! 10, when the history spans two years) and weekly (order 3) seasonality
//! with `seasonality_prior_scale` 10, Gaussian noise; y scaled by its
//! largest absolute value and time to [0, 1]. The MAP estimate is `map`'s;
//! the 80 % intervals are Prophet's simulation (`uncertainty`) from a
//! stored seed, so a fit and its artifact forecast identically.
//!
//! Prophet forecasts by calendar date: the fitted model keeps the dates of
//! its forecast steps. In the backtest they are the series' own next rows
//! (PROTOCOL §3 allows their dates as labels); otherwise the next US
//! trading days of the project's calendar.
//!
//! Why not augurs-prophet (Grafana's port): its optimisers need cmdstan
//! or a wasmtime build of Stan, the one piece this module had to own
//! anyway; its fitted `Prophet` holds the training data rather than a few
//! parameters; and the preparation and prediction it would add are the
//! ~150 lines of `design` and `uncertainty` (docs/DECISIONS.md).

mod design;
mod map;
mod uncertainty;

use chrono::NaiveDate;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

pub use self::design::Seasonality;
use self::design::{
    Timeline, changepoints, fourier_columns, piecewise_linear, push_design_row, push_fourier,
};
pub use self::map::{Priors, Problem};
use super::{Forecast, Forecaster, MAX_HORIZON, ModelError, ModelKind, Predict, Window};
use crate::calendar;

/// The fewest rows Prophet is fitted on here: enough for a few changepoints
/// and the weekly terms.
pub const MIN_WINDOW: usize = 30;

/// Prophet's defaults, as `Prophet(interval_width=0.8)` has them.
///
/// | Name | Default | Purpose |
/// |---|---|---|
/// | `n_changepoints` | 25 | potential trend changes |
/// | `changepoint_range` | 0.8 | share of the history they are spread over |
/// | `changepoint_prior_scale` | 0.05 | Laplace scale of the trend changes |
/// | `seasonality_prior_scale` | 10 | normal scale of the Fourier terms |
/// | `uncertainty_samples` | 1000 | simulated paths behind the intervals |
/// | `seed` | 0 | the simulation's seed, stored with the fit |
#[derive(Debug, Clone, PartialEq)]
pub struct ProphetParams {
    pub n_changepoints: usize,
    pub changepoint_range: f64,
    pub changepoint_prior_scale: f64,
    pub seasonality_prior_scale: f64,
    pub uncertainty_samples: usize,
    pub seed: u64,
}

impl Default for ProphetParams {
    fn default() -> Self {
        ProphetParams {
            n_changepoints: 25,
            changepoint_range: 0.8,
            changepoint_prior_scale: 0.05,
            seasonality_prior_scale: 10.0,
            uncertainty_samples: 1000,
            seed: 0,
        }
    }
}

/// A fitted Prophet: the MAP parameters on the scaled axes, what maps dates
/// and prices onto those axes, and the dates of the forecast steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedProphet {
    pub timeline: Timeline,
    /// The largest absolute value of the history: y is fitted as y / y_scale.
    pub y_scale: f64,
    pub changepoints: Vec<NaiveDate>,
    pub seasonalities: Vec<Seasonality>,
    pub k: f64,
    pub m: f64,
    pub delta: Vec<f64>,
    pub beta: Vec<f64>,
    pub sigma_obs: f64,
    /// The dates of forecast steps 1..=21.
    pub steps: Vec<NaiveDate>,
    pub uncertainty_samples: usize,
    pub seed: u64,
}

fn estimation(reason: impl Into<String>) -> ModelError {
    ModelError::Estimation {
        model: ModelKind::Prophet,
        reason: reason.into(),
    }
}

/// The dates of forecast steps 1..=21 after `window`: the labels it carries,
/// then the US trading calendar.
fn step_dates(window: &Window<'_>, last: NaiveDate) -> Vec<NaiveDate> {
    let mut steps: Vec<NaiveDate> = window.future.iter().copied().take(MAX_HORIZON).collect();
    let from = steps.last().copied().unwrap_or(last);
    steps.extend(calendar::next_trading_days(from, MAX_HORIZON - steps.len()));
    steps
}

impl ProphetParams {
    fn priors(&self) -> Priors {
        Priors {
            tau: self.changepoint_prior_scale,
            season_scale: self.seasonality_prior_scale,
        }
    }
}

impl Forecaster for ProphetParams {
    type Fitted = FittedProphet;

    fn fit(&self, window: &Window<'_>) -> Result<FittedProphet, ModelError> {
        if window.bars.len() != window.len() {
            return Err(estimation(
                "Prophet needs the date of every row of its window, and this window has none",
            ));
        }
        let dates: Vec<NaiveDate> = window.bars.iter().map(|b| b.date).collect();
        let y = window.target;
        let (lo, hi) = y.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
        if hi - lo <= 1e-12 * hi {
            return Err(estimation(
                "the window is constant, so Prophet's noise scale would be zero",
            ));
        }
        let (Some(&first), Some(&last)) = (dates.first(), dates.last()) else {
            return Err(estimation("the window is empty"));
        };
        let timeline = Timeline {
            start: first,
            span_days: (last - first).num_days(),
        };
        let changepoints = changepoints(&dates, self.n_changepoints, self.changepoint_range);
        let changepoints_t: Vec<f64> = changepoints.iter().map(|d| timeline.t(*d)).collect();
        let seasonalities = Seasonality::automatic(&dates);
        let columns = 2 + changepoints.len() + fourier_columns(&seasonalities);
        let mut z = Vec::with_capacity(dates.len() * columns);
        for &day in &dates {
            push_design_row(
                day,
                timeline.t(day),
                &changepoints_t,
                &seasonalities,
                &mut z,
            );
        }
        let z = Array2::from_shape_vec((dates.len(), columns), z)
            .map_err(|e| estimation(format!("design matrix: {e}")))?;
        let y_scale = hi;
        let y_scaled = Array1::from_iter(y.iter().map(|v| v / y_scale));
        let problem = Problem {
            z: &z,
            y: y_scaled.view(),
            n_delta: changepoints.len(),
            priors: self.priors(),
        };
        let estimate = problem.solve().map_err(estimation)?;
        let theta = estimate.theta;
        let n_delta = changepoints.len();
        Ok(FittedProphet {
            timeline,
            y_scale,
            k: theta[0],
            m: theta[1],
            delta: theta.iter().skip(2).take(n_delta).copied().collect(),
            beta: theta.iter().skip(2 + n_delta).copied().collect(),
            sigma_obs: estimate.sigma,
            changepoints,
            seasonalities,
            steps: step_dates(window, last),
            uncertainty_samples: self.uncertainty_samples,
            seed: self.seed,
        })
    }
}

impl FittedProphet {
    /// Checks that the parts of an artifact fit together, so a damaged one
    /// is refused on load rather than forecasting from misaligned terms.
    pub fn check(&self) -> Result<(), String> {
        let problems = [
            (
                self.delta.len() != self.changepoints.len(),
                "one trend change per changepoint",
            ),
            (
                self.beta.len() != fourier_columns(&self.seasonalities),
                "one coefficient per Fourier term",
            ),
            (self.steps.len() != MAX_HORIZON, "the dates of 21 steps"),
            (
                self.timeline.span_days <= 0,
                "a history spanning at least a day",
            ),
            (
                !(self.y_scale > 0.0 && self.sigma_obs > 0.0),
                "positive scales",
            ),
        ];
        match problems.iter().find(|(bad, _)| *bad) {
            Some((_, what)) => Err(format!("a prophet artifact needs {what}")),
            None => Ok(()),
        }
    }

    fn changepoints_t(&self) -> Vec<f64> {
        self.changepoints
            .iter()
            .map(|d| self.timeline.t(*d))
            .collect()
    }

    /// The trend on the scaled axis at `t`.
    fn trend(&self, t: f64, changepoints_t: &[f64]) -> f64 {
        piecewise_linear(t, self.k, self.m, &self.delta, changepoints_t)
    }

    /// The seasonal part in price units on `day`.
    fn seasonal(&self, day: NaiveDate) -> f64 {
        let mut x = Vec::with_capacity(self.beta.len());
        push_fourier(day, &self.seasonalities, &mut x);
        x.iter().zip(&self.beta).map(|(a, b)| a * b).sum::<f64>() * self.y_scale
    }

    /// The same parameters, forecasting the trading days after the latest
    /// data of `window`: Prophet extrapolates its fitted trend to new dates
    /// and does not re-level on the latest price.
    pub fn anchored(&self, window: &Window<'_>) -> Result<FittedProphet, ModelError> {
        let last = window
            .bars
            .last()
            .map(|b| b.date)
            .ok_or_else(|| estimation("anchoring needs the dates of the latest data"))?;
        Ok(FittedProphet {
            steps: step_dates(window, last),
            ..self.clone()
        })
    }

    /// The MAP point forecast of every step, in price units.
    fn point_forecast(&self) -> Vec<f64> {
        let cps = self.changepoints_t();
        self.steps
            .iter()
            .map(|&day| self.trend(self.timeline.t(day), &cps) * self.y_scale + self.seasonal(day))
            .collect()
    }
}

impl Predict for FittedProphet {
    fn forecast(&self, steps: usize) -> Forecast {
        // Every step is simulated whatever `steps` is, so a five-day
        // forecast is the first five days of the full one.
        let mean = self.point_forecast();
        let cps = self.changepoints_t();
        let t: Vec<f64> = self.steps.iter().map(|d| self.timeline.t(*d)).collect();
        let expected: Vec<f64> = t.iter().map(|&t| self.trend(t, &cps)).collect();
        let seasonal: Vec<f64> = self.steps.iter().map(|&d| self.seasonal(d)).collect();
        let (lower, upper) = uncertainty::interval(&uncertainty::Simulation {
            t: &t,
            expected_trend: &expected,
            seasonal: &seasonal,
            n_changepoints: self.changepoints.len(),
            mean_abs_delta: self.delta.iter().map(|d| d.abs()).sum::<f64>()
                / self.delta.len().max(1) as f64,
            sigma_obs: self.sigma_obs,
            y_scale: self.y_scale,
            samples: self.uncertainty_samples,
            seed: self.seed,
        });
        let cut = |v: Vec<f64>| v.into_iter().take(steps).collect::<Vec<f64>>();
        Forecast {
            mean: cut(mean),
            lower: Some(cut(lower)),
            upper: Some(cut(upper)),
        }
    }
}

#[cfg(test)]
mod tests;
