//! Secrets Manager from inside a Lambda, through the AWS Parameters and
//! Secrets Lambda extension (a layer of the function) on localhost: one
//! HTTP GET, no SDK, and the extension caches the value between calls.
//! The ingest function reads the vendor key this way, the gate function
//! the MLflow credentials.

use serde::Deserialize;

use crate::steps::{ErrorName, StepError};

/// Reads a secret's value (`SecretString`).
pub trait SecretSource {
    fn secret(&self, id: &str) -> impl Future<Output = Result<String, StepError>> + Send;
}

/// The extension's local endpoint and the token that proves the caller is
/// the function (its `AWS_SESSION_TOKEN`).
#[derive(Debug, Clone)]
pub struct SecretsExtension {
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl SecretsExtension {
    /// `http://localhost:<PARAMETERS_SECRETS_EXTENSION_HTTP_PORT or 2773>`.
    pub fn from_env() -> Result<Self, StepError> {
        let port = std::env::var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
            .unwrap_or_else(|_| "2773".into());
        let token = std::env::var("AWS_SESSION_TOKEN").map_err(|_| {
            StepError::new(
                ErrorName::ServiceUnavailable,
                "AWS_SESSION_TOKEN is not set: the secrets extension only runs inside a Lambda",
            )
        })?;
        Ok(Self::new(&format!("http://localhost:{port}"), &token))
    }

    pub fn new(base_url: &str, token: &str) -> Self {
        SecretsExtension {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }
}

impl SecretSource for SecretsExtension {
    async fn secret(&self, id: &str) -> Result<String, StepError> {
        let unavailable = |why: String| {
            StepError::new(
                ErrorName::ServiceUnavailable,
                format!("cannot read the secret {id} through the secrets extension: {why}"),
            )
        };
        let url = reqwest::Url::parse_with_params(
            &format!("{}/secretsmanager/get", self.base_url),
            [("secretId", id)],
        )
        .map_err(|e| unavailable(e.to_string()))?;
        let response = self
            .http
            .get(url)
            .header("X-Aws-Parameters-Secrets-Token", &self.token)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("it answered HTTP {status}")));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            secret_string: Option<String>,
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let answer: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("its answer is not JSON: {e}")))?;
        answer.secret_string.ok_or_else(|| {
            StepError::new(
                ErrorName::InvalidInput,
                format!("the secret {id} has no SecretString (a binary secret)"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The extension's API on 127.0.0.1: checks the token header and
    /// answers as GetSecretValue does.
    async fn extension() -> String {
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::get;
        let app = axum::Router::new().route(
            "/secretsmanager/get",
            get(
                |headers: HeaderMap,
                 axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| async move {
                    if headers
                        .get("x-aws-parameters-secrets-token")
                        .and_then(|v| v.to_str().ok())
                        != Some("session")
                    {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let id = q.get("secretId").cloned().unwrap_or_default();
                    let body =
                        serde_json::json!({"Name": id, "SecretString": "{\"token\":\"t0k\"}"});
                    (StatusCode::OK, body.to_string())
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn reads_a_secret_string_with_the_session_token() {
        let url = extension().await;
        let read = SecretsExtension::new(&url, "session")
            .secret("stockcast/dev/mlflow")
            .await
            .expect("reads");
        assert_eq!(read, "{\"token\":\"t0k\"}");
        let refused = SecretsExtension::new(&url, "other")
            .secret("stockcast/dev/mlflow")
            .await
            .expect_err("wrong token");
        assert_eq!(refused.name, ErrorName::ServiceUnavailable);
        assert!(refused.message.contains("HTTP 401"), "{}", refused.message);
    }
}
