//! Engineered features: what the models that look past the price itself
//! (`ridge_features`, `lstm`) see at each row of their window.
//!
//! Every value at row `t` is computed from rows `≤ t` only (and news
//! published before row `t`'s day): the functions below run forward over
//! the window and never read ahead, which a property test checks by
//! changing every later bar. Prices are the adjusted target, so splits do
//! not show up as returns; highs and lows are adjusted by the same factor.
//!
//! A fitted model stores its [`FeatureSet`] (the definitions' version and
//! the names, whose parameters are part of the name: `rsi_14`) and the
//! [`Scaler`] fitted on every row of its training window, so that serving computes
//! exactly what the model was trained on. A feature whose inputs are absent
//! (no volume in an index file, no sentiment file) is left out of the set by
//! name, never filled with zeros; so is a feature that is constant over the
//! training window (news sentiment in years before the feed began).

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::series::Bar;
pub use crate::series::DailySentiment;

/// The version of the definitions below. A stored model names it; one with
/// another version is refused rather than served features it never saw.
pub const VERSION: u32 = 1;

/// Rows at the start of a window before the first feature row: the longest
/// lookback (50 rows) plus a burn-in for the exponential and Wilder
/// averages, which are seeded at the window's first rows. At row 60 the
/// seed still weighs about 1 % in a 26-day EMA and 3 % in a 14-day Wilder
/// average, so the earliest feature rows depend a little on where the
/// window starts; the rows a forecast reads (its origin and the 20 before
/// it) are hundreds of rows on, where that weight is nil.
pub const WARMUP: usize = 60;

/// One engineered feature. The parameters are part of the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// `ln p_t − ln p_{t−1}`.
    #[serde(rename = "return_1")]
    Return1,
    /// `ln p_t − ln p_{t−5}`.
    #[serde(rename = "return_5")]
    Return5,
    /// `ln p_t − ln p_{t−21}`.
    #[serde(rename = "return_21")]
    Return21,
    /// Root mean square of the last 21 daily log returns.
    #[serde(rename = "volatility_21")]
    Volatility21,
    /// `ln(p_t / SMA20_t)`.
    #[serde(rename = "sma_gap_20")]
    SmaGap20,
    /// `ln(p_t / SMA50_t)`.
    #[serde(rename = "sma_gap_50")]
    SmaGap50,
    /// `ln(p_t / EMA20_t)`, the EMA seeded with the window's first price.
    #[serde(rename = "ema_gap_20")]
    EmaGap20,
    /// Wilder's RSI over 14 days, 0–100.
    #[serde(rename = "rsi_14")]
    Rsi14,
    /// `(EMA12 − EMA26) / p_t`.
    Macd,
    /// The 9-day EMA of `EMA12 − EMA26`, over `p_t`.
    MacdSignal,
    /// Bollinger %B over 20 days at 2 σ: 0 at the lower band, 1 at the upper.
    #[serde(rename = "bollinger_b_20")]
    BollingerB20,
    /// Wilder's average true range over 14 days, over `p_t`. Needs highs and lows.
    #[serde(rename = "atr_14")]
    Atr14,
    /// `ln((v_t + 1) / (mean of the 20 previous volumes + 1))`. Needs volume.
    #[serde(rename = "volume_ratio_20")]
    VolumeRatio20,
    /// Article-weighted mean news sentiment published after the previous
    /// row's day began and before this row's day (so known at its open); 0
    /// without news. Needs a sentiment file.
    Sentiment,
    /// `ln(1 + articles)` over the same days.
    SentimentArticles,
}

impl Feature {
    pub const ALL: [Feature; 15] = [
        Feature::Return1,
        Feature::Return5,
        Feature::Return21,
        Feature::Volatility21,
        Feature::SmaGap20,
        Feature::SmaGap50,
        Feature::EmaGap20,
        Feature::Rsi14,
        Feature::Macd,
        Feature::MacdSignal,
        Feature::BollingerB20,
        Feature::Atr14,
        Feature::VolumeRatio20,
        Feature::Sentiment,
        Feature::SentimentArticles,
    ];

    /// Features computed from the price alone: what an ablation keeps.
    pub fn is_price_only(self) -> bool {
        !matches!(
            self,
            Feature::Atr14
                | Feature::VolumeRatio20
                | Feature::Sentiment
                | Feature::SentimentArticles
        )
    }

