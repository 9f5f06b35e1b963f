//! Yahoo Finance's chart API (v8 JSON): timestamps, OHLCV and adjusted close
//! for stocks and indices (`^GSPC`).

use chrono::{DateTime, NaiveDate};
use serde_json::Value;

use super::VendorError;
use crate::series::Bar;

/// Parses a chart response for `symbol`.
pub fn parse_chart(body: &[u8], symbol: &str) -> Result<Vec<Bar>, VendorError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| VendorError::BadResponse(format!("yahoo: the response is not JSON ({e})")))?;
    let chart = &json["chart"];
    if let Some(error) = chart["error"].as_object() {
        let code = error.get("code").and_then(Value::as_str).unwrap_or("");
        let description = error
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let message = format!("yahoo: {code}: {description}");
        return Err(if code == "Not Found" {
            VendorError::UnknownSymbol(message)
        } else {
            VendorError::BadResponse(message)
        });
    }
    let result = chart["result"].get(0).ok_or_else(|| {
        VendorError::BadResponse("yahoo: the response has no chart result".into())
    })?;
    let answered = result["meta"]["symbol"].as_str().unwrap_or("");
    if !answered.eq_ignore_ascii_case(symbol) {
        return Err(VendorError::BadResponse(format!(
            "yahoo: asked for {symbol}, the response is for {answered:?}"
        )));
    }
    let offset = result["meta"]["gmtoffset"].as_i64().unwrap_or(0);
    let timestamps = result["timestamp"].as_array().ok_or_else(|| {
        VendorError::BadResponse(format!("yahoo: the series for {symbol} is empty"))
    })?;
    let quote = &result["indicators"]["quote"][0];
    let column = |name: &str| -> Result<&Vec<Value>, VendorError> {
        quote[name]
            .as_array()
            .filter(|c| c.len() == timestamps.len())
            .ok_or_else(|| {
                VendorError::BadResponse(format!(
                    "yahoo: the {name} column is missing or has the wrong length"
                ))
            })
    };
    let (open, high, low, close, volume) = (
        column("open")?,
        column("high")?,
        column("low")?,
        column("close")?,
        column("volume")?,
    );
    let adjclose = result["indicators"]["adjclose"][0]["adjclose"].as_array();
    if adjclose.is_some_and(|a| a.len() != timestamps.len()) {
        return Err(VendorError::BadResponse(
            "yahoo: the adjclose column has the wrong length".into(),
        ));
    }
    let mut bars = Vec::with_capacity(timestamps.len());
    for (i, ts) in timestamps.iter().enumerate() {
        let ts = ts.as_i64().ok_or_else(|| {
            VendorError::BadResponse(format!("yahoo: timestamp {ts} is not an integer"))
        })?;
        // Yahoo stamps a day with its session's open in UTC; the exchange's
        // offset turns it back into the trading date.
        let date: NaiveDate = ts
            .checked_add(offset)
            .and_then(|local| DateTime::from_timestamp(local, 0))
            .ok_or_else(|| {
                VendorError::BadResponse(format!("yahoo: timestamp {ts} is out of range"))
            })?
            .date_naive();
        // A row with a hole (a session still open, a data gap) is not a bar:
        // keeping it would leave a column filled on some days only.
        let adj = adjclose.map(|a| a[i].as_f64());
        let (Some(o), Some(h), Some(l), Some(c), Some(v)) = (
            open[i].as_f64(),
            high[i].as_f64(),
            low[i].as_f64(),
            close[i].as_f64(),
            volume[i].as_f64(),
        ) else {
            continue;
        };
        if adj == Some(None) {
            continue;
        }
        bars.push(Bar {
            date,
            open: Some(o),
            high: Some(h),
            low: Some(l),
            close: c,
            adj_close: adj.flatten(),
            volume: Some(v),
        });
    }
    if bars.is_empty() {
        return Err(VendorError::BadResponse(format!(
            "yahoo: the series for {symbol} has no closes"
        )));
    }
    bars.sort_by_key(|b| b.date);
    bars.dedup_by_key(|b| b.date);
    Ok(bars)
}
