//! Exact Gaussian likelihood of a stationary ARMA(p, q) with a mean, by the
//! Kalman filter, and its maximisation from conditional-sum-of-squares
//! estimates (what R's `arima` and statsforecast call "CSS-ML").
//!
//! The conditional sum of squares sets the unobserved values before the
//! sample to zero; the exact likelihood integrates over them instead, which
//! is what AutoARIMA's information criteria are computed from. The state is
//! Harvey's: `r = max(p, q + 1)`, `α_{t+1} = T α_t + R ε_{t+1}`,
//! `z_t = α_t[0]`, started at its stationary covariance. Once the predicted
//! covariance stops changing the filter runs with a constant gain, so a pass
//! costs about what a CSS pass does.

use super::css::{Spec, is_invertible, is_stationary};

/// What one pass of the filter yields, in units where σ² = 1: enough for the
/// likelihood with σ² concentrated out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Filtered {
    /// Σ v_t² / F_t over the one-step prediction errors v_t and their
    /// variances F_t.
    pub weighted_ssr: f64,
    /// Σ ln F_t.
    pub log_det: f64,
    pub n: usize,
}

impl Filtered {
    /// The maximum-likelihood innovation variance.
    pub fn sigma2(&self) -> f64 {
        self.weighted_ssr / self.n as f64
    }

    /// The exact Gaussian log-likelihood at the maximising σ².
    pub fn log_likelihood(&self) -> f64 {
        let n = self.n as f64;
        -0.5 * n * ((2.0 * std::f64::consts::PI * self.sigma2()).ln() + 1.0) - 0.5 * self.log_det
    }

    /// The quantity ML minimises, a sum of squares: `S · exp(Σ ln F / n)`.
    fn objective(&self) -> f64 {
        self.weighted_ssr * (self.log_det / self.n as f64).exp()
    }
}

/// An ARMA estimated by exact maximum likelihood.
#[derive(Debug, Clone)]
pub struct MlFit {
    pub phi: Vec<f64>,
    pub theta: Vec<f64>,
    pub mean: f64,
    pub filtered: Filtered,
}

/// Below this change in the predicted covariance the filter has reached its
/// steady state (entries are O(1) in σ² = 1 units), so the rest of the pass
/// keeps the gain fixed; the likelihood moves by far less than 1e-6.
const STEADY: f64 = 1e-12;
/// Levenberg–Marquardt stops below this relative improvement of the
/// objective: 1e-9 of it is about 1e-6 in −2 ln L on 1000 values.
const TOLERANCE: f64 = 1e-9;
/// Starting from CSS estimates, a few steps converge; the cap only bounds
/// the creep along a ridge of near-cancelling roots.
const MAX_ITERATIONS: usize = 30;