    /// Lagged returns only: the ablation without indicators, volume or news.
    pub fn is_return(self) -> bool {
        matches!(
            self,
            Feature::Return1 | Feature::Return5 | Feature::Return21
        )
    }

    fn needs(self) -> Input {
        match self {
            Feature::Atr14 => Input::HighLow,
            Feature::VolumeRatio20 => Input::Volume,
            Feature::Sentiment | Feature::SentimentArticles => Input::Sentiment,
            _ => Input::Price,
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name: what artifacts and errors show.
        f.write_str(&crate::serde_name(self))
    }
}

/// What a feature is computed from besides the price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Price,
    HighLow,
    Volume,
    Sentiment,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Input::Price => "prices",
            Input::HighLow => "highs and lows",
            Input::Volume => "volume",
            Input::Sentiment => "news sentiment",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    #[error("features need a window of at least {needed} rows, but got {got}")]
    TooShort { needed: usize, got: usize },
    #[error("feature {feature} needs {input}, which the bar of {date} lacks")]
    MissingInput {
        feature: Feature,
        input: &'static str,
        date: NaiveDate,
    },
    #[error("feature {feature} is not finite on {date}")]
    NonFinite { feature: Feature, date: NaiveDate },
    #[error("feature set version {0} is not this build's {VERSION}")]
    Version(u32),
    #[error("no feature varies over the window (or none has its inputs)")]
    NothingVaries,
}

/// A window's inputs: the target (adjusted prices), the bars of the same
/// rows, and the news sentiment by day (any days; only those before each
/// row's day are read).
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub target: &'a [f64],
    pub bars: &'a [Bar],
    pub sentiment: &'a [DailySentiment],
}

/// The named, versioned features a model was fitted on, in column order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSet {
    pub version: u32,
    pub features: Vec<Feature>,
}

impl FeatureSet {
    /// Every feature of `candidates` whose inputs the window has on every row.
    pub fn available(inputs: &Inputs<'_>, candidates: &[Feature]) -> FeatureSet {
        let has = |input: Input| match input {
            Input::Price => true,
            Input::HighLow => {
                !inputs.bars.is_empty()
                    && inputs
                        .bars
                        .iter()
                        .all(|b| b.high.is_some() && b.low.is_some())
            }
            Input::Volume => {
                !inputs.bars.is_empty() && inputs.bars.iter().all(|b| b.volume.is_some())
            }
            Input::Sentiment => !inputs.bars.is_empty() && !inputs.sentiment.is_empty(),
        };
        FeatureSet {
            version: VERSION,
            features: candidates
                .iter()
                .copied()
                .filter(|f| has(f.needs()))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The feature rows `WARMUP..n` of the window, one column per feature.
    pub fn compute(&self, inputs: &Inputs<'_>) -> Result<Matrix, FeatureError> {
        if self.version != VERSION {
            return Err(FeatureError::Version(self.version));
        }
        if self.is_empty() {
            return Err(FeatureError::NothingVaries);
        }
        let n = inputs.target.len();
        if n <= WARMUP {
            return Err(FeatureError::TooShort {
                needed: WARMUP + 1,
                got: n,
            });
        }
        let date = |t: usize| inputs.bars.get(t).map_or(NaiveDate::MIN, |b| b.date);
        let columns = self
            .features
            .iter()
            .map(|&feature| {
                let column = column(feature, inputs)?;
                match column[WARMUP..].iter().position(|v| !v.is_finite()) {
                    Some(i) => Err(FeatureError::NonFinite {
                        feature,
                        date: date(WARMUP + i),
                    }),
                    None => Ok(column),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cols = columns.len();
        let mut values = Vec::with_capacity((n - WARMUP) * cols);
        for t in WARMUP..n {
            values.extend(columns.iter().map(|c| c[t]));
        }
        Ok(Matrix {
            first_row: WARMUP,
            cols,
            values,
        })
    }
}

/// Feature rows of a window, row-major; row `i` of the matrix is row
/// `first_row + i` of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub first_row: usize,
    pub cols: usize,
    pub values: Vec<f64>,
}

impl Matrix {
    pub fn rows(&self) -> usize {
        self.values.len() / self.cols.max(1)
    }

    /// The features at window row `t` (`t ≥ first_row`).
    pub fn at(&self, t: usize) -> &[f64] {
        let i = t - self.first_row;
        &self.values[i * self.cols..(i + 1) * self.cols]
    }
}

/// Per-column standardisation, fitted on a training window's rows only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Scaler {
    fn fit(matrix: &Matrix) -> Scaler {
        let rows = matrix.rows().max(1) as f64;
        let mut mean = vec![0.0; matrix.cols];
        for row in matrix.values.chunks(matrix.cols) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / rows;
            }
        }
        let mut scale = vec![0.0; matrix.cols];
        for row in matrix.values.chunks(matrix.cols) {
            for ((s, v), m) in scale.iter_mut().zip(row).zip(&mean) {
                *s += (v - m).powi(2) / rows;
            }
        }
        scale.iter_mut().for_each(|s| *s = s.sqrt());
        Scaler { mean, scale }
    }

    /// Standardises a matrix in place.
    pub fn apply(&self, matrix: &mut Matrix) {
        for row in matrix.values.chunks_mut(matrix.cols) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
    }
}

/// A training window's standardised features: the set that survived
/// (inputs present, not constant), its scaler, and the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub set: FeatureSet,
    pub scaler: Scaler,
    pub matrix: Matrix,
}

