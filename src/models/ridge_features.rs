//! `ridge_features`: a linear direct multi-horizon model on the engineered
//! features: for each horizon `h`, ridge regression of the cumulative log
//! return to `t + h` on the standardised features at `t`.
//!
//! The interpretable comparator of the LSTM: it shows whether the features
//! carry anything a linear model can use. The penalty is chosen from a
//! grid by the validation samples' error (split by time, see `direct`);
//! the chosen model is refitted on every sample. Ridge is solved with
//! linfa-linear's least squares on the data augmented by `√λ·I` rows
//! (centred, so the intercept is not penalised). Intervals are split
//! conformal on the validation residuals of the training-only fit.

use linfa::prelude::*;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::direct::{self, Samples};
use super::{Forecast, Forecaster, MAX_HORIZON, ModelError, ModelKind, Predict, Window};
use crate::features::{self, Feature, FeatureSet, Scaler};

/// Warm-up, 21 target rows and enough samples to validate and fit.
pub const MIN_WINDOW: usize = 300;

/// Penalties tried, as multiples of the number of training samples.
const PENALTIES: [f64; 5] = [0.001, 0.01, 0.1, 1.0, 10.0];

const MODEL: ModelKind = ModelKind::RidgeFeatures;

/// The feature ridge, offered `candidates` (by default every feature; the
/// ablation offers fewer).
#[derive(Debug, Clone)]
pub struct RidgeFeatures {
    pub candidates: Vec<Feature>,
}

