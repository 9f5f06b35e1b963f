//! Conditional-sum-of-squares estimation of a stationary ARMA(p, q) with an
//! optional mean, by Levenberg–Marquardt with analytic derivatives.
//!
//! The residual recursion `e_t = z_t − Σ φ_i z_{t−i} − Σ θ_j e_{t−j}` (with
//! `z = x − μ` and residuals before the conditioning offset set to zero) is
//! differentiated alongside itself, so one pass over the data yields the
//! sum of squares, the gradient and the Gauss–Newton matrix. A handful of
//! passes converge; every accepted step keeps the AR part stationary and the
//! MA part invertible.

/// The ARMA part to estimate on the (already differenced) series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spec {
    pub p: usize,
    pub q: usize,
    pub mean: bool,
}

impl Spec {
    pub fn n_params(self) -> usize {
        self.p + self.q + usize::from(self.mean)
    }
}

#[derive(Debug, Clone)]
pub struct CssFit {
    pub phi: Vec<f64>,
    pub theta: Vec<f64>,
    pub mean: f64,
    pub ssr: f64,
    /// Number of residuals in the sum of squares.
    pub n_eff: usize,
    pub residuals: Vec<f64>,
}

/// On price data most fits converge in under ten iterations; the rest creep
/// along the ridge of near-cancelling AR and MA roots, where more iterations
/// change the SSR by less than 1e-4 and the over-parametrised model is not
/// chosen anyway.
const MAX_ITERATIONS: usize = 25;
/// Relative SSR improvement below which estimation stops: 1e-7 of the SSR is
/// about 5e-5 AICc units on 1000 points, far below what separates models.
const SSR_TOLERANCE: f64 = 1e-7;
const MAX_PARAMS: usize = 16;

/// Estimates `spec` on `x`, conditioning on the first `offset` values
/// (`offset ≥ spec.p`). `innovations` are proxies for the residuals (see
/// [`long_ar_residuals`]) that give Hannan–Rissanen starting values, which
/// cut the iterations several-fold. `None` when the data cannot identify
/// the model.
pub fn fit(x: &[f64], spec: Spec, offset: usize, innovations: Option<&[f64]>) -> Option<CssFit> {
    let k = spec.n_params();
    if offset < spec.p || x.len() <= offset + k + 2 || k > MAX_PARAMS {
        return None;
    }
    let sample_mean = x.iter().sum::<f64>() / x.len() as f64;
    let mut params = innovations
        .and_then(|e| hannan_rissanen(x, spec, sample_mean, e))
        .unwrap_or_else(|| vec![0.0; k]);
    if spec.mean {
        params[k - 1] = sample_mean;
    }
    let mut work = Workspace::new(x.len(), k);
    // Trials are evaluated with their derivatives, so an accepted trial's
    // pass is reused as the next iteration's (swap, no recomputation).
    let mut trial_work = Workspace::new(x.len(), k);
    let mut ssr = work.pass(x, spec, offset, &params, true);
    if !ssr.is_finite() {
        return None;
    }
    if k > 0 {
        let mut lambda = 1e-3;
        for _ in 0..MAX_ITERATIONS {
            let Some(step) = work.damped_step(k, lambda) else {
                lambda *= 10.0;
                if lambda > 1e12 {
                    break;
                }
                continue;
            };
            let step_norm = step.iter().map(|s| s * s).sum::<f64>().sqrt();
            let param_norm = params.iter().map(|p| p * p).sum::<f64>().sqrt();
            if step_norm <= 1e-9 * (1.0 + param_norm) {
                break;
            }
            let trial: Vec<f64> = params.iter().zip(&step).map(|(p, s)| p + s).collect();
            let (phi, theta) = (&trial[..spec.p], &trial[spec.p..spec.p + spec.q]);
            let admissible = is_stationary(phi) && is_invertible(theta);
            let trial_ssr = if admissible {
                trial_work.pass(x, spec, offset, &trial, true)
            } else {
                f64::INFINITY
            };
            if trial_ssr < ssr {
                let improvement = (ssr - trial_ssr) / ssr.max(f64::MIN_POSITIVE);
                params = trial;
                ssr = trial_ssr;
                std::mem::swap(&mut work, &mut trial_work);
                lambda = (lambda / 10.0).max(1e-12);
                if improvement < SSR_TOLERANCE {
                    break;
                }
            } else {
                lambda *= 10.0;
                if lambda > 1e12 {
                    break;
                }
            }
        }
    }
    Some(CssFit {
        phi: params[..spec.p].to_vec(),
        theta: params[spec.p..spec.p + spec.q].to_vec(),
        mean: if spec.mean { params[k - 1] } else { 0.0 },
        ssr,
        n_eff: x.len() - offset,
        residuals: work.residuals,
    })
}