/// Computes `candidates` that the window has inputs for, drops those that
/// are constant over it, and standardises the rest with the window's own
/// statistics.
pub fn prepare(inputs: &Inputs<'_>, candidates: &[Feature]) -> Result<Prepared, FeatureError> {
    let set = FeatureSet::available(inputs, candidates);
    let matrix = set.compute(inputs)?;
    let scaler = Scaler::fit(&matrix);
    // Each column's statistics are its own, so dropping the constant ones
    // from the set, the rows and the scaler needs no second pass.
    let varies: Vec<bool> = scaler
        .scale
        .iter()
        .zip(&scaler.mean)
        .map(|(s, m)| *s > 1e-12 * (1.0 + m.abs()))
        .collect();
    if !varies.contains(&true) {
        return Err(FeatureError::NothingVaries);
    }
    let set = FeatureSet {
        version: set.version,
        features: kept(&set.features, &varies),
    };
    let scaler = Scaler {
        mean: kept(&scaler.mean, &varies),
        scale: kept(&scaler.scale, &varies),
    };
    let mut matrix = Matrix {
        first_row: matrix.first_row,
        cols: set.len(),
        values: matrix
            .values
            .chunks(matrix.cols)
            .flat_map(|row| kept(row, &varies))
            .collect(),
    };
    scaler.apply(&mut matrix);
    Ok(Prepared {
        set,
        scaler,
        matrix,
    })
}

/// The values whose flag in `keep` is set.
fn kept<T: Copy>(values: &[T], keep: &[bool]) -> Vec<T> {
    values
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(v, _)| *v)
        .collect()
}

/// Recomputes a stored set on new inputs with its stored scaler: what
/// serving does with the latest data. A feature whose input is now absent
/// is an error, never a column of zeros.
pub fn apply(
    set: &FeatureSet,
    scaler: &Scaler,
    inputs: &Inputs<'_>,
) -> Result<Matrix, FeatureError> {
    if let Some(&feature) = set
        .features
        .iter()
        .find(|f| FeatureSet::available(inputs, &[**f]).is_empty())
    {
        return Err(FeatureError::MissingInput {
            feature,
            input: feature.needs().name(),
            date: inputs.bars.last().map_or(NaiveDate::MIN, |b| b.date),
        });
    }
    let mut matrix = set.compute(inputs)?;
    scaler.apply(&mut matrix);
    Ok(matrix)
}

