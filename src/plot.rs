//! Backtest plots: actual prices against the forecasts made for them, with
//! the 80 % band, as a PNG a person can open from the registry.
//!
//! Drawn with plotters' bitmap backend and encoded with `image`; no text is
//! drawn because the bitmap backend has no font without system font
//! libraries, which the Lambda and Batch images do not carry. The legend is
//! fixed instead: black is the actual price, blue the forecast, light blue
//! the 80 % interval.

use plotters::prelude::*;

use crate::backtest::ForecastRow;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 400;

#[derive(Debug, thiserror::Error)]
#[error("failed to draw the plot: {0}")]
pub struct PlotError(String);

/// Plots `actual` (the target over the test region, in row order) and the
/// forecasts of `rows` (one horizon) at their target rows.
pub fn backtest_png(actual: &[(usize, f64)], rows: &[&ForecastRow]) -> Result<Vec<u8>, PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError(e.to_string());
    let (Some(first), Some(last)) = (actual.first(), actual.last()) else {
        return Err(PlotError("nothing to plot".into()));
    };
    let target_row = |r: &ForecastRow| (r.origin_row + r.h) as f64;
    let values = actual.iter().map(|a| a.1).chain(
        rows.iter()
            .flat_map(|r| [Some(r.forecast), r.lo80, r.hi80])
            .flatten(),
    );
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let pad = (hi - lo).max(f64::EPSILON) * 0.05;
    let mut buffer = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let area = root.margin(12, 12, 12, 12);
        let mut chart = ChartBuilder::on(&area)
            .build_cartesian_2d(first.0 as f64..last.0 as f64, (lo - pad)..(hi + pad))
            .map_err(|e| err(&e))?;
        let band: Vec<(f64, f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((target_row(r), r.lo80?, r.hi80?)))
            .collect();
        if !band.is_empty() {
            let outline: Vec<(f64, f64)> = band
                .iter()
                .map(|b| (b.0, b.2))
                .chain(band.iter().rev().map(|b| (b.0, b.1)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    RGBColor(198, 219, 239).filled(),
                )))
                .map_err(|e| err(&e))?;
        }
        chart
            .draw_series(LineSeries::new(
                actual.iter().map(|&(x, y)| (x as f64, y)),
                &BLACK,
            ))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(
                rows.iter().map(|r| (target_row(r), r.forecast)),
                RGBColor(33, 113, 181).stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, buffer)
        .ok_or_else(|| PlotError("the drawing buffer has the wrong size".into()))?;
    let mut png = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut png),
            image::ImageOutputFormat::Png,
        )
        .map_err(|e| err(&e))?;
    Ok(png)
}
