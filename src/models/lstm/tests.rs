use super::*;
use crate::models::FittedModel;
use crate::series::Bar;

/// Prices whose daily log return follows a nonlinear autoregression
/// (`r_t = 0.008·tanh(150·r_{t−1}) − 0.5·r_{t−2}`) plus noise, or a pure random
/// walk when `signal` is 0; bars carry highs, lows and volume.
fn synthetic(n: usize, signal: f64, seed: u64) -> (Vec<f64>, Vec<Bar>) {
    let mut rng = Rng::new(seed);
    let mut level = 100.0;
    let (mut r1, mut r2) = (0.0_f64, 0.0_f64);
    let start = chrono::NaiveDate::from_ymd_opt(2010, 1, 4).expect("valid date");
    let mut y = Vec::with_capacity(n);
    let mut bars = Vec::with_capacity(n);
    for t in 0..n {
        let r = signal * (0.008 * (150.0 * r1).tanh() - 0.5 * r2) + 0.01 * rng.normal();
        (r2, r1) = (r1, r);
        level *= r.exp();
        y.push(level);
        bars.push(Bar {
            date: start + chrono::Days::new(t as u64),
            open: Some(level),
            high: Some(level * (1.0 + 0.005 * rng.uniform())),
            low: Some(level * (1.0 - 0.005 * rng.uniform())),
            close: level,
            adj_close: Some(level),
            volume: Some(1e6 * (1.0 + rng.uniform())),
        });
    }
    (y, bars)
}

/// One fit on the first `window` rows, then one-step forecasts from every
/// later row by re-anchoring (no refit): the mean absolute error of the
/// model and of naive over those rows, and the interval's coverage.
fn out_of_sample(y: &[f64], bars: &[Bar], window: usize) -> (f64, f64, f64) {
    let fitted = ModelKind::Lstm
        .fit(&Window::new(&y[..window], &bars[..window]))
        .expect("fits");
    let (mut model, mut naive, mut covered) = (0.0, 0.0, 0.0);
    let origins = window..y.len() - 1;
    for o in origins.clone() {
        let anchored = fitted
            .anchored(&Window::new(
                &y[o + 1 - window..=o],
                &bars[o + 1 - window..=o],
            ))
            .expect("anchors");
        let f = anchored.forecast(1).expect("forecasts");
        let actual = y[o + 1];
        model += (f.mean[0] - actual).abs();
        naive += (y[o] - actual).abs();
        let (lo, hi) = (f.lower.expect("band")[0], f.upper.expect("band")[0]);
        covered += f64::from(u8::from(lo <= actual && actual <= hi));
    }
    let n = origins.len() as f64;
    (model / n, naive / n, covered / n)
}

#[test]
fn learns_a_nonlinear_signal_and_finds_none_in_a_random_walk() {
    let (y, bars) = synthetic(1400, 1.0, 3);
    let (model, naive, _) = out_of_sample(&y, &bars, 1000);
    assert!(
        model < 0.95 * naive,
        "signal: lstm {model} vs naive {naive}"
    );
    let (y, bars) = synthetic(1400, 0.0, 4);
    let (model, naive, covered) = out_of_sample(&y, &bars, 1000);
    assert!(
        model > 0.97 * naive,
        "random walk: lstm {model} vs naive {naive}"
    );
    assert!((0.7..=0.9).contains(&covered), "coverage {covered}");
}

#[test]
fn fits_are_deterministic_and_round_trip() {
    let (y, bars) = synthetic(450, 1.0, 8);
    let window = Window::new(&y, &bars);
    let a = Lstm::default().fit(&window).expect("fits");
    let b = Lstm::default().fit(&window).expect("fits");
    assert_eq!(a, b);
    assert!(!a.history.is_empty());
    assert!(a.best_epoch <= a.history.len());
    let model = FittedModel::Lstm(a);
    let again = FittedModel::from_json(&model.to_json()).expect("loads");
    assert_eq!(model, again);
    // Serving recomputes the stored set from the same window: same input rows.
    let anchored = again.anchored(&window).expect("anchors");
    assert_eq!(anchored, model);
    // A damaged artifact is refused.
    let FittedModel::Lstm(mut broken) = model else {
        unreachable!()
    };
    broken.recent.pop();
    let text = FittedModel::Lstm(broken).to_json();
    assert!(FittedModel::from_json(&text).is_err());
}

#[test]
fn short_and_flat_windows_are_clear_errors() {
    let (y, bars) = synthetic(300, 1.0, 2);
    let err = ModelKind::Lstm
        .fit(&Window::new(&y, &bars))
        .expect_err("short");
    assert!(matches!(err, ModelError::WindowTooShort { .. }), "{err}");
    let flat = vec![50.0; 500];
    let flat_bars: Vec<Bar> = bars
        .iter()
        .chain(bars.iter())
        .take(500)
        .enumerate()
        .map(|(i, b)| Bar::close_only(b.date + chrono::Days::new(i as u64), 50.0))
        .collect();
    let err = Lstm::default()
        .fit(&Window::new(&flat, &flat_bars))
        .expect_err("flat");
    assert!(err.to_string().contains("no feature varies"), "{err}");
}

#[test]
fn news_with_gaps_and_days_outside_the_prices_is_used_where_it_applies() {
    let (y, bars) = synthetic(500, 1.0, 6);
    // News on scattered days from before the first bar to after the last,
    // with long gaps: only days before each row's day count.
    let first = bars[0].date;
    let sentiment: Vec<crate::series::DailySentiment> = (0..60u64)
        .map(|k| crate::series::DailySentiment {
            date: first - chrono::Days::new(30) + chrono::Days::new(k * 11),
            score: if k % 3 == 0 { 0.4 } else { -0.2 },
            articles: 1 + (k as usize % 4),
        })
        .collect();
    let window = Window {
        sentiment: &sentiment,
        ..Window::new(&y, &bars)
    };
    let fitted = ModelKind::Lstm.fit(&window).expect("fits");
    let FittedModel::Lstm(lstm) = &fitted else {
        unreachable!()
    };
    assert!(
        lstm.features
            .features
            .contains(&crate::features::Feature::Sentiment)
    );
    let f = fitted.forecast(MAX_HORIZON).expect("finite forecasts");
    assert_eq!(f.mean.len(), MAX_HORIZON);
    // Serving without the news it was trained on is an error, not zeros.
    let err = fitted
        .anchored(&Window::new(&y, &bars))
        .expect_err("no news");
    assert!(err.to_string().contains("sentiment"), "{err}");
}
