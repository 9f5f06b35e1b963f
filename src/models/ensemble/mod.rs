//! `ensemble`: an equal-weight combination of the other models, whose
//! members are chosen by a rolling validation inside the training window.
//!
//! Fitting runs every member at the window's inner origins (see
//! `validation`: origins before the window's end, each refitted from
//! scratch on values up to it), chooses the members (see `select`: the
//! simple average of all unless a subset beats it), and fits the chosen
//! members once more on the whole window. The 80 % interval is conformal:
//! the combination's own inner errors, scored against naive's interval
//! shape `z·σ·√h`, give the factors (one per horizon group, as in
//! `calibration`) that scale `z·σ·√h` of the whole window.
//!
//! The artifact holds its members' artifacts, so it is served, anchored and
//! compared exactly like a single model, with no refit.

mod select;

use serde::{Deserialize, Serialize};

use super::calibration::step_scales;
use super::validation::{self, InnerForecast};
use super::{
    FittedModel, Forecast, Forecaster, MAX_HORIZON, ModelError, ModelKind, Predict, Window,
    symmetric_interval,
};

/// The models the ensemble may combine: every single model. Members are
/// fitted uncalibrated (the ensemble's interval is its own).
pub const MEMBERS: [ModelKind; 5] = [
    ModelKind::Naive,
    ModelKind::Drift,
    ModelKind::LinregLag5,
    ModelKind::Arima,
    ModelKind::Theta,
];

/// Inner windows must be long enough for every member (linreg_lag5's 31).
const INNER_MIN_WINDOW: usize = super::linreg::MIN_WINDOW;

/// One inner origin needs its own window plus the steps it is judged on.
pub const MIN_WINDOW: usize = INNER_MIN_WINDOW + MAX_HORIZON;

#[derive(Debug, Clone, Copy, Default)]
pub struct Ensemble;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedEnsemble {
    /// The chosen members, fitted on the whole window; equally weighted.
    pub members: Vec<FittedModel>,
    /// RMS one-step change of the window: naive's σ, the interval's shape.
    pub sigma: f64,
    /// Conformal factor on `z·σ·√h` at each step `1..=21`, from the
    /// combination's inner errors.
    pub interval_scales: Vec<f64>,
    pub validation: Validation,
}

/// What the inner validation found, kept for the report and the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    pub inner_origins: usize,
    /// Members that fitted at every inner origin and on the whole window.
    pub available: Vec<ModelKind>,
    /// Scaled validation loss of the chosen combination and of the simple
    /// average of every available member (the baseline it had to beat).
    pub loss: f64,
    pub simple_average_loss: f64,
}

impl Forecaster for Ensemble {
    type Fitted = FittedEnsemble;

    fn fit(&self, window: &Window<'_>) -> Result<FittedEnsemble, ModelError> {
        let estimation = |reason: &str| ModelError::Estimation {
            model: ModelKind::Ensemble,
            reason: reason.to_owned(),
        };
        let plan = validation::plan(window.len(), INNER_MIN_WINDOW)
            .ok_or_else(|| estimation("the window is too short for an inner validation"))?;
        let mut available = Vec::new();
        let mut inner: Vec<Vec<InnerForecast>> = Vec::new();
        let mut fitted = Vec::new();
        for kind in MEMBERS {
            // A member that fails anywhere is left out rather than failing the
            // ensemble: a flat window defeats the regression, not the average.
            let Some(forecasts) = validation::inner_forecasts(kind, window, &plan) else {
                continue;
            };
            let Ok(model) = kind.fit_uncalibrated(window) else {
                continue;
            };
            available.push(kind);
            inner.push(forecasts);
            fitted.push(model);
        }
        let choice =
            select::choose(&inner).ok_or_else(|| estimation("no member could be fitted"))?;
        let scores = select::scores(&inner, &choice.members);
        let interval_scales = step_scales(&scores)
            .ok_or_else(|| estimation("the inner errors give no finite interval"))?;
        let members = choice.members.iter().map(|&m| fitted[m].clone()).collect();
        Ok(FittedEnsemble {
            members,
            sigma: validation::yardsticks(window.target).1,
            interval_scales,
            validation: Validation {
                inner_origins: plan.origins.len(),
                available,
                loss: choice.loss,
                simple_average_loss: choice.simple_average_loss,
            },
        })
    }
}

