//! Forecasting models: one trait, one artifact format, one registry of names.
//!
//! A model is fitted on a trailing window of the target (plus the window's
//! other columns and dates where it needs them) and forecasts steps
//! `1..=MAX_HORIZON` ahead, with an optional 80 % central interval. A fitted
//! model is plain data: it serialises to a small JSON artifact that the
//! prediction API loads and applies without refitting, and that loads back to
//! bit-identical forecasts.
//!
//! Models do no I/O and see nothing but the window they are given; the
//! backtest cuts that window, so no model can look past its origin.

mod arima;
mod baseline;
pub mod calibration;
mod direct;
mod ensemble;
mod linreg;
pub mod lstm;
mod prophet;
mod ridge_features;
mod theta;
pub mod validation;

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::series::{Bar, DailySentiment};

pub use arima::{ArimaParams, FittedArima, Order};
pub use baseline::{Drift, FittedDrift, FittedNaive, Naive};
pub use calibration::Calibration;
pub use ensemble::{Ensemble, FittedEnsemble, Validation};
pub use linreg::{FittedLinregLag5, LinregLag5};
pub use lstm::{Epoch, FittedLstm, Lstm};
pub use prophet::{FittedProphet, ProphetParams, Seasonality};
pub use ridge_features::{FittedRidgeFeatures, RidgeFeatures};
pub use theta::{FittedTheta, Theta};

/// The largest horizon any model forecasts, in trading days.
pub const MAX_HORIZON: usize = 21;

/// The standard normal 0.9 quantile: half-width of an 80 % central interval in σ.
pub const Z80: f64 = 1.2815515655446004;

/// What a model is fitted on: the trailing window of the target, ending at
/// the forecast origin, the bars of the same rows, and where known the
/// calendar dates of the steps after the origin.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub target: &'a [f64],
    pub bars: &'a [Bar],
    /// Dates of steps 1, 2, … after the origin: labels only, never prices
    /// (PROTOCOL §3). Empty where unknown: a model that forecasts by date
    /// then takes the next US trading days after the last bar.
    pub future: &'a [NaiveDate],
    /// The symbol's news sentiment by day, none after the origin's day;
    /// empty without a sentiment file.
    pub sentiment: &'a [DailySentiment],
}

impl<'a> Window<'a> {
    /// A window over the target alone (bars empty), for models that need nothing else.
    pub fn of_target(target: &'a [f64]) -> Self {
        Window {
            target,
            bars: &[],
            future: &[],
            sentiment: &[],
        }
    }

    /// A window over the target and the bars of the same rows.
    pub fn new(target: &'a [f64], bars: &'a [Bar]) -> Self {
        Window {
            target,
            bars,
            future: &[],
            sentiment: &[],
        }
    }

    pub fn len(&self) -> usize {
        self.target.len()
    }

    pub fn is_empty(&self) -> bool {
        self.target.is_empty()
    }

    /// The last observed value: the forecast origin's level.
    pub fn last(&self) -> f64 {
        self.target.last().copied().unwrap_or(f64::NAN)
    }
}

/// Point forecasts for steps `1..=n` and, where the model gives them, 80 % intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub mean: Vec<f64>,
    pub lower: Option<Vec<f64>>,
    pub upper: Option<Vec<f64>>,
}

