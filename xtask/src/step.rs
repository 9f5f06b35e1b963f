//! `cargo xtask step`: one workflow task's code on one event.

use std::io::Read;

use anyhow::{Context, bail};
use serde_json::Value;
use stockcast::config::PipelineConfig;
use stockcast::functions::{NoAws, StepEnv, gate_event, ingest_event, monitor_event};
use stockcast::vendors::{VendorClient, VendorConfig};

use crate::flags;

impl flags::Step {
    pub fn run(self) -> anyhow::Result<()> {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the event from stdin")?;
        let event: Value = serde_json::from_str(&text).context("the event on stdin is not JSON")?;
        let config = match &self.config {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not a pipeline config", path.display()))?
            }
            None => PipelineConfig::default(),
        };
        let mut env = StepEnv {
            store: self.store.open()?,
            config,
            monitor: Default::default(),
            sample_dir: self.sample.dir.clone(),
            vendors: Some(VendorClient::new(VendorConfig::from_env())?),
            mlflow: stockcast::mlflow::MirrorTarget::from_vars(|n| {
                std::env::var(n).ok().filter(|v| !v.is_empty())
            }),
            run_defaults: stockcast::functions::run_defaults_from_env()
                .map_err(anyhow::Error::msg)?,
        };
        if let Some(ratio) = self.drift_mase_ratio {
            env.monitor.drift_mase_ratio = ratio;
        }
        let runtime = tokio::runtime::Runtime::new()?;
        let result = runtime.block_on(async {
            match self.function {
                flags::StepFunction::Ingest => ingest_event(&env, event).await,
                flags::StepFunction::Gate => gate_event(&env, event, &NoAws).await,
                flags::StepFunction::Monitor => monitor_event(&env, event).await,
            }
        });
        match result {
            Ok(output) => {
                println!("{output}");
                Ok(())
            }
            Err(e) => {
                println!(
                    "{}",
                    serde_json::json!({"error": e.name.as_str(), "cause": e.message})
                );
                bail!("{e}")
            }
        }
    }
}
