//! The ingest Lambda, invoked by the Step Functions workflows with a step
//! contract: an `IngestInput` (`{"run_id","symbol","source"}`) fetches one
//! symbol; `{"action":"quality","run_id","symbols"}` runs the data checks.
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
use serde::Deserialize;
use serde_json::Value;
use stockcast::config::QualityPolicy;
use stockcast::ingest::{IngestContext, ingest};
use stockcast::steps::{ErrorName, IngestInput, QualityInput, StepError};
use stockcast::store::Store;
use stockcast::vendors::{VendorClient, VendorConfig};

/// A step error as Lambda reports it: its name is the `errorType`.
#[derive(Debug)]
struct Failure(StepError);

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Diagnostic {
        Diagnostic {
            error_type: f.0.name.as_str().to_owned(),
            error_message: f.0.message,
        }
    }
}

impl From<StepError> for Failure {
    fn from(e: StepError) -> Self {
        Failure(e)
    }
}

#[derive(Debug, Deserialize)]
struct QualityEvent {
    #[serde(flatten)]
    input: QualityInput,
}

/// What the handler needs, built once per container.
#[derive(Debug, Clone)]
struct Handler {
    ingest: IngestContext,
    quality: QualityPolicy,
    /// Rows a series needs for training and its backtest.
    min_rows: usize,
}

impl Handler {
    async fn handle(&self, event: Value) -> Result<Value, Failure> {
        let bad = |e: serde_json::Error| {
            Failure(StepError::new(
                ErrorName::VendorBadResponse,
                format!("invalid step input: {e}"),
            ))
        };
        let output = match event.get("action").and_then(Value::as_str) {
            Some("quality") => {
                let q: QualityEvent = serde_json::from_value(event).map_err(bad)?;
                let out = stockcast::quality::check(
                    &self.ingest.store,
                    &q.input,
                    &self.quality,
                    self.min_rows,
                    chrono::Utc::now().date_naive(),
                )
                .await?;
                serde_json::to_value(out)
            }
            None | Some("ingest") => {
                let mut event = event;
                if let Some(map) = event.as_object_mut() {
                    map.remove("action");
                }
                let input: IngestInput = serde_json::from_value(event).map_err(bad)?;
                serde_json::to_value(ingest(&self.ingest, &input).await?)
            }
            Some(other) => {
                return Err(Failure(StepError::new(
                    ErrorName::VendorBadResponse,
                    format!("unknown action {other:?}; expected ingest or quality"),
                )));
            }
        };
        output.map_err(|e| Failure(StepError::new(ErrorName::VendorBadResponse, e.to_string())))
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stockcast::logging::init_json();
    let handler = handler_from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move { handler.handle(event.payload).await }
    }))
    .await
}

async fn handler_from_env() -> anyhow::Result<Handler> {
    let bucket = std::env::var("STOCKCAST_BUCKET").context("STOCKCAST_BUCKET is not set")?;
    let mut vendors = VendorConfig::from_env();
    if vendors.alpha_vantage_key.is_none()
        && let Ok(secret) = std::env::var("ALPHA_VANTAGE_SECRET_ARN")
    {
        vendors.alpha_vantage_key = Some(secret_from_extension(&secret).await?);
    }
    let config = stockcast::config::PipelineConfig::default();
    Ok(Handler {
        ingest: IngestContext {
            store: Store::s3(&bucket).context("failed to open the data bucket")?,
            sample_dir: "data/sample".into(),
            vendors: Some(VendorClient::new(vendors)?),
        },
        quality: QualityPolicy {
            max_staleness_days: Some(5),
            ..config.quality
        },
        min_rows: config.protocol.test_rows + config.protocol.window,
    })
}

/// Reads `{"api_key":"…"}` from Secrets Manager through the Parameters and
/// Secrets Lambda extension (a layer of the function), without an SDK.
async fn secret_from_extension(secret_id: &str) -> anyhow::Result<String> {
    let port =
        std::env::var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT").unwrap_or_else(|_| "2773".into());
    let token = std::env::var("AWS_SESSION_TOKEN").context("AWS_SESSION_TOKEN is not set")?;
    let url = reqwest::Url::parse_with_params(
        &format!("http://localhost:{port}/secretsmanager/get"),
        [("secretId", secret_id)],
    )?;
    let response = reqwest::Client::new()
        .get(url)
        .header("X-Aws-Parameters-Secrets-Token", token)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!("the secrets extension did not answer: {}", e.without_url())
        })?;
    anyhow::ensure!(
        response.status().is_success(),
        "the secrets extension answered {}",
        response.status()
    );
    let bytes = response
        .bytes()
        .await
        .map_err(|e| anyhow::anyhow!("bad secrets answer: {}", e.without_url()))?;
    let body: Value =
        serde_json::from_slice(&bytes).context("the secrets extension's answer is not JSON")?;
    let secret: Value = serde_json::from_str(body["SecretString"].as_str().unwrap_or(""))
        .context("the secret is not JSON")?;
    secret["api_key"]
        .as_str()
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .context("the secret has no api_key; set it with `aws secretsmanager put-secret-value`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(dir: &std::path::Path) -> Handler {
        Handler {
            ingest: IngestContext {
                store: Store::local(dir).expect("store"),
                sample_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../data/sample"),
                vendors: None,
            },
            quality: QualityPolicy::default(),
            min_rows: 1500,
        }
    }

    #[tokio::test]
    async fn ingests_then_checks_quality_through_the_step_contracts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let h = handler(dir.path());
        let out = h
            .handle(serde_json::json!({"run_id": "r", "symbol": "IBM", "source": "sample"}))
            .await
            .expect("ingests");
        assert_eq!(out["rows_added"], 3270);
        let quality = h
            .handle(serde_json::json!({"action": "quality", "run_id": "r", "symbols": ["IBM"]}))
            .await
            .expect("checks");
        assert_eq!(quality["ok"], true, "{quality}");
    }

    #[tokio::test]
    async fn failures_carry_the_workflow_error_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let h = handler(dir.path());
        let failure = h
            .handle(serde_json::json!({"run_id": "r", "symbol": "NOPE", "source": "sample"}))
            .await
            .expect_err("unknown symbol");
        let diagnostic = Diagnostic::from(failure);
        assert_eq!(diagnostic.error_type, "Vendor.UnknownSymbol");
        let failure = h
            .handle(serde_json::json!({"action": "train"}))
            .await
            .expect_err("unknown action");
        assert_eq!(Diagnostic::from(failure).error_type, "Vendor.BadResponse");
    }
}
