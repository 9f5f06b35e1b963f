//! `cargo xtask local`, `models`, `rollback` and the local `approve` /
//! `reject`: the pipeline and the registry on this machine, no AWS account
//! needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use stockcast::config::PipelineConfig;
use stockcast::ids::{RunId, Symbol};
use stockcast::layout::{self, VersionFile};
use stockcast::models::ModelKind;
use stockcast::pipeline::{LocalPipeline, PipelineError, RunReport, new_run_id};
use stockcast::registry::{
    HorizonMetrics, ProductionEntry, Registry, StagingRecord, VersionMetrics,
};
use stockcast::steps::{RunInput, Severity, Source, Verdict};
use stockcast::store::Store;
use stockcast::synthetic::{self, SyntheticUniverse};
use stockcast::train;

use crate::flags::{self, Universe};
use crate::table::{Table, num};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("failed to start the async runtime")
}

fn open_store(root: &str) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("failed to open the store {root}"))
}

impl flags::StoreRoot {
    pub fn open(&self) -> anyhow::Result<Store> {
        open_store(&self.root)
    }
}

impl flags::StoreFlags {
    /// The store and a runtime to use it on: the deployed environment's data
    /// bucket with `--env` (the AWS commands' credentials), else `--root`.
    pub fn open(&self) -> anyhow::Result<(Store, tokio::runtime::Runtime)> {
        match &self.env {
            #[cfg(feature = "aws")]
            Some(env) => crate::aws::data_store(flags::Aws {
                env: flags::EnvName { name: env.clone() },
                connection: self.connection.clone(),
            }),
            #[cfg(not(feature = "aws"))]
            Some(_) => unreachable!("--env re-runs with the aws feature"),
            None => Ok((self.store.open()?, runtime()?)),
        }
    }
}

impl flags::Local {
    pub fn run(self) -> anyhow::Result<()> {
        let started = Instant::now();
        let universe = self.universe()?;
        let symbols = &universe.symbols;
        let mut config = PipelineConfig::default();
        config.gate.approval = self.approval;
        let store = self.store.open()?;
        let pipeline = LocalPipeline {
            store: store.clone(),
            config: config.clone(),
            sample_dir: universe.sample_dir.clone(),
            git_commit: crate::process::git_commit(),
        };
        let input = RunInput {
            run_id: new_run_id("local")?,
            env: "local".into(),
            symbols: symbols.clone(),
            models: self.models.clone(),
            horizons: config.protocol.horizons.clone(),
            source: Source::Sample,
            sentiment: None,
        };
        eprintln!(
            "running {} on {} symbols × {} models into {}",
            input.run_id,
            symbols.len(),
            self.models.len(),
            store.describe()
        );
        let total = train::count_fits(symbols.len(), &self.models, &config.protocol);
        let report = match with_progress(&pipeline, input, total)? {
            Ok(report) => report,
            Err(PipelineError::QualityFailed(report)) => {
                print_ingest(&report);
                bail!("{}", PipelineError::QualityFailed(report));
            }
            Err(e) => return Err(e.into()),
        };
        print_ingest(&report);
        print_quality(&report);
        print!(
            "\n{}",
            summary(&report, &candidate_metrics(&store, &report)?)
        );
        println!(
            "\nrun {} took {}; manifest: {}/runs/{}/manifest.json",
            report.run_id,
            crate::usage::describe(started.elapsed(), crate::usage::so_far()),
            store.describe(),
            report.run_id
        );
        self.print_where_next(&store, &report);
        if let Some(uri) = &self.mlflow {
            mirror_or_warn(store, uri)?;
        }
        Ok(())
    }

    /// The symbols asked for (by --symbols, or by --universe), or every
    /// file of the sample folder, and where their prices are.
    fn universe(&self) -> anyhow::Result<RunUniverse> {
        let in_sample = |symbols| RunUniverse {
            symbols,
            sample_dir: self.sample.dir.clone(),
            _generated: None,
        };
        match (&self.universe, self.seed) {
            (Some(Universe::Synthetic { count }), seed) => {
                synthetic(*count, seed.unwrap_or(DEFAULT_SEED))
            }
            (Some(Universe::File(path)), Some(_)) => bail!(
                "--seed seeds a synthetic universe, but --universe names the file {}",
                path.display()
            ),
            (Some(Universe::File(path)), None) => Ok(in_sample(read_universe_file(path)?)),
            (None, _) if !self.symbols.is_empty() => Ok(in_sample(self.symbols.clone())),
            (None, _) => {
                let symbols = stockcast::series::load_folder(&self.sample.dir)
                    .context("failed to read the sample folder")?
                    .into_iter()
                    .map(|s| Symbol::new(s.name))
                    .collect::<Result<_, _>>()
                    .context("a sample file's name is not a symbol")?;
                Ok(in_sample(symbols))
            }
        }
    }

