//! `arima`: automatic ARIMA(p, d, q) on the price level, in the manner of
//! Hyndman–Khandakar's AutoARIMA (as in R's forecast and statsforecast).
//!
//! `d` comes from repeated KPSS tests, the ARMA part is estimated by
//! conditional sum of squares (see `css`), and (p, q, constant) is chosen by
//! a stepwise search that minimises AICc. Forecasts are the ARMA recursion
//! integrated `d` times; 80 % intervals come from the ψ-weights of the
//! integrated model.
//!
//! Why not the `arima` crate: measured here (see docs/DECISIONS.md), its
//! estimator prints line-search warnings to stdout on every fit, its
//! forecaster is wrong for d ≥ 1 and it has no intervals or information
//! criteria; what remains to borrow is small enough to own.

mod css;
mod kpss;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use self::css::Spec;
use super::calibration::Calibration;
use super::{Forecast, Forecaster, ModelError, ModelKind, Predict, Window, symmetric_interval};

pub const MIN_WINDOW: usize = 30;

/// Roots closer to the unit circle than this are treated as non-stationary
/// or non-invertible, as auto.arima does, so near-cancelling fits are not chosen.
const ROOT_MARGIN: f64 = 1.01;

/// Order of the long autoregression whose residuals seed the estimator.
const LONG_AR_ORDER: usize = 10;

/// A fixed order: what the search chooses, or what a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub p: usize,
    pub d: usize,
    pub q: usize,
    /// A mean (d = 0) or drift (d = 1) term.
    pub constant: bool,
}

/// Parameters of the automatic search.
///
/// | Name | Default | Purpose | Range |
/// |---|---|---|---|
/// | `max_p` | 5 | largest AR order tried | 0..=8 |
/// | `max_q` | 5 | largest MA order tried | 0..=8 |
/// | `max_d` | 2 | most differences the KPSS tests may ask for | 0..=2 |
/// | `order` | none | skip the search and fit this order | |
#[derive(Debug, Clone, PartialEq)]
pub struct ArimaParams {
    pub max_p: usize,
    pub max_q: usize,
    pub max_d: usize,
    pub order: Option<Order>,
}

impl Default for ArimaParams {
    fn default() -> Self {
        ArimaParams {
            max_p: 5,
            max_q: 5,
            max_d: 2,
            order: None,
        }
    }
}

impl ArimaParams {
    /// Fits exactly this order, without a search.
    pub fn with_order(order: Order) -> Self {
        ArimaParams {
            order: Some(order),
            ..ArimaParams::default()
        }
    }

    fn check(&self) -> Result<(), ModelError> {
        let bad = |reason: String| ModelError::Estimation {
            model: ModelKind::Arima,
            reason,
        };
        if self.max_p > 8 || self.max_q > 8 {
            return Err(bad(format!(
                "max_p and max_q should be in range [0, 8], but are {} and {}",
                self.max_p, self.max_q
            )));
        }
        if self.max_d > 2 {
            return Err(bad(format!(
                "max_d should be in range [0, 2], but is {}",
                self.max_d
            )));
        }
        if let Some(o) = self.order
            && (o.p > 8 || o.q > 8 || o.d > 2 || (o.constant && o.d > 1))
        {
            return Err(bad(format!(
                "order ({}, {}, {}) with constant {} is out of range",
                o.p, o.d, o.q, o.constant
            )));
        }
        Ok(())
    }
}

/// A fitted ARIMA: coefficients plus the few last values its recursion needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedArima {
    pub order: Order,
    pub phi: Vec<f64>,
    pub theta: Vec<f64>,
    /// Mean of the differenced series (0 without a constant).
    pub mean: f64,
    /// Innovation variance.
    pub sigma2: f64,
    pub aicc: f64,
    /// Last `p` values of the differenced series, oldest first.
    pub recent_values: Vec<f64>,
    /// Last `q` residuals, oldest first.
    pub recent_residuals: Vec<f64>,
    /// Last value of the series at each level of differencing 0..d.
    pub level_tails: Vec<f64>,
    /// How many leading values of the differenced series the residual
    /// recursion conditions on; anchoring uses the same, so it reproduces
    /// the training residuals exactly. (Absent in artifacts written before
    /// it existed, which then condition on `p`.)
    #[serde(default)]
    pub conditioning: usize,
    /// Number of models the search estimated.
    pub models_tried: usize,
    /// The split-conformal widening of the ψ-weight interval, which alone
    /// ignores the uncertainty of the estimates and of the chosen order
    /// (see `calibration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

impl Forecaster for ArimaParams {
    type Fitted = FittedArima;

