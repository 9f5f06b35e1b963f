//! Choosing the ensemble's members and weights from inner forecasts.
//!
//! Candidates are equal-weight averages of every non-empty subset of the
//! members that fitted: averaging is the one combination whose weights need
//! no estimating (estimated weights are notoriously noisy; the "forecast
//! combination puzzle"), and choosing among subsets still lets a member
//! that hurts be dropped. The loss is the mean absolute error over every
//! inner origin and step, each error divided by its inner window's MASE
//! scale and by √h, so steps and origins weigh alike. The simple average of
//! all members is the baseline: another candidate is chosen only if its
//! loss is lower by at least `MARGIN`.

use super::super::validation::InnerForecast;

/// Relative loss improvement a subset needs over the simple average.
/// Fixed before any backtest (not tuned): with eight inner origins, gains
/// smaller than this are within noise.
pub const MARGIN: f64 = 0.01;

/// The chosen combination and how it compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Indices of the chosen members, ascending; equal weights.
    pub members: Vec<usize>,
    pub loss: f64,
    pub simple_average_loss: f64,
    pub candidates: usize,
}

/// `inner[m][j]` is member `m`'s forecast at inner origin `j` (every member
/// has every origin). `None` when there is no member.
pub fn choose(inner: &[Vec<InnerForecast>]) -> Option<Choice> {
    let n_members = inner.len();
    if n_members == 0 || n_members >= usize::BITS as usize {
        return None;
    }
    let all: u64 = (1 << n_members) - 1;
    let simple_average_loss = loss(inner, all);
    let mut best = (all, simple_average_loss);
    for mask in 1..all {
        let l = loss(inner, mask);
        // On a tie the larger subset wins: more averaging, less variance.
        let larger = mask.count_ones() > best.0.count_ones();
        if l < best.1 || (l == best.1 && larger) {
            best = (mask, l);
        }
    }
    let (mask, best_loss) = if best.1 < (1.0 - MARGIN) * simple_average_loss {
        best
    } else {
        (all, simple_average_loss)
    };
    Some(Choice {
        members: (0..n_members).filter(|m| mask & (1 << m) != 0).collect(),
        loss: best_loss,
        simple_average_loss,
        candidates: all as usize,
    })
}

/// The scaled validation loss of the equal-weight average of `mask`'s members.
fn loss(inner: &[Vec<InnerForecast>], mask: u64) -> f64 {
    let members: Vec<&Vec<InnerForecast>> = inner
        .iter()
        .enumerate()
        .filter(|(m, _)| mask & (1 << m) != 0)
        .map(|(_, f)| f)
        .collect();
    let weight = 1.0 / members.len() as f64;
    let (mut total, mut count) = (0.0, 0usize);
    for (j, origin) in inner[0].iter().enumerate() {
        for (i, actual) in origin.actual.iter().enumerate() {
            let combined: f64 = members.iter().map(|f| weight * f[j].forecast.mean[i]).sum();
            let h = (i + 1) as f64;
            total += (actual - combined).abs() / (origin.mae_scale * h.sqrt());
            count += 1;
        }
    }
    total / count.max(1) as f64
}

/// The combination's errors at every inner origin and step, each divided
/// by the half-width naive's 80 % interval would have had there
/// (`z·σ·√h`): the scores of the ensemble's conformal interval.
pub fn scores(inner: &[Vec<InnerForecast>], members: &[usize]) -> Vec<f64> {
    let weight = 1.0 / members.len().max(1) as f64;
    let mut out = Vec::new();
    for (j, origin) in inner[members[0]].iter().enumerate() {
        for (i, actual) in origin.actual.iter().enumerate() {
            let combined: f64 = members
                .iter()
                .map(|&m| weight * inner[m][j].forecast.mean[i])
                .sum();
            let error = (actual - combined).abs();
            let half_width = super::super::Z80 * origin.naive_sigma * ((i + 1) as f64).sqrt();
            out.push(if error == 0.0 {
                0.0
            } else {
                error / half_width
            });
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
                (0..3)
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
        assert_eq!(choice.candidates, 7);
    }

    #[test]
    fn the_simple_average_stays_unless_beaten_by_the_margin() {
        // Symmetric errors: the average of all is exact and nothing beats it.
        let choice = choose(&inner(&[9.0, 11.0], 10.0)).expect("members");
        assert_eq!(choice.members, vec![0, 1]);
        // Errors 1 and 1.01: the first member alone is 0.5 % better than the
        // average (error 1.005), less than MARGIN, so the average stays.
        let choice = choose(&inner(&[11.0, 11.01], 10.0)).expect("members");
        assert_eq!(choice.members, vec![0, 1], "{choice:?}");
        assert_eq!(choice.loss, choice.simple_average_loss);
        assert_eq!(choose(&[]), None);
    }
}
