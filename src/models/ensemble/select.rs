//! Choosing the ensemble's members and weights from inner forecasts.
//!
//! Candidates are equal-weight averages of every non-empty subset of the
//! members that fitted: averaging is the one combination whose weights need
//! no estimating (estimated weights are notoriously noisy; the "forecast
//! combination puzzle"), and choosing among subsets still lets a member
//! that hurts be dropped. A candidate's loss at an inner origin is its mean
//! absolute error over the steps, each error divided by the inner window's
//! MASE scale and by √h, so steps and origins weigh alike.
//!
//! The simple average of all members is the baseline, and a candidate
//! replaces it only if it is better at every inner origin: a sign test.
//! Errors at the steps of one origin are strongly correlated, so the
//! evidence is the number of origins, eight in a protocol window; picking
//! the lowest average loss among 31 candidates on that much evidence chose
//! a single member most of the time, by chance. A candidate no better than
//! the average wins all of `J` origins with probability 2^−J, so a window
//! with fewer than `MIN_ORIGINS_TO_DEPART` origins keeps the average.

use super::super::validation::InnerForecast;
use super::super::{MAX_HORIZON, Z80};

/// Origins needed before a subset may replace the simple average: the sign
/// test's level 2^−7 < 1 %. Fixed before any backtest, not tuned.
pub const MIN_ORIGINS_TO_DEPART: usize = 7;

/// The chosen combination and how it compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Indices of the chosen members, ascending; equal weights.
    pub members: Vec<usize>,
    /// Mean scaled validation loss of the choice and of the simple average.
    pub loss: f64,
    pub simple_average_loss: f64,
}

/// `inner[m][j]` is member `m`'s forecast at inner origin `j` (every member
/// has every origin). `None` when there is no member.
pub fn choose(inner: &[Vec<InnerForecast>]) -> Option<Choice> {
    let n_members = inner.len();
    if n_members == 0 || n_members >= u64::BITS as usize {
        return None;
    }
    let all: u64 = (1 << n_members) - 1;
    let baseline = losses(inner, all);
    let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len().max(1) as f64;
    let mut best = (all, mean(&baseline));
    let simple_average_loss = best.1;
    if baseline.len() >= MIN_ORIGINS_TO_DEPART {
        for mask in 1..all {
            let candidate = losses(inner, mask);
            let wins_everywhere = candidate.iter().zip(&baseline).all(|(c, b)| c < b);
            let loss = mean(&candidate);
            // Among winners the lowest loss; on a tie the larger subset.
            let better =
                loss < best.1 || (loss == best.1 && mask.count_ones() > best.0.count_ones());
            if wins_everywhere && (best.0 == all || better) {
                best = (mask, loss);
            }
        }
    }
    Some(Choice {
        members: (0..n_members).filter(|m| best.0 & (1 << m) != 0).collect(),
        loss: best.1,
        simple_average_loss,
    })
}

/// The equal-weight average of the members in `members` at origin `j`, step `i`.
fn combined(inner: &[Vec<InnerForecast>], members: &[usize], j: usize, i: usize) -> f64 {
    let weight = 1.0 / members.len() as f64;
    members
        .iter()
        .map(|&m| weight * inner[m][j].forecast.mean[i])
        .sum()
}

fn members_of(mask: u64, n: usize) -> Vec<usize> {
    (0..n).filter(|m| mask & (1 << m) != 0).collect()
}

/// The scaled validation loss of `mask`'s average at each inner origin.
fn losses(inner: &[Vec<InnerForecast>], mask: u64) -> Vec<f64> {
    let members = members_of(mask, inner.len());
    inner[0]
        .iter()
        .enumerate()
        .map(|(j, origin)| {
            let total: f64 = origin
                .actual
                .iter()
                .enumerate()
                .map(|(i, actual)| {
                    let error = (actual - combined(inner, &members, j, i)).abs();
                    error / (origin.mae_scale * ((i + 1) as f64).sqrt())
                })
                .sum();
            total / origin.actual.len().max(1) as f64
        })
        .collect()
}

/// The combination's errors at every inner origin, `[step][origin]`, each
/// divided by the half-width naive's 80 % interval would have had there
/// (`z·σ·√h`): the scores of the ensemble's conformal interval.
pub fn scores(inner: &[Vec<InnerForecast>], members: &[usize]) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::new(); MAX_HORIZON];
    let Some(&first) = members.first() else {
        return out;
    };
    for (j, origin) in inner[first].iter().enumerate() {
        for (i, actual) in origin.actual.iter().enumerate() {
            let error = actual - combined(inner, members, j, i);
            let half_width = Z80 * origin.naive_sigma * ((i + 1) as f64).sqrt();
            out[i].push(super::super::calibration::score(error, half_width));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Forecast, MAX_HORIZON};

    fn inner(forecasts: &[f64], actual: f64) -> Vec<Vec<InnerForecast>> {
        forecasts
            .iter()
            .map(|&f| {
                (0..MIN_ORIGINS_TO_DEPART)
                    .map(|origin| InnerForecast {
                        origin,
                        forecast: Forecast {
                            mean: vec![f; MAX_HORIZON],
                            lower: None,
                            upper: None,
                        },
                        actual: vec![actual; MAX_HORIZON],
                        mae_scale: 1.0,
                        naive_sigma: 1.0,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_member_that_hurts_is_dropped() {
        // Members forecast 10, 10 and 40 of an actual 10: the average of the
        // first two is exact, the simple average is 10 off.
        let choice = choose(&inner(&[10.0, 10.0, 40.0], 10.0)).expect("members");
        assert_eq!(choice.members, vec![0, 1]);
        assert_eq!(choice.loss, 0.0);
        assert!(choice.simple_average_loss > 0.0);
    }

    #[test]
    fn the_simple_average_stays_unless_beaten_at_every_origin() {
        // Symmetric errors: the average of all is exact and nothing beats it.
        let choice = choose(&inner(&[9.0, 11.0], 10.0)).expect("members");
        assert_eq!(choice.members, vec![0, 1]);
        // Member 0 is far better on average but worse at one origin.
        let mut split = inner(&[10.0, 14.0], 10.0);
        split[0][3].forecast.mean = vec![30.0; MAX_HORIZON];
        let choice = choose(&split).expect("members");
        assert_eq!(choice.members, vec![0, 1], "{choice:?}");
        assert_eq!(choice.loss, choice.simple_average_loss);
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn too_few_origins_keep_the_simple_average() {
        let few: Vec<Vec<InnerForecast>> = inner(&[10.0, 40.0], 10.0)
            .into_iter()
            .map(|mut m| {
                m.truncate(MIN_ORIGINS_TO_DEPART - 1);
                m
            })
            .collect();
        assert_eq!(choose(&few).expect("members").members, vec![0, 1]);
    }
}
