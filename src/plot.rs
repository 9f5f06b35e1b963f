//! Backtest plots: actual prices against the forecasts made for them, with
//! the 80 % band, as a PNG a person can open from the registry or MLflow.
//!
//! Drawn with plotters' bitmap backend and encoded with `image`. Text needs
//! a font, and the Lambda and Batch images carry no system fonts (nor the
//! fontconfig library plotters' `ttf` feature loads them with), so the
//! repository ships one, DejaVu Sans (assets/fonts, Bitstream Vera license,
//! from Debian's fonts-dejavu-core 2.37), drawn through plotters'
//! `ab_glyph` feature from memory.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::OnceLock;

use chrono::NaiveDate;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::backtest::ForecastRow;

pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 500;

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FORECAST_BLUE: RGBColor = RGBColor(33, 113, 181);
const BAND_BLUE: RGBColor = RGBColor(198, 219, 239);

#[derive(Debug, thiserror::Error)]
#[error("failed to draw the plot: {0}")]
pub struct PlotError(String);

/// What the title says: which version this is and how it scored.
#[derive(Debug, Clone)]
pub struct PlotTitle {
    pub symbol: String,
    pub model: String,
    pub version: String,
    /// The horizon whose forecasts are drawn.
    pub horizon: usize,
    pub mase: Option<f64>,
    pub naive_mase: Option<f64>,
}

impl PlotTitle {
    fn text(&self) -> String {
        let score = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        format!(
            "{} {} (version {}): MASE h{} {} vs naive {}",
            self.symbol,
            self.model,
            self.version,
            self.horizon,
            score(self.mase),
            score(self.naive_mase)
        )
    }
}

/// Registers the shipped font once; every text style of the plot uses it.
fn font_registered() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError(
            "the shipped font DejaVuSans.ttf is not a valid font".into(),
        ))
    }
}

/// Plots `actual` (row, date and value of the target over the test region,
/// in row order) and the forecasts of `rows` (one horizon) at their target
/// rows, with dates and prices on the axes, a title and a legend.
pub fn backtest_png(
    title: &PlotTitle,
    actual: &[(usize, NaiveDate, f64)],
    rows: &[&ForecastRow],
) -> Result<Vec<u8>, PlotError> {
    font_registered()?;
    let (Some(first), Some(last)) = (actual.first(), actual.last()) else {
        return Err(PlotError("nothing to plot".into()));
    };
    let x_range = first.0 as f64..last.0 as f64;
    let y_range = padded_range(actual, rows);
    let mut buffer = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    draw(&mut buffer, title, actual, rows, x_range, y_range)?;
    encode_png(buffer)
}

/// The chart every part of the plot is drawn on: rows against prices.
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

impl PlotError {
    fn drawing(e: impl std::fmt::Display) -> Self {
        PlotError(e.to_string())
    }
}

/// The row a forecast is for: trading days have gaps, so the x axis is the
/// row, labelled with its date.
fn target_row(row: &ForecastRow) -> f64 {
    (row.origin_row + row.h) as f64
}

/// The range of every value drawn, actual and forecast, padded by 5 %.
fn padded_range(actual: &[(usize, NaiveDate, f64)], rows: &[&ForecastRow]) -> Range<f64> {
    let values = actual.iter().map(|a| a.2).chain(
        rows.iter()
            .flat_map(|r| [Some(r.forecast), r.lo80, r.hi80])
            .flatten(),
    );
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let pad = (hi - lo).max(f64::EPSILON) * 0.05;
    (lo - pad)..(hi + pad)
}

/// Draws the whole plot into `buffer` (RGB, `WIDTH` × `HEIGHT`).
fn draw(
    buffer: &mut [u8],
    title: &PlotTitle,
    actual: &[(usize, NaiveDate, f64)],
    rows: &[&ForecastRow],
    x_range: Range<f64>,
    y_range: Range<f64>,
) -> Result<(), PlotError> {
    let root = BitMapBackend::with_buffer(buffer, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(PlotError::drawing)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .caption(title.text(), ("sans-serif", 18))
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)
        .map_err(PlotError::drawing)?;
    draw_axes(&mut chart, actual)?;
    draw_band(&mut chart, rows)?;
    draw_lines(&mut chart, actual, rows, title.horizon)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(PlotError::drawing)?;
    root.present().map_err(PlotError::drawing)
}

/// The grid and the axes: dates below (each x labelled with the date of
/// the last row at or before it), prices to the left.
fn draw_axes(
    chart: &mut Chart<'_, '_>,
    actual: &[(usize, NaiveDate, f64)],
) -> Result<(), PlotError> {
    let dates: BTreeMap<usize, NaiveDate> = actual.iter().map(|a| (a.0, a.1)).collect();
    let date_of = |x: &f64| {
        dates
            .range(..=(x.round().max(0.0) as usize))
            .next_back()
            .map_or(String::new(), |(_, d)| d.to_string())
    };
    chart
        .configure_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_labels(6)
        .y_labels(8)
        .x_label_formatter(&date_of)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .x_desc("date")
        .y_desc("price")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(PlotError::drawing)
}