impl Forecast {
    /// Checks that every value a caller will use is finite.
    fn checked(self, model: ModelKind) -> Result<Self, ModelError> {
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        let bands_ok = match (&self.lower, &self.upper) {
            (Some(l), Some(u)) => finite(l) && finite(u),
            (None, None) => true,
            _ => false,
        };
        if finite(&self.mean) && bands_ok {
            Ok(self)
        } else {
            Err(ModelError::NonFinite { model })
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("{model} needs a window of at least {needed} values, but got {got}")]
    WindowTooShort {
        model: ModelKind,
        needed: usize,
        got: usize,
    },
    #[error("{model} was given a window with a non-finite or non-positive value")]
    InvalidWindow { model: ModelKind },
    #[error("{model} produced a non-finite forecast")]
    NonFinite { model: ModelKind },
    #[error("{model} could not be estimated: {reason}")]
    Estimation { model: ModelKind, reason: String },
    #[error("steps should be in range [1, {MAX_HORIZON}], but is {0}")]
    InvalidSteps(usize),
    #[error("unknown model {0:?}; known models: {known}", known = ModelKind::known_names())]
    UnknownModel(String),
    #[error("model artifact is not valid JSON for a fitted model: {0}")]
    Artifact(String),
}

/// Fits a model family on a window.
pub trait Forecaster {
    type Fitted: Predict;
    fn fit(&self, window: &Window<'_>) -> Result<Self::Fitted, ModelError>;
}

/// Forecasts from a fitted model.
pub trait Predict {
    /// Point forecasts (and intervals, where the model has them) for steps `1..=steps`.
    fn forecast(&self, steps: usize) -> Forecast;
}

/// The model names a user, a config file or a request can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Naive,
    Drift,
    LinregLag5,
    Arima,
    Prophet,
    Theta,
    Ensemble,
    RidgeFeatures,
    Lstm,
}

impl ModelKind {
    pub const ALL: [ModelKind; 9] = [
        ModelKind::Naive,
        ModelKind::Drift,
        ModelKind::LinregLag5,
        ModelKind::Arima,
        ModelKind::Prophet,
        ModelKind::Theta,
        ModelKind::Ensemble,
        ModelKind::RidgeFeatures,
        ModelKind::Lstm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Naive => "naive",
            ModelKind::Drift => "drift",
            ModelKind::LinregLag5 => "linreg_lag5",
            ModelKind::Arima => "arima",
            ModelKind::Prophet => "prophet",
            ModelKind::Theta => "theta",
            ModelKind::Ensemble => "ensemble",
            ModelKind::RidgeFeatures => "ridge_features",
            ModelKind::Lstm => "lstm",
        }
    }

    /// Every name, comma separated: what an error about an unknown name lists.
    pub fn known_names() -> String {
        let names: Vec<&str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
        names.join(", ")
    }

    /// Learned models whose 80 % intervals are calibrated on the window's
    /// own validation errors. The baselines keep PROTOCOL §6's intervals
    /// exactly; the ensemble's interval is conformal by construction.
    pub fn is_calibrated(self) -> bool {
        matches!(
            self,
            ModelKind::LinregLag5 | ModelKind::Arima | ModelKind::Theta
        )
    }

    /// Baselines always run and are always servable: the gate compares against them.
    pub fn is_baseline(self) -> bool {
        matches!(self, ModelKind::Naive | ModelKind::Drift)
    }

    /// The shortest window the model accepts.
    pub fn min_window(self) -> usize {
        match self {
            ModelKind::Naive => 2,
            ModelKind::Drift => 3,
            ModelKind::LinregLag5 => linreg::MIN_WINDOW,
            ModelKind::Arima => arima::MIN_WINDOW,
            ModelKind::Prophet => prophet::MIN_WINDOW,
            ModelKind::Theta => theta::MIN_WINDOW,
            ModelKind::Ensemble => ensemble::MIN_WINDOW,
            ModelKind::RidgeFeatures => ridge_features::MIN_WINDOW,
            ModelKind::Lstm => lstm::MIN_WINDOW,
        }
    }

    /// Fits this model with its default parameters and, for learned models,
    /// calibrates its intervals on the window's own validation errors (which
    /// refits it at the window's inner origins: several times the cost).
    pub fn fit(self, window: &Window<'_>) -> Result<FittedModel, ModelError> {
        let fitted = self.fit_uncalibrated(window)?;
        if !self.is_calibrated() {
            return Ok(fitted);
        }
        // Without inner origins (a short window) the model's own interval stays.
        Ok(fitted.with_calibration(calibration::calibrate(self, window)))
    }

    /// Fits this model with its default parameters and its own intervals:
    /// what the inner validation and the ensemble's members use.
    pub fn fit_uncalibrated(self, window: &Window<'_>) -> Result<FittedModel, ModelError> {
        if window.len() < self.min_window() {
            return Err(ModelError::WindowTooShort {
                model: self,
                needed: self.min_window(),
                got: window.len(),
            });
        }
        if !window.target.iter().all(|v| v.is_finite() && *v > 0.0) {
            return Err(ModelError::InvalidWindow { model: self });
        }
        Ok(match self {
            ModelKind::Naive => FittedModel::Naive(Naive.fit(window)?),
            ModelKind::Drift => FittedModel::Drift(Drift.fit(window)?),
            ModelKind::LinregLag5 => FittedModel::LinregLag5(LinregLag5.fit(window)?),
            ModelKind::Arima => FittedModel::Arima(ArimaParams::default().fit(window)?),
            ModelKind::Prophet => FittedModel::Prophet(ProphetParams::default().fit(window)?),
            ModelKind::Theta => FittedModel::Theta(Theta.fit(window)?),
            ModelKind::Ensemble => FittedModel::Ensemble(Ensemble.fit(window)?),
            ModelKind::RidgeFeatures => {
                FittedModel::RidgeFeatures(RidgeFeatures::default().fit(window)?)
            }
            ModelKind::Lstm => FittedModel::Lstm(Lstm::default().fit(window)?),
        })
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| ModelError::UnknownModel(s.to_owned()))
    }
}

