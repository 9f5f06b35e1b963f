//! `lstm`: a small LSTM over the last `LOOKBACK` days of the engineered
//! features, with a direct head of one output per step `1..=21`: that
//! day's log return, summed into the cumulative return to each horizon
//! (cumulative targets overlap from one sample to the next, and the network
//! memorised them; see docs/DECISIONS.md).
//!
//! Trained with Adam on the window's earlier samples and early-stopped on
//! the validation loss of its latest ones (split by time, see `direct`),
//! from a fixed seed, on one thread: the same window gives the same
//! weights. The 80 % interval of each horizon is split conformal on the
//! validation residuals. Each fitted model keeps its loss and validation
//! loss per epoch, which the registry stores beside its metrics.
//!
//! The network is our own code (`net`), not candle-nn: see
//! docs/DECISIONS.md ("The LSTM is plain Rust") for the measurements.

mod net;

use serde::{Deserialize, Serialize};

use super::direct::{self, Samples, TargetScale};
use super::{Forecast, Forecaster, MAX_HORIZON, ModelError, ModelKind, Predict, Window};
use crate::features::{self, Feature, FeatureSet, Scaler};
use crate::rng::Rng;
use net::Adam;
pub use net::Net;

/// Days of features the network reads before each forecast origin.
pub const LOOKBACK: usize = 20;
/// Hidden units.
pub const HIDDEN: usize = 16;
const BATCH: usize = 32;
const MAX_EPOCHS: usize = 60;
/// Epochs without a better validation loss before training stops.
const PATIENCE: usize = 8;
const RATE: f64 = 0.01;
const CLIP: f64 = 1.0;
/// The seed of every fit; stored in the artifact.
pub const SEED: u64 = 15;
/// Warm-up, lookback, 21 target rows and enough samples to train and validate.
pub const MIN_WINDOW: usize = 400;

const MODEL: ModelKind = ModelKind::Lstm;

/// The LSTM family, offered `candidates` (by default every feature; the
/// ablation offers fewer).
#[derive(Debug, Clone)]
pub struct Lstm {
    pub candidates: Vec<Feature>,
}

impl Default for Lstm {
    fn default() -> Self {
        Lstm {
            candidates: direct::CANDIDATES.to_vec(),
        }
    }
}

/// One epoch of training: the mean squared error of the scaled targets on
/// the training and on the validation samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Epoch {
    pub epoch: usize,
    pub loss: f64,
    pub validation_loss: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedLstm {
    pub features: FeatureSet,
    pub scaler: Scaler,
    /// Mean and scale of each step's one-day log return (training samples).
    pub targets: TargetScale,
    pub net: Net,
    pub seed: u64,
    /// The epoch whose weights were kept (the best validation loss; 0:
    /// no epoch beat the initial weights, which forecast the training
    /// window's mean returns).
    pub best_epoch: usize,
    pub history: Vec<Epoch>,
    /// Per horizon: the conformal half-width in log return.
    pub half_widths: Option<Vec<f64>>,
    /// The standardised features of the last `LOOKBACK` rows, oldest first.
    pub recent: Vec<Vec<f64>>,
    pub last: f64,
}

impl Forecaster for Lstm {
    type Fitted = FittedLstm;

    fn fit(&self, window: &Window<'_>) -> Result<FittedLstm, ModelError> {
        let samples = Samples::new(MODEL, window, &self.candidates, LOOKBACK, 100)?;
        let training = Training {
            samples: &samples,
            targets: samples.step_scale(),
        };
        let Trained {
            net,
            best_epoch,
            history,
        } = training.train()?;
        let half_widths = direct::conformal_half_widths(&samples, |t| {
            to_returns(&training.targets, &net.forward(&training.sequence(t)))
        });
        let origin = window.len() - 1;
        let recent = training
            .sequence(origin)
            .iter()
            .map(|r| r.to_vec())
            .collect();
        Ok(FittedLstm {
            features: samples.prepared.set.clone(),
            scaler: samples.prepared.scaler.clone(),
            targets: training.targets,
            net,
            seed: SEED,
            best_epoch,
            history,
            half_widths,
            recent,
            last: window.last(),
        })
    }
}

/// A window's samples and the scale of their targets: what the network
/// reads and learns at each sample row.
#[derive(Debug)]
struct Training<'a> {
    samples: &'a Samples,
    targets: TargetScale,
}

/// The network whose validation loss was best, and the whole curve.
#[derive(Debug)]
struct Trained {
    net: Net,
    best_epoch: usize,
    history: Vec<Epoch>,
}