/// One feature over every row of the window (rows before its lookback are
/// NaN; `compute` only reads rows from `WARMUP`).
fn column(feature: Feature, inputs: &Inputs<'_>) -> Result<Vec<f64>, FeatureError> {
    let p = inputs.target;
    Ok(match feature {
        Feature::Return1 => log_returns(p, 1),
        Feature::Return5 => log_returns(p, 5),
        Feature::Return21 => log_returns(p, 21),
        Feature::Volatility21 => volatility(p, 21),
        Feature::SmaGap20 => log_gap(p, &sma(p, 20)),
        Feature::SmaGap50 => log_gap(p, &sma(p, 50)),
        Feature::EmaGap20 => log_gap(p, &ema(p, 20)),
        Feature::Rsi14 => rsi(p, 14),
        Feature::Macd => relative(&macd_line(p), p),
        Feature::MacdSignal => relative(&ema(&macd_line(p), 9), p),
        Feature::BollingerB20 => bollinger_b(p, 20, 2.0),
        Feature::Atr14 => {
            // Adjusted by the bar's own factor, like the target.
            let (high, low): (Vec<f64>, Vec<f64>) = from_bars(feature, inputs, |t, bar| {
                let factor = p[t] / bar.close;
                Some((bar.high? * factor, bar.low? * factor))
            })?
            .into_iter()
            .unzip();
            relative(&atr(&high, &low, p, 14), p)
        }
        Feature::VolumeRatio20 => {
            volume_ratio(&from_bars(feature, inputs, |_, bar| bar.volume)?, 20)
        }
        Feature::Sentiment | Feature::SentimentArticles => {
            from_bars(feature, inputs, |_, _| Some(()))?;
            let news = news_before_each_row(inputs.bars, inputs.sentiment);
            news.into_iter()
                .map(|(score, articles)| match feature {
                    Feature::Sentiment => score,
                    _ => (articles as f64).ln_1p(),
                })
                .collect()
        }
    })
}

/// A value read from each of the window's bars by `read`; the feature's
/// input is missing at the first bar where `read` has nothing, or at the
/// end of the bars where there are fewer bars than target rows.
fn from_bars<T>(
    feature: Feature,
    inputs: &Inputs<'_>,
    read: impl Fn(usize, &Bar) -> Option<T>,
) -> Result<Vec<T>, FeatureError> {
    let n = inputs.target.len();
    let missing = |t: usize| FeatureError::MissingInput {
        feature,
        input: feature.needs().name(),
        date: inputs.bars.get(t).map_or(NaiveDate::MIN, |b| b.date),
    };
    let mut values = Vec::with_capacity(n);
    for (t, bar) in inputs.bars.iter().enumerate().take(n) {
        values.push(read(t, bar).ok_or_else(|| missing(t))?);
    }
    if values.len() < n {
        return Err(missing(values.len()));
    }
    Ok(values)
}

/// `ln p_t − ln p_{t−k}` at each row.
fn log_returns(p: &[f64], k: usize) -> Vec<f64> {
    (0..p.len()).map(|t| log_return(p, t, k)).collect()
}

fn log_return(p: &[f64], t: usize, k: usize) -> f64 {
    if t >= k {
        p[t].ln() - p[t - k].ln()
    } else {
        f64::NAN
    }
}

/// Root mean square of the last `n` daily log returns.
fn volatility(p: &[f64], n: usize) -> Vec<f64> {
    (0..p.len())
        .map(|t| {
            if t < n {
                return f64::NAN;
            }
            let sum: f64 = (t + 1 - n..=t).map(|i| log_return(p, i, 1).powi(2)).sum();
            (sum / n as f64).sqrt()
        })
        .collect()
}

/// `ln((v_t + 1) / (mean of the n previous volumes + 1))` at each row.
fn volume_ratio(volume: &[f64], n: usize) -> Vec<f64> {
    (0..volume.len())
        .map(|t| {
            if t < n {
                return f64::NAN;
            }
            let mean = volume[t - n..t].iter().sum::<f64>() / n as f64;
            ((volume[t] + 1.0) / (mean + 1.0)).ln()
        })
        .collect()
}

/// `values_t / p_t` at each row: an indicator in units of the price.
fn relative(values: &[f64], p: &[f64]) -> Vec<f64> {
    values.iter().zip(p).map(|(v, x)| v / x).collect()
}

/// For each row, the article-weighted mean score and the article count of
/// the news days in `[previous row's day, this row's day)`: published after
/// the previous session began and before this one, so known at its open.
/// The first row takes the news of the week before it.
fn news_before_each_row(bars: &[Bar], sentiment: &[DailySentiment]) -> Vec<(f64, usize)> {
    bars.iter()
        .enumerate()
        .map(|(t, bar)| {
            let from = match t {
                0 => bar.date - chrono::Days::new(7),
                _ => bars[t - 1].date,
            };
            let start = sentiment.partition_point(|s| s.date < from);
            let end = sentiment.partition_point(|s| s.date < bar.date);
            let days = &sentiment[start..end.max(start)];
            let articles: usize = days.iter().map(|d| d.articles).sum();
            let score = match articles {
                0 => 0.0,
                _ => {
                    days.iter()
                        .map(|d| d.score * d.articles as f64)
                        .sum::<f64>()
                        / articles as f64
                }
            };
            (score, articles)
        })
        .collect()
}