/// The 80 % band of the forecasts that have one, as one filled polygon.
fn draw_band(chart: &mut Chart<'_, '_>, rows: &[&ForecastRow]) -> Result<(), PlotError> {
    let band: Vec<(f64, f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((target_row(r), r.lo80?, r.hi80?)))
        .collect();
    if band.is_empty() {
        return Ok(());
    }
    let outline: Vec<(f64, f64)> = band
        .iter()
        .map(|b| (b.0, b.2))
        .chain(band.iter().rev().map(|b| (b.0, b.1)))
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(outline, BAND_BLUE.filled())))
        .map_err(PlotError::drawing)?
        .label("80 % band")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BAND_BLUE.filled()));
    Ok(())
}

/// The actual prices and the forecasts of `horizon`, as lines.
fn draw_lines(
    chart: &mut Chart<'_, '_>,
    actual: &[(usize, NaiveDate, f64)],
    rows: &[&ForecastRow],
    horizon: usize,
) -> Result<(), PlotError> {
    chart
        .draw_series(LineSeries::new(
            actual.iter().map(|&(x, _, y)| (x as f64, y)),
            &BLACK,
        ))
        .map_err(PlotError::drawing)?
        .label("actual")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .draw_series(LineSeries::new(
            rows.iter().map(|r| (target_row(r), r.forecast)),
            FORECAST_BLUE.stroke_width(2),
        ))
        .map_err(PlotError::drawing)?
        .label(format!("forecast h{horizon}"))
        .legend(|(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], FORECAST_BLUE.stroke_width(2))
        });
    Ok(())
}

fn encode_png(buffer: Vec<u8>) -> Result<Vec<u8>, PlotError> {
    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, buffer)
        .ok_or_else(|| PlotError("the drawing buffer has the wrong size".into()))?;
    let mut png = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut png),
            image::ImageOutputFormat::Png,
        )
        .map_err(PlotError::drawing)?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(actual: &[(usize, NaiveDate, f64)]) -> Vec<ForecastRow> {
        actual
            .iter()
            .skip(5)
            .map(|&(row, date, value)| ForecastRow {
                series: "AAPL".into(),
                model: "drift".into(),
                origin_row: row - 5,
                origin_date: date,
                h: 5,
                target_date: date,
                y_origin: value,
                actual: value,
                forecast: value * 1.01,
                lo80: Some(value * 0.97),
                hi80: Some(value * 1.05),
                mase_scale: 1.0,
                failed: false,
            })
            .collect()
    }

    /// Pixels that are neither white nor a plot colour, in a band of rows.
    fn dark_pixels(png: &[u8], rows: std::ops::Range<u32>, columns: std::ops::Range<u32>) -> usize {
        let image = image::load_from_memory(png).expect("a PNG").to_rgb8();
        rows.flat_map(|y| columns.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| image.get_pixel(x, y).0.iter().all(|&c| c < 128))
            .count()
    }

    #[test]
    fn the_plot_has_a_title_axes_labels_and_the_expected_size() {
        let start = NaiveDate::from_ymd_opt(2012, 1, 2).expect("a date");
        let actual: Vec<(usize, NaiveDate, f64)> = (0..120)
            .map(|i| {
                let date = start + chrono::Days::new(i as u64);
                (1000 + i, date, 100.0 + (i as f64 / 7.0).sin() * 5.0)
            })
            .collect();
        let rows = rows(&actual);
        let refs: Vec<&ForecastRow> = rows.iter().collect();
        let title = PlotTitle {
            symbol: "AAPL".into(),
            model: "drift".into(),
            version: "20261201T000000.000Z-abcdef".into(),
            horizon: 5,
            mase: Some(0.98),
            naive_mase: Some(1.0),
        };
        let png = backtest_png(&title, &actual, &refs).expect("draws");
        let image = image::load_from_memory(&png).expect("a PNG");
        assert_eq!((image.width(), image.height()), (WIDTH, HEIGHT));
        // The title sits in the top 40 rows, above the plot area, where
        // nothing but text is drawn; the y labels left of the axis.
        let title_ink = dark_pixels(&png, 0..40, 0..WIDTH);
        assert!(title_ink > 300, "title pixels: {title_ink}");
        let y_label_ink = dark_pixels(&png, 60..HEIGHT - 60, 0..60);
        assert!(y_label_ink > 100, "y label pixels: {y_label_ink}");
        let x_label_ink = dark_pixels(&png, HEIGHT - 40..HEIGHT, 80..WIDTH);
        assert!(x_label_ink > 100, "x label pixels: {x_label_ink}");
    }

    #[test]
    fn nothing_to_plot_is_an_error() {
        let title = PlotTitle {
            symbol: "AAPL".into(),
            model: "drift".into(),
            version: "v".into(),
            horizon: 5,
            mase: None,
            naive_mase: None,
        };
        assert!(backtest_png(&title, &[], &[]).is_err());
    }
}
