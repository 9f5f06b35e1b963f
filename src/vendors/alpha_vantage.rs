//! Alpha Vantage: `TIME_SERIES_DAILY_ADJUSTED` (falling back to
//! `TIME_SERIES_DAILY` when the key's plan refuses it) and `NEWS_SENTIMENT`.
//!
//! Alpha Vantage answers most failures with HTTP 200 and a JSON object
//! holding a "Note" or "Information" (throttle, premium endpoint) or an
//! "Error Message" (unknown symbol, bad call). These are classified before
//! anything is read as data, so a throttle is never taken for "no new rows".

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::Value;

use super::VendorError;
use crate::series::{Bar, DailySentiment};

/// Which daily series function was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DailyFunction {
    Adjusted,
    Unadjusted,
}

impl DailyFunction {
    pub fn name(self) -> &'static str {
        match self {
            DailyFunction::Adjusted => "TIME_SERIES_DAILY_ADJUSTED",
            DailyFunction::Unadjusted => "TIME_SERIES_DAILY",
        }
    }
}

/// Classifies the "Note"/"Information"/"Error Message" replies.
fn classify(json: &Value) -> Result<(), VendorError> {
    if let Some(message) = json.get("Error Message").and_then(Value::as_str) {
        return Err(VendorError::UnknownSymbol(format!(
            "alpha-vantage: {message}"
        )));
    }
    for key in ["Note", "Information"] {
        if let Some(message) = json.get(key).and_then(Value::as_str) {
            // Throttle notes link to the premium page too; only the refusal
            // of an endpoint says "premium endpoint".
            if message.to_ascii_lowercase().contains("premium endpoint") {
                return Err(VendorError::PremiumOnly(format!(
                    "alpha-vantage: {message}"
                )));
            }
            return Err(VendorError::Throttled(format!("alpha-vantage: {message}")));
        }
    }
    Ok(())
}

fn number(day: &Value, keys: &[&str], date: &str) -> Result<Option<f64>, VendorError> {
    for key in keys {
        if let Some(v) = day.get(*key) {
            let text = v.as_str().ok_or_else(|| {
                VendorError::BadResponse(format!("alpha-vantage: {date} {key} is not a string"))
            })?;
            let value: f64 = text.parse().map_err(|_| {
                VendorError::BadResponse(format!(
                    "alpha-vantage: {date} {key} {text:?} is not a number"
                ))
            })?;
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// Parses a daily series response for `symbol`.
pub fn parse_daily(
    body: &[u8],
    symbol: &str,
    function: DailyFunction,
) -> Result<Vec<Bar>, VendorError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        VendorError::BadResponse(format!("alpha-vantage: the response is not JSON ({e})"))
    })?;
    classify(&json)?;
    let answered = json["Meta Data"]["2. Symbol"].as_str().ok_or_else(|| {
        VendorError::BadResponse("alpha-vantage: the response has no \"Meta Data\" symbol".into())
    })?;
    if !answered.eq_ignore_ascii_case(symbol) {
        return Err(VendorError::BadResponse(format!(
            "alpha-vantage: asked for {symbol}, the response is for {answered}"
        )));
    }
    let series = json["Time Series (Daily)"].as_object().ok_or_else(|| {
        VendorError::BadResponse(
            "alpha-vantage: the response has no \"Time Series (Daily)\"".into(),
        )
    })?;
    if series.is_empty() {
        return Err(VendorError::BadResponse(format!(
            "alpha-vantage: the series for {symbol} is empty"
        )));
    }
    let mut bars = Vec::with_capacity(series.len());
    for (date_text, day) in series {
        let date: NaiveDate = date_text.parse().map_err(|_| {
            VendorError::BadResponse(format!("alpha-vantage: {date_text:?} is not a date"))
        })?;
        let close = number(day, &["4. close"], date_text)?.ok_or_else(|| {
            VendorError::BadResponse(format!("alpha-vantage: {date_text} has no close"))
        })?;
        let adj_close = match function {
            DailyFunction::Adjusted => Some(
                number(day, &["5. adjusted close"], date_text)?.ok_or_else(|| {
                    VendorError::BadResponse(format!(
                        "alpha-vantage: {date_text} has no adjusted close"
                    ))
                })?,
            ),
            DailyFunction::Unadjusted => None,
        };
        bars.push(Bar {
            date,
            open: number(day, &["1. open"], date_text)?,
            high: number(day, &["2. high"], date_text)?,
            low: number(day, &["3. low"], date_text)?,
            close,
            adj_close,
            volume: number(day, &["6. volume", "5. volume"], date_text)?,
        });
    }
    bars.sort_by_key(|b| b.date);
    Ok(bars)
}

/// Aggregates a `NEWS_SENTIMENT` response into one score per publication day.
pub fn parse_sentiment(body: &[u8], symbol: &str) -> Result<Vec<DailySentiment>, VendorError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        VendorError::BadResponse(format!("alpha-vantage: the response is not JSON ({e})"))
    })?;
    classify(&json)?;
    let feed = json["feed"].as_array().ok_or_else(|| {
        VendorError::BadResponse("alpha-vantage: the news response has no feed".into())
    })?;
    let mut days: BTreeMap<NaiveDate, (f64, f64, usize)> = BTreeMap::new();
    for article in feed {
        let published = article["time_published"].as_str().unwrap_or("");
        let Some(date) = published
            .get(..8)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
        else {
            return Err(VendorError::BadResponse(format!(
                "alpha-vantage: time_published {published:?} is not YYYYMMDDTHHMMSS"
            )));
        };
        for t in article["ticker_sentiment"].as_array().into_iter().flatten() {
            if !t["ticker"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(symbol))
            {
                continue;
            }
            let parse = |key: &str| {
                t[key]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|v| v.is_finite())
            };
            let (Some(relevance), Some(score)) =
                (parse("relevance_score"), parse("ticker_sentiment_score"))
            else {
                return Err(VendorError::BadResponse(format!(
                    "alpha-vantage: a sentiment entry for {symbol} is not numeric"
                )));
            };
            let entry = days.entry(date).or_default();
            entry.0 += relevance * score;
            entry.1 += relevance;
            entry.2 += 1;
        }
    }
    Ok(days
        .into_iter()
        .filter(|(_, (_, weight, _))| *weight > 0.0)
        .map(|(date, (sum, weight, articles))| DailySentiment {
            date,
            score: sum / weight,
            articles,
        })
        .collect())
}