/// `ln(p_t / average_t)` at each row.
fn log_gap(p: &[f64], average: &[f64]) -> Vec<f64> {
    p.iter().zip(average).map(|(x, m)| (x / m).ln()).collect()
}

/// Simple moving average over `n` rows ending at each row.
fn sma(x: &[f64], n: usize) -> Vec<f64> {
    (0..x.len())
        .map(|t| {
            if t + 1 < n {
                f64::NAN
            } else {
                x[t + 1 - n..=t].iter().sum::<f64>() / n as f64
            }
        })
        .collect()
}

/// Exponential moving average with `α = 2 / (n + 1)`, seeded with the first value.
fn ema(x: &[f64], n: usize) -> Vec<f64> {
    let alpha = 2.0 / (n as f64 + 1.0);
    let mut out = Vec::with_capacity(x.len());
    for (t, v) in x.iter().enumerate() {
        let value = match t {
            0 => *v,
            _ => alpha * v + (1.0 - alpha) * out[t - 1],
        };
        out.push(value);
    }
    out
}

/// `EMA12 − EMA26` of the price.
fn macd_line(p: &[f64]) -> Vec<f64> {
    ema(p, 12)
        .iter()
        .zip(ema(p, 26))
        .map(|(a, b)| a - b)
        .collect()
}

/// Wilder's smoothing: the mean of the first `n` values, then
/// `s_t = (s_{t−1}·(n−1) + x_t) / n`. `x[0]` is not used (it is the first
/// difference's missing row); the result is defined from row `n`.
fn wilder(x: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    if x.len() <= n {
        return out;
    }
    out[n] = x[1..=n].iter().sum::<f64>() / n as f64;
    for t in n + 1..x.len() {
        out[t] = (out[t - 1] * (n as f64 - 1.0) + x[t]) / n as f64;
    }
    out
}

/// Wilder's relative strength index, 0–100 (100 when nothing fell).
fn rsi(p: &[f64], n: usize) -> Vec<f64> {
    let change = |t: usize| if t == 0 { 0.0 } else { p[t] - p[t - 1] };
    let gains: Vec<f64> = (0..p.len()).map(|t| change(t).max(0.0)).collect();
    let losses: Vec<f64> = (0..p.len()).map(|t| (-change(t)).max(0.0)).collect();
    wilder(&gains, n)
        .iter()
        .zip(wilder(&losses, n))
        .map(|(g, l)| {
            if l == 0.0 {
                if g.is_nan() { f64::NAN } else { 100.0 }
            } else {
                100.0 - 100.0 / (1.0 + g / l)
            }
        })
        .collect()
}

/// Bollinger %B: where the price sits between `SMA ± k·σ` (population σ)
/// over `n` rows; 0.5 on a window that does not move.
fn bollinger_b(p: &[f64], n: usize, k: f64) -> Vec<f64> {
    let mean = sma(p, n);
    (0..p.len())
        .map(|t| {
            if t + 1 < n {
                return f64::NAN;
            }
            let m = mean[t];
            let var = p[t + 1 - n..=t]
                .iter()
                .map(|v| (v - m).powi(2))
                .sum::<f64>()
                / n as f64;
            let sd = var.sqrt();
            if sd <= 1e-12 * m.abs() {
                0.5
            } else {
                (p[t] - (m - k * sd)) / (2.0 * k * sd)
            }
        })
        .collect()
}

/// Wilder's average true range over `n` rows.
fn atr(high: &[f64], low: &[f64], close: &[f64], n: usize) -> Vec<f64> {
    let true_range: Vec<f64> = (0..close.len())
        .map(|t| match t {
            0 => high[0] - low[0],
            _ => (high[t] - low[t])
                .max((high[t] - close[t - 1]).abs())
                .max((low[t] - close[t - 1]).abs()),
        })
        .collect();
    wilder(&true_range, n)
}

#[cfg(test)]
mod tests;
