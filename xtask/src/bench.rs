//! `cargo xtask bench`: fit + forecast time per model on 1000-value windows.
//!
//! A benchmark, not a test: it prints figures and asserts nothing. Windows
//! are cut from the price files at evenly spaced ends, so the figures are
//! for real price paths rather than synthetic ones.

use std::time::Instant;

use anyhow::{Context, bail};
use stockcast::models::{
    ArimaParams, FittedModel, Forecaster, MAX_HORIZON, ModelError, ModelKind, Order, Window,
};
use stockcast::series;

use crate::flags;
use crate::table::Table;

const WINDOW: usize = 1000;

/// A named way to fit a model on a window.
type Fit = Box<dyn Fn(&Window) -> Result<FittedModel, ModelError>>;

impl flags::Bench {
    pub fn run(self) -> anyhow::Result<()> {
        let all = series::load_folder(&self.data).context("failed to load the price files")?;
        let usable = usable(&all);
        let windows = cut_windows(&usable, self.windows)?;
        let profile = if cfg!(debug_assertions) {
            "dev (library at opt-level 3)"
        } else {
            "release"
        };
        println!(
            "fit + forecast({MAX_HORIZON}) on {} windows of {WINDOW} values, one thread, {profile} build",
            windows.len()
        );
        let mut table = Table::new(&[
            "model",
            "median ms",
            "p90 ms",
            "mean ms",
            "fits/s",
            "failures",
        ]);
        for (name, fit) in &candidates() {
            table.row(timed(name, fit, &windows));
        }
        print!("{}", table.render());
        Ok(())
    }
}

/// The series longer than a window, each with its target.
fn usable(all: &[series::PriceSeries]) -> Vec<(&series::PriceSeries, Vec<f64>)> {
    all.iter()
        .map(|s| (s, s.target()))
        .filter(|(_, t)| t.len() > WINDOW)
        .collect()
}

/// `count` windows of `WINDOW` rows, cut from the usable series in turn at
/// evenly spaced ends. Windows carry their bars: Prophet forecasts by date.
fn cut_windows<'a>(
    usable: &'a [(&'a series::PriceSeries, Vec<f64>)],
    count: usize,
) -> anyhow::Result<Vec<Window<'a>>> {
    if usable.is_empty() || count == 0 {
        bail!("need at least one series longer than {WINDOW} rows and --windows > 0");
    }
    Ok((0..count)
        .map(|i| {
            let (series, y) = &usable[i % usable.len()];
            let span = y.len() - WINDOW;
            let start = span * (i / usable.len()) / (count / usable.len()).max(1);
            let rows = start.min(span)..start.min(span) + WINDOW;
            Window::new(&y[rows.clone()], &series.bars[rows])
        })
        .collect())
}

/// Every model as the pipeline fits it, and ARIMA(1,1,1) fixed: that row
/// compares with statsmodels' ARIMA(1,1,1), `arima` (the automatic search)
/// with statsforecast's AutoARIMA.
fn candidates() -> Vec<(String, Fit)> {
    let arima_111 = ArimaParams::with_order(Order {
        p: 1,
        d: 1,
        q: 1,
        constant: false,
    });
    let mut candidates: Vec<(String, Fit)> = ModelKind::ALL
        .into_iter()
        .map(|model| {
            let fit: Fit = Box::new(move |w| model.fit(w));
            (model.name().to_owned(), fit)
        })
        .collect();
    candidates.push((
        "arima(1,1,1) fixed".to_owned(),
        Box::new(move |w| arima_111.fit(w).map(FittedModel::Arima)),
    ));
    candidates
}

/// Times fit + forecast on every window: the table's row for `name`.
fn timed(name: &str, fit: &Fit, windows: &[Window]) -> Vec<String> {
    let mut times = Vec::with_capacity(windows.len());
    let mut failures = 0;
    for w in windows {
        let t0 = Instant::now();
        // A window a model cannot fit still took time: it counts, and is reported.
        match fit(w).and_then(|f| f.forecast(MAX_HORIZON)) {
            Ok(forecast) => {
                std::hint::black_box(forecast);
            }
            Err(_) => failures += 1,
        }
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    vec![
        name.to_owned(),
        format!("{:.4}", times[times.len() / 2]),
        format!("{:.4}", times[times.len() * 9 / 10]),
        format!("{mean:.4}"),
        format!("{:.0}", 1e3 / mean),
        failures.to_string(),
    ]
}
