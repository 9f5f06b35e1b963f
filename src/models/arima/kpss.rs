//! The KPSS test of level stationarity, used to choose the order of
//! differencing `d` the way AutoARIMA (Hyndman–Khandakar) does.

/// 5 % critical value of the KPSS level statistic (Kwiatkowski et al. 1992, table 1).
pub const CRITICAL_5PCT: f64 = 0.463;

/// The KPSS level-stationarity statistic with the short Bartlett lag
/// `trunc(3·sqrt(n)/13)`; larger means less stationary. `None` for a
/// constant or too-short series.
pub fn statistic(x: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mean = x.iter().sum::<f64>() / nf;
    let e: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let mut partial = 0.0;
    let mut eta = 0.0;
    for v in &e {
        partial += v;
        eta += partial * partial;
    }
    eta /= nf * nf;
    let lags = (3.0 * nf.sqrt() / 13.0) as usize;
    let mut long_run = e.iter().map(|v| v * v).sum::<f64>() / nf;
    for lag in 1..=lags.min(n - 1) {
        let weight = 1.0 - lag as f64 / (lags as f64 + 1.0);
        let autocov: f64 = e[lag..].iter().zip(&e[..n - lag]).map(|(a, b)| a * b).sum();
        long_run += 2.0 * weight * autocov / nf;
    }
    (long_run > 0.0).then(|| eta / long_run)
}

/// The number of differences (at most `max_d`) after which KPSS no longer
/// rejects level stationarity at 5 %.
pub fn differences_needed(y: &[f64], max_d: usize) -> usize {
    let mut x = y.to_vec();
    let mut d = 0;
    while d < max_d {
        match statistic(&x) {
            Some(stat) if stat > CRITICAL_5PCT => {
                x = super::difference(&x);
                d += 1;
            }
            _ => break,
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn white_noise_is_stationary_and_a_random_walk_is_not() {
        let mut rng = Rng::new(5);
        let noise: Vec<f64> = (0..1000).map(|_| rng.normal()).collect();
        assert!(statistic(&noise).expect("defined") < CRITICAL_5PCT);
        let mut level = 0.0;
        let walk: Vec<f64> = noise
            .iter()
            .map(|e| {
                level += e;
                level
            })
            .collect();
        assert!(statistic(&walk).expect("defined") > CRITICAL_5PCT);
        assert_eq!(differences_needed(&noise, 2), 0);
        assert_eq!(differences_needed(&walk, 2), 1);
    }

    #[test]
    fn constant_series_has_no_statistic() {
        assert_eq!(statistic(&[3.0; 50]), None);
        assert_eq!(differences_needed(&[3.0; 50], 2), 0);
    }
}