/// Runs the filter over `x`; with `standardised`, also writes
/// `v_t / √F_t`. `None` if the AR part is not stationary or the stationary
/// covariance cannot be solved for.
pub fn filter(
    x: &[f64],
    phi: &[f64],
    theta: &[f64],
    mean: f64,
    mut standardised: Option<&mut Vec<f64>>,
) -> Option<Filtered> {
    if !is_stationary(phi) || x.is_empty() {
        return None;
    }
    let (p, q) = (phi.len(), theta.len());
    let r = p.max(q + 1);
    let ar = |i: usize| if i < p { phi[i] } else { 0.0 };
    // R = (1, θ_1, …, θ_{r−1}).
    let rv: Vec<f64> = (0..r)
        .map(|i| {
            if i == 0 {
                1.0
            } else {
                theta.get(i - 1).copied().unwrap_or(0.0)
            }
        })
        .collect();
    let mut cov = stationary_covariance(phi, &rv)?;
    let mut state = vec![0.0; r];
    let mut gain = vec![0.0; r];
    let mut updated = vec![0.0; r * r];
    let mut tp = vec![0.0; r * r];
    let mut next = vec![0.0; r * r];
    let mut steady = false;
    let (mut weighted_ssr, mut log_det) = (0.0, 0.0);
    if let Some(out) = standardised.as_deref_mut() {
        out.clear();
    }
    for &value in x {
        let f = cov[0];
        if !(f > 0.0 && f.is_finite()) {
            return None;
        }
        let v = value - mean - state[0];
        weighted_ssr += v * v / f;
        log_det += f.ln();
        if let Some(out) = standardised.as_deref_mut() {
            out.push(v / f.sqrt());
        }
        for (g, c) in gain.iter_mut().zip(&cov[..r]) {
            *g = c / f;
        }
        // Filtered state, then its prediction: a'[i] = φ_{i+1} a[0] + a[i+1].
        for (s, g) in state.iter_mut().zip(&gain) {
            *s += g * v;
        }
        let a0 = state[0];
        for i in 0..r {
            state[i] = ar(i) * a0 + if i + 1 < r { state[i + 1] } else { 0.0 };
        }
        if steady {
            continue;
        }
        // P_filtered = P − P[:,0] P[0,:] / F (P symmetric).
        for i in 0..r {
            for j in 0..r {
                updated[i * r + j] = cov[i * r + j] - gain[i] * cov[j];
            }
        }
        // T P Tᵀ in O(r²): (T P)[i][j] = φ_{i+1} P[0][j] + P[i+1][j].
        for i in 0..r {
            for j in 0..r {
                let below = if i + 1 < r {
                    updated[(i + 1) * r + j]
                } else {
                    0.0
                };
                tp[i * r + j] = ar(i) * updated[j] + below;
            }
        }
        let mut change: f64 = 0.0;
        for i in 0..r {
            for j in 0..r {
                let right = if j + 1 < r { tp[i * r + j + 1] } else { 0.0 };
                let value = tp[i * r] * ar(j) + right + rv[i] * rv[j];
                change = change.max((value - cov[i * r + j]).abs());
                next[i * r + j] = value;
            }
        }
        std::mem::swap(&mut cov, &mut next);
        steady = change < STEADY;
    }
    (weighted_ssr.is_finite() && log_det.is_finite()).then_some(Filtered {
        weighted_ssr,
        log_det,
        n: x.len(),
    })
}

/// Solves `P = T P Tᵀ + R Rᵀ` for the state's stationary covariance, as a
/// dense linear system in the r² entries (r ≤ 9, so at most 81 unknowns).
fn stationary_covariance(phi: &[f64], rv: &[f64]) -> Option<Vec<f64>> {
    let r = rv.len();
    let m = r * r;
    let ar = |i: usize| phi.get(i).copied().unwrap_or(0.0);
    let mut a = vec![0.0; m * m];
    let mut b = vec![0.0; m];
    for i in 0..r {
        for j in 0..r {
            let row = i * r + j;
            b[row] = rv[i] * rv[j];
            a[row * m + row] += 1.0;
            // (T P Tᵀ)[i][j] = Σ_kl T[i][k] T[j][l] P[k][l], where row i of T
            // is φ_{i+1} at column 0 and 1 at column i + 1.
            let ti: [(usize, f64); 2] = [(0, ar(i)), (i + 1, 1.0)];
            let tj: [(usize, f64); 2] = [(0, ar(j)), (j + 1, 1.0)];
            for &(k, tik) in &ti {
                for &(l, tjl) in &tj {
                    if k < r && l < r && tik != 0.0 && tjl != 0.0 {
                        a[row * m + k * r + l] -= tik * tjl;
                    }
                }
            }
        }
    }
    solve(&mut a, m, b)
}

