//! The MAP estimate of Prophet's model, in pure Rust.
//!
//! Prophet's Stan program (linear growth, additive seasonality) has the
//! negative log posterior, constants dropped and without a Jacobian term
//! (Stan's `optimizing`):
//!
//! ```text
//! f(θ, σ) = ‖y − Zθ‖² / 2σ² + N·ln σ + 2σ²            likelihood, σ ~ N⁺(0, 0.5)
//!         + k²/50 + m²/50 + Σ β²/(2·s²) + Σ |δ| / τ      priors
//! ```
//!
//! with `θ = (k, m, δ, β)` and `Z` the design matrix of `design`. Prophet
//! hands this to L-BFGS. Here the structure is used instead: for a fixed σ
//! the problem in θ is a lasso on a small Gram matrix (a quadratic plus an
//! L1 term on δ), solved exactly by the feature-sign active-set method
//! (Lee et al., 2007: a Cholesky solve per step, finite convergence), and
//! for a fixed θ the best σ has a closed form. Alternating the two never
//! increases `f` and stops at a point where both are optimal, which is a
//! stationary point of `f` with the L1 kinks handled exactly (an L-BFGS on
//! `|δ|` only approximates them).

use ndarray::{Array1, Array2, ArrayView1};

/// The priors of Prophet's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priors {
    /// Laplace scale of the trend changes (`changepoint_prior_scale`).
    pub tau: f64,
    /// Normal scale of the Fourier coefficients (`seasonality_prior_scale`).
    pub season_scale: f64,
}

/// Variance of the normal priors of `k` and `m` (scale 5).
const TREND_PRIOR_VAR: f64 = 25.0;
/// Variance of the half-normal prior of σ (scale 0.5).
const SIGMA_PRIOR_VAR: f64 = 0.25;
/// Alternations of θ and σ before giving up.
const MAX_OUTER: usize = 200;
/// Active-set steps per θ solve before giving up.
const MAX_STEPS: usize = 500;

/// A point of the parameter space: `theta` in design column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub theta: Array1<f64>,
    pub sigma: f64,
    /// Alternations used.
    pub iterations: usize,
}

/// The objective's data: the design, the scaled target and where δ sits.
#[derive(Debug)]
pub struct Problem<'a> {
    pub z: &'a Array2<f64>,
    pub y: ArrayView1<'a, f64>,
    pub n_delta: usize,
    pub priors: Priors,
}

