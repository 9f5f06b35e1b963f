//! `cargo xtask bench-api`: latency of the prediction API over loopback.
//!
//! Starts `xtask serve` as a separate process on a seeded store, measures
//! the cold start (process start to the first successful /predict answer),
//! then drives a fixed request rate over keep-alive connections for a few
//! seconds and prints p50/p90/p99/max. It fails only on an error answer, or,
//! with `--promotions` (`promotions.rs`), on a stale one.

mod promotions;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use stockcast::backtest::Protocol;
use stockcast::config::PipelineConfig;
use stockcast::models::ModelKind;
use stockcast::registry::Registry;
use stockcast::store::Store;
use test_support::seed::SampleRun;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use self::promotions::{History, Promoter};
use crate::table::Table;
use crate::{flags, process};

/// The symbol trained and asked for.
const SYMBOL: &str = "AAPL";

/// How often `--promotions` moves production.
const MOVE_EVERY: Duration = Duration::from_secs(1);

/// One answer of the load.
#[derive(Debug)]
struct Answer {
    sent: Instant,
    received: Instant,
    status: u16,
    /// `model_version` of a 200's body.
    version: Option<String>,
}

impl Answer {
    fn latency_ms(&self) -> f64 {
        (self.received - self.sent).as_secs_f64() * 1e3
    }
}

impl flags::BenchApi {
    pub fn run(self) -> anyhow::Result<()> {
        let runtime =
            tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
        let revalidate = self.revalidate();
        let seeded = tempfile_dir()?;
        let root = seeded.join("store");
        // --promotions moves production between two versions: two runs.
        let runs = if self.promotions { 2 } else { 1 };
        runtime.block_on(seed(&root, self.model, runs))?;
        let promoter = match self.promotions {
            true => Some(runtime.block_on(Promoter::start(
                Registry::new(Store::local(&root)?),
                SYMBOL,
                self.model,
            ))?),
            false => None,
        };
        let body = format!(
            r#"{{"symbol":"{SYMBOL}","model_type":"{}","days_ahead":5}}"#,
            self.model
        );
        let body: &'static str = body.leak();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let started = Instant::now();
        let mut server = serve(&root, port, revalidate)?;
        let result = runtime.block_on(self.measure(port, body, started, promoter));
        let _ = server.kill();
        let _ = server.wait();
        let _ = std::fs::remove_dir_all(&seeded);
        let (cold, answers, history) = result?;
        let profile = if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        };
        println!(
            "POST /predict ({SYMBOL} {}, 5 days) over loopback, {profile} build, {} requests at {} req/s for {} s on {} connections, revalidation every {} s",
            self.model,
            answers.len(),
            self.rps,
            self.seconds,
            self.connections,
            revalidate.as_secs_f64()
        );
        let report = Report::new(&answers, history.as_ref(), revalidate);
        print!("{}", report.table(cold).render());
        report.verdict()
    }

    /// How long the server trusts its cache: as deployed (60 s), or 0.25 s
    /// with --promotions, unless --revalidate-secs says otherwise.
    fn revalidate(&self) -> Duration {
        let default = if self.promotions { 0.25 } else { 60.0 };
        Duration::from_secs_f64(self.revalidate_secs.unwrap_or(default))
    }

    /// The cold start (from `started`, the server's spawn), then the load,
    /// with the promoter moving production meanwhile if there is one.
    async fn measure(
        &self,
        port: u16,
        body: &'static str,
        started: Instant,
        promoter: Option<Promoter>,
    ) -> anyhow::Result<(Duration, Vec<Answer>, Option<History>)> {
        let cold = first_answer(port, body, started).await?;
        let duration = Duration::from_secs(self.seconds);
        let moving = promoter.map(|p| tokio::spawn(p.run(MOVE_EVERY, Instant::now() + duration)));
        let answers = load(body, port, self.rps, duration, self.connections).await?;
        let history = match moving {
            Some(task) => Some(task.await.context("the promoter stopped")??),
            None => None,
        };
        Ok((cold, answers, history))
    }
}