impl Predict for FittedEnsemble {
    /// The weighted mean of the members' forecasts with the conformal band.
    /// A member that cannot forecast makes the mean non-finite, which
    /// `FittedModel::forecast` reports as an error.
    fn forecast(&self, steps: usize) -> Forecast {
        let mut mean = vec![0.0; steps];
        for (member, (_, weight)) in self.members.iter().zip(self.weights()) {
            match member.forecast(steps) {
                Ok(f) => {
                    for (total, m) in mean.iter_mut().zip(f.mean) {
                        *total += weight * m;
                    }
                }
                Err(_) => mean.iter_mut().for_each(|m| *m = f64::NAN),
            }
        }
        if self.members.is_empty() {
            mean.iter_mut().for_each(|m| *m = f64::NAN);
        }
        let scale = |h: usize| self.interval_scales.get(h - 1).copied().unwrap_or(f64::NAN);
        symmetric_interval(mean, |h| scale(h) * self.sigma * (h as f64).sqrt())
    }
}

impl FittedEnsemble {
    /// The members' kinds and weights, in member order.
    pub fn weights(&self) -> Vec<(ModelKind, f64)> {
        let w = 1.0 / self.members.len().max(1) as f64;
        self.members.iter().map(|m| (m.kind(), w)).collect()
    }

    /// Every member re-anchored on `window`; weights and interval unchanged.
    pub fn anchored(&self, window: &Window<'_>) -> Result<FittedEnsemble, ModelError> {
        let members = self
            .members
            .iter()
            .map(|m| m.anchored(window))
            .collect::<Result<_, _>>()?;
        Ok(FittedEnsemble {
            members,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::tests::random_walk;

    #[test]
    fn fits_chooses_from_every_member_and_covers_with_its_own_band() {
        let y = random_walk(1000, 13);
        let fitted = Ensemble.fit(&Window::of_target(&y)).expect("fits");
        assert_eq!(fitted.validation.available, MEMBERS.to_vec());
        assert_eq!(fitted.validation.inner_origins, validation::INNER_ORIGINS);
        assert!(fitted.validation.loss <= fitted.validation.simple_average_loss);
        assert!(!fitted.members.is_empty());
        let weights: f64 = fitted.weights().iter().map(|(_, w)| w).sum();
        assert!((weights - 1.0).abs() < 1e-12);
        assert_eq!(fitted.interval_scales.len(), MAX_HORIZON);
        assert!(
            fitted
                .interval_scales
                .iter()
                .all(|s| *s > 0.0 && s.is_finite())
        );
        let f = fitted.forecast(MAX_HORIZON);
        // The mean is the members' average.
        let by_hand: f64 = fitted
            .members
            .iter()
            .map(|m| m.forecast(1).expect("forecasts").mean[0])
            .sum::<f64>()
            / fitted.members.len() as f64;
        assert!((f.mean[0] - by_hand).abs() <= 1e-9 * by_hand);
    }

    #[test]
    fn a_member_that_cannot_fit_is_left_out() {
        // A flat window: the lagged-return regression is singular.
        let y = vec![10.0; 80];
        let fitted = Ensemble.fit(&Window::of_target(&y)).expect("fits");
        assert!(!fitted.validation.available.contains(&ModelKind::LinregLag5));
        let f = fitted.forecast(5);
        assert!(f.mean.iter().all(|m| (*m - 10.0).abs() < 1e-9), "{f:?}");
    }

    /// The inner validation sees nothing after its origins: changing the
    /// window's values after an inner origin leaves that origin's forecasts
    /// (of every member) unchanged.
    #[test]
    fn inner_forecasts_do_not_see_past_their_inner_origin() {
        let y = random_walk(400, 4);
        let plan = validation::plan(y.len(), INNER_MIN_WINDOW).expect("fits");
        for kind in MEMBERS {
            let before = validation::inner_forecasts(kind, &Window::of_target(&y), &plan)
                .expect("forecasts");
            for (j, &origin) in plan.origins.iter().enumerate() {
                let mut changed = y.clone();
                changed[origin + 1..].iter_mut().for_each(|v| *v *= 1.7);
                let after = validation::inner_forecasts(kind, &Window::of_target(&changed), &plan)
                    .expect("forecasts");
                assert_eq!(before[j].forecast, after[j].forecast, "{kind} at {origin}");
            }
        }
    }
}