    fn fit(&self, window: &Window<'_>) -> Result<FittedArima, ModelError> {
        self.check()?;
        let y = window.target;
        let d = match self.order {
            Some(order) => order.d,
            None => kpss::differences_needed(y, self.max_d),
        };
        let mut level_tails = Vec::with_capacity(d);
        let mut x = y.to_vec();
        for _ in 0..d {
            level_tails.push(x[x.len() - 1]);
            x = difference(&x);
        }
        // Every candidate is conditioned on the same first values, so their
        // sums of squares cover the same residuals and AICc compares fairly.
        let offset = match self.order {
            Some(order) => order.p,
            None => self.max_p,
        };
        let innovations = css::long_ar_residuals(&x, LONG_AR_ORDER);
        let search = Search {
            x: &x,
            offset,
            innovations: innovations.as_deref(),
            // A requested order is fitted as long as it is admissible; only
            // the search keeps away from the unit circle.
            root_margin: if self.order.is_some() {
                1.0
            } else {
                ROOT_MARGIN
            },
        };
        let (spec, fit, aicc, models_tried) = match self.order {
            Some(order) => {
                let spec = Spec {
                    p: order.p,
                    q: order.q,
                    mean: order.constant,
                };
                let (fit, aicc) = search
                    .estimate(spec)
                    .ok_or_else(|| ModelError::Estimation {
                        model: ModelKind::Arima,
                        reason: format!(
                            "ARIMA({}, {d}, {}) did not converge to an admissible fit",
                            order.p, order.q
                        ),
                    })?;
                (spec, fit, aicc, 1)
            }
            None => search.stepwise(self.max_p, self.max_q, d <= 1)?,
        };
        let n = x.len();
        Ok(FittedArima {
            order: Order {
                p: spec.p,
                d,
                q: spec.q,
                constant: spec.mean,
            },
            recent_values: x[n - spec.p..].to_vec(),
            recent_residuals: fit.residuals[n - spec.q..].to_vec(),
            phi: fit.phi,
            theta: fit.theta,
            mean: fit.mean,
            sigma2: fit.ssr / fit.n_eff as f64,
            aicc,
            level_tails,
            conditioning: offset,
            models_tried,
            calibration: None,
        })
    }
}

/// The AICc-minimising stepwise search over (p, q, constant) for a fixed d.
struct Search<'a> {
    x: &'a [f64],
    offset: usize,
    innovations: Option<&'a [f64]>,
    root_margin: f64,
}

impl Search<'_> {
    /// Estimates one candidate and scores it; `None` if it is inadmissible.
    fn estimate(&self, spec: Spec) -> Option<(css::CssFit, f64)> {
        let fit = css::fit(self.x, spec, self.offset, self.innovations)?;
        if !css::roots_outside(&fit.phi, self.root_margin) {
            return None;
        }
        let negated_theta: Vec<f64> = fit.theta.iter().map(|t| -t).collect();
        if !css::roots_outside(&negated_theta, self.root_margin) {
            return None;
        }
        let n = fit.n_eff as f64;
        let sigma2 = fit.ssr / n;
        if sigma2 == 0.0 {
            // A perfect fit (a constant series and a mean): nothing can beat it.
            return Some((fit, f64::NEG_INFINITY));
        }
        if !(sigma2 > 0.0 && sigma2.is_finite()) {
            return None;
        }
        let k = (spec.n_params() + 1) as f64;
        let log_likelihood = -0.5 * n * ((2.0 * std::f64::consts::PI * sigma2).ln() + 1.0);
        let aicc = -2.0 * log_likelihood + 2.0 * k + 2.0 * k * (k + 1.0) / (n - k - 1.0);
        aicc.is_finite().then_some((fit, aicc))
    }

    fn stepwise(
        &self,
        max_p: usize,
        max_q: usize,
        allow_constant: bool,
    ) -> Result<(Spec, css::CssFit, f64, usize), ModelError> {
        let mut tried = HashSet::new();
        let mut best: Option<(Spec, css::CssFit, f64)> = None;
        let mut consider = |spec: Spec, best: &mut Option<(Spec, css::CssFit, f64)>| -> bool {
            if spec.p > max_p || spec.q > max_q || !tried.insert(spec) {
                return false;
            }
            match self.estimate(spec) {
                Some((fit, aicc)) if best.as_ref().is_none_or(|b| aicc < b.2) => {
                    *best = Some((spec, fit, aicc));
                    true
                }
                _ => false,
            }
        };
        let c = allow_constant;
        let starts = [(2, 2, c), (0, 0, c), (1, 0, c), (0, 1, c), (0, 0, false)];
        for (p, q, mean) in starts {
            consider(Spec { p, q, mean }, &mut best);
        }
        while let Some(current) = best.as_ref().map(|b| b.0) {
            let (p, q) = (current.p as isize, current.q as isize);
            let moves = [
                (-1, 0),
                (1, 0),
                (0, -1),
                (0, 1),
                (-1, -1),
                (1, 1),
                (-1, 1),
                (1, -1),
            ];
            let mut neighbours: Vec<Spec> = moves
                .iter()
                .filter(|(dp, dq)| p + dp >= 0 && q + dq >= 0)
                .map(|(dp, dq)| Spec {
                    p: (p + dp) as usize,
                    q: (q + dq) as usize,
                    mean: current.mean,
                })
                .collect();
            if allow_constant {
                neighbours.push(Spec {
                    mean: !current.mean,
                    ..current
                });
            }
            // Move to the first neighbour that improves, then search around it.
            if !neighbours.into_iter().any(|spec| consider(spec, &mut best)) {
                break;
            }
        }
        let models_tried = tried.len();
        best.map(|(spec, fit, aicc)| (spec, fit, aicc, models_tried))
            .ok_or_else(|| ModelError::Estimation {
                model: ModelKind::Arima,
                reason: "no candidate order gave an admissible fit".into(),
            })
    }
}

