//! The ingest Lambda, invoked by the Step Functions workflows with a step
//! contract: an `IngestInput` (`{"run_id","symbol","source","sentiment"}`)
//! fetches one symbol's prices, and its news where `sentiment` names a
//! vendor; `{"action":"quality","run_id","symbols"}` runs the data checks.
//! A failure's `errorType` is the step error's name (`Vendor.Throttled`, …),
//! which the workflow's Retry/Catch match.
//!
//! Configuration (read once, at cold start): `STOCKCAST_BUCKET`; the Alpha
//! Vantage key from `ALPHA_VANTAGE_API_KEY`, or from the Secrets Manager
//! secret `ALPHA_VANTAGE_SECRET_ARN` (`{"api_key":"…"}`) through the AWS
//! Parameters and Secrets Lambda extension on localhost:2773.
//! Locally, the same steps run with `cargo xtask ingest`.

use anyhow::Context;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use stockcast::config::QualityPolicy;
use stockcast::functions::{StepEnv, ingest_event};
use stockcast::secrets::{SecretSource, SecretsExtension};
use stockcast::vendors::{VendorClient, VendorConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stockcast::logging::init_json();
    let env = std::sync::Arc::new(step_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let env = env.clone();
        async move {
            ingest_event(&env, event.payload)
                .await
                .map_err(Diagnostic::from)
        }
    }))
    .await
}

async fn step_env() -> anyhow::Result<StepEnv> {
    let mut env = StepEnv::from_env().map_err(anyhow::Error::msg)?;
    let mut vendors = VendorConfig::from_env();
    if vendors.alpha_vantage_key.is_none()
        && let Ok(secret) = std::env::var("ALPHA_VANTAGE_SECRET_ARN")
    {
        vendors.alpha_vantage_key = Some(secret_from_extension(&secret).await?);
    }
    env.vendors = Some(VendorClient::new(vendors)?);
    // The environment file's policy, as rendered into the function.
    env.config.quality =
        QualityPolicy::from_vars(|name| std::env::var(name).ok()).map_err(anyhow::Error::msg)?;
    Ok(env)
}

/// Reads `{"api_key":"…"}` from Secrets Manager through the Parameters and
/// Secrets Lambda extension (a layer of the function), without an SDK.
async fn secret_from_extension(secret_id: &str) -> anyhow::Result<String> {
    let text = SecretsExtension::from_env()?.secret(secret_id).await?;
    let secret: Value = serde_json::from_str(&text).context("the secret is not JSON")?;
    secret["api_key"]
        .as_str()
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .context("the secret has no api_key; set it with `aws secretsmanager put-secret-value`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use stockcast::store::Store;

    fn env(dir: &std::path::Path) -> StepEnv {
        StepEnv {
            store: Store::local(dir).expect("store"),
            config: Default::default(),
            monitor: Default::default(),
            sample_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sample"),
            vendors: None,
            mlflow: None,
            run_defaults: None,
        }
    }

    #[tokio::test]
    async fn ingests_then_checks_quality_through_the_step_contracts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = env(dir.path());
        let out = ingest_event(
            &env,
            serde_json::json!({"run_id": "r", "symbol": "IBM", "source": "sample"}),
        )
        .await
        .expect("ingests");
        assert_eq!(out["rows_added"], 3270);
        let quality = ingest_event(
            &env,
            serde_json::json!({"action": "quality", "run_id": "r", "symbols": ["IBM"]}),
        )
        .await
        .expect("checks");
        assert_eq!(quality["ok"], true, "{quality}");
    }

    #[tokio::test]
    async fn failures_carry_the_workflow_error_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = env(dir.path());
        let failure = ingest_event(
            &env,
            serde_json::json!({"run_id": "r", "symbol": "NOPE", "source": "sample"}),
        )
        .await
        .expect_err("unknown symbol");
        assert_eq!(Diagnostic::from(failure).error_type, "Vendor.UnknownSymbol");
        let failure = ingest_event(&env, serde_json::json!({"action": "train"}))
            .await
            .expect_err("unknown action");
        assert_eq!(Diagnostic::from(failure).error_type, "Step.InvalidInput");
    }
}