    /// Where the run's plots are, and how to answer a run staged for approval.
    fn print_where_next(&self, store: &Store, report: &RunReport) {
        if let Some(c) = report.train.as_ref().and_then(|t| t.candidates.first()) {
            println!(
                "plots: {}/{} (and beside every version's metrics)",
                store.describe(),
                layout::version_file(&c.symbol, c.model, &c.version, VersionFile::PlotPng)
            );
        }
        if report.gate.as_ref().is_some_and(|g| g.needs_approval) {
            println!(
                "staged for approval: `cargo xtask approve --root {root} {run}` promotes them, `cargo xtask reject --root {root} {run}` clears them",
                root = self.store.root,
                run = report.run_id
            );
        }
    }
}

/// The seed of `--universe synthetic:N` without `--seed`.
const DEFAULT_SEED: u64 = 1;

/// A run's symbols and the folder the sample source reads their prices from.
struct RunUniverse {
    symbols: Vec<Symbol>,
    sample_dir: PathBuf,
    /// A synthetic universe's price files, removed when the run ends (the
    /// store keeps what was ingested, raw and curated).
    _generated: Option<tempfile::TempDir>,
}

/// Writes `count` synthetic series ending today as price files in a
/// temporary folder, which the run then ingests as it ingests the sample:
/// through the real ingest step, raw bytes and curated merge included.
fn synthetic(count: usize, seed: u64) -> anyhow::Result<RunUniverse> {
    let started = Instant::now();
    let today = chrono::Utc::now().date_naive();
    let universe = SyntheticUniverse::new(count, seed, synthetic::DEFAULT_ROWS, today)?;
    let folder = tempfile::Builder::new()
        .prefix("stockcast-synthetic-")
        .tempdir()
        .context("failed to create a folder for the synthetic prices")?;
    for (symbol, series) in universe.series() {
        let path = folder.path().join(format!("{symbol}.csv"));
        std::fs::write(&path, series.to_csv())
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    eprintln!(
        "generated {count} synthetic series (seed {seed}, {} trading days each, to {today}) in {:.1} s",
        synthetic::DEFAULT_ROWS,
        started.elapsed().as_secs_f64()
    );
    Ok(RunUniverse {
        symbols: universe.symbols(),
        sample_dir: folder.path().to_path_buf(),
        _generated: Some(folder),
    })
}

/// The symbols of a universe file, one a line (blank lines and `#`
/// comments skipped); a bad or repeated symbol is an error naming its line.
fn read_universe_file(path: &Path) -> anyhow::Result<Vec<Symbol>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the universe file {}", path.display()))?;
    let mut symbols: Vec<(Symbol, usize)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), index + 1);
        let content = line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let symbol = Symbol::new(content).with_context(|| at.clone())?;
        if let Some((_, first)) = symbols.iter().find(|(s, _)| *s == symbol) {
            bail!("{at}: {symbol} is already on line {first}");
        }
        symbols.push((symbol, index + 1));
    }
    if symbols.is_empty() {
        bail!("the universe file {} lists no symbol", path.display());
    }
    Ok(symbols.into_iter().map(|(s, _)| s).collect())
}