/// Gaussian elimination with partial pivoting.
fn solve(a: &mut [f64], m: usize, mut b: Vec<f64>) -> Option<Vec<f64>> {
    for col in 0..m {
        let pivot =
            (col..m).max_by(|&x, &y| a[x * m + col].abs().total_cmp(&a[y * m + col].abs()))?;
        let magnitude = a[pivot * m + col].abs();
        if magnitude.is_nan() || magnitude <= 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..m {
                a.swap(pivot * m + k, col * m + k);
            }
            b.swap(pivot, col);
        }
        let d = a[col * m + col];
        for row in col + 1..m {
            let factor = a[row * m + col] / d;
            if factor == 0.0 {
                continue;
            }
            for k in col..m {
                a[row * m + k] -= factor * a[col * m + k];
            }
            b[row] -= factor * b[col];
        }
    }
    for row in (0..m).rev() {
        let mut s = b[row];
        for k in row + 1..m {
            s -= a[row * m + k] * b[k];
        }
        b[row] = s / a[row * m + row];
    }
    b.iter().all(|v| v.is_finite()).then_some(b)
}

/// Maximises the exact likelihood of `spec` on `x` from a starting point
/// (normally the CSS estimates), by Levenberg–Marquardt on the standardised
/// errors scaled by `exp(Σ ln F / 2n)`, whose sum of squares is the
/// concentrated objective. The Jacobian is by forward differences: k ≤ 17
/// extra passes a step, and a few steps from CSS values. Every accepted step
/// stays stationary and invertible. `None` if the start is inadmissible.
pub fn maximise(x: &[f64], spec: Spec, phi: &[f64], theta: &[f64], mean: f64) -> Option<MlFit> {
    let k = spec.n_params();
    let mut params: Vec<f64> = phi.iter().chain(theta).copied().collect();
    if spec.mean {
        params.push(mean);
    }
    let n = x.len();
    let sample_mean = x.iter().sum::<f64>() / n as f64;
    let spread = (x.iter().map(|v| (v - sample_mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let unpack = |params: &[f64]| {
        let mu = if spec.mean { params[k - 1] } else { mean };
        (
            params[..spec.p].to_vec(),
            params[spec.p..spec.p + spec.q].to_vec(),
            mu,
        )
    };
    let evaluate = |params: &[f64], out: &mut Vec<f64>| -> Option<Filtered> {
        let (phi, theta, mu) = unpack(params);
        if !is_invertible(&theta) {
            return None;
        }
        let filtered = filter(x, &phi, &theta, mu, Some(out))?;
        let scale = (filtered.log_det / (2.0 * n as f64)).exp();
        out.iter_mut().for_each(|w| *w *= scale);
        Some(filtered)
    };
    let mut residuals = Vec::with_capacity(n);
    let mut current = evaluate(&params, &mut residuals)?;
    let mut objective = current.objective();
    let mut jacobian = vec![0.0; n * k];
    let mut shifted = Vec::with_capacity(n);
    let mut lambda = 1e-3;
    let mut need_jacobian = true;
    let (mut normal, mut gradient) = (vec![0.0; k * k], vec![0.0; k]);
    for _ in 0..MAX_ITERATIONS {
        if k == 0 {
            break;
        }
        if need_jacobian {
            for j in 0..k {
                let scale = if spec.mean && j == k - 1 {
                    spread.max(1e-12)
                } else {
                    1.0
                };
                // Step towards zero first: it keeps a coefficient near the
                // boundary admissible.
                let mut h = 1e-7 * (params[j].abs() + scale);
                if params[j] > 0.0 {
                    h = -h;
                }
                let mut trial = params.clone();
                trial[j] += h;
                if evaluate(&trial, &mut shifted).is_none() {
                    h = -h;
                    trial[j] = params[j] + h;
                    evaluate(&trial, &mut shifted)?;
                }
                for t in 0..n {
                    jacobian[t * k + j] = (shifted[t] - residuals[t]) / h;
                }
            }
            normal.iter_mut().for_each(|v| *v = 0.0);
            gradient.iter_mut().for_each(|v| *v = 0.0);
            for t in 0..n {
                let row = &jacobian[t * k..(t + 1) * k];
                for a in 0..k {
                    gradient[a] += row[a] * residuals[t];
                    for b in 0..=a {
                        normal[a * k + b] += row[a] * row[b];
                    }
                }
            }
            need_jacobian = false;
        }
        let Some(step) = damped_step(&normal, &gradient, k, lambda) else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
            continue;
        };
        let trial: Vec<f64> = params.iter().zip(&step).map(|(p, s)| p + s).collect();
        match evaluate(&trial, &mut shifted) {
            Some(filtered) if filtered.objective() < objective => {
                let improvement = (objective - filtered.objective()) / objective;
                params = trial;
                objective = filtered.objective();
                current = filtered;
                std::mem::swap(&mut residuals, &mut shifted);
                need_jacobian = true;
                lambda = (lambda / 10.0).max(1e-12);
                if improvement < TOLERANCE {
                    break;
                }
            }
            _ => {
                lambda *= 10.0;
                if lambda > 1e12 {
                    break;
                }
            }
        }
    }
    let (phi, theta, mean) = unpack(&params);
    Some(MlFit {
        phi,
        theta,
        mean,
        filtered: current,
    })
}

/// Solves `(JᵀJ + λ·diag(JᵀJ)) δ = −Jᵀw` (lower triangle of `normal`).
fn damped_step(normal: &[f64], gradient: &[f64], k: usize, lambda: f64) -> Option<Vec<f64>> {
    let mut a = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            a[i * k + j] = normal[i * k + j];
            a[j * k + i] = normal[i * k + j];
        }
        let diag = normal[i * k + i];
        a[i * k + i] = diag + lambda * diag.max(1e-12);
    }
    let rhs: Vec<f64> = gradient.iter().map(|g| -g).collect();
    solve(&mut a, k, rhs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn ar1_matches_the_closed_form() {
        // F_1 = 1/(1 − φ²) and v_1 = z_1, then F_t = 1 and v_t = z_t − φ z_{t−1}.
        let (phi, mu) = (0.6, 1.5);
        let x = [2.0, 0.5, 1.0, 3.0, 1.2];
        let got = filter(&x, &[phi], &[], mu, None).expect("stationary");
        let z: Vec<f64> = x.iter().map(|v| v - mu).collect();
        let mut ssr = (1.0 - phi * phi) * z[0] * z[0];
        for t in 1..z.len() {
            ssr += (z[t] - phi * z[t - 1]).powi(2);
        }
        assert!((got.weighted_ssr - ssr).abs() < 1e-12, "{got:?} vs {ssr}");
        assert!((got.log_det + (1.0 - phi * phi).ln()).abs() < 1e-12);
    }

    #[test]
    fn ma1_of_two_values_matches_the_hand_computation() {
        // Γ = [[1 + θ², θ], [θ, 1 + θ²]]: ln det Γ and zᵀ Γ⁻¹ z by hand.
        let theta = -0.4;
        let z = [0.7, -1.3];
        let got = filter(&z, &[], &[theta], 0.0, None).expect("defined");
        let g0 = 1.0 + theta * theta;
        let det = g0 * g0 - theta * theta;
        let quad = (g0 * (z[0] * z[0] + z[1] * z[1]) - 2.0 * theta * z[0] * z[1]) / det;
        assert!((got.log_det - det.ln()).abs() < 1e-12);
        assert!((got.weighted_ssr - quad).abs() < 1e-12);
    }

    /// ln det Γ and zᵀΓ⁻¹z of a dense covariance, by Cholesky.
    fn dense(gamma: &[f64], n: usize, z: &[f64]) -> (f64, f64) {
        let mut l = vec![0.0; n * n];
        for j in 0..n {
            let mut d = gamma[j * n + j];
            for m in 0..j {
                d -= l[j * n + m] * l[j * n + m];
            }
            l[j * n + j] = d.sqrt();
            for i in j + 1..n {
                let mut s = gamma[i * n + j];
                for m in 0..j {
                    s -= l[i * n + m] * l[j * n + m];
                }
                l[i * n + j] = s / l[j * n + j];
            }
        }
        let mut y = z.to_vec();
        for i in 0..n {
            for m in 0..i {
                y[i] -= l[i * n + m] * y[m];
            }
            y[i] /= l[i * n + i];
        }
        let log_det = (0..n).map(|i| 2.0 * l[i * n + i].ln()).sum();
        (log_det, y.iter().map(|v| v * v).sum())
    }

    #[test]
    fn arma_2_1_matches_the_dense_gaussian_density() {
        // Autocovariances from ψ-weights (truncated where they are < 1e-17).
        let (phi, theta) = ([0.5, -0.3], [0.4]);
        let mut psi = vec![1.0, 0.0];
        psi[1] = phi[0] + theta[0];
        for j in 2..400 {
            let next = phi[0] * psi[j - 1] + phi[1] * psi[j - 2];
            psi.push(next);
        }
        let gamma_at = |h: usize| -> f64 { (0..psi.len() - h).map(|j| psi[j] * psi[j + h]).sum() };
        let n = 7;
        let mut gamma = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                gamma[i * n + j] = gamma_at(i.abs_diff(j));
            }
        }
        let z = [0.3, -1.1, 0.8, 2.0, -0.4, 0.1, 1.7];
        let (log_det, quad) = dense(&gamma, n, &z);
        let got = filter(&z, &phi, &theta, 0.0, None).expect("stationary");
        assert!(
            (got.log_det - log_det).abs() < 1e-10,
            "{} vs {log_det}",
            got.log_det
        );
        assert!(
            (got.weighted_ssr - quad).abs() < 1e-10,
            "{} vs {quad}",
            got.weighted_ssr
        );
    }

    #[test]
    fn refuses_a_non_stationary_ar_part() {
        assert!(filter(&[1.0, 2.0], &[1.0], &[], 0.0, None).is_none());
    }

    #[test]
    fn maximum_likelihood_recovers_a_simulated_arma_1_1() {
        let (phi, theta, mu) = (0.7, -0.4, 3.0);
        let spec = Spec {
            p: 1,
            q: 1,
            mean: true,
        };
        let (mut phi_sum, mut theta_sum) = (0.0, 0.0);
        let seeds = 10;
        for seed in 0..seeds {
            let mut rng = Rng::new(100 + seed);
            let (mut z, mut e_prev) = (0.0, 0.0);
            let x: Vec<f64> = (0..1500)
                .map(|_| {
                    let e = rng.normal();
                    z = phi * z + e + theta * e_prev;
                    e_prev = e;
                    mu + z
                })
                .collect();
            // A deliberately poor start: ML must do the work.
            let fit = maximise(&x, spec, &[0.2], &[0.1], 2.5).expect("fits");
            assert!(
                (fit.phi[0] - phi).abs() < 0.12,
                "seed {seed}: phi {}",
                fit.phi[0]
            );
            assert!(
                (fit.theta[0] - theta).abs() < 0.12,
                "seed {seed}: theta {}",
                fit.theta[0]
            );
            assert!(
                (fit.mean - mu).abs() < 0.15,
                "seed {seed}: mean {}",
                fit.mean
            );
            assert!((fit.filtered.sigma2() - 1.0).abs() < 0.1);
            // A maximum: no nearby point is more likely.
            let ll = fit.filtered.log_likelihood();
            for (dp, dt) in [(0.01, 0.0), (-0.01, 0.0), (0.0, 0.01), (0.0, -0.01)] {
                let other = filter(&x, &[fit.phi[0] + dp], &[fit.theta[0] + dt], fit.mean, None)
                    .expect("stationary");
                assert!(other.log_likelihood() <= ll + 1e-9);
            }
            phi_sum += fit.phi[0];
            theta_sum += fit.theta[0];
        }
        assert!((phi_sum / seeds as f64 - phi).abs() < 0.04);
        assert!((theta_sum / seeds as f64 - theta).abs() < 0.04);
    }
}
