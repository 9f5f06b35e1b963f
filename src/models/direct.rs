//! What the two feature models (`ridge_features`, `lstm`) share: direct
//! multi-horizon samples cut from a window, the time split between
//! training and validation, and split-conformal intervals from the
//! validation residuals.
//!
//! A sample at window row `t` is the features up to `t` and, as targets,
//! the cumulative log returns `ln(y[t+h] / y[t])` for `h = 1..=21`: one
//! model head per horizon, no recursion, so an error at step 1 does not
//! feed step 2. Only rows whose 21 targets are inside the window are
//! samples. The latest `VALIDATION_SHARE` of them validate; training
//! samples end `MAX_HORIZON` rows before the first validation sample, so no
//! training target overlaps a validation row (split by time, never
//! shuffled across it).

use serde::{Deserialize, Serialize};

use super::calibration::conformal_quantile;
use super::{Forecast, MAX_HORIZON, ModelError, ModelKind, Window};
use crate::features::{self, Feature, FeatureError, Inputs, Prepared};

/// The share of samples (the latest ones) that validate.
pub const VALIDATION_SHARE: f64 = 0.2;

/// The features both models are offered by default: everything the
/// window has inputs for.
pub const CANDIDATES: [Feature; 15] = Feature::ALL;

/// Samples of a window, split by time.
#[derive(Debug, Clone)]
pub struct Samples {
    pub prepared: Prepared,
    /// Window rows of the training samples, ascending.
    pub train: Vec<usize>,
    /// Window rows of the validation samples, ascending.
    pub validation: Vec<usize>,
    /// `targets[t]`: the cumulative log returns from row `t` to `t + h`;
    /// filled for sample rows only.
    targets: Vec<[f64; MAX_HORIZON]>,
}

impl Samples {
    /// Cuts `window` into samples whose features start at `first_row` or
    /// later (a sequence model needs rows before its first sample).
    pub fn new(
        model: ModelKind,
        window: &Window<'_>,
        candidates: &[Feature],
        history: usize,
        min_train: usize,
    ) -> Result<Samples, ModelError> {
        let prepared =
            features::prepare(&inputs(window), candidates).map_err(|e| feature_error(model, e))?;
        let n = window.len();
        let first = prepared.matrix.first_row + history - 1;
        let last = n.saturating_sub(MAX_HORIZON + 1);
        if last < first {
            return Err(too_short(model, n));
        }
        let count = last - first + 1;
        let validation_count = ((count as f64 * VALIDATION_SHARE).round() as usize).max(1);
        let validation_start = last + 1 - validation_count;
        let train_end = validation_start.saturating_sub(MAX_HORIZON);
        if train_end < first + min_train {
            return Err(too_short(model, n));
        }
        let y = window.target;
        let targets = (0..n)
            .map(|t| {
                let mut row = [0.0; MAX_HORIZON];
                if t <= last {
                    for (h, slot) in row.iter_mut().enumerate() {
                        *slot = (y[t + h + 1] / y[t]).ln();
                    }
                }
                row
            })
            .collect();
        Ok(Samples {
            prepared,
            train: (first..train_end).collect(),
            validation: (validation_start..=last).collect(),
            targets,
        })
    }

    pub fn target(&self, t: usize) -> &[f64; MAX_HORIZON] {
        &self.targets[t]
    }

    /// The one-day log returns `ln(y[t+h] / y[t+h−1])` after row `t`.
    pub fn step_returns(&self, t: usize) -> [f64; MAX_HORIZON] {
        let cumulative = self.target(t);
        let mut out = *cumulative;
        for h in 1..MAX_HORIZON {
            out[h] = cumulative[h] - cumulative[h - 1];
        }
        out
    }

    /// Mean and standard deviation of each horizon's target over the
    /// training samples: how targets are scaled for fitting.
    pub fn target_scale(&self) -> TargetScale {
        self.scale_of(|t| *self.target(t))
    }

    /// The same for the one-day returns at each step.
    pub fn step_scale(&self) -> TargetScale {
        self.scale_of(|t| self.step_returns(t))
    }

    fn scale_of(&self, value: impl Fn(usize) -> [f64; MAX_HORIZON]) -> TargetScale {
        let n = self.train.len().max(1) as f64;
        let mut mean = [0.0; MAX_HORIZON];
        let mut sd = [0.0; MAX_HORIZON];
        for &t in &self.train {
            for (m, v) in mean.iter_mut().zip(value(t)) {
                *m += v / n;
            }
        }
        for &t in &self.train {
            for ((s, v), m) in sd.iter_mut().zip(value(t)).zip(&mean) {
                *s += (v - m).powi(2) / n;
            }
        }
        // A window that does not move has nothing to scale; keep it finite.
        let sd = sd.map(|s| s.sqrt().max(1e-8));
        TargetScale {
            mean: mean.to_vec(),
            sd: sd.to_vec(),
        }
    }
}

/// Per-horizon centring and scaling of the targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetScale {
    pub mean: Vec<f64>,
    pub sd: Vec<f64>,
}

/// The conformal half-width of each horizon's interval, in log return:
/// the finite-sample 80 % quantile of the validation samples' absolute
/// errors. `None` where there are too few samples for the level.
pub fn conformal_half_widths(
    samples: &Samples,
    predict: impl Fn(usize) -> [f64; MAX_HORIZON],
) -> Option<Vec<f64>> {
    let predictions: Vec<[f64; MAX_HORIZON]> =
        samples.validation.iter().map(|&t| predict(t)).collect();
    (0..MAX_HORIZON)
        .map(|h| {
            let scores: Vec<f64> = samples
                .validation
                .iter()
                .zip(&predictions)
                .map(|(&t, p)| (samples.target(t)[h] - p[h]).abs())
                .collect();
            conformal_quantile(&scores)
        })
        .collect()
}

/// Prices from predicted cumulative log returns, with the interval
/// `last·exp(r ± q)` where half-widths are known.
pub fn price_forecast(
    last: f64,
    returns: &[f64],
    half_widths: Option<&[f64]>,
    steps: usize,
) -> Forecast {
    let mean = returns[..steps].iter().map(|r| last * r.exp()).collect();
    let band = |sign: f64| {
        half_widths.map(|q| {
            returns[..steps]
                .iter()
                .zip(q)
                .map(|(r, q)| last * (r + sign * q).exp())
                .collect()
        })
    };
    Forecast {
        mean,
        lower: band(-1.0),
        upper: band(1.0),
    }
}

/// The window's feature inputs.
pub fn inputs<'a>(window: &Window<'a>) -> Inputs<'a> {
    Inputs {
        target: window.target,
        bars: window.bars,
        sentiment: window.sentiment,
    }
}

pub fn feature_error(model: ModelKind, e: FeatureError) -> ModelError {
    match e {
        FeatureError::TooShort { needed, got } => ModelError::WindowTooShort { model, needed, got },
        other => ModelError::Estimation {
            model,
            reason: other.to_string(),
        },
    }
}

fn too_short(model: ModelKind, got: usize) -> ModelError {
    ModelError::WindowTooShort {
        model,
        needed: model.min_window(),
        got,
    }
}