/// The residuals of a fitted ARMA on `x` (parameters fixed), conditioning
/// on the first `offset` values: the state a fitted model needs to forecast
/// from new data without refitting.
pub fn residuals(
    x: &[f64],
    spec: Spec,
    offset: usize,
    phi: &[f64],
    theta: &[f64],
    mean: f64,
) -> Vec<f64> {
    let mut params: Vec<f64> = phi.iter().chain(theta).copied().collect();
    if spec.mean {
        params.push(mean);
    }
    let mut work = Workspace::new(x.len(), spec.n_params());
    work.pass(x, spec, offset, &params, false);
    work.residuals
}

/// Residuals of a long autoregression fitted by least squares: stand-ins for
/// the unobserved innovations (Hannan–Rissanen step one). Zero for the
/// first `order` values.
pub fn long_ar_residuals(x: &[f64], order: usize) -> Option<Vec<f64>> {
    let n = x.len();
    if n <= 3 * order + 2 {
        return None;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let z: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let a = least_squares(order, order..n, |t, i| z[t - i - 1], |t| z[t])?;
    let mut e = vec![0.0; n];
    for t in order..n {
        e[t] = z[t] - (0..order).map(|i| a[i] * z[t - i - 1]).sum::<f64>();
    }
    Some(e)
}

/// Hannan–Rissanen step two: regress the demeaned series on its own lags
/// and lagged innovation proxies. `None` if the result is not admissible.
fn hannan_rissanen(x: &[f64], spec: Spec, mean: f64, innovations: &[f64]) -> Option<Vec<f64>> {
    let Spec { p, q, .. } = spec;
    let start = innovations.iter().position(|e| *e != 0.0).unwrap_or(0) + q.max(p);
    if p + q == 0 || start >= x.len() {
        return None;
    }
    let z = |t: usize| x[t] - mean;
    let coefficients = least_squares(
        p + q,
        start..x.len(),
        |t, i| {
            if i < p {
                z(t - i - 1)
            } else {
                innovations[t - (i - p) - 1]
            }
        },
        z,
    )?;
    let (phi, theta) = coefficients.split_at(p);
    if !is_stationary(phi) || !is_invertible(theta) {
        return None;
    }
    let mut params = coefficients;
    if spec.mean {
        params.push(mean);
    }
    Some(params)
}

/// Ordinary least squares without intercept over rows `rows`, with
/// `feature(t, i)` the i-th regressor and `target(t)` the response of row t.
fn least_squares(
    k: usize,
    rows: std::ops::Range<usize>,
    feature: impl Fn(usize, usize) -> f64,
    target: impl Fn(usize) -> f64,
) -> Option<Vec<f64>> {
    let mut normal = vec![0.0; k * k];
    let mut rhs = vec![0.0; k];
    let mut row = vec![0.0; k];
    for t in rows {
        for (i, slot) in row.iter_mut().enumerate() {
            *slot = feature(t, i);
        }
        let y = target(t);
        for a in 0..k {
            rhs[a] += row[a] * y;
            for b in 0..=a {
                normal[a * k + b] += row[a] * row[b];
            }
        }
    }
    cholesky_solve(&mut normal, k, rhs)
}

/// Buffers reused across passes, so an estimation allocates once.
struct Workspace {
    residuals: Vec<f64>,
    /// Row-major derivatives of each residual with respect to each parameter.
    derivatives: Vec<f64>,
    normal: Vec<f64>,
    gradient: Vec<f64>,
}

impl Workspace {
    fn new(n: usize, k: usize) -> Self {
        Workspace {
            residuals: vec![0.0; n],
            derivatives: vec![0.0; n * k],
            normal: vec![0.0; k * k],
            gradient: vec![0.0; k],
        }
    }

    /// Computes the residuals and their sum of squares; with `jacobian`, also
    /// the Gauss–Newton matrix `JᵀJ` and gradient `Jᵀe`.
    fn pass(
        &mut self,
        x: &[f64],
        spec: Spec,
        offset: usize,
        params: &[f64],
        jacobian: bool,
    ) -> f64 {
        let Spec {
            p,
            q,
            mean: has_mean,
        } = spec;
        let k = spec.n_params();
        let phi = &params[..p];
        let theta = &params[p..p + q];
        let mu = if has_mean { params[k - 1] } else { 0.0 };
        let e = &mut self.residuals;
        // Only values before the offset are read without being written first.
        e[..offset].iter_mut().for_each(|v| *v = 0.0);
        if jacobian {
            self.normal.iter_mut().for_each(|v| *v = 0.0);
            self.gradient.iter_mut().for_each(|v| *v = 0.0);
        }
        let phi_sum: f64 = phi.iter().sum();
        let mut ssr = 0.0;
        for t in offset..x.len() {
            let mut et = x[t] - mu;
            for (i, f) in phi.iter().enumerate() {
                et -= f * (x[t - i - 1] - mu);
            }
            for (j, th) in theta.iter().enumerate() {
                if t > offset + j {
                    et -= th * e[t - j - 1];
                }
            }
            e[t] = et;
            ssr += et * et;
            if !jacobian {
                continue;
            }
            let (before, row_and_after) = self.derivatives.split_at_mut(t * k);
            let row = &mut row_and_after[..k];
            for (i, slot) in row[..p].iter_mut().enumerate() {
                *slot = -(x[t - i - 1] - mu);
            }
            for (j, slot) in row[p..p + q].iter_mut().enumerate() {
                *slot = if t > offset + j { -e[t - j - 1] } else { 0.0 };
            }
            if has_mean {
                row[k - 1] = -(1.0 - phi_sum);
            }
            for (j, th) in theta.iter().enumerate() {
                if t > offset + j {
                    let previous = &before[(t - j - 1) * k..(t - j) * k];
                    for (slot, d) in row.iter_mut().zip(previous) {
                        *slot -= th * d;
                    }
                }
            }
            for a in 0..k {
                self.gradient[a] += row[a] * et;
                for b in 0..=a {
                    self.normal[a * k + b] += row[a] * row[b];
                }
            }
        }
        ssr
    }

    /// Solves `(JᵀJ + λ·diag(JᵀJ)) δ = −Jᵀe` by Cholesky.
    fn damped_step(&self, k: usize, lambda: f64) -> Option<Vec<f64>> {
        let mut a = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..=i {
                a[i * k + j] = self.normal[i * k + j];
            }
            let diag = self.normal[i * k + i];
            a[i * k + i] = diag + lambda * diag.max(1e-12);
        }
        let rhs: Vec<f64> = self.gradient.iter().map(|g| -g).collect();
        cholesky_solve(&mut a, k, rhs)
    }
}

