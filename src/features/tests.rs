use chrono::NaiveDate;
use proptest::prelude::*;

use super::*;

/// A 70-row fixture whose every column is known: a trending sine with
/// highs, lows and a weekly volume pattern. Expected values come from an
/// independent plain-Python implementation of the definitions in the
/// module docs (`/tmp`-free: the numbers are pasted below).
fn fixture() -> (Vec<f64>, Vec<Bar>) {
    let start = NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date");
    let p: Vec<f64> = (0..70)
        .map(|t| 100.0 + 10.0 * (t as f64 / 5.0).sin() + 0.3 * t as f64)
        .collect();
    let bars = p
        .iter()
        .enumerate()
        .map(|(t, &x)| Bar {
            date: start + chrono::Days::new(t as u64),
            open: Some(x),
            high: Some(x + 1.0 + 0.5 * (t as f64).cos()),
            low: Some(x - 1.0 - 0.3 * (t as f64).sin().abs()),
            close: x,
            adj_close: Some(x),
            volume: Some(1000.0 + 100.0 * (t % 7) as f64),
        })
        .collect();
    (p, bars)
}

#[test]
fn every_indicator_matches_its_hand_computed_value() {
    let (p, bars) = fixture();
    let inputs = Inputs {
        target: &p,
        bars: &bars,
        sentiment: &[],
    };
    let expected = [
        (Feature::Return1, 0.017834262187820315),
        (Feature::Return5, 0.0937267543210084),
        (Feature::Return21, 0.03833616543786679),
        (Feature::Volatility21, 0.013616357115118612),
        (Feature::SmaGap20, 0.09829650583288867),
        (Feature::SmaGap50, 0.11478858759505176),
        (Feature::EmaGap20, 0.0797227794266716),
        (Feature::Rsi14, 76.81583368742837),
        (Feature::Macd, 0.017172647502874974),
        (Feature::MacdSignal, 0.00523117871795082),
        (Feature::BollingerB20, 1.0690658674197062),
        (Feature::Atr14, 0.021956959476753198),
        (Feature::VolumeRatio20, -0.08381448775639284),
    ];
    let set = FeatureSet {
        version: VERSION,
        features: expected.iter().map(|(f, _)| *f).collect(),
    };
    let matrix = set.compute(&inputs).expect("computes");
    assert_eq!(matrix.rows(), 70 - WARMUP);
    for ((feature, want), got) in expected.iter().zip(matrix.at(65)) {
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{feature}: {got} vs {want}"
        );
    }
}

#[test]
fn the_building_blocks_match_small_hand_computations() {
    let x = [1.0, 2.0, 3.0, 4.0];
    let s = sma(&x, 2);
    assert!(s[0].is_nan());
    assert_eq!(&s[1..], &[1.5, 2.5, 3.5]);
    // α = 2 / (3 + 1) = 0.5, seeded with the first value.
    assert_eq!(ema(&[1.0, 2.0, 3.0], 3), vec![1.0, 1.5, 2.25]);
    // Changes 1, −1, 2: the first smoothed gain and loss are 0.5 each (RSI
    // 50), then gain (0.5 + 2) / 2 = 1.25 and loss 0.25: RS 5, RSI 83.3.
    let r = rsi(&[1.0, 2.0, 1.0, 3.0], 2);
    assert!(r[1].is_nan());
    assert!((r[2] - 50.0).abs() < 1e-12);
    assert!((r[3] - (100.0 - 100.0 / 6.0)).abs() < 1e-12);
    // Nothing fell: RSI 100.
    assert_eq!(rsi(&[1.0, 2.0, 3.0, 4.0], 2)[3], 100.0);
    // A flat window sits at the middle of its bands.
    assert_eq!(bollinger_b(&[5.0; 4], 3, 2.0)[3], 0.5);
    // True range takes the gap from the previous close: high 12, low 11,
    // previous close 9 → 3.
    let a = atr(
        &[10.0, 12.0, 12.0],
        &[9.0, 11.0, 11.0],
        &[9.0, 11.5, 11.5],
        1,
    );
    assert_eq!(a[1], 3.0);
}