/// A fitted model of any family: the JSON artifact stored in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum FittedModel {
    Naive(FittedNaive),
    Drift(FittedDrift),
    LinregLag5(FittedLinregLag5),
    Arima(FittedArima),
    Prophet(FittedProphet),
    Theta(FittedTheta),
    Ensemble(FittedEnsemble),
    RidgeFeatures(FittedRidgeFeatures),
    Lstm(FittedLstm),
}

impl FittedModel {
    pub fn kind(&self) -> ModelKind {
        match self {
            FittedModel::Naive(_) => ModelKind::Naive,
            FittedModel::Drift(_) => ModelKind::Drift,
            FittedModel::LinregLag5(_) => ModelKind::LinregLag5,
            FittedModel::Arima(_) => ModelKind::Arima,
            FittedModel::Prophet(_) => ModelKind::Prophet,
            FittedModel::Theta(_) => ModelKind::Theta,
            FittedModel::Ensemble(_) => ModelKind::Ensemble,
            FittedModel::RidgeFeatures(_) => ModelKind::RidgeFeatures,
            FittedModel::Lstm(_) => ModelKind::Lstm,
        }
    }

    /// The ensemble's combination, for reports of its weights over time.
    pub fn as_ensemble(&self) -> Option<&FittedEnsemble> {
        match self {
            FittedModel::Ensemble(e) => Some(e),
            _ => None,
        }
    }

    /// The conformal calibration of a learned model's interval, if it has one.
    pub fn calibration(&self) -> Option<&Calibration> {
        match self {
            FittedModel::LinregLag5(m) => m.calibration.as_ref(),
            FittedModel::Arima(m) => m.calibration.as_ref(),
            FittedModel::Theta(m) => m.calibration.as_ref(),
            _ => None,
        }
    }

    /// The same model with `calibration` applied to its interval (models
    /// that are not calibrated are returned unchanged).
    fn with_calibration(self, calibration: Option<Calibration>) -> FittedModel {
        match self {
            FittedModel::LinregLag5(m) => {
                FittedModel::LinregLag5(FittedLinregLag5 { calibration, ..m })
            }
            FittedModel::Arima(m) => FittedModel::Arima(FittedArima { calibration, ..m }),
            FittedModel::Theta(m) => FittedModel::Theta(FittedTheta { calibration, ..m }),
            other => other,
        }
    }

    /// Forecasts steps `1..=steps`; every returned value is finite.
    pub fn forecast(&self, steps: usize) -> Result<Forecast, ModelError> {
        if !(1..=MAX_HORIZON).contains(&steps) {
            return Err(ModelError::InvalidSteps(steps));
        }
        let forecast = match self {
            FittedModel::Naive(m) => m.forecast(steps),
            FittedModel::Drift(m) => m.forecast(steps),
            FittedModel::LinregLag5(m) => m.forecast(steps),
            FittedModel::Arima(m) => m.forecast(steps),
            FittedModel::Prophet(m) => m.forecast(steps),
            FittedModel::Theta(m) => m.forecast(steps),
            FittedModel::Ensemble(m) => m.forecast(steps),
            FittedModel::RidgeFeatures(m) => m.forecast(steps),
            FittedModel::Lstm(m) => m.forecast(steps),
        };
        forecast.checked(self.kind())
    }