/// Solves `A x = b` for symmetric positive definite `A` (lower triangle used).
fn cholesky_solve(a: &mut [f64], k: usize, mut b: Vec<f64>) -> Option<Vec<f64>> {
    for j in 0..k {
        let mut d = a[j * k + j];
        for m in 0..j {
            d -= a[j * k + m] * a[j * k + m];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for m in 0..j {
                s -= a[i * k + m] * a[j * k + m];
            }
            a[i * k + j] = s / d;
        }
    }
    for i in 0..k {
        for m in 0..i {
            b[i] -= a[i * k + m] * b[m];
        }
        b[i] /= a[i * k + i];
    }
    for i in (0..k).rev() {
        for m in i + 1..k {
            b[i] -= a[m * k + i] * b[m];
        }
        b[i] /= a[i * k + i];
    }
    Some(b)
}

/// Whether `x_t = Σ φ_i x_{t−i} + …` is stationary: all roots of
/// `1 − Σ φ_i z^i` lie outside the unit circle (Schur–Cohn step-down).
pub fn is_stationary(phi: &[f64]) -> bool {
    roots_outside(phi, 1.0)
}

/// Whether `1 + Σ θ_j z^j` has all roots outside the unit circle.
pub fn is_invertible(theta: &[f64]) -> bool {
    let negated: Vec<f64> = theta.iter().map(|t| -t).collect();
    roots_outside(&negated, 1.0)
}