impl Problem<'_> {
    fn p(&self) -> usize {
        self.z.ncols()
    }

    fn deltas(&self) -> std::ops::Range<usize> {
        2..2 + self.n_delta
    }

    /// Prior precision of each coordinate's normal prior (0 for δ).
    fn ridge(&self) -> Array1<f64> {
        Array1::from_shape_fn(self.p(), |j| match j {
            0 | 1 => 1.0 / TREND_PRIOR_VAR,
            j if self.deltas().contains(&j) => 0.0,
            _ => 1.0 / self.priors.season_scale.powi(2),
        })
    }

    fn residuals(&self, theta: &Array1<f64>) -> Array1<f64> {
        &self.y - &self.z.dot(theta)
    }

    /// `f(θ, σ)`, the negative log posterior that Stan's `optimizing` minimises.
    #[cfg(test)]
    pub fn objective(&self, theta: &Array1<f64>, sigma: f64) -> f64 {
        let rss = self.residuals(theta).pow2().sum();
        let n = self.y.len() as f64;
        let ridge = self.ridge();
        let prior: f64 = theta
            .iter()
            .zip(&ridge)
            .map(|(x, r)| 0.5 * r * x * x)
            .sum::<f64>()
            + self.deltas().map(|j| theta[j].abs()).sum::<f64>() / self.priors.tau;
        rss / (2.0 * sigma * sigma)
            + n * sigma.ln()
            + sigma * sigma / (2.0 * SIGMA_PRIOR_VAR)
            + prior
    }

    /// The gradient of `f` in θ and in σ, with `sign(δ)/τ` for the L1 term
    /// (its derivative wherever δ ≠ 0).
    #[cfg(test)]
    pub fn gradient(&self, theta: &Array1<f64>, sigma: f64) -> (Array1<f64>, f64) {
        let r = self.residuals(theta);
        let rss = r.pow2().sum();
        let mut g = -self.z.t().dot(&r) / (sigma * sigma) + &self.ridge() * theta;
        for j in self.deltas() {
            g[j] += theta[j].signum() * f64::from(theta[j] != 0.0) / self.priors.tau;
        }
        let n = self.y.len() as f64;
        let g_sigma = n / sigma - rss / sigma.powi(3) + sigma / SIGMA_PRIOR_VAR;
        (g, g_sigma)
    }

    /// The MAP estimate.
    pub fn solve(&self) -> Result<Estimate, String> {
        let gram = self.z.t().dot(self.z);
        let zy = self.z.t().dot(&self.y);
        let ridge = self.ridge();
        let n = self.y.len() as f64;
        let mut theta = Array1::zeros(self.p());
        // Prophet starts Stan at σ = 1; the optimum does not depend on it,
        // and starting from the size of one-step changes saves iterations.
        let steps: Vec<f64> = self
            .y
            .iter()
            .zip(self.y.iter().skip(1))
            .map(|(a, b)| b - a)
            .collect();
        let mut sigma =
            (steps.iter().map(|d| d * d).sum::<f64>() / steps.len().max(1) as f64).sqrt();
        if sigma.is_nan() || sigma <= 0.0 {
            sigma = 1.0;
        }
        // (σ, F(σ) − σ) of the previous alternation, for a secant step.
        let mut previous: Option<(f64, f64)> = None;
        for iteration in 1..=MAX_OUTER {
            // Multiplied through by σ², the θ problem is
            // ½θ'(G + σ²R)θ − (Z'y)'θ + (σ²/τ)·Σ|δ|.
            let s2 = sigma * sigma;
            let mut q = gram.clone();
            for j in 0..self.p() {
                q[[j, j]] += s2 * ridge[j];
            }
            theta = feature_sign(&q, &zy, s2 / self.priors.tau, self.deltas(), theta)?;
            let rss = self.residuals(&theta).pow2().sum();
            // ∂f/∂σ = 0 is σ⁴/v + Nσ² − RSS = 0 (v the prior's variance);
            // its positive root, in a form that keeps its precision when
            // RSS is small.
            let next = (2.0 * rss / (n + (n * n + 4.0 * rss / SIGMA_PRIOR_VAR).sqrt())).sqrt();
            if !(next.is_finite() && next > 1e-12) {
                return Err(format!(
                    "the noise scale collapsed to {next:e}: the window has no noise to estimate"
                ));
            }
            let residual = next - sigma;
            if residual.abs() <= 1e-12 * sigma {
                return Ok(Estimate {
                    theta,
                    sigma: next,
                    iterations: iteration,
                });
            }
            // The alternation converges linearly; a secant step on
            // F(σ) − σ = 0 makes it superlinear. Both share the fixed point.
            let secant = previous.and_then(|(s0, r0)| {
                let step = residual * (sigma - s0) / (residual - r0);
                let candidate = sigma - step;
                (candidate.is_finite() && candidate > 0.5 * next && candidate < 2.0 * next)
                    .then_some(candidate)
            });
            previous = Some((sigma, residual));
            sigma = secant.unwrap_or(next);
        }
        Err(format!(
            "the MAP estimate did not converge in {MAX_OUTER} iterations"
        ))
    }
}

/// Minimises `½θ'Qθ − c'θ + λ·Σ_{j∈l1} |θ_j|` by feature-sign search,
/// starting from `theta`. `Q` must be positive definite.
fn feature_sign(
    q: &Array2<f64>,
    c: &Array1<f64>,
    lambda: f64,
    l1: std::ops::Range<usize>,
    mut theta: Array1<f64>,
) -> Result<Array1<f64>, String> {
    let lasso = Lasso { q, c, lambda, l1 };
    // Stationarity is judged relative to the size of the linear term.
    let tol = 1e-10 * (1.0 + c.iter().fold(0.0_f64, |m, v| m.max(v.abs())));
    for _ in 0..MAX_STEPS {
        let Some((active, signs)) = lasso.next_face(&theta, tol) else {
            return Ok(theta);
        };
        let target = lasso.face_minimiser(&active, &signs)?;
        match lasso.line_search(&theta, &target, &active) {
            Some(x) => theta = x,
            // No step improves: the face's minimiser is the current point up
            // to rounding, which is as optimal as this arithmetic allows.
            None => return Ok(theta),
        }
    }
    Err(format!(
        "the trend and seasonality solve did not converge in {MAX_STEPS} steps"
    ))
}

/// The problem `feature_sign` solves: `½θ'Qθ − c'θ + λ·Σ_{j∈l1} |θ_j|`.
#[derive(Debug)]
struct Lasso<'a> {
    q: &'a Array2<f64>,
    c: &'a Array1<f64>,
    lambda: f64,
    l1: std::ops::Range<usize>,
}