/// `xtask serve` on the seeded store, as a separate process.
fn serve(root: &Path, port: u16, revalidate: Duration) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    Ok(process::spawn(
        "serving the seeded store",
        Command::new(exe)
            .args(["serve", "--port", &port.to_string(), "--root"])
            .arg(root)
            .args(["--revalidate-secs", &revalidate.as_secs_f64().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?)
}

/// The time from `started` to the first successful /predict answer.
async fn first_answer(port: u16, body: &str, started: Instant) -> anyhow::Result<Duration> {
    loop {
        if let Ok(mut conn) = Connection::open(port).await
            && let Ok((200, _)) = conn.post("/predict", body).await
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the server did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// What the load saw, counted.
struct Report {
    /// Latencies of every answer, sorted, in milliseconds.
    latencies: Vec<f64>,
    errors: usize,
    first_error: Option<u16>,
    /// `--promotions` only: answers naming a version that was not production
    /// within the revalidation interval, and the moves made.
    stale: Option<usize>,
    moves: Option<(usize, usize)>,
    /// Answers per version served, in the order the versions were first seen.
    versions: Vec<(String, usize)>,
}

impl Report {
    fn new(answers: &[Answer], history: Option<&History>, revalidate: Duration) -> Report {
        let mut latencies: Vec<f64> = answers.iter().map(Answer::latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        let failed: Vec<&Answer> = answers.iter().filter(|a| a.status != 200).collect();
        let stale = history.map(|history| {
            answers
                .iter()
                .filter(|a| a.status == 200)
                .filter(|a| {
                    let from = a.sent.checked_sub(revalidate).unwrap_or(a.sent);
                    !a.version
                        .as_deref()
                        .is_some_and(|v| history.was_production(v, from, a.received))
                })
                .count()
        });
        let mut versions: Vec<(String, usize)> = Vec::new();
        for version in answers.iter().filter_map(|a| a.version.as_ref()) {
            match versions.iter_mut().find(|(v, _)| v == version) {
                Some((_, n)) => *n += 1,
                None => versions.push((version.clone(), 1)),
            }
        }
        Report {
            versions,
            latencies,
            errors: failed.len(),
            first_error: failed.first().map(|a| a.status),
            stale,
            moves: history.map(|h| (h.promotions, h.rollbacks)),
        }
    }

    fn pick(&self, q: f64) -> f64 {
        self.latencies[((self.latencies.len() as f64 - 1.0) * q).round() as usize]
    }

    fn table(&self, cold: Duration) -> Table {
        let mut table = Table::new(&["metric", "value"]);
        table.row(vec![
            "cold start (spawn → first /predict answer), ms".into(),
            format!("{:.2}", cold.as_secs_f64() * 1e3),
        ]);
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
            table.row(vec![
                format!("warm {name}, ms"),
                format!("{:.3}", self.pick(q)),
            ]);
        }
        table.row(vec!["answers".into(), self.latencies.len().to_string()]);
        table.row(vec![
            "error answers (not 200)".into(),
            self.errors.to_string(),
        ]);
        if let (Some(stale), Some((promotions, rollbacks))) = (self.stale, self.moves) {
            table.row(vec![
                "production moves (promotions / rollbacks)".into(),
                format!("{promotions} / {rollbacks}"),
            ]);
            table.row(vec![
                "answers per version served".into(),
                self.versions
                    .iter()
                    .map(|(v, n)| format!("{v}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]);
            table.row(vec![
                "stale answers (older than the interval allows)".into(),
                stale.to_string(),
            ]);
        }
        table
    }

    fn verdict(&self) -> anyhow::Result<()> {
        if let Some(status) = self.first_error {
            bail!(
                "{} of {} answers were errors (the first: {status})",
                self.errors,
                self.latencies.len()
            );
        }
        if let Some(stale) = self.stale.filter(|&n| n > 0) {
            bail!(
                "{stale} answers named a version that was not production within the revalidation interval before them"
            );
        }
        Ok(())
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("stockcast-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Trains `model` for AAPL into a fresh store, `runs` times (a version
/// each). Serving is what is measured, so the backtest behind a version is
/// two origins long.
async fn seed(root: &std::path::Path, model: ModelKind, runs: usize) -> anyhow::Result<()> {
    let store = Store::local(root)?;
    for run in 1..=runs {
        let run = SampleRun {
            run_id: &format!("bench-{run}"),
            env: "bench",
            symbols: &[SYMBOL],
            models: &[ModelKind::Naive, model],
            config: PipelineConfig {
                protocol: Protocol {
                    test_rows: 31,
                    spacing: 10,
                    ..Protocol::default()
                },
                ..PipelineConfig::default()
            },
        };
        test_support::seed::trained(&store, Path::new("data/sample"), run).await?;
    }
    Ok(())
}

/// Paces requests at `rps` in total over `connections` keep-alive
/// connections for `duration`, and returns every answer. The load is
/// bounded: at most one request per tick, and ticks stop at the end.
async fn load(
    body: &'static str,
    port: u16,
    rps: u32,
    duration: Duration,
    connections: u32,
) -> anyhow::Result<Vec<Answer>> {
    let per_connection = Duration::from_secs_f64(f64::from(connections) / f64::from(rps.max(1)));
    let end = Instant::now() + duration;
    let mut tasks = Vec::new();
    for c in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(port).await?;
            // Stagger connections so the load is spread over each interval.
            tokio::time::sleep(per_connection * c / connections.max(1)).await;
            let mut ticker = tokio::time::interval(per_connection);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut answers = Vec::new();
            while Instant::now() < end {
                ticker.tick().await;
                let sent = Instant::now();
                let (status, body) = conn.post("/predict", body).await?;
                let received = Instant::now();
                let version = (status == 200)
                    .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
                    .flatten()
                    .and_then(|v| v["model_version"].as_str().map(str::to_owned));
                answers.push(Answer {
                    sent,
                    received,
                    status,
                    version,
                });
            }
            Ok::<_, anyhow::Error>(answers)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("a load task stopped")??);
    }
    Ok(all)
}

/// A keep-alive HTTP/1.1 connection that sends JSON POSTs.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    async fn open(port: u16) -> std::io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::new(stream),
        })
    }

    /// Sends one POST and returns the status and the body.
    async fn post(&mut self, path: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await? == 0 {
                bail!("the connection closed mid-response");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await?;
        Ok((status, body))
    }
}
