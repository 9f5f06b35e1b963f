//! Rolling validation inside one training window: the only out-of-sample
//! evidence a model may use about itself without looking past its origin.
//!
//! The window's last `MAX_HORIZON` values serve as targets for inner
//! origins that lie before them. Each inner origin refits the model from
//! scratch on the trailing inner window that ends there, exactly as the
//! backtest does one level up, so what is learned from these forecasts
//! (the ensemble's weights, the conformal widening of intervals) comes from
//! values at or before the outer origin only.

use super::{Forecast, MAX_HORIZON, ModelKind, Window};

/// Inner origins per window. Eight origins × 21 steps give 168 scores for a
/// conformal quantile; each origin costs one refit of every model involved.
pub const INNER_ORIGINS: usize = 8;
/// One month apart, so the 21-step errors of neighbouring origins do not overlap.
pub const INNER_SPACING: usize = MAX_HORIZON;

/// Where to validate inside a window of `n` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerPlan {
    /// Inner origins as indices into the window, ascending; the last one's
    /// `MAX_HORIZON`-step target is the window's last value.
    pub origins: Vec<usize>,
    /// Length of the trailing inner window each origin is fitted on, so every
    /// inner fit sees as much history as the earliest one can.
    pub window: usize,
}

/// The inner origins of a window of `n` values whose inner windows hold at
/// least `min_window` values; `None` when even one origin does not fit.
pub fn plan(n: usize, min_window: usize) -> Option<InnerPlan> {
    let last = n.checked_sub(MAX_HORIZON + 1)?;
    let span = (INNER_ORIGINS - 1) * INNER_SPACING;
    let window = (last + 1).saturating_sub(span).max(min_window.max(1));
    if last + 1 < window {
        return None;
    }
    let count = ((last + 1 - window) / INNER_SPACING + 1).min(INNER_ORIGINS);
    let origins = (0..count)
        .map(|k| last - (count - 1 - k) * INNER_SPACING)
        .collect();
    Some(InnerPlan { origins, window })
}

impl InnerPlan {
    /// The inner window ending at `origin`: nothing after it is reachable.
    pub fn window_at<'a>(&self, outer: &Window<'a>, origin: usize) -> Window<'a> {
        let start = origin + 1 - self.window;
        Window {
            target: &outer.target[start..=origin],
            bars: if outer.bars.is_empty() {
                &[]
            } else {
                &outer.bars[start..=origin]
            },
            // Inner forecasts are scored on values, not dates; no member
            // forecasts by date.
            future: &[],
            sentiment: match outer.bars.get(origin) {
                Some(bar) => {
                    let known = outer.sentiment.partition_point(|d| d.date <= bar.date);
                    &outer.sentiment[..known]
                }
                None => &[],
            },
        }
    }
}

/// One inner origin's forecast of steps `1..=MAX_HORIZON` beside what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct InnerForecast {
    pub origin: usize,
    pub forecast: Forecast,
    /// The window's values at steps `1..=MAX_HORIZON` after the inner origin.
    pub actual: Vec<f64>,
    /// The inner window's one-step naive MAE and RMS change (PROTOCOL §4's
    /// MASE scale and §6's naive σ): yardsticks that make errors of
    /// different origins comparable.
    pub mae_scale: f64,
    pub naive_sigma: f64,
}

/// Forecasts of `kind` (uncalibrated) at every inner origin of `plan`;
/// `None` if the model fails at any of them, so a model is judged on all
/// origins or not at all.
pub fn inner_forecasts(
    kind: ModelKind,
    window: &Window<'_>,
    plan: &InnerPlan,
) -> Option<Vec<InnerForecast>> {
    plan.origins
        .iter()
        .map(|&origin| {
            let inner = plan.window_at(window, origin);
            let forecast = kind
                .fit_uncalibrated(&inner)
                .and_then(|f| f.forecast(MAX_HORIZON))
                .ok()?;
            let (mae_scale, naive_sigma) = yardsticks(inner.target);
            Some(InnerForecast {
                origin,
                forecast,
                actual: window.target[origin + 1..=origin + MAX_HORIZON].to_vec(),
                mae_scale,
                naive_sigma,
            })
        })
        .collect()
}

/// Mean absolute and root-mean-square one-step change of `y`.
pub fn yardsticks(y: &[f64]) -> (f64, f64) {
    let n = (y.len() - 1) as f64;
    let (abs, sq) = y.windows(2).fold((0.0, 0.0), |(a, s), p| {
        let d = p[1] - p[0];
        (a + d.abs(), s + d * d)
    });
    (abs / n, (sq / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_protocol_window_gets_eight_origins_a_month_apart() {
        let plan = plan(1000, 31).expect("fits");
        assert_eq!(plan.origins.len(), INNER_ORIGINS);
        assert_eq!(*plan.origins.last().expect("some"), 1000 - 1 - MAX_HORIZON);
        assert_eq!(plan.origins[1] - plan.origins[0], INNER_SPACING);
        // The earliest origin's window starts at the window's first value.
        assert_eq!(plan.origins[0] + 1, plan.window);
    }

    #[test]
    fn short_windows_get_fewer_origins_or_none() {
        let plan_60 = plan(60, 31).expect("one origin fits");
        assert_eq!(plan_60.origins, vec![60 - 1 - MAX_HORIZON]);
        assert_eq!(plan_60.window, 31);
        assert_eq!(plan(51, 31), None);
        assert!(plan(52, 31).is_some());
        assert_eq!(plan(10, 1), None);
    }

    #[test]
    fn every_target_is_inside_the_window_and_after_its_origin() {
        for n in [52, 60, 100, 250, 1000, 1500] {
            let plan = plan(n, 31).expect("fits");
            for &o in &plan.origins {
                assert!(o + 1 >= plan.window, "n {n}: inner window starts before 0");
                assert!(o + MAX_HORIZON < n, "n {n}: target past the window");
            }
        }
    }
}
