//! `cargo xtask backtest`: the PROTOCOL.md benchmark from the terminal.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use stockcast::backtest::{self, AggregateMetrics, Protocol, Report};
use stockcast::series;

use crate::flags;
use crate::table::{Table, num};

impl flags::Backtest {
    pub fn run(self) -> anyhow::Result<()> {
        if let Some(threads) = self.threads {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build_global()
                .context("failed to set up the thread pool")?;
        }
        let all = series::load_folder(&self.data).context("failed to load the price files")?;
        let protocol = Protocol::default();
        let total = backtest::count_fits(&all, &self.models, &protocol)?;
        eprintln!(
            "backtesting {} models on {} series ({total} fits, {} threads)",
            self.models.len(),
            all.len(),
            rayon::current_num_threads()
        );
        let bar = ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} fits, {elapsed} elapsed, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let run = backtest::run(&all, &self.models, &protocol, &|| bar.inc(1))?;
        bar.finish_and_clear();
        let report = run.report();

        let reference = match &self.reference {
            Some(path) => reference_aggregates(path, &run.series, &protocol)?,
            None => Vec::new(),
        };
        print!("{}", render_tables(&report, &reference));

        if let Some(path) = &self.forecasts {
            let file = File::create(path)
                .with_context(|| format!("failed to create {}", path.display()))?;
            backtest::write_forecasts_csv(&run.rows, BufWriter::new(file))
                .with_context(|| format!("failed to write {}", path.display()))?;
            eprintln!("forecasts written to {}", path.display());
        }
        if let Some(path) = &self.report {
            let json = serde_json::to_string_pretty(&report)?;
            std::fs::write(path, json + "\n")
                .with_context(|| format!("failed to write {}", path.display()))?;
            eprintln!("report written to {}", path.display());
        }
        Ok(())
    }
}

/// Aggregates of the reference file's models, over the series we ran.
fn reference_aggregates(
    path: &Path,
    series: &[String],
    protocol: &Protocol,
) -> anyhow::Result<Vec<AggregateMetrics>> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let rows = backtest::read_forecasts_csv(&path.display().to_string(), file)
        .map_err(anyhow::Error::msg)?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| series.contains(&r.series))
        .collect();
    let mut models: Vec<String> = Vec::new();
    for r in &rows {
        if !models.contains(&r.model) {
            models.push(r.model.clone());
        }
    }
    let per_series = backtest::series_metrics(&rows, &protocol.horizons);
    Ok(backtest::aggregate(
        &per_series,
        &models,
        &protocol.horizons,
        protocol.spacing,
    ))
}

fn render_tables(report: &Report, reference: &[AggregateMetrics]) -> String {
    let mut out = String::new();
    for &h in &report.protocol.horizons {
        let naive = report
            .aggregate
            .iter()
            .find(|a| a.horizon == h && a.model == "naive")
            .and_then(|a| a.mase);
        let mut table = Table::new(&[
            "model",
            "MASE",
            "÷naive",
            "MAPE %",
            "dir_acc",
            "n_dir",
            "cov80",
            "cov80 95% band",
            "width80",
            "failures",
        ]);
        let ours = report.aggregate.iter().map(|a| (a, ""));
        let theirs = reference.iter().map(|a| (a, " (ref)"));
        for (a, tag) in ours.chain(theirs).filter(|(a, _)| a.horizon == h) {
            table.row(vec![
                format!("{}{tag}", a.model),
                num(a.mase, 4),
                num(a.mase.zip(naive).map(|(m, n)| m / n), 3),
                num(a.mape, 3),
                num(a.dir_acc, 3),
                a.n_dir.to_string(),
                num(a.coverage80, 3),
                a.coverage80_band
                    .map_or_else(|| "-".to_owned(), |[lo, hi]| format!("{lo:.3}–{hi:.3}")),
                num(a.width80_rel, 4),
                a.failures.to_string(),
            ]);
        }
        out.push_str(&format!(
            "\nhorizon {h} ({} series, mean over series)\n{}",
            report.series.len(),
            table.render()
        ));
    }
    let mut timing = Table::new(&["model", "fits", "fit+predict s", "ms/fit"]);
    for t in &report.timing.models {
        timing.row(vec![
            t.model.name().to_owned(),
            t.fits.to_string(),
            format!("{:.3}", t.seconds),
            format!("{:.3}", t.ms_per_fit),
        ]);
    }
    out.push_str(&format!(
        "\ntiming ({} threads on {} cores; fit+predict summed over origins; wall {:.2} s)\n{}",
        report.timing.threads,
        report.timing.cores,
        report.timing.wall_seconds,
        timing.render()
    ));
    out
}