impl Default for RidgeFeatures {
    fn default() -> Self {
        RidgeFeatures {
            candidates: direct::CANDIDATES.to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedRidgeFeatures {
    pub features: FeatureSet,
    pub scaler: Scaler,
    /// The chosen penalty, as a multiple of the sample count.
    pub penalty: f64,
    /// Per horizon: the intercept, then one coefficient per feature.
    pub coefficients: Vec<Vec<f64>>,
    /// Per horizon: the conformal half-width in log return.
    pub half_widths: Option<Vec<f64>>,
    /// The standardised features at the origin.
    pub origin_features: Vec<f64>,
    pub last: f64,
}

impl Forecaster for RidgeFeatures {
    type Fitted = FittedRidgeFeatures;

    fn fit(&self, window: &Window<'_>) -> Result<FittedRidgeFeatures, ModelError> {
        let samples = Samples::new(MODEL, window, &self.candidates, 1, 50)?;
        let matrix = &samples.prepared.matrix;
        let validation_error = |coefficients: &[Vec<f64>]| {
            let scale = samples.target_scale();
            samples
                .validation
                .iter()
                .map(|&t| {
                    let predicted = predict(coefficients, matrix.at(t));
                    (0..MAX_HORIZON)
                        .map(|h| ((samples.target(t)[h] - predicted[h]) / scale.sd[h]).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
        };
        let mut best: Option<(f64, f64, Vec<Vec<f64>>)> = None;
        for penalty in PENALTIES {
            let coefficients = fit_rows(&samples, &samples.train, penalty)?;
            let error = validation_error(&coefficients);
            if best.as_ref().is_none_or(|(e, _, _)| error < *e) {
                best = Some((error, penalty, coefficients));
            }
        }
        let Some((_, penalty, trained)) = best else {
            return Err(estimation("no penalty could be fitted".into()));
        };
        let half_widths =
            direct::conformal_half_widths(&samples, |t| predict(&trained, matrix.at(t)));
        let every: Vec<usize> = samples
            .train
            .iter()
            .chain(&samples.validation)
            .copied()
            .collect();
        let coefficients = fit_rows(&samples, &every, penalty)?;
        Ok(FittedRidgeFeatures {
            features: samples.prepared.set.clone(),
            scaler: samples.prepared.scaler.clone(),
            penalty,
            coefficients,
            half_widths,
            origin_features: matrix.at(window.len() - 1).to_vec(),
            last: window.last(),
        })
    }
}

/// Ridge per horizon on the samples at `rows`: least squares on centred
/// data augmented by `√(penalty·n)·I`.
fn fit_rows(samples: &Samples, rows: &[usize], penalty: f64) -> Result<Vec<Vec<f64>>, ModelError> {
    let matrix = &samples.prepared.matrix;
    let (n, k) = (rows.len(), matrix.cols);
    let mut x_mean = vec![0.0; k];
    for &t in rows {
        for (m, v) in x_mean.iter_mut().zip(matrix.at(t)) {
            *m += v / n as f64;
        }
    }
    let root = (penalty * n as f64).sqrt();
    let mut x = Array2::<f64>::zeros((n + k, k));
    for (i, &t) in rows.iter().enumerate() {
        for (j, v) in matrix.at(t).iter().enumerate() {
            x[[i, j]] = v - x_mean[j];
        }
    }
    for j in 0..k {
        x[[n + j, j]] = root;
    }
    (0..MAX_HORIZON)
        .map(|h| {
            let y_mean = rows.iter().map(|&t| samples.target(t)[h]).sum::<f64>() / n as f64;
            let mut y = Array1::<f64>::zeros(n + k);
            for (i, &t) in rows.iter().enumerate() {
                y[i] = samples.target(t)[h] - y_mean;
            }
            let fitted = LinearRegression::new()
                .with_intercept(false)
                .fit(&Dataset::new(x.clone(), y))
                .map_err(|e| estimation(e.to_string()))?;
            let beta = fitted.params();
            let intercept = y_mean - beta.iter().zip(&x_mean).map(|(b, m)| b * m).sum::<f64>();
            Ok(std::iter::once(intercept)
                .chain(beta.iter().copied())
                .collect())
        })
        .collect()
}

/// Cumulative log returns to each horizon from standardised features.
fn predict(coefficients: &[Vec<f64>], features: &[f64]) -> [f64; MAX_HORIZON] {
    let mut out = [0.0; MAX_HORIZON];
    for (slot, c) in out.iter_mut().zip(coefficients) {
        *slot = c[0] + c[1..].iter().zip(features).map(|(b, x)| b * x).sum::<f64>();
    }
    out
}

fn estimation(reason: String) -> ModelError {
    ModelError::Estimation {
        model: MODEL,
        reason,
    }
}

impl FittedRidgeFeatures {
    /// The same coefficients applied to the features at the end of `window`.
    pub fn anchored(&self, window: &Window<'_>) -> Result<FittedRidgeFeatures, ModelError> {
        let matrix = features::apply(&self.features, &self.scaler, &direct::inputs(window))
            .map_err(|e| direct::feature_error(MODEL, e))?;
        Ok(FittedRidgeFeatures {
            origin_features: matrix.at(window.len() - 1).to_vec(),
            last: window.last(),
            ..self.clone()
        })
    }

    /// Checks the shapes a damaged artifact could break.
    pub fn check(&self) -> Result<(), String> {
        let k = self.features.len();
        if k == 0 {
            return Err("ridge_features artifact has no features".into());
        }
        let shapes_ok = self.coefficients.len() == MAX_HORIZON
            && self.coefficients.iter().all(|c| c.len() == k + 1)
            && self.origin_features.len() == k
            && self.scaler.mean.len() == k
            && self.scaler.scale.len() == k
            && self
                .half_widths
                .as_ref()
                .is_none_or(|q| q.len() == MAX_HORIZON);
        if !shapes_ok {
            return Err(format!(
                "ridge_features artifact does not fit its {k} features"
            ));
        }
        if self.features.version != features::VERSION {
            return Err(format!(
                "ridge_features artifact has feature set version {}, this build computes {}",
                self.features.version,
                features::VERSION
            ));
        }
        Ok(())
    }
}

impl Predict for FittedRidgeFeatures {
    fn forecast(&self, steps: usize) -> Forecast {
        let returns = predict(&self.coefficients, &self.origin_features);
        direct::price_forecast(self.last, &returns, self.half_widths.as_deref(), steps)
    }
}
