//! `cargo xtask bench-api`: latency of the prediction API over loopback.
//!
//! Starts `xtask serve` as a separate process on a seeded store, measures
//! the cold start (process start to the first successful /predict answer),
//! then drives a fixed request rate over keep-alive connections for a few
//! seconds and prints p50/p90/p99/max. A benchmark: it prints, it asserts nothing.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use stockcast::backtest::Protocol;
use stockcast::config::PipelineConfig;
use stockcast::models::ModelKind;
use stockcast::pipeline::LocalPipeline;
use stockcast::steps::{RunInput, Source};
use stockcast::store::Store;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::flags;
use crate::table::Table;

impl flags::BenchApi {
    pub fn run(self) -> anyhow::Result<()> {
        let runtime =
            tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
        let seeded = tempfile_dir()?;
        let root = seeded.join("store");
        runtime.block_on(seed(&root, self.model))?;
        let body = format!(
            r#"{{"symbol":"AAPL","model_type":"{}","days_ahead":5}}"#,
            self.model
        );
        let body: &'static str = body.leak();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let exe = std::env::current_exe().context("cannot find the xtask binary")?;
        let started = Instant::now();
        let mut child = Command::new(exe)
            .args(["serve", "--port", &port.to_string(), "--root"])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("failed to start xtask serve")?;
        let result = runtime.block_on(async {
            let cold = loop {
                if let Ok(mut conn) = Connection::open(port).await
                    && let Ok(200) = conn.post("/predict", body).await
                {
                    break started.elapsed();
                }
                if started.elapsed() > Duration::from_secs(30) {
                    bail!("the server did not answer within 30 s");
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            };
            let latencies = load(
                body,
                port,
                self.rps,
                Duration::from_secs(self.seconds),
                self.connections,
            )
            .await?;
            Ok((cold, latencies))
        });
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&seeded);
        let (cold, mut latencies) = result?;
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        let profile = if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        };
        println!(
            "POST /predict (AAPL {}, 5 days) over loopback, {profile} build, {} requests at {} req/s on {} connections",
            self.model,
            latencies.len(),
            self.rps,
            self.connections
        );
        let mut table = Table::new(&["metric", "ms"]);
        table.row(vec![
            "cold start (spawn → first /predict answer)".into(),
            format!("{:.2}", cold.as_secs_f64() * 1e3),
        ]);
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            table.row(vec![format!("warm {name}"), format!("{:.3}", pick(q))]);
        }
        table.row(vec!["warm max".into(), format!("{:.3}", pick(1.0))]);
        print!("{}", table.render());
        Ok(())
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("stockcast-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Trains `model` for AAPL into a fresh store. Serving is what is
/// measured, so the backtest behind the version is two origins long.
async fn seed(root: &std::path::Path, model: ModelKind) -> anyhow::Result<()> {
    let pipeline = LocalPipeline {
        store: Store::local(root)?,
        config: PipelineConfig {
            protocol: Protocol {
                test_rows: 31,
                spacing: 10,
                ..Protocol::default()
            },
            ..PipelineConfig::default()
        },
        sample_dir: "data/sample".into(),
        git_commit: None,
    };
    let input = RunInput {
        run_id: "bench".into(),
        env: "bench".into(),
        symbols: vec!["AAPL".into()],
        models: vec![ModelKind::Naive, model],
        horizons: vec![1, 5, 21],
        source: Source::Sample,
        sentiment: None,
    };
    pipeline.run(input, Arc::new(|| {})).await?;
    Ok(())
}

/// Paces requests at `rps` in total over `connections` keep-alive
/// connections and returns every latency in milliseconds.
async fn load(
    body: &'static str,
    port: u16,
    rps: u32,
    duration: Duration,
    connections: u32,
) -> anyhow::Result<Vec<f64>> {
    let per_connection = Duration::from_secs_f64(f64::from(connections) / f64::from(rps.max(1)));
    let mut tasks = Vec::new();
    for c in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(port).await?;
            // Stagger connections so the load is spread over each interval.
            tokio::time::sleep(per_connection * c / connections.max(1)).await;
            let mut ticker = tokio::time::interval(per_connection);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let end = Instant::now() + duration;
            let mut latencies = Vec::new();
            while Instant::now() < end {
                ticker.tick().await;
                let t0 = Instant::now();
                let status = conn.post("/predict", body).await?;
                if status != 200 {
                    bail!("the server answered {status}");
                }
                latencies.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, anyhow::Error>(latencies)
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

    async fn post(&mut self, path: &str, body: &str) -> anyhow::Result<u16> {
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
        Ok(status)
    }
}