    /// The same fitted parameters, re-anchored on the latest data `window`
    /// (the last value, recent returns or ARMA state; for Prophet, the
    /// dates after it): how a stored model forecasts from data that
    /// arrived after it was trained.
    pub fn anchored(&self, window: &Window<'_>) -> Result<FittedModel, ModelError> {
        let kind = self.kind();
        if window.len() < kind.min_window() {
            return Err(ModelError::WindowTooShort {
                model: kind,
                needed: kind.min_window(),
                got: window.len(),
            });
        }
        if !window.target.iter().all(|v| v.is_finite() && *v > 0.0) {
            return Err(ModelError::InvalidWindow { model: kind });
        }
        let last = window.last();
        Ok(match self {
            FittedModel::Naive(m) => FittedModel::Naive(FittedNaive { last, ..m.clone() }),
            FittedModel::Drift(m) => FittedModel::Drift(FittedDrift { last, ..m.clone() }),
            FittedModel::LinregLag5(m) => FittedModel::LinregLag5(m.anchored(window.target)),
            FittedModel::Arima(m) => FittedModel::Arima(m.anchored(window.target)?),
            FittedModel::Prophet(m) => FittedModel::Prophet(m.anchored(window)?),
            FittedModel::Theta(m) => FittedModel::Theta(m.anchored(window.target)),
            FittedModel::Ensemble(m) => FittedModel::Ensemble(m.anchored(window)?),
            FittedModel::RidgeFeatures(m) => FittedModel::RidgeFeatures(m.anchored(window)?),
            FittedModel::Lstm(m) => FittedModel::Lstm(m.anchored(window)?),
        })
    }

    pub fn to_json(&self) -> String {
        // A fitted model holds only numbers and names: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let model: FittedModel =
            serde_json::from_str(text).map_err(|e| ModelError::Artifact(e.to_string()))?;
        let checked = match &model {
            FittedModel::Prophet(m) => m.check(),
            FittedModel::RidgeFeatures(m) => m.check(),
            FittedModel::Lstm(m) => m.check(),
            _ => Ok(()),
        };
        checked.map_err(ModelError::Artifact)?;
        Ok(model)
    }
}

