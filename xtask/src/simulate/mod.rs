//! `cargo xtask simulate`: executes the rendered state machines in a real
//! Amazon States Language interpreter (npm `aws-local-stepfunctions`), with
//! every Task bound to the project's real step code, over the success path
//! and the failure paths, and checks the path of states each scenario took
//! and what it left in the store (GitHub issue 8).
//!
//! A definition can validate and still be wired wrong (a ResultPath that
//! drops the run id, a Retry on the wrong error name, a Choice that never
//! reaches promotion); only running it shows that. The interpreter runs
//! tests/simulate/runner.mjs, which binds each Task by its resource:
//! Lambda tasks run `cargo xtask step <ingest|gate|monitor>` with the
//! payload on stdin, the Batch task runs the real `stockcast-train` binary
//! under an emulation of the job definition's retry strategy, SNS and
//! startExecution are recorded. Retry intervals are 0 here only; the
//! rendered definitions are never changed.

mod bind;
mod check;
mod interpreter;
mod map_run;
mod path;
#[cfg(test)]
mod runner_tests;
mod scenarios;
mod seed;
mod start;
mod vendor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value as Json, json};
use stockcast::config::{Approval as ApprovalMode, GatePolicy, PipelineConfig};
use stockcast::series::Bar;
use stockcast::steps::Source;
use stockcast::store::Store;

use crate::{flags, process, tools};
use check::{Outcome, Snapshot};
use scenarios::{Prices, Scenario, StoreSeed, Universe};

/// The job's log line that shows it is inside its backtest, when the
/// Spot interruption is sent.
const BACKTEST_LOG: &str = "backtest progress";
/// Rows a Yahoo chart request (`range=3mo`) answers with.
const YAHOO_ROWS: usize = 63;
/// The data stack's bucket (stacks/data.yaml), simulated by the store folder.
const DATA_BUCKET: &str = "DataBucket";

impl flags::Simulate {
    pub fn run(self) -> anyhow::Result<()> {
        let all = scenarios::all();
        if self.list {
            for s in &all {
                println!("{:<24} {:<8} {}", s.name, s.workflow.name(), s.about);
            }
            return Ok(());
        }
        let selected: Vec<&Scenario> = if self.scenario.is_empty() {
            all.iter().collect()
        } else {
            self.scenario
                .iter()
                .map(|name| {
                    all.iter().find(|s| s.name == name).with_context(|| {
                        let names: Vec<&str> = all.iter().map(|s| s.name).collect();
                        format!(
                            "no scenario {name:?}; the scenarios are {}",
                            names.join(", ")
                        )
                    })
                })
                .collect::<anyhow::Result<_>>()?
        };
        let simulation = Simulation::prepare(&self.env.name)?;
        let started = Instant::now();
        let mut failed = Vec::new();
        for scenario in selected.iter().copied() {
            let report = simulation.run(scenario);
            report.print();
            if !report.passed() {
                failed.push(scenario.name);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        if !failed.is_empty() {
            bail!(
                "{} of {} scenarios failed ({}) in {seconds:.1} s; each one's store, job and logs are in {}",
                failed.len(),
                selected.len(),
                failed.join(", "),
                simulation.work.display()
            );
        }
        println!(
            "simulate: {} scenarios passed in {seconds:.1} s ({} environment)",
            selected.len(),
            self.env.name
        );
        Ok(())
    }
}

/// Everything shared by the scenarios of one run.
struct Simulation {
    env: stockcast::infra::Environment,
    bound: bind::Bound,
    node: PathBuf,
    interpreter: PathBuf,
    xtask: PathBuf,
    train: PathBuf,
    runner: PathBuf,
    work: PathBuf,
    runtime: tokio::runtime::Runtime,
    /// A store trained once by the local pipeline, copied into the
    /// scenarios that need production versions.
    trained: Mutex<Option<PathBuf>>,
}

fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() {
        path
    } else {
        std::env::current_dir()?.join(path)
    })
}

