//! The forecasts CSV, in exactly the columns of the shared reference file, so
//! a run can be compared with it origin by origin.

use std::io::Write;

use super::ForecastRow;

pub const HEADER: [&str; 12] = [
    "series",
    "model",
    "origin_row",
    "origin_date",
    "h",
    "target_date",
    "y_origin",
    "actual",
    "forecast",
    "lo80",
    "hi80",
    "mase_scale",
];

/// Writes rows as CSV; floats in shortest round-trip form, a missing interval as empty cells.
pub fn write_forecasts_csv(rows: &[ForecastRow], out: impl Write) -> csv::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(HEADER)?;
    let float = |v: f64| format!("{v:?}");
    for r in rows {
        writer.write_record([
            r.series.clone(),
            r.model.clone(),
            r.origin_row.to_string(),
            r.origin_date.to_string(),
            r.h.to_string(),
            r.target_date.to_string(),
            float(r.y_origin),
            float(r.actual),
            float(r.forecast),
            r.lo80.map(float).unwrap_or_default(),
            r.hi80.map(float).unwrap_or_default(),
            float(r.mase_scale),
        ])?;
    }
    writer.flush()?;
    Ok(())
}

/// Reads a forecasts CSV (ours or the reference run's) back into rows.
pub fn read_forecasts_csv(
    source: &str,
    input: impl std::io::Read,
) -> Result<Vec<ForecastRow>, String> {
    let mut reader = csv::Reader::from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{source}: {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    if header != HEADER {
        return Err(format!(
            "{source}:1: header should be `{}`",
            HEADER.join(",")
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("{source}: {e}"))?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("");
        let err = |what: &str| {
            format!(
                "{source}:{line}: {what} {:?} is not valid",
                field(HEADER.iter().position(|h| *h == what).unwrap_or(0))
            )
        };
        let float = |i: usize| field(i).parse::<f64>().map_err(|_| err(HEADER[i]));
        let optional = |i: usize| -> Result<Option<f64>, String> {
            if field(i).is_empty() {
                Ok(None)
            } else {
                float(i).map(Some)
            }
        };
        let date = |i: usize| field(i).parse().map_err(|_| err(HEADER[i]));
        let count = |i: usize| field(i).parse::<usize>().map_err(|_| err(HEADER[i]));
        rows.push(ForecastRow {
            series: field(0).to_owned(),
            model: field(1).to_owned(),
            origin_row: count(2)?,
            origin_date: date(3)?,
            h: count(4)?,
            target_date: date(5)?,
            y_origin: float(6)?,
            actual: float(7)?,
            forecast: float(8)?,
            lo80: optional(9)?,
            hi80: optional(10)?,
            mase_scale: float(11)?,
            failed: false,
        });
    }
    Ok(rows)
}
