//! `cargo xtask mlflow`: mirrors a store into an MLflow tracking server
//! (the library's `stockcast::mlflow`), and the same sync at the end of
//! `cargo xtask local --mlflow URL`.

use std::time::Instant;

use anyhow::Context;
use stockcast::mlflow::{Client, SyncReport, experiment_name, sync};
use stockcast::registry::Registry;
use stockcast::store::Store;

use crate::flags;

/// Mirrors `store` into the server at `uri`; prints what it wrote and where to look.
pub fn mirror(
    runtime: &tokio::runtime::Runtime,
    store: Store,
    uri: &str,
    experiment: &str,
) -> anyhow::Result<SyncReport> {
    let client = Client::from_env(uri)?;
    let registry = Registry::new(store);
    eprintln!(
        "mirroring {} into MLflow at {} (experiment {experiment})",
        registry.store().describe(),
        client.uri()
    );
    let started = Instant::now();
    let report = runtime
        .block_on(sync(&client, &registry, experiment))
        .with_context(|| format!("failed to mirror the store into MLflow at {uri}"))?;
    print!("{report}");
    println!(
        "mlflow sync took {:.1} s{}",
        started.elapsed().as_secs_f64(),
        if report.counts.wrote_anything() {
            ""
        } else {
            " and wrote nothing: MLflow was up to date"
        }
    );
    Ok(report)
}

impl flags::Mlflow {
    pub fn run(self) -> anyhow::Result<()> {
        let experiment = self
            .experiment
            .clone()
            .unwrap_or_else(|| experiment_name(self.store.env.as_deref().unwrap_or("local")));
        let (store, runtime) = self.store.open()?;
        mirror(&runtime, store, &self.tracking_uri, &experiment).map(|_| ())
    }
}