impl FittedArima {
    /// The same coefficients, with their state (recent values, residuals,
    /// levels) recomputed from `y`: forecasts from the latest data without refitting.
    pub fn anchored(&self, y: &[f64]) -> Result<FittedArima, ModelError> {
        let Order { p, d, q, constant } = self.order;
        let needed = d + self.conditioning.max(p) + q + 2;
        if y.len() < needed {
            return Err(ModelError::WindowTooShort {
                model: ModelKind::Arima,
                needed,
                got: y.len(),
            });
        }
        let mut level_tails = Vec::with_capacity(d);
        let mut x = y.to_vec();
        for _ in 0..d {
            level_tails.push(x[x.len() - 1]);
            x = difference(&x);
        }
        let spec = Spec {
            p,
            q,
            mean: constant,
        };
        let residuals = css::residuals(
            &x,
            spec,
            self.conditioning.max(p),
            &self.phi,
            &self.theta,
            self.mean,
        );
        let n = x.len();
        Ok(FittedArima {
            recent_values: x[n - p..].to_vec(),
            recent_residuals: residuals[n - q..].to_vec(),
            level_tails,
            ..self.clone()
        })
    }
}

impl Predict for FittedArima {
    fn forecast(&self, steps: usize) -> Forecast {
        let Order { p, d, q, .. } = self.order;
        let mut values = self.recent_values.clone();
        let mut residuals = self.recent_residuals.clone();
        let mut differenced = Vec::with_capacity(steps);
        for _ in 0..steps {
            let (nv, nr) = (values.len(), residuals.len());
            let ar: f64 = (0..p)
                .map(|i| self.phi[i] * (values[nv - 1 - i] - self.mean))
                .sum();
            let ma: f64 = (0..q).map(|j| self.theta[j] * residuals[nr - 1 - j]).sum();
            let next = self.mean + ar + ma;
            values.push(next);
            // Future innovations have expectation zero.
            residuals.push(0.0);
            differenced.push(next);
        }
        let mut mean = differenced;
        for tail in self.level_tails.iter().rev() {
            let mut level = *tail;
            for v in mean.iter_mut() {
                level += *v;
                *v = level;
            }
        }
        let psi = psi_weights(&self.phi, &self.theta, d, steps);
        let mut cumulative = Vec::with_capacity(steps);
        let mut sum = 0.0;
        for w in &psi {
            sum += w * w;
            cumulative.push(sum);
        }
        let scale = |h: usize| self.calibration.as_ref().map_or(1.0, |c| c.scale_at(h));
        symmetric_interval(mean, |h| {
            scale(h) * (self.sigma2 * cumulative[h - 1]).sqrt()
        })
    }
}

/// ψ-weights ψ_0..ψ_{n−1} of the ARIMA's MA(∞) form, differencing included.
fn psi_weights(phi: &[f64], theta: &[f64], d: usize, n: usize) -> Vec<f64> {
    // AR polynomial of the integrated model: (1 − Σ φ_i B^i)(1 − B)^d.
    let mut poly = vec![1.0];
    poly.extend(phi.iter().map(|f| -f));
    for _ in 0..d {
        let mut next = vec![0.0; poly.len() + 1];
        for (i, c) in poly.iter().enumerate() {
            next[i] += c;
            next[i + 1] -= c;
        }
        poly = next;
    }
    let ar: Vec<f64> = poly[1..].iter().map(|c| -c).collect();
    let mut psi = vec![0.0; n];
    for j in 0..n {
        let mut value = if j == 0 {
            1.0
        } else {
            theta.get(j - 1).copied().unwrap_or(0.0)
        };
        for (i, a) in ar.iter().enumerate().take(j) {
            value += a * psi[j - i - 1];
        }
        psi[j] = value;
    }
    psi
}