impl Lasso<'_> {
    fn value(&self, x: &Array1<f64>) -> f64 {
        0.5 * x.dot(&self.q.dot(x)) - self.c.dot(x)
            + self.lambda * self.l1.clone().map(|j| x[j].abs()).sum::<f64>()
    }

    /// The sign the L1 term gives coordinate `j` at `x` (0 off the L1 set).
    fn sign(&self, j: usize, x: &Array1<f64>) -> f64 {
        if self.l1.contains(&j) {
            x[j].signum() * f64::from(x[j] != 0.0)
        } else {
            0.0
        }
    }

    /// The face to minimise on next: the active coordinates (the smooth
    /// ones and the nonzero δ) and their signs, plus, once the active ones
    /// are stationary, the zero coordinate that violates optimality most.
    /// `None` when `theta` is optimal.
    fn next_face(&self, theta: &Array1<f64>, tol: f64) -> Option<(Vec<usize>, Vec<f64>)> {
        let (lambda, l1) = (self.lambda, &self.l1);
        let grad = self.q.dot(theta) - self.c;
        let mut active: Vec<usize> = (0..self.c.len())
            .filter(|&j| !l1.contains(&j) || theta[j] != 0.0)
            .collect();
        let mut signs: Vec<f64> = active.iter().map(|&j| self.sign(j, theta)).collect();
        let active_ok = active
            .iter()
            .zip(&signs)
            .all(|(&j, s)| (grad[j] + lambda * s).abs() <= tol);
        let violator = l1
            .clone()
            .filter(|&j| theta[j] == 0.0 && grad[j].abs() > lambda + tol)
            .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()));
        if active_ok && violator.is_none() {
            return None;
        }
        if active_ok && let Some(j) = violator {
            // Lee et al.: activate the zero coordinate with the steepest
            // violation, with the sign that decreases the objective.
            active.push(j);
            signs.push(-grad[j].signum());
        }
        Some((active, signs))
    }

    /// The minimiser of the smooth objective on the active face, signs fixed.
    fn face_minimiser(&self, active: &[usize], signs: &[f64]) -> Result<Array1<f64>, String> {
        let q = self.q;
        let qa: Vec<f64> = active
            .iter()
            .flat_map(|&i| active.iter().map(move |&j| q[[i, j]]))
            .collect();
        let rhs: Vec<f64> = active
            .iter()
            .zip(signs)
            .map(|(&j, s)| self.c[j] - self.lambda * s)
            .collect();
        let solution = cholesky_solve(&qa, &rhs)
            .ok_or("the prior-weighted Gram matrix is not positive definite")?;
        let mut target = Array1::zeros(self.c.len());
        for (a, &j) in active.iter().enumerate() {
            target[j] = solution[a];
        }
        Ok(target)
    }

    /// The best point on the segment from `theta` to `target`, among its
    /// end and the points where an active δ crosses zero (set exactly to
    /// zero there); `None` when none improves on `theta`.
    fn line_search(
        &self,
        theta: &Array1<f64>,
        target: &Array1<f64>,
        active: &[usize],
    ) -> Option<Array1<f64>> {
        let l1 = &self.l1;
        let direction = target - theta;
        let mut steps = vec![1.0];
        for &j in active {
            if l1.contains(&j) && theta[j] != 0.0 && target[j].signum() != theta[j].signum() {
                steps.push(theta[j] / (theta[j] - target[j]));
            }
        }
        let current = self.value(theta);
        let mut best = (current, None);
        for &step in &steps {
            let mut x = theta + &(&direction * step);
            for &j in active {
                if l1.contains(&j)
                    && step < 1.0
                    && (theta[j] / (theta[j] - target[j]) - step).abs() < 1e-15
                {
                    x[j] = 0.0;
                }
            }
            let v = self.value(&x);
            if v < best.0 {
                best = (v, Some(x));
            }
        }
        best.1
    }
}

