//! Prophet's 80 % intervals: the 10th and 90th percentiles of simulated
//! futures (prophet 1.5.0, `sample_model_vectorized`). Each path draws
//! trend changes at the forecast steps, as often and as large as the
//! history's (a change with probability `S · Δt` per step, Laplace-sized
//! with the mean absolute fitted δ, averaged over adjacent steps and
//! integrated twice), plus Gaussian observation noise.

use crate::rng::Rng;

/// What one simulation needs, on Prophet's scaled axes except `seasonal`.
#[derive(Debug)]
pub struct Simulation<'a> {
    /// Scaled time of each forecast step (all after the history: t > 1).
    pub t: &'a [f64],
    /// The MAP trend at each step, scaled.
    pub expected_trend: &'a [f64],
    /// The seasonal part at each step, in price units.
    pub seasonal: &'a [f64],
    pub n_changepoints: usize,
    pub mean_abs_delta: f64,
    pub sigma_obs: f64,
    pub y_scale: f64,
    pub samples: usize,
    pub seed: u64,
}

/// Prophet's interval width.
const INTERVAL_WIDTH: f64 = 0.8;

/// `(lower, upper)` bounds of the central interval at every step.
pub fn interval(sim: &Simulation<'_>) -> (Vec<f64>, Vec<f64>) {
    let steps = sim.t.len();
    // Prophet's `single_diff`: the mean spacing of the future's time points.
    let spacing = if steps > 1 {
        (sim.t[steps - 1] - sim.t[0]) / (steps - 1) as f64
    } else {
        0.0
    };
    let likelihood = sim.n_changepoints as f64 * spacing;
    let scale = sim.mean_abs_delta + 1e-8;
    let mut rng = Rng::new(sim.seed);
    let mut paths = vec![Vec::with_capacity(sim.samples); steps];
    let mut shifts = vec![0.0; steps];
    for _ in 0..sim.samples {
        for shift in shifts.iter_mut() {
            // A size is drawn only where a change happens (numpy draws a
            // full matrix): the same distribution, a fortieth of the draws.
            *shift = if rng.uniform() < likelihood {
                rng.laplace(scale)
            } else {
                0.0
            };
        }
        let (mut slope, mut level, mut previous) = (0.0, 0.0, 0.0);
        for (i, path) in paths.iter_mut().enumerate() {
            slope += (shifts[i] + previous) / 2.0;
            previous = shifts[i];
            level += slope;
            let trend = (sim.expected_trend[i] + level * spacing) * sim.y_scale;
            let noise = rng.normal() * sim.sigma_obs * sim.y_scale;
            path.push(trend + sim.seasonal[i] + noise);
        }
    }
    let lower_p = (1.0 - INTERVAL_WIDTH) / 2.0;
    let mut lower = Vec::with_capacity(steps);
    let mut upper = Vec::with_capacity(steps);
    for mut path in paths {
        lower.push(percentile(&mut path, lower_p));
        upper.push(percentile(&mut path, 1.0 - lower_p));
    }
    (lower, upper)
}

/// numpy's default (linear) percentile, `q` in [0, 1]; reorders `values`
/// (two selections instead of a sort).
fn percentile(values: &mut [f64], q: f64) -> f64 {
    let Some(last) = values.len().checked_sub(1) else {
        return f64::NAN;
    };
    let pos = q * last as f64;
    let below = pos.floor() as usize;
    let frac = pos - below as f64;
    let (_, &mut a, rest) = values.select_nth_unstable_by(below, f64::total_cmp);
    let b = rest.iter().copied().min_by(f64::total_cmp).unwrap_or(a);
    // numpy's `_lerp`: from the nearer end, which keeps it monotonic.
    if frac >= 0.5 {
        b - (b - a) * (1.0 - frac)
    } else {
        a + (b - a) * frac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let mut v = [10.0, 2.0, 4.0, 1.0, 3.0];
        // numpy.percentile([1, 2, 3, 4, 10], [10, 90, 100])
        assert!((percentile(&mut v, 0.1) - 1.4).abs() < 1e-12);
        assert!((percentile(&mut v, 0.9) - 7.6).abs() < 1e-12);
        assert_eq!(percentile(&mut v, 1.0), 10.0);
    }

    #[test]
    fn without_trend_changes_the_band_is_the_noise() {
        let t: Vec<f64> = (1..=21).map(|i| 1.0 + i as f64 * 1e-3).collect();
        let zeros = [0.0; 21];
        let sim = Simulation {
            t: &t,
            expected_trend: &[1.0; 21],
            seasonal: &zeros,
            n_changepoints: 25,
            mean_abs_delta: 0.0,
            sigma_obs: 0.01,
            y_scale: 100.0,
            samples: 20_000,
            seed: 1,
        };
        let (lo, hi) = interval(&sim);
        for (l, h) in lo.iter().zip(&hi) {
            // ±1.2816 σ around 100.
            assert!(
                (h - 100.0 - 1.2816).abs() < 0.05 && (100.0 - l - 1.2816).abs() < 0.05,
                "{l} {h}"
            );
        }
        assert_eq!(interval(&sim), (lo, hi), "the seed makes it reproducible");
    }
}