pub(super) fn difference(x: &[f64]) -> Vec<f64> {
    x.windows(2).map(|w| w[1] - w[0]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// ARIMA(1,1,1) without constant: Δy_t = φ Δy_{t−1} + e_t + θ e_{t−1}.
    fn simulate_arima_111(n: usize, phi: f64, theta: f64, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let (mut level, mut dy, mut e_prev) = (100.0, 0.0, 0.0);
        (0..n)
            .map(|_| {
                let e = rng.normal();
                dy = phi * dy + e + theta * e_prev;
                e_prev = e;
                level += dy;
                level
            })
            .collect()
    }

    #[test]
    fn recovers_known_arima_111_coefficients() {
        let order = Order {
            p: 1,
            d: 1,
            q: 1,
            constant: false,
        };
        let params = ArimaParams::with_order(order);
        let (mut phi_sum, mut theta_sum) = (0.0, 0.0);
        let seeds = 20;
        for seed in 0..seeds {
            let y = simulate_arima_111(1000, 0.5, 0.3, seed);
            let fitted = params.fit(&Window::of_target(&y)).expect("fits");
            assert!(
                (fitted.phi[0] - 0.5).abs() < 0.2,
                "seed {seed}: phi {}",
                fitted.phi[0]
            );
            assert!(
                (fitted.theta[0] - 0.3).abs() < 0.2,
                "seed {seed}: theta {}",
                fitted.theta[0]
            );
            phi_sum += fitted.phi[0];
            theta_sum += fitted.theta[0];
        }
        // Averaged over seeds the estimator is unbiased to within sampling error.
        assert!(
            (phi_sum / seeds as f64 - 0.5).abs() < 0.03,
            "mean phi {}",
            phi_sum / seeds as f64
        );
        assert!(
            (theta_sum / seeds as f64 - 0.3).abs() < 0.03,
            "mean theta {}",
            theta_sum / seeds as f64
        );
    }

    #[test]
    fn automatic_search_finds_the_differencing_and_a_nearby_order() {
        let y = simulate_arima_111(1000, 0.5, 0.3, 99);
        let fitted = ArimaParams::default()
            .fit(&Window::of_target(&y))
            .expect("fits");
        assert_eq!(fitted.order.d, 1);
        assert!(fitted.order.p + fitted.order.q >= 1, "{:?}", fitted.order);
        assert!(fitted.models_tried >= 5);

        let mut rng = Rng::new(3);
        let mut x = 0.0;
        let stationary: Vec<f64> = (0..800)
            .map(|_| {
                x = 0.7 * x + rng.normal();
                50.0 + x
            })
            .collect();
        let fitted = ArimaParams::default()
            .fit(&Window::of_target(&stationary))
            .expect("fits");
        assert_eq!(fitted.order.d, 0);
        assert!(fitted.order.constant);
        assert!((fitted.mean - 50.0).abs() < 1.0);
    }

    #[test]
    fn random_walk_forecast_and_interval_match_the_closed_form() {
        let order = Order {
            p: 0,
            d: 1,
            q: 0,
            constant: false,
        };
        let y = simulate_arima_111(500, 0.0, 0.0, 4);
        let fitted = ArimaParams::with_order(order)
            .fit(&Window::of_target(&y))
            .expect("fits");
        let f = fitted.forecast(21);
        let last = y[y.len() - 1];
        assert!(f.mean.iter().all(|m| *m == last));
        let upper = f.upper.expect("interval");
        let expected = last + super::super::Z80 * (fitted.sigma2 * 21.0).sqrt();
        assert!((upper[20] - expected).abs() < 1e-9);
    }

    #[test]
    fn psi_weights_of_arima_110() {
        // (1 − 0.5B)(1 − B) = 1 − 1.5B + 0.5B²: ψ = 1, 1.5, 1.75, 1.875.
        let psi = psi_weights(&[0.5], &[], 1, 4);
        assert_eq!(psi, vec![1.0, 1.5, 1.75, 1.875]);
    }

    #[test]
    fn rejects_out_of_range_params() {
        let params = ArimaParams {
            max_d: 3,
            ..ArimaParams::default()
        };
        let y = simulate_arima_111(100, 0.0, 0.0, 1);
        assert!(params.fit(&Window::of_target(&y)).is_err());
    }
}