/// Runs the pipeline with a bar of the backtest's `total` fits.
fn with_progress(
    pipeline: &LocalPipeline,
    input: RunInput,
    total: usize,
) -> anyhow::Result<Result<RunReport, PipelineError>> {
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("training {bar:40} {pos}/{len} backtest fits, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let tick = bar.clone();
    let result = runtime()?.block_on(pipeline.run(input, Arc::new(move || tick.inc(1))));
    bar.finish_and_clear();
    Ok(result)
}

/// The metrics of every candidate the run trained, for its summary.
fn candidate_metrics(store: &Store, report: &RunReport) -> anyhow::Result<Vec<VersionMetrics>> {
    let registry = Registry::new(store.clone());
    let candidates = report.train.as_ref().map_or(&[][..], |t| &t.candidates[..]);
    Ok(runtime()?.block_on(async {
        let mut all = Vec::new();
        for c in candidates {
            all.push(registry.metrics(&c.symbol, c.model, &c.version).await?);
        }
        Ok::<_, stockcast::registry::RegistryError>(all)
    })?)
}

/// Mirrors the store into MLflow, warning on failure: the store is the
/// source of truth, and a run that MLflow missed is still a good run,
/// which the next sync catches up.
fn mirror_or_warn(store: Store, uri: &str) -> anyhow::Result<()> {
    let mirrored = crate::mlflow::mirror(
        &runtime()?,
        store,
        uri,
        &stockcast::mlflow::experiment_name("local"),
    );
    if let Err(e) = mirrored {
        eprintln!(
            "warning: {e:#}\n  the run is complete in the store; mirror it later with `cargo xtask mlflow --tracking-uri {uri}`"
        );
    }
    Ok(())
}

/// The data checks' warnings, and the symbols they skipped.
fn print_quality(report: &RunReport) {
    for i in &report.quality.issues {
        let what = match i.severity {
            Severity::Error => "skipped",
            Severity::Warning => "warning",
        };
        eprintln!("{what}: {} {:?}: {}", i.symbol, i.check, i.detail);
    }
    if !report.quality.skipped.is_empty() {
        eprintln!(
            "the data checks skipped {}; the other symbols trained",
            report.quality.skipped.join(", ")
        );
    }
}

fn print_ingest(report: &RunReport) {
    for i in &report.ingest {
        eprintln!(
            "ingested {}: {} new rows, {} corrected, through {}",
            i.symbol,
            i.rows_added,
            i.rows_corrected,
            i.last_date.map_or("-".to_owned(), |d| d.to_string())
        );
    }
}

fn mase_at(rows: &[HorizonMetrics], h: usize) -> Option<f64> {
    rows.iter().find(|m| m.horizon == h).and_then(|m| m.mase)
}

/// MASE at h1, h5 and h21, each beside naive's on the same origins.
fn mase_cells(m: Option<&VersionMetrics>) -> Vec<String> {
    [1, 5, 21]
        .into_iter()
        .flat_map(|h| {
            [
                num(m.and_then(|m| mase_at(&m.horizons, h)), 4),
                num(m.and_then(|m| mase_at(&m.naive, h)), 4),
            ]
        })
        .collect()
}

/// The run's table: MASE per horizon beside naive's, and the gate's decision.
fn summary(report: &RunReport, metrics: &[VersionMetrics]) -> String {
    let mut table = Table::new(&[
        "symbol",
        "model",
        "MASE h1",
        "naive",
        "MASE h5",
        "naive",
        "MASE h21",
        "naive",
        "dir_acc h5",
        "decision",
    ]);
    let decisions = report.gate.as_ref().map_or(&[][..], |g| &g.decisions[..]);
    for d in decisions {
        let m = metrics
            .iter()
            .find(|m| m.version == d.version && m.symbol == d.symbol && m.model == d.model);
        let dir_acc = m
            .and_then(|m| m.horizons.iter().find(|x| x.horizon == 5))
            .and_then(|x| x.dir_acc);
        let verdict = match d.decision {
            Verdict::Promote => "promote",
            Verdict::Reject => "reject",
            Verdict::NeedsApproval => "needs approval",
        };
        let mut row = vec![d.symbol.to_string(), d.model.name().to_owned()];
        row.extend(mase_cells(m));
        row.extend([num(dir_acc, 3), verdict.to_owned()]);
        table.row(row);
    }
    let mut out = table.render();
    for d in decisions.iter().filter(|d| d.decision == Verdict::Reject) {
        out.push_str(&format!(
            "rejected {} {}: {}\n",
            d.symbol,
            d.model,
            d.reasons.join("; ")
        ));
    }
    if let Some(train) = &report.train {
        for f in &train.failures {
            out.push_str(&format!("failed {} {}: {}\n", f.symbol, f.model, f.reason));
        }
    }
    out
}

impl flags::Models {
    pub fn run(self) -> anyhow::Result<()> {
        let registry = Registry::new(self.store.open()?);
        let (entries, staged) = runtime()?.block_on(async {
            let entries = registry.production_models().await?;
            let staged = registry.staged_models().await?;
            Ok::<_, stockcast::registry::RegistryError>((entries, staged))
        })?;
        if entries.is_empty() && staged.is_empty() {
            println!(
                "no production models in {}: run `cargo xtask local` first",
                registry.store().describe()
            );
            return Ok(());
        }
        print!("{}", models_table(&entries, &staged).render());
        for run in staged
            .iter()
            .map(|(_, _, r)| &r.run_id)
            .collect::<std::collections::BTreeSet<_>>()
        {
            println!(
                "run {run} waits for approval: `cargo xtask approve --root {root} {run}` or `reject`",
                root = self.store.root
            );
        }
        Ok(())
    }
}

/// One row per production model (its metrics beside naive's and any
/// staged version), and one per staged model never in production.
fn models_table(
    entries: &[ProductionEntry],
    staged: &[(Symbol, ModelKind, StagingRecord)],
) -> Table {
    let mut table = Table::new(&[
        "symbol",
        "model",
        "version",
        "MASE h1",
        "naive h1",
        "MASE h5",
        "naive h5",
        "MASE h21",
        "naive h21",
        "data through",
        "since",
        "staging",
    ]);
    let staged_version = |symbol: &Symbol, model| {
        staged
            .iter()
            .find(|(s, m, _)| s == symbol && *m == model)
            .and_then(|(_, _, r)| r.version.as_ref().map(|v| v.to_string()))
    };
    for e in entries {
        let m = Some(&e.metrics);
        let mut row = vec![
            e.symbol.to_string(),
            e.model.name().to_owned(),
            e.alias.version.to_string(),
        ];
        row.extend(mase_cells(m));
        row.extend([
            m.and_then(|m| m.data_through)
                .map_or("-".to_owned(), |d| d.to_string()),
            e.alias.updated_at.clone(),
            staged_version(&e.symbol, e.model).unwrap_or_else(|| "-".to_owned()),
        ]);
        table.row(row);
    }
    // A staged model that was never in production still gets a row.
    for (symbol, model, record) in staged {
        if entries
            .iter()
            .any(|e| &e.symbol == symbol && e.model == *model)
        {
            continue;
        }
        let mut row = vec![symbol.to_string(), model.name().to_owned(), "-".to_owned()];
        row.extend(mase_cells(None));
        row.extend([
            "-".to_owned(),
            "-".to_owned(),
            record
                .version
                .as_ref()
                .map_or("-".to_owned(), |v| v.to_string()),
        ]);
        table.row(row);
    }
    table
}

impl flags::Answer {
    /// Answers a run of `cargo xtask local` staged in `--root`.
    pub fn run_local(self, approve: bool) -> anyhow::Result<()> {
        let root = self.root.as_deref().unwrap_or(".stockcast");
        let store = open_store(root)?;
        let run_id = RunId::new(self.execution.as_str()).context(
            "a local run is answered by its run id (`cargo xtask models` lists the waiting ones)",
        )?;
        let answer = stockcast::steps::ApprovalAnswer {
            run_id,
            approve,
            reason: self.reason.clone(),
            by: std::env::var("USER").ok(),
        };
        let outcome = runtime()?.block_on(stockcast::approval::answer_local(&store, &answer))?;
        for p in &outcome.promoted {
            println!(
                "{} {}: production is now {} (was {})",
                p.symbol,
                p.model,
                p.version,
                p.previous.as_ref().map_or("-", |v| v.as_str())
            );
        }
        if approve {
            println!("run {}: approved", self.execution);
        } else {
            println!(
                "run {}: rejected; staging cleared for {} version(s), production is unchanged",
                self.execution,
                outcome.withdrawn.len()
            );
        }
        Ok(())
    }
}

impl flags::Rollback {
    pub fn run(self) -> anyhow::Result<()> {
        let (store, runtime) = self.store.open()?;
        let registry = Registry::new(store);
        let moved = runtime.block_on(registry.rollback(
            &self.symbol,
            self.model,
            self.to.as_ref(),
            &self.reason,
        ))?;
        println!(
            "{} {}: production is now {} (was {})",
            moved.symbol,
            moved.model,
            moved.version,
            moved.previous.as_ref().map_or("-", |v| v.as_str())
        );
        Ok(())
    }
}

impl flags::Ingest {
    pub fn run(self) -> anyhow::Result<()> {
        stockcast::logging::init_human();
        let store = self.store.open()?;
        let vendors = match (self.source, self.sentiment) {
            (Source::Sample, None) => None,
            _ => Some(stockcast::vendors::VendorClient::new(
                stockcast::vendors::VendorConfig::from_env(),
            )?),
        };
        let context = stockcast::ingest::IngestContext {
            store: store.clone(),
            sample_dir: self.sample.dir.clone(),
            vendors,
        };
        let runtime = runtime()?;
        let mut failed = 0;
        for symbol in &self.symbols {
            let input = stockcast::steps::IngestInput {
                run_id: new_run_id("ingest")?,
                symbol: symbol.clone(),
                source: self.source,
                sentiment: self.sentiment,
            };
            match runtime.block_on(stockcast::ingest::ingest(&context, &input)) {
                Ok(out) => {
                    println!(
                        "{symbol}: {} new rows, {} corrected, through {} (raw: {})",
                        out.rows_added,
                        out.rows_corrected,
                        out.last_date.map_or("-".to_owned(), |d| d.to_string()),
                        out.raw_key
                    );
                    for w in &out.warnings {
                        println!("  warning: {w}");
                    }
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("{symbol}: {e}");
                }
            }
        }
        if failed > 0 {
            bail!("{failed} of {} symbols failed", self.symbols.len());
        }
        Ok(())
    }
}
