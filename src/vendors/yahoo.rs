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
    let result = chart_result(&json["chart"], symbol)?;
    let offset = result["meta"]["gmtoffset"].as_i64().unwrap_or(0);
    let timestamps = result["timestamp"].as_array().ok_or_else(|| {
        VendorError::BadResponse(format!("yahoo: the series for {symbol} is empty"))
    })?;
    let columns = Columns::of(result, timestamps.len())?;
    let mut bars = Vec::with_capacity(timestamps.len());
    for (i, ts) in timestamps.iter().enumerate() {
        let date = trading_date(ts, offset)?;
        bars.extend(columns.bar(i, date));
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

/// The chart's result, checked to answer for `symbol`; Yahoo's own error
/// where it sent one (an unknown symbol is `Not Found`).
fn chart_result<'a>(chart: &'a Value, symbol: &str) -> Result<&'a Value, VendorError> {
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
    Ok(result)
}

/// Yahoo stamps a day with its session's open in UTC; the exchange's
/// offset turns it back into the trading date.
fn trading_date(ts: &Value, offset: i64) -> Result<NaiveDate, VendorError> {
    let ts = ts.as_i64().ok_or_else(|| {
        VendorError::BadResponse(format!("yahoo: timestamp {ts} is not an integer"))
    })?;
    let date = ts
        .checked_add(offset)
        .and_then(|local| DateTime::from_timestamp(local, 0))
        .ok_or_else(|| VendorError::BadResponse(format!("yahoo: timestamp {ts} is out of range")))?
        .date_naive();
    Ok(date)
}

/// The price columns of a result, each as long as the timestamps.
#[derive(Debug)]
struct Columns<'a> {
    open: &'a [Value],
    high: &'a [Value],
    low: &'a [Value],
    close: &'a [Value],
    volume: &'a [Value],
    adjclose: Option<&'a [Value]>,
}

impl<'a> Columns<'a> {
    fn of(result: &'a Value, len: usize) -> Result<Self, VendorError> {
        let quote = &result["indicators"]["quote"][0];
        let column = |name: &str| -> Result<&'a [Value], VendorError> {
            quote[name]
                .as_array()
                .filter(|c| c.len() == len)
                .map(Vec::as_slice)
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
        let adjclose = result["indicators"]["adjclose"][0]["adjclose"]
            .as_array()
            .map(Vec::as_slice);
        if adjclose.is_some_and(|a| a.len() != len) {
            return Err(VendorError::BadResponse(
                "yahoo: the adjclose column has the wrong length".into(),
            ));
        }
        Ok(Columns {
            open,
            high,
            low,
            close,
            volume,
            adjclose,
        })
    }

    /// The bar of row `i`; `None` for a row with a hole (a session still
    /// open, a data gap), which is not a bar: keeping it would leave a
    /// column filled on some days only.
    fn bar(&self, i: usize, date: NaiveDate) -> Option<Bar> {
        let adj = self.adjclose.map(|a| a[i].as_f64());
        if adj == Some(None) {
            return None;
        }
        Some(Bar {
            date,
            open: Some(self.open[i].as_f64()?),
            high: Some(self.high[i].as_f64()?),
            low: Some(self.low[i].as_f64()?),
            close: self.close[i].as_f64()?,
            adj_close: adj.flatten(),
            volume: Some(self.volume[i].as_f64()?),
        })
    }
}