/// Whether all roots of `1 − Σ a_i z^i` have modulus above `radius`: the
/// step-down recursion turns the coefficients into partial autocorrelations,
/// which all lie strictly inside (−1, 1) exactly then.
pub fn roots_outside(coefficients: &[f64], radius: f64) -> bool {
    let mut a: Vec<f64> = coefficients
        .iter()
        .enumerate()
        .map(|(i, c)| c * radius.powi(i as i32 + 1))
        .collect();
    while let Some(&last) = a.last() {
        if !last.is_finite() || last.abs() >= 1.0 {
            return false;
        }
        let k = a.len();
        let denominator = 1.0 - last * last;
        let reduced: Vec<f64> = (0..k - 1)
            .map(|j| (a[j] + last * a[k - 2 - j]) / denominator)
            .collect();
        a = reduced;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn stationarity_matches_known_cases() {
        assert!(is_stationary(&[]));
        assert!(is_stationary(&[0.9]));
        assert!(!is_stationary(&[1.0]));
        assert!(!is_stationary(&[-1.2]));
        // AR(2) triangle: φ1 + φ2 < 1, φ2 − φ1 < 1, |φ2| < 1.
        assert!(is_stationary(&[0.5, 0.3]));
        assert!(!is_stationary(&[0.5, 0.6]));
        assert!(!is_stationary(&[0.2, -1.1]));
        assert!(is_invertible(&[0.5]));
        assert!(!is_invertible(&[-1.5]));
        // (1 − 0.5z) has its root at 2: outside 1.01, not outside 2.5.
        assert!(roots_outside(&[0.5], 1.01));
        assert!(!roots_outside(&[0.5], 2.5));
    }

    #[test]
    fn recovers_arma_1_1_with_mean() {
        let mut rng = Rng::new(42);
        let (phi, theta, mu) = (0.6, 0.3, 2.0);
        let mut x = vec![mu; 1];
        let mut e_prev = 0.0;
        for _ in 0..3000 {
            let e = rng.normal();
            let last = *x.last().unwrap_or(&mu);
            x.push(mu + phi * (last - mu) + e + theta * e_prev);
            e_prev = e;
        }
        let e = long_ar_residuals(&x, 10);
        let fit = fit(
            &x,
            Spec {
                p: 1,
                q: 1,
                mean: true,
            },
            1,
            e.as_deref(),
        )
        .expect("fits");
        assert!((fit.phi[0] - phi).abs() < 0.06, "phi {}", fit.phi[0]);
        assert!(
            (fit.theta[0] - theta).abs() < 0.06,
            "theta {}",
            fit.theta[0]
        );
        assert!((fit.mean - mu).abs() < 0.1, "mean {}", fit.mean);
        assert!((fit.ssr / fit.n_eff as f64 - 1.0).abs() < 0.1);
    }

    #[test]
    fn white_noise_with_no_parameters_is_its_own_residual() {
        let x = [1.0, -2.0, 0.5];
        let fit = fit(
            &x,
            Spec {
                p: 0,
                q: 0,
                mean: false,
            },
            0,
            None,
        )
        .expect("fits");
        assert_eq!(fit.ssr, 1.0 + 4.0 + 0.25);
    }
}