/// Solves `A x = b` for a symmetric positive definite `A` (row-major,
/// `n × n`) by Cholesky; `None` when `A` is not positive definite. Plain
/// slices: this is the inner loop of the fit.
fn cholesky_solve(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = l[i * n..i * n + j]
                .iter()
                .zip(&l[j * n..j * n + j])
                .map(|(x, y)| x * y)
                .sum();
            if i == j {
                let d = a[i * n + i] - dot;
                if d.is_nan() || d <= 0.0 {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - dot) / l[j * n + j];
            }
        }
    }
    let mut x = b.to_vec();
    for i in 0..n {
        let dot: f64 = l[i * n..i * n + i]
            .iter()
            .zip(&x[..i])
            .map(|(a, b)| a * b)
            .sum();
        x[i] = (x[i] - dot) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let dot: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (x[i] - dot) / l[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A random design with a trend, hinges and Fourier-like columns.
    fn problem_data(
        n: usize,
        n_delta: usize,
        n_beta: usize,
        seed: u64,
    ) -> (Array2<f64>, Array1<f64>) {
        let mut rng = Rng::new(seed);
        let cps: Vec<f64> = (1..=n_delta)
            .map(|j| 0.8 * j as f64 / n_delta as f64)
            .collect();
        let z = Array2::from_shape_fn((n, 2 + n_delta + n_beta), |(i, j)| {
            let t = i as f64 / (n - 1) as f64;
            match j {
                0 => t,
                1 => 1.0,
                j if j < 2 + n_delta => (t - cps[j - 2]).max(0.0),
                j => ((j - 1 - n_delta) as f64 * 2.0 * std::f64::consts::PI * t * 3.0).sin(),
            }
        });
        let y = Array1::from_shape_fn(n, |i| {
            let t = i as f64 / (n - 1) as f64;
            0.4 + 0.3 * t - 0.5 * (t - 0.5).max(0.0) + 0.02 * (t * 30.0).sin() + 0.01 * rng.normal()
        });
        (z, y)
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (z, y) = problem_data(200, 6, 4, 3);
        let problem = Problem {
            z: &z,
            y: y.view(),
            n_delta: 6,
            priors: Priors {
                tau: 0.05,
                season_scale: 10.0,
            },
        };
        let mut rng = Rng::new(9);
        // δ away from zero, where the objective is differentiable.
        let theta = Array1::from_shape_fn(z.ncols(), |_| 0.2 + 0.3 * rng.uniform());
        let sigma = 0.07;
        let (g, g_sigma) = problem.gradient(&theta, sigma);
        let h = 1e-6;
        for j in 0..theta.len() {
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[j] += h;
            down[j] -= h;
            let numeric =
                (problem.objective(&up, sigma) - problem.objective(&down, sigma)) / (2.0 * h);
            assert!(
                (numeric - g[j]).abs() <= 1e-5 * (1.0 + g[j].abs()),
                "θ{j}: {numeric} vs {}",
                g[j]
            );
        }
        let numeric = (problem.objective(&theta, sigma + h) - problem.objective(&theta, sigma - h))
            / (2.0 * h);
        assert!(
            (numeric - g_sigma).abs() <= 1e-5 * (1.0 + g_sigma.abs()),
            "{numeric} vs {g_sigma}"
        );
    }

    #[test]
    fn the_estimate_satisfies_the_optimality_conditions() {
        let (z, y) = problem_data(500, 12, 6, 5);
        // Prophet's prior, and one strong enough to switch changes off.
        for tau in [0.05, 0.0005] {
            let problem = Problem {
                z: &z,
                y: y.view(),
                n_delta: 12,
                priors: Priors {
                    tau,
                    season_scale: 10.0,
                },
            };
            let est = problem.solve().expect("converges");
            let (g, g_sigma) = problem.gradient(&est.theta, est.sigma);
            assert!(g_sigma.abs() < 1e-6 * y.len() as f64, "{g_sigma}");
            let scale = 1.0 / (est.sigma * est.sigma);
            for j in 0..g.len() {
                if problem.deltas().contains(&j) && est.theta[j] == 0.0 {
                    // A zero δ: the smooth gradient lies inside [−1/τ, 1/τ].
                    assert!(g[j].abs() <= 1.0 / tau + 1e-6 * scale, "δ{j}: {}", g[j]);
                } else {
                    assert!(g[j].abs() < 1e-6 * scale, "θ{j}: {}", g[j]);
                }
            }
            // Any perturbation is worse.
            let f = problem.objective(&est.theta, est.sigma);
            let mut rng = Rng::new(1);
            for _ in 0..50 {
                let nudged = est.theta.mapv(|x| x + 1e-4 * rng.normal());
                assert!(problem.objective(&nudged, est.sigma) >= f);
            }
            if tau < 0.01 {
                let zeros = problem.deltas().filter(|&j| est.theta[j] == 0.0).count();
                assert!(
                    zeros >= 6,
                    "a strong Laplace prior switches changes off: {zeros}"
                );
            }
        }
    }

    #[test]
    fn cholesky_solves_and_refuses_indefinite_matrices() {
        let x = cholesky_solve(&[4.0, 2.0, 2.0, 3.0], &[2.0, 1.0]).expect("pd");
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12);
        assert!(cholesky_solve(&[1.0, 2.0, 2.0, 1.0], &x).is_none());
    }
}