impl Simulation {
    fn prepare(env: &str) -> anyhow::Result<Simulation> {
        let (node, interpreter) = interpreter()?;
        let target = absolute(tools::tools_dir())?
            .parent()
            .map(Path::to_path_buf)
            .context("the tools folder has no parent")?;
        let work = target.join("simulate").join(env);
        let [xtask, train] = pin_step_binaries(&work.join("bin"))?;
        let rendered =
            stockcast::infra::render(&stockcast::infra::Sources::in_project(Path::new(".")), env)
                .with_context(|| format!("rendering the {env} environment failed"))?;
        let bound = bind::bind(&rendered)?;
        Ok(Simulation {
            env: rendered.env,
            bound,
            node,
            interpreter,
            xtask,
            train,
            runner: absolute(PathBuf::from("tests/simulate/runner.mjs"))?,
            work,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start the async runtime")?,
            trained: Mutex::new(None),
        })
    }

    fn run(&self, scenario: &Scenario) -> Report {
        let started = Instant::now();
        let dir = self.work.join(scenario.name);
        let outcome = self.execute(scenario, &dir);
        let mut report = Report {
            name: scenario.name,
            seconds: 0.0,
            path: String::new(),
            expected: scenario.path.clone(),
            problems: Vec::new(),
            dir,
        };
        match outcome {
            Ok(outcome) => {
                report.path = path::path(&outcome.result);
                if report.path != scenario.path {
                    report.problems.push("the path of states differs".into());
                }
                let status = match &outcome.result.error {
                    Some(error) if outcome.result.status == "FAILED" => format!("FAILED {error}"),
                    _ => outcome.result.status.clone(),
                };
                let expected = scenario
                    .error
                    .map_or("SUCCEEDED".to_owned(), |e| format!("FAILED {e}"));
                if status != expected {
                    report.problems.push(format!(
                        "the execution ended {status}, expected {expected}{}",
                        outcome
                            .result
                            .cause
                            .as_deref()
                            .map(|c| format!(" (cause: {c})"))
                            .unwrap_or_default()
                    ));
                }
                report.problems.extend(check::common(&outcome));
                report.problems.extend((scenario.check)(&outcome));
            }
            Err(e) => report.problems.push(format!("{e:#}")),
        }
        report.seconds = started.elapsed().as_secs_f64();
        report
    }

    /// The settings the deployed steps get: the environment's gate policy,
    /// with automatic approval unless the scenario changes it (prod's is
    /// manual, and only the approval scenarios are about approval).
    fn config(&self, adjust: fn(&mut GatePolicy)) -> PipelineConfig {
        let mut gate = self.env.gate.clone();
        gate.approval = ApprovalMode::Automatic;
        adjust(&mut gate);
        PipelineConfig {
            gate,
            ..PipelineConfig::default()
        }
    }

    /// The store every Trained scenario starts from, made once.
    fn trained_store(&self) -> anyhow::Result<PathBuf> {
        let mut cached = self
            .trained
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned lock"))?;
        if let Some(dir) = cached.as_ref() {
            return Ok(dir.clone());
        }
        let dir = self.work.join("_trained");
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::local(&dir.join("store"))?;
        let run = test_support::seed::SampleRun {
            run_id: "seed-training",
            env: &self.env.name,
            symbols: &scenarios::SYMBOLS,
            models: &scenarios::MODELS,
            config: self.config(|_| {}),
        };
        self.runtime.block_on(test_support::seed::trained(
            &store,
            Path::new("data/sample"),
            run,
        ))?;
        *cached = Some(dir.join("store"));
        Ok(dir.join("store"))
    }