#[test]
fn a_feature_without_its_input_is_left_out_by_name() {
    let (p, bars) = fixture();
    let close_only: Vec<Bar> = bars
        .iter()
        .map(|b| Bar::close_only(b.date, b.close))
        .collect();
    let set = FeatureSet::available(
        &Inputs {
            target: &p,
            bars: &close_only,
            sentiment: &[],
        },
        &Feature::ALL,
    );
    assert!(set.features.iter().all(|f| f.is_price_only()), "{set:?}");
    assert_eq!(
        set.len(),
        Feature::ALL.iter().filter(|f| f.is_price_only()).count()
    );
    let full = FeatureSet::available(
        &Inputs {
            target: &p,
            bars: &bars,
            sentiment: &[],
        },
        &Feature::ALL,
    );
    assert!(full.features.contains(&Feature::Atr14));
    assert!(full.features.contains(&Feature::VolumeRatio20));
    assert!(!full.features.contains(&Feature::Sentiment));
    // Serving a set whose input has gone is an error naming the feature.
    let prepared = prepare(
        &Inputs {
            target: &p,
            bars: &bars,
            sentiment: &[],
        },
        &Feature::ALL,
    )
    .expect("prepares");
    let err = apply(
        &prepared.set,
        &prepared.scaler,
        &Inputs {
            target: &p,
            bars: &close_only,
            sentiment: &[],
        },
    )
    .expect_err("no highs");
    assert!(err.to_string().contains("atr_14"), "{err}");
}

#[test]
fn constant_features_are_dropped_and_the_rest_standardised_on_the_window() {
    let (p, bars) = fixture();
    // News on a single day before the window: the sentiment columns are
    // computable but constant, so they are left out.
    let sentiment = [DailySentiment {
        date: NaiveDate::from_ymd_opt(2019, 1, 1).expect("valid date"),
        score: 0.4,
        articles: 3,
    }];
    let inputs = Inputs {
        target: &p,
        bars: &bars,
        sentiment: &sentiment,
    };
    assert!(
        FeatureSet::available(&inputs, &Feature::ALL)
            .features
            .contains(&Feature::Sentiment)
    );
    let prepared = prepare(&inputs, &Feature::ALL).expect("prepares");
    assert!(!prepared.set.features.contains(&Feature::Sentiment));
    for c in 0..prepared.matrix.cols {
        let column: Vec<f64> = (0..prepared.matrix.rows())
            .map(|i| prepared.matrix.values[i * prepared.matrix.cols + c])
            .collect();
        let mean = column.iter().sum::<f64>() / column.len() as f64;
        let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / column.len() as f64;
        assert!(
            mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-9,
            "{c}: {mean} {var}"
        );
    }
    // Serving the same window with the stored set and scaler gives the same rows.
    let again = apply(&prepared.set, &prepared.scaler, &inputs).expect("applies");
    assert_eq!(again, prepared.matrix);
    // A stored set of another version is refused.
    let old = FeatureSet {
        version: VERSION + 1,
        ..prepared.set.clone()
    };
    assert_eq!(
        old.compute(&inputs),
        Err(FeatureError::Version(VERSION + 1))
    );
}

#[test]
fn news_counts_from_the_previous_session_until_the_day_before() {
    let (p, bars) = fixture();
    let day = |i: u64| bars[0].date + chrono::Days::new(i);
    let sentiment = [
        DailySentiment {
            date: day(9),
            score: 0.5,
            articles: 1,
        },
        DailySentiment {
            date: day(10),
            score: -0.5,
            articles: 3,
        },
        DailySentiment {
            date: day(11),
            score: 0.9,
            articles: 2,
        },
    ];
    let news = news_before_each_row(&bars, &sentiment);
    // Row 11 (day 11) sees days 10 only; row 10 sees day 9; row 12 sees day 11.
    assert_eq!(news[10], (0.5, 1));
    assert_eq!(news[11], (-0.5, 3));
    assert_eq!(news[12], (0.9, 2));
    assert_eq!(news[30], (0.0, 0));
    let _ = p;
}