impl Training<'_> {
    /// The standardised features of the `LOOKBACK` rows ending at `t`.
    fn sequence(&self, t: usize) -> Vec<&[f64]> {
        let matrix = &self.samples.prepared.matrix;
        (t + 1 - LOOKBACK..=t).map(|r| matrix.at(r)).collect()
    }

    /// The one-day log returns after `t`, scaled as the network learns them.
    fn scaled(&self, t: usize) -> Vec<f64> {
        self.samples
            .step_returns(t)
            .iter()
            .zip(&self.targets.mean)
            .zip(&self.targets.sd)
            .map(|((y, m), s)| (y - m) / s)
            .collect()
    }

    fn validation_loss(&self, net: &Net) -> f64 {
        let validation = &self.samples.validation;
        let n = validation.len() as f64;
        validation
            .iter()
            .map(|&t| {
                let y = net.forward(&self.sequence(t));
                y.iter()
                    .zip(self.scaled(t))
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    / MAX_HORIZON as f64
            })
            .sum::<f64>()
            / n
    }

    /// Trains from the fixed seed until the validation loss has not improved
    /// for `PATIENCE` epochs (or `MAX_EPOCHS`), keeping the best weights.
    fn train(&self) -> Result<Trained, ModelError> {
        let mut rng = Rng::new(SEED);
        let cols = self.samples.prepared.matrix.cols;
        let mut net = Net::new(cols, HIDDEN, MAX_HORIZON, &mut rng);
        let mut adam = Adam::new(&net, RATE, CLIP);
        let mut order = self.samples.train.clone();
        let mut history = Vec::new();
        let mut best = (self.validation_loss(&net), net.clone(), 0);
        for epoch in 1..=MAX_EPOCHS {
            shuffle(&mut order, &mut rng);
            let loss = self.epoch(&mut net, &mut adam, &order);
            let validation = self.validation_loss(&net);
            if !(loss.is_finite() && validation.is_finite()) {
                return Err(ModelError::Estimation {
                    model: MODEL,
                    reason: format!("training diverged at epoch {epoch}"),
                });
            }
            history.push(Epoch {
                epoch,
                loss,
                validation_loss: validation,
            });
            if validation < best.0 {
                best = (validation, net.clone(), epoch);
            } else if epoch - best.2 >= PATIENCE {
                break;
            }
        }
        let (_, net, best_epoch) = best;
        Ok(Trained {
            net,
            best_epoch,
            history,
        })
    }

    /// One pass over the training samples in `order`, an Adam step per
    /// batch; returns the mean training loss.
    fn epoch(&self, net: &mut Net, adam: &mut Adam, order: &[usize]) -> f64 {
        let mut loss = 0.0;
        for batch in order.chunks(BATCH) {
            let mut grad = net.zeros_like();
            let weight = 1.0 / batch.len() as f64;
            for &t in batch {
                loss += net.accumulate(&self.sequence(t), &self.scaled(t), weight, &mut grad)
                    * batch.len() as f64;
            }
            adam.step(net, &grad);
        }
        loss / order.len() as f64
    }
}

/// Unscales the network's outputs (one day's log return per step) and
/// adds them up into cumulative log returns.
fn to_returns(targets: &TargetScale, outputs: &[f64]) -> [f64; MAX_HORIZON] {
    let mut out = [0.0; MAX_HORIZON];
    let mut cumulative = 0.0;
    for (h, slot) in out.iter_mut().enumerate() {
        cumulative += targets.mean[h] + targets.sd[h] * outputs[h];
        *slot = cumulative;
    }
    out
}

/// Fisher–Yates from the model's own generator: reproducible.
fn shuffle(items: &mut [usize], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

impl FittedLstm {
    /// The same network reading the features at the end of `window`.
    pub fn anchored(&self, window: &Window<'_>) -> Result<FittedLstm, ModelError> {
        if window.len() < features::WARMUP + LOOKBACK {
            return Err(ModelError::WindowTooShort {
                model: MODEL,
                needed: MIN_WINDOW,
                got: window.len(),
            });
        }
        let matrix = features::apply(&self.features, &self.scaler, &direct::inputs(window))
            .map_err(|e| direct::feature_error(MODEL, e))?;
        let origin = window.len() - 1;
        Ok(FittedLstm {
            recent: (origin + 1 - LOOKBACK..=origin)
                .map(|r| matrix.at(r).to_vec())
                .collect(),
            last: window.last(),
            ..self.clone()
        })
    }

    /// Checks what a damaged artifact could break.
    pub fn check(&self) -> Result<(), String> {
        let k = self.features.len();
        if k == 0 {
            return Err("lstm artifact has no features".into());
        }
        let ok = self.net.is_consistent()
            && self.net.is_finite()
            && self.net.inputs == k
            && self.net.outputs == MAX_HORIZON
            && self.recent.len() == LOOKBACK
            && self.recent.iter().all(|r| r.len() == k)
            && self.scaler.mean.len() == k
            && self.scaler.scale.len() == k
            && self.targets.mean.len() == MAX_HORIZON
            && self.targets.sd.len() == MAX_HORIZON
            && self
                .half_widths
                .as_ref()
                .is_none_or(|q| q.len() == MAX_HORIZON);
        if !ok {
            return Err(format!("lstm artifact does not fit its {k} features"));
        }
        if self.features.version != features::VERSION {
            return Err(format!(
                "lstm artifact has feature set version {}, this build computes {}",
                self.features.version,
                features::VERSION
            ));
        }
        Ok(())
    }
}

impl Predict for FittedLstm {
    fn forecast(&self, steps: usize) -> Forecast {
        let sequence: Vec<&[f64]> = self.recent.iter().map(Vec::as_slice).collect();
        let returns = to_returns(&self.targets, &self.net.forward(&sequence));
        direct::price_forecast(self.last, &returns, self.half_widths.as_deref(), steps)
    }
}

#[cfg(test)]
mod tests;