    /// Runs one scenario in `dir`: its store and sample folder, the fake
    /// vendor, the job for the runner, the execution, and what it left.
    fn execute(&self, scenario: &Scenario, dir: &Path) -> anyhow::Result<Outcome> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        let store_dir = dir.join("store");
        let sample_dir = dir.join("sample");
        std::fs::create_dir_all(&store_dir)?;
        let prices = scenario_prices(scenario)?;
        seed::write_sample(&sample_dir, &prices)?;
        let store = Store::local(&store_dir)?;
        self.seed_store(scenario, &store, dir, &prices)?;
        // Yahoo throttles until the step's own retries give up once, so the
        // workflow's Retry is what recovers.
        let throttles = stockcast::vendors::VendorConfig::from_env().retry.attempts as usize;
        let vendor = fake_vendor(scenario, &prices, throttles)?;
        let start = self.start(scenario)?;
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&start.config)?)?;
        let drift_threshold = self.drift_threshold();
        let paths = StepPaths {
            store: &store_dir,
            sample: &sample_dir,
            config: &config_path,
            drift_threshold,
            yahoo_url: vendor.as_ref().map(|v| v.url.as_str()),
            mlflow_uri: scenario.mlflow_down.then(unused_local_url).transpose()?,
        };
        let job_path = dir.join("job.json");
        let job = self.job(scenario, &start, &paths, &dir.join("logs"))?;
        std::fs::write(&job_path, serde_json::to_vec_pretty(&job)?)?;
        let symbols = scenario.universe.symbols();
        let before = Snapshot::take(&store_dir, &symbols);
        let result = self.interpret(&job_path, dir, &store, &start.run, scenario.answer)?;
        Ok(Outcome {
            after: Snapshot::take(&store_dir, &symbols),
            before,
            store: store_dir,
            input: start.run,
            given: start.given,
            result,
            requests: vendor
                .as_ref()
                .map(vendor::FakeYahoo::requests)
                .unwrap_or_default(),
            throttles,
            full_rows: prices.iter().map(|(s, b)| (s.clone(), b.len())).collect(),
            execution_id: start.execution_id,
            task_token: start.task_token,
            training_arn: self
                .bound
                .machine(scenarios::Workflow::Training.logical_id())?
                .arn
                .clone(),
            drift_threshold,
        })
    }

    /// What the scenario's store holds before the execution.
    fn seed_store(
        &self,
        scenario: &Scenario,
        store: &Store,
        dir: &Path,
        prices: &BTreeMap<String, Vec<Bar>>,
    ) -> anyhow::Result<()> {
        // What deploy uploads: the environment's universe.
        let universe = scenario
            .universe
            .symbols()
            .iter()
            .map(stockcast::ids::Symbol::new)
            .collect::<Result<Vec<_>, _>>()?;
        self.runtime.block_on(store.create(
            &stockcast::layout::universe(&self.env.name),
            stockcast::universe::render(&universe),
        ))?;
        match scenario.store {
            StoreSeed::Empty => {}
            StoreSeed::Trained => seed::copy_tree(&self.trained_store()?, &dir.join("store"))?,
            StoreSeed::AllButLast(n) => {
                let older = prices
                    .iter()
                    .map(|(s, bars)| (s.clone(), bars[..bars.len().saturating_sub(n)].to_vec()))
                    .collect();
                self.runtime.block_on(seed::ingest_sample(
                    store,
                    &dir.join("seed-sample"),
                    &older,
                ))?;
            }
        }
        if let Some(bias) = scenario.served_bias {
            for (symbol, bars) in prices {
                self.runtime
                    .block_on(seed::served_forecasts(store, symbol, bars, 30, bias))?;
            }
        }
        Ok(())
    }

    /// The runner's job (tests/simulate/runner.mjs): the definition, its
    /// input and context, and what every Task is bound to.
    fn job(
        &self,
        scenario: &Scenario,
        start: &start::Start<'_>,
        paths: &StepPaths<'_>,
        log_dir: &Path,
    ) -> anyhow::Result<Json> {
        Ok(json!({
            "interpreter": self.interpreter,
            "definition": start.definition,
            "input": start.given,
            "context": {
                "Execution": {"Id": start.execution_id, "Name": scenario.name},
                "Task": {"Token": start.task_token},
            },
            "retry_interval_ms": 0,
            "map_label": "symbol",
            "log_dir": log_dir,
            "lambda": self.lambda_bindings(scenario, paths)?,
            "batch": self.batch_bindings(paths.store, scenario),
            "buckets": self.bucket_folders(paths.store),
            "max_parallel": parallelism(),
            "sns": self.bound.topics.iter().map(|t| (t.clone(), json!({"dir": paths.store.join("notifications")}))).collect::<serde_json::Map<_, _>>(),
            "state_machines": self.bound.machine_arns(),
        }))
    }

    /// The monitor function's drift threshold, as deployed.
    fn drift_threshold(&self) -> f64 {
        self.bound
            .functions
            .values()
            .find_map(|f| {
                f.environment
                    .get("STOCKCAST_DRIFT_MASE_RATIO")?
                    .parse()
                    .ok()
            })
            .unwrap_or(self.env.alarms.drift_mase_ratio)
    }

    fn lambda_bindings(&self, scenario: &Scenario, paths: &StepPaths<'_>) -> anyhow::Result<Json> {
        let run_defaults = serde_json::to_string(&self.run_defaults(scenario)?)?;
        let mut bindings = serde_json::Map::new();
        let text = |p: &Path| p.display().to_string();
        for (arn, function) in &self.bound.functions {
            let step = match function.logical_id.as_str() {
                "IngestFunction" => "ingest",
                "GateFunction" => "gate",
                "MonitorFunction" => "monitor",
                other => bail!("{other} has no local step; bind it in xtask/src/simulate/mod.rs"),
            };
            let mut command = vec![
                text(&self.xtask),
                "step".into(),
                step.into(),
                "--store".into(),
                text(paths.store),
                "--config".into(),
                text(paths.config),
            ];
            match step {
                "ingest" => command.extend(["--sample".into(), text(paths.sample)]),
                "monitor" => command.extend([
                    "--drift-mase-ratio".into(),
                    paths.drift_threshold.to_string(),
                ]),
                _ => {}
            }
            let mut env = BTreeMap::new();
            if function.environment.contains_key("STOCKCAST_RUN_DEFAULTS") {
                env.insert("STOCKCAST_RUN_DEFAULTS", run_defaults.clone());
            }
            if let Some(url) = paths.yahoo_url {
                env.insert("STOCKCAST_YAHOO_URL", url.to_owned());
            }
            if let (Some(uri), "gate") = (&paths.mlflow_uri, step) {
                env.insert("STOCKCAST_MLFLOW_TRACKING_URI", uri.clone());
            }
            bindings.insert(arn.clone(), json!({"command": command, "env": env}));
        }
        Ok(bindings.into())
    }

    /// The data bucket is the scenario's store folder (what a Distributed
    /// Map reads and writes); no other bucket has a folder.
    fn bucket_folders(&self, store: &Path) -> Json {
        self.bound
            .buckets
            .iter()
            .filter(|(_, logical_id)| logical_id.as_str() == DATA_BUCKET)
            .map(|(name, _)| (name.clone(), json!(store)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    fn batch_bindings(&self, store: &Path, scenario: &Scenario) -> Json {
        let bindings: serde_json::Map<String, Json> = self
            .bound
            .jobs
            .iter()
            .map(|(arn, job)| {
                let mut env = job.environment.clone();
                // A folder instead of the bucket; the job prefers it.
                env.insert("STOCKCAST_STORE".into(), store.display().to_string());
                let binding = json!({
                    "command": [self.train],
                    "env": env,
                    "attempts": job.attempts,
                    "evaluate_on_exit": job.evaluate_on_exit,
                    "platform": job.platform,
                    "max_parallel": parallelism(),
                    "interrupt": {
                        "attempts": scenario.interrupt,
                        "after_output": BACKTEST_LOG,
                        "array_index": scenario.interrupt_child,
                    },
                });
                (arn.clone(), binding)
            })
            .collect();
        bindings.into()
    }
}

/// How many Distributed Map children and Batch array children run at once
/// here: the machine's cores (AWS runs far more; the path and the checks do
/// not depend on it).
fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// Node 22 and the interpreter's module, installed on first use.
fn interpreter() -> anyhow::Result<(PathBuf, PathBuf)> {
    let node = tools::ensure_node(tools::STEP_FUNCTIONS_LOCAL)
        .context("installing the Step Functions interpreter failed")?;
    let interpreter = tools::tools_dir()
        .join(tools::STEP_FUNCTIONS_LOCAL.prefix)
        .join("node_modules/aws-local-stepfunctions/build/main.node.esm.js");
    if !interpreter.exists() {
        bail!(
            "{} is missing; remove {}/installed and run `cargo xtask tools`",
            interpreter.display(),
            tools::tools_dir().display()
        );
    }
    Ok((node, interpreter))
}

/// Builds xtask and the training job and links their executables into
/// `bin`: the steps run from links made now, so a later build into the same
/// target folder (another checkout sharing it) cannot swap them mid-run.
/// Returns `[xtask, stockcast-train]`.
fn pin_step_binaries(bin: &Path) -> anyhow::Result<[PathBuf; 2]> {
    eprintln!("simulate: building the step binaries: cargo build -p xtask -p stockcast-train");
    // The executables are taken from cargo's own report (`deps/<name>-<hash>`,
    // unique to this checkout): `target/debug/<name>` is shared by every
    // checkout building into the same target folder, and may be another's.
    let output = process::output(
        "building the step binaries",
        Command::new("cargo")
            .args([
                "build",
                "--quiet",
                "--message-format=json-render-diagnostics",
                "-p",
                "xtask",
                "-p",
                "stockcast-train",
            ])
            .stderr(Stdio::inherit()),
    )?;
    let executables = built_executables(&output.stdout);
    std::fs::create_dir_all(bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let pin = |name: &str| -> anyhow::Result<PathBuf> {
        let built = executables
            .get(name)
            .with_context(|| format!("cargo reported no executable {name}"))?;
        let link = bin.join(name);
        let _ = std::fs::remove_file(&link);
        if std::fs::hard_link(built, &link).is_err() {
            std::fs::copy(built, &link)
                .with_context(|| format!("cannot copy {}", built.display()))?;
        }
        Ok(link)
    };
    Ok([pin("xtask")?, pin("stockcast-train")?])
}

/// Binary target name → executable, from `cargo build --message-format=json`.
fn built_executables(stdout: &[u8]) -> BTreeMap<String, PathBuf> {
    stdout
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Json>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_owned();
            let executable = m["executable"].as_str()?;
            Some((name, PathBuf::from(executable)))
        })
        .collect()
}

/// The prices of the scenario's universe (the symbols the vendor knows),
/// as the scenario changes them.
fn scenario_prices(scenario: &Scenario) -> anyhow::Result<BTreeMap<String, Vec<Bar>>> {
    let mut prices = match scenario.universe {
        Universe::Sample => seed::bundled(&scenarios::SYMBOLS)?,
        Universe::Scale => seed::generated(scenarios::SCALE_SERIES)?,
    };
    match scenario.prices {
        Prices::Bundled => {}
        Prices::Gap { symbols, days } => {
            for &symbol in symbols {
                if let Some(bars) = prices.remove(symbol) {
                    prices.insert(symbol.to_owned(), seed::with_gap(bars, days));
                }
            }
        }
        Prices::Recent => {
            let today = chrono::Utc::now().date_naive();
            for bars in prices.values_mut() {
                *bars = seed::redated(bars, today);
            }
        }
    }
    Ok(prices)
}

/// The fake Yahoo a Yahoo scenario fetches from (the last rows a chart
/// request answers with), throttling the scenario's symbol `throttles` times.
fn fake_vendor(
    scenario: &Scenario,
    prices: &BTreeMap<String, Vec<Bar>>,
    throttles: usize,
) -> anyhow::Result<Option<vendor::FakeYahoo>> {
    if scenario.source != Source::Yahoo {
        return Ok(None);
    }
    let recent = prices
        .iter()
        .map(|(s, bars)| {
            (
                s.clone(),
                bars[bars.len().saturating_sub(YAHOO_ROWS)..].to_vec(),
            )
        })
        .collect();
    let throttled = scenario
        .throttle
        .map(|s| (s.to_owned(), throttles))
        .into_iter()
        .collect();
    Ok(Some(vendor::FakeYahoo::start(&recent, throttled)?))
}

struct StepPaths<'a> {
    store: &'a Path,
    sample: &'a Path,
    config: &'a Path,
    drift_threshold: f64,
    yahoo_url: Option<&'a str>,
    /// Where the gate function looks for MLflow, when the scenario sets one.
    mlflow_uri: Option<String>,
}

/// A URL on 127.0.0.1 that nothing listens on (a port just released).
fn unused_local_url() -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("http://127.0.0.1:{port}"))
}

struct Report {
    name: &'static str,
    seconds: f64,
    path: String,
    expected: String,
    problems: Vec<String>,
    dir: PathBuf,
}

impl Report {
    fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    fn print(&self) {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        println!(
            "{verdict} {:<24} {:>5.1} s  {}",
            self.name, self.seconds, self.path
        );
        if !self.passed() {
            if self.path != self.expected {
                println!("     expected path: {}", self.expected);
            }
            for problem in &self.problems {
                println!("     - {problem}");
            }
            println!("     store, job and logs: {}", self.dir.display());
        }
    }
}