#[test]
fn short_windows_and_bad_sentiment_files_are_clear_errors() {
    let (p, bars) = fixture();
    let set = FeatureSet::available(
        &Inputs {
            target: &p,
            bars: &bars,
            sentiment: &[],
        },
        &Feature::ALL,
    );
    // Nothing to compute: an error, not a panic.
    let no_news = Inputs {
        target: &p,
        bars: &bars,
        sentiment: &[],
    };
    assert_eq!(
        prepare(&no_news, &[Feature::Sentiment]),
        Err(FeatureError::NothingVaries)
    );
    let err = set
        .compute(&Inputs {
            target: &p[..40],
            bars: &bars[..40],
            sentiment: &[],
        })
        .expect_err("short");
    assert_eq!(
        err,
        FeatureError::TooShort {
            needed: WARMUP + 1,
            got: 40
        }
    );
    let ok = crate::series::parse_sentiment_csv(
        "t",
        b"date,score,articles\n2024-01-02,0.25,3\n2024-01-04,-0.1,1\n",
    )
    .expect("parses");
    assert_eq!(ok.len(), 2);
    for (text, needle) in [
        (&b"day,score\n"[..], "header"),
        (b"date,score,articles\n2024-01-02,nan,3\n", "score"),
        (
            b"date,score,articles\n2024-01-02,0.1,3\n2024-01-01,0.1,3\n",
            "not after",
        ),
        (b"date,score,articles\n2024-01-02,0.1\n", "3 fields"),
    ] {
        let err = crate::series::parse_sentiment_csv("t", text).expect_err("bad file");
        assert!(err.to_string().contains(needle), "{err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Changing anything after row t (bars and news) leaves every feature at
    /// rows ≤ t unchanged.
    #[test]
    fn no_feature_sees_a_later_row(seed in 0u64..10_000, cut in 61usize..119, factor in 0.5f64..2.0) {
        let mut rng = crate::rng::Rng::new(seed);
        let start = NaiveDate::from_ymd_opt(2021, 3, 1).expect("valid date");
        let mut level = 50.0;
        let mut bars = Vec::new();
        let mut sentiment = Vec::new();
        for t in 0..120u64 {
            level *= (0.02 * rng.normal()).exp();
            let date = start + chrono::Days::new(t);
            bars.push(Bar {
                date,
                open: Some(level),
                high: Some(level * (1.0 + 0.01 * rng.uniform())),
                low: Some(level * (1.0 - 0.01 * rng.uniform())),
                close: level,
                adj_close: Some(level),
                volume: Some(1e6 * (1.0 + rng.uniform())),
            });
            if rng.uniform() < 0.5 {
                sentiment.push(DailySentiment { date, score: rng.uniform() - 0.5, articles: 1 + t as usize % 4 });
            }
        }
        let target: Vec<f64> = bars.iter().map(|b| b.close).collect();
        let set = FeatureSet { version: VERSION, features: Feature::ALL.to_vec() };
        let before = set
            .compute(&Inputs { target: &target, bars: &bars, sentiment: &sentiment })
            .expect("computes");
        let cut_date = bars[cut].date;
        let mut later_bars = bars.clone();
        for b in &mut later_bars[cut + 1..] {
            b.close *= factor;
            b.adj_close = b.adj_close.map(|v| v * factor);
            b.high = b.high.map(|v| v * factor * 1.01);
            b.low = b.low.map(|v| v * factor);
            b.volume = b.volume.map(|v| v * factor);
        }
        let later_target: Vec<f64> = later_bars.iter().map(|b| b.close).collect();
        // News on the cut's day and after is only known after the cut's open.
        let mut later_news: Vec<DailySentiment> = sentiment
            .iter()
            .cloned()
            .map(|mut d| {
                if d.date >= cut_date {
                    d.score = -d.score;
                    d.articles += 7;
                }
                d
            })
            .collect();
        later_news.push(DailySentiment { date: bars[119].date + chrono::Days::new(1), score: 0.9, articles: 9 });
        let after = set
            .compute(&Inputs { target: &later_target, bars: &later_bars, sentiment: &later_news })
            .expect("computes");
        for t in WARMUP..=cut {
            let (a, b) = (before.at(t), after.at(t));
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                prop_assert!(x == y, "{} at row {t} (cut {cut}): {x} vs {y}", set.features[i]);
            }
        }
    }
}
