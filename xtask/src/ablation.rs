//! `cargo xtask ablation`: do the engineered features carry anything
//! beyond lagged returns? The feature models are backtested twice on the
//! same origins (PROTOCOL.md), once offered every feature and once only
//! the lagged returns, and printed beside naive.
//!
//! A measurement, not a test: it prints figures and asserts nothing.

use anyhow::Context;
use rayon::prelude::*;
use stockcast::backtest::{Protocol, mase_scale, window_at};
use stockcast::features::Feature;
use stockcast::models::{
    FittedModel, Forecaster, Lstm, ModelError, ModelKind, RidgeFeatures, Window,
};
use stockcast::series::{self, PriceSeries};

use crate::flags;
use crate::table::Table;

/// A way to fit a model on a window, shared by the worker threads.
type Fit = Box<dyn Fn(&Window) -> Result<FittedModel, ModelError> + Sync>;

/// A model offered a feature set, under the name the table shows.
struct Variant {
    name: String,
    fit: Fit,
}

fn variants(models: &[ModelKind]) -> Vec<Variant> {
    let returns: Vec<Feature> = Feature::ALL.into_iter().filter(|f| f.is_return()).collect();
    let mut out = Vec::new();
    for &model in models {
        for (label, set) in [
            ("all features", Feature::ALL.to_vec()),
            ("returns only", returns.clone()),
        ] {
            let fit: Fit = match model {
                ModelKind::Lstm => Box::new(move |w: &Window| {
                    Lstm {
                        candidates: set.clone(),
                    }
                    .fit(w)
                    .map(FittedModel::Lstm)
                }),
                ModelKind::RidgeFeatures => Box::new(move |w: &Window| {
                    RidgeFeatures {
                        candidates: set.clone(),
                    }
                    .fit(w)
                    .map(FittedModel::RidgeFeatures)
                }),
                _ => continue,
            };
            out.push(Variant {
                name: format!("{model} ({label})"),
                fit,
            });
        }
    }
    out.push(Variant {
        name: "naive".into(),
        fit: Box::new(|w: &Window| ModelKind::Naive.fit(w)),
    });
    out
}

impl flags::Ablation {
    pub fn run(self) -> anyhow::Result<()> {
        let all = series::load_folder(&self.data).context("failed to load the price files")?;
        let protocol = Protocol::default();
        let variants = variants(&self.models);
        let mut tasks = Vec::new();
        for (s, item) in all.iter().enumerate() {
            for origin in protocol.origins(&item.name, item.len())? {
                tasks.extend((0..variants.len()).map(|v| (s, v, origin)));
            }
        }
        let targets: Vec<Vec<f64>> = all.iter().map(PriceSeries::target).collect();
        let dates: Vec<Vec<chrono::NaiveDate>> = all.iter().map(PriceSeries::dates).collect();
        eprintln!("{} fits on {} series", tasks.len(), all.len());
        // Scaled absolute error per (series, variant, horizon), summed over
        // origins; a failed fit forecasts the origin's value (PROTOCOL §4).
        let errors: Vec<(usize, usize, Vec<f64>)> = tasks
            .par_iter()
            .map(|&(s, v, origin)| {
                let y = &targets[s];
                let window = window_at(y, &all[s], &dates[s], origin, protocol.window);
                let forecast = (variants[v].fit)(&window)
                    .and_then(|f| f.forecast(protocol.max_horizon()))
                    .map(|f| f.mean)
                    .unwrap_or_else(|_| vec![y[origin]; protocol.max_horizon()]);
                let scale = mase_scale(&y[origin + 1 - protocol.window..=origin]);
                let scaled = protocol
                    .horizons
                    .iter()
                    .map(|&h| (forecast[h - 1] - y[origin + h]).abs() / scale)
                    .collect();
                (s, v, scaled)
            })
            .collect();
        let horizons = &protocol.horizons;
        let mut header = vec!["model".to_owned()];
        header.extend(horizons.iter().map(|h| format!("MASE h{h}")));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut table = Table::new(&header);
        for (v, variant) in variants.iter().enumerate() {
            // Mean over origins per series, then over series, as the backtest.
            let mut cells = vec![variant.name.clone()];
            for k in 0..horizons.len() {
                let per_series: Vec<f64> = (0..all.len())
                    .map(|s| {
                        let mine: Vec<f64> = errors
                            .iter()
                            .filter(|(es, ev, _)| *es == s && *ev == v)
                            .map(|(_, _, e)| e[k])
                            .collect();
                        mine.iter().sum::<f64>() / mine.len().max(1) as f64
                    })
                    .collect();
                let mean = per_series.iter().sum::<f64>() / per_series.len().max(1) as f64;
                cells.push(format!("{mean:.4}"));
            }
            table.row(cells);
        }
        println!("{}", table.render());
        Ok(())
    }
}