/// Builds a symmetric interval `mean ± Z80·sd` for each step.
fn symmetric_interval(mean: Vec<f64>, sd: impl Fn(usize) -> f64) -> Forecast {
    let lower = mean
        .iter()
        .enumerate()
        .map(|(i, m)| m - Z80 * sd(i + 1))
        .collect();
    let upper = mean
        .iter()
        .enumerate()
        .map(|(i, m)| m + Z80 * sd(i + 1))
        .collect();
    Forecast {
        mean,
        lower: Some(lower),
        upper: Some(upper),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn random_walk(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::rng::Rng::new(seed);
        let mut level = 100.0_f64;
        (0..n)
            .map(|_| {
                level *= (0.0003 + 0.015 * rng.normal()).exp();
                level
            })
            .collect()
    }

    /// Bars on consecutive US trading days from 2010, closing at `y`:
    /// what the backtest gives a model, for the models that need dates.
    pub(crate) fn dated_bars(y: &[f64]) -> Vec<Bar> {
        let start = NaiveDate::from_ymd_opt(2009, 12, 31).expect("valid date");
        crate::calendar::next_trading_days(start, y.len())
            .into_iter()
            .zip(y)
            .map(|(date, &close)| Bar::close_only(date, close))
            .collect()
    }

    #[test]
    fn names_round_trip() {
        for kind in ModelKind::ALL {
            assert_eq!(kind.name().parse::<ModelKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).expect("serialises");
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
        assert!(matches!(
            "no_such_model".parse::<ModelKind>(),
            Err(ModelError::UnknownModel(_))
        ));
    }

    #[test]
    fn every_model_round_trips_its_artifact_to_identical_forecasts() {
        let y = random_walk(400, 7);
        let bars = dated_bars(&y);
        let window = Window::new(&y, &bars);
        for kind in ModelKind::ALL {
            let fitted = kind.fit(&window).expect("fits");
            let again = FittedModel::from_json(&fitted.to_json()).expect("loads");
            assert_eq!(fitted, again, "{kind}");
            assert_eq!(
                fitted.forecast(MAX_HORIZON).expect("forecasts"),
                again.forecast(MAX_HORIZON).expect("forecasts"),
                "{kind}"
            );
            // Prophet keeps ~50 coefficients and the dates of its steps;
            // the ensemble holds its members' artifacts.
            let budget = match kind {
                ModelKind::Prophet => 4096,
                ModelKind::Ensemble => 8192,
                // Per horizon: the features' coefficients and a half-width.
                ModelKind::RidgeFeatures => 16 * 1024,
                // About 2,300 weights and the last 20 days of features.
                ModelKind::Lstm => 64 * 1024,
                _ => 2048,
            };
            let size = fitted.to_json().len();
            assert!(
                size < budget,
                "{kind} artifact should be small, but is {size} bytes"
            );
        }
    }

    #[test]
    fn anchoring_on_the_training_window_changes_nothing_and_new_data_moves_the_forecast() {
        let y = random_walk(600, 9);
        let bars = dated_bars(&y);
        for kind in ModelKind::ALL {
            let fitted = kind
                .fit(&Window::new(&y[..500], &bars[..500]))
                .expect("fits");
            let same = fitted
                .anchored(&Window::new(&y[..500], &bars[..500]))
                .expect("anchors");
            let (a, b) = (
                fitted.forecast(5).expect("forecasts"),
                same.forecast(5).expect("forecasts"),
            );
            for (x, z) in a.mean.iter().zip(&b.mean) {
                assert!((x - z).abs() <= 1e-9 * x.abs(), "{kind}: {x} vs {z}");
            }
            let later = fitted
                .anchored(&Window::new(&y[..600], &bars[..600]))
                .expect("anchors");
            let f = later.forecast(1).expect("forecasts");
            if kind == ModelKind::Prophet {
                // Prophet extrapolates its trend to the new dates instead of
                // re-levelling on the latest price, as Prophet users know it.
                let FittedModel::Prophet(p) = &later else {
                    panic!("a prophet")
                };
                assert_eq!(
                    p.steps[0],
                    crate::calendar::next_trading_days(bars[599].date, 1)[0]
                );
                assert_ne!(f, fitted.forecast(1).expect("forecasts"));
                continue;
            }
            // Every other model starts from the latest level, not the training one.
            assert!(
                (f.mean[0] / y[599] - 1.0).abs() < 0.05,
                "{kind}: {} vs {}",
                f.mean[0],
                y[599]
            );
        }
    }

    #[test]
    fn short_or_bad_windows_are_clear_errors() {
        for kind in ModelKind::ALL {
            let y = [100.0];
            let err = kind.fit(&Window::of_target(&y)).expect_err("too short");
            assert!(
                matches!(err, ModelError::WindowTooShort { .. }),
                "{kind}: {err}"
            );
            let mut y = random_walk(500, 3);
            y[10] = f64::NAN;
            let err = kind.fit(&Window::of_target(&y)).expect_err("nan");
            assert_eq!(err, ModelError::InvalidWindow { model: kind });
        }
    }

    #[test]
    fn learned_models_calibrate_and_baselines_keep_the_protocol_interval() {
        let y = random_walk(1000, 12);
        let bars = dated_bars(&y);
        let window = Window::new(&y, &bars);
        for kind in ModelKind::ALL {
            let fitted = kind.fit(&window).expect("fits");
            let raw = kind.fit_uncalibrated(&window).expect("fits");
            if kind.is_calibrated() {
                let c = fitted.calibration().expect("a long window calibrates");
                assert_eq!(c.scores, validation::INNER_ORIGINS * MAX_HORIZON);
                // The factor scales the model's own half-width, and only that.
                let (a, b) = (
                    fitted.forecast(MAX_HORIZON).expect("forecasts"),
                    raw.forecast(MAX_HORIZON).expect("forecasts"),
                );
                assert_eq!(a.mean, b.mean, "{kind}");
                let width = |f: &Forecast| {
                    f.upper.as_ref().expect("band")[20] - f.lower.as_ref().expect("band")[20]
                };
                let ratio = width(&a) / width(&b);
                let scale = c.scale_at(MAX_HORIZON);
                assert!((ratio - scale).abs() < 1e-9, "{kind}: {ratio} vs {scale}");
            } else {
                assert_eq!(fitted, raw, "{kind}");
                assert!(fitted.calibration().is_none());
            }
        }
        // Too short for inner origins: the model's own interval stays.
        let short = ModelKind::Theta
            .fit(&Window::of_target(&y[..20]))
            .expect("fits");
        assert!(short.calibration().is_none());
    }

    #[test]
    fn unknown_names_list_every_model() {
        let err = "no_such_model".parse::<ModelKind>().expect_err("unknown");
        for kind in ModelKind::ALL {
            assert!(err.to_string().contains(kind.name()), "{err}");
        }
    }

    #[test]
    fn steps_are_bounded() {
        let y = random_walk(50, 1);
        let fitted = ModelKind::Naive.fit(&Window::of_target(&y)).expect("fits");
        assert_eq!(fitted.forecast(0), Err(ModelError::InvalidSteps(0)));
        assert_eq!(fitted.forecast(22), Err(ModelError::InvalidSteps(22)));
    }

    #[test]
    fn autotraits() {
        fn has_autotraits<T: Send + Sync + Sized + Unpin>() {}
        has_autotraits::<FittedModel>();
        has_autotraits::<ModelError>();
        has_autotraits::<ArimaParams>();
    }
}
