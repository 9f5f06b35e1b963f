//! A small client for MLflow's REST API (`/api/2.0/mlflow`, JSON in and
//! out, plus the artifact proxy `/api/2.0/mlflow-artifacts`).
//!
//! It speaks only the calls the mirror needs and turns every failure into
//! an [`MlflowError`] a person can act on: an unreachable server, refused
//! credentials (naming the variables to set), a server error, or MLflow's
//! own `{error_code, message}`. Credentials are never printed: `Debug`
//! redacts them and no error carries a request header.

use std::time::Duration;

use serde_json::Value;

/// How the client proves who it is, as MLflow's own clients do.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    /// `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`.
    Basic { username: String, password: String },
    /// `MLFLOW_TRACKING_TOKEN`.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Reads the standard MLflow variables; a token wins over a user name,
    /// as in MLflow's Python client.
    pub fn from_env() -> Result<Self, MlflowError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(token) = var("MLFLOW_TRACKING_TOKEN") {
            return Ok(Credentials::Bearer(token));
        }
        match (
            var("MLFLOW_TRACKING_USERNAME"),
            var("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(username), Some(password)) => Ok(Credentials::Basic { username, password }),
            (None, None) => Ok(Credentials::None),
            (Some(_), None) => Err(MlflowError::Config(
                "MLFLOW_TRACKING_USERNAME is set but MLFLOW_TRACKING_PASSWORD is not: set both"
                    .into(),
            )),
            (None, Some(_)) => Err(MlflowError::Config(
                "MLFLOW_TRACKING_PASSWORD is set but MLFLOW_TRACKING_USERNAME is not: set both"
                    .into(),
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("MLflow settings: {0}")]
    Config(String),
    #[error(
        "cannot reach the MLflow server at {uri}: {reason}; start one with `mlflow server --host 127.0.0.1 --port 5000` or check MLFLOW_TRACKING_URI"
    )]
    Unreachable { uri: String, reason: String },
    #[error(
        "the MLflow server at {uri} refused the request (HTTP {status}) to {path}: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to credentials it accepts{hint}"
    )]
    Unauthorized {
        uri: String,
        status: u16,
        path: String,
        hint: String,
    },
    #[error("the MLflow server at {uri} failed (HTTP {status}) on {path}: {body}; try again later")]
    Server {
        uri: String,
        status: u16,
        path: String,
        body: String,
    },
    #[error("MLflow answered {path} with HTTP {status} {code}: {message}")]
    Api {
        path: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("MLflow answered {path} with something that is not the expected JSON: {reason}")]
    BadResponse { path: String, reason: String },
}

impl MlflowError {
    /// MLflow's `error_code`, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            MlflowError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some("RESOURCE_DOES_NOT_EXIST")
    }

    pub fn is_already_exists(&self) -> bool {
        self.code() == Some("RESOURCE_ALREADY_EXISTS")
    }
}

/// A connection to one tracking server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    uri: String,
    credentials: Credentials,
}

/// Bodies of error answers are cut to this many characters in messages.
const BODY_EXCERPT: usize = 300;

impl Client {
    /// A client of the server at `uri` (`http://127.0.0.1:5000`).
    pub fn new(uri: &str, credentials: Credentials) -> Result<Self, MlflowError> {
        let uri = uri.trim_end_matches('/').to_owned();
        reqwest::Url::parse(&uri)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                MlflowError::Config(format!(
                    "the tracking URI {uri:?} is not an http(s) URL (file and database URIs need MLflow's Python client)"
                ))
            })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("stockcast/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MlflowError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            uri,
            credentials,
        })
    }

    /// A client of `uri` with the credentials of the standard variables.
    pub fn from_env(uri: &str) -> Result<Self, MlflowError> {
        Self::new(uri, Credentials::from_env()?)
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// `GET /api/2.0/mlflow/<path>` with query parameters.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, MlflowError> {
        // Built by hand: reqwest's `query` feature is not enabled.
        let mut url = reqwest::Url::parse(&self.api_url(path))
            .map_err(|e| MlflowError::Config(format!("{}: {e}", self.uri)))?;
        url.query_pairs_mut().extend_pairs(query);
        let request = self.http.get(url);
        self.send_json(path, request).await
    }

    /// `POST /api/2.0/mlflow/<path>` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, MlflowError> {
        let request = self.http.post(self.api_url(path)).json_body(body);
        self.send_json(path, request).await
    }

    /// `PATCH /api/2.0/mlflow/<path>` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, MlflowError> {
        let request = self.http.patch(self.api_url(path)).json_body(body);
        self.send_json(path, request).await
    }

    /// `DELETE /api/2.0/mlflow/<path>`: MLflow reads a JSON body here too.
    pub async fn delete(&self, path: &str, body: &Value) -> Result<Value, MlflowError> {
        let request = self.http.delete(self.api_url(path)).json_body(body);
        self.send_json(path, request).await
    }

    /// Uploads one artifact through the server's proxy; `location` is the
    /// part of a run's `mlflow-artifacts:/` URI after the scheme.
    pub async fn put_artifact(
        &self,
        location: &str,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<(), MlflowError> {
        let route = format!(
            "mlflow-artifacts/artifacts/{}/{}",
            location.trim_matches('/'),
            path
        );
        let url = format!("{}/api/2.0/{route}", self.uri);
        let request = self.http.put(url).body(bytes);
        self.send(&route, request).await.map(|_| ())
    }

    /// The UI page of a run.
    pub fn run_url(&self, experiment_id: &str, run_id: &str) -> String {
        format!("{}/#/experiments/{experiment_id}/runs/{run_id}", self.uri)
    }

    /// The UI page of a registered model's version.
    pub fn version_url(&self, name: &str, version: &str) -> String {
        format!("{}/#/models/{name}/versions/{version}", self.uri)
    }

    fn api_url(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.uri)
    }

    async fn send_json(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, MlflowError> {
        let body = self.send(path, request).await?;
        if body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&body).map_err(|e| MlflowError::BadResponse {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    async fn send(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, MlflowError> {
        let request = match &self.credentials {
            Credentials::None => request,
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            Credentials::Bearer(token) => request.bearer_auth(token),
        };
        // Transport errors are shown without their URL chain's headers; the
        // URL itself holds no secret (credentials travel in a header).
        let response = request.send().await.map_err(|e| MlflowError::Unreachable {
            uri: self.uri.clone(),
            reason: error_chain(&e),
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| MlflowError::Unreachable {
                uri: self.uri.clone(),
                reason: format!("the answer was cut off: {}", error_chain(&e)),
            })?
            .to_vec();
        match status {
            200..=299 => Ok(body),
            401 | 403 => Err(MlflowError::Unauthorized {
                uri: self.uri.clone(),
                status,
                path: path.to_owned(),
                hint: if status == 403 {
                    // Measured: MLflow 3 also answers 403 to a Host header
                    // that is neither localhost nor a private address.
                    "; a 403 can also mean the server refuses this host name (its --allowed-hosts)"
                        .into()
                } else {
                    String::new()
                },
            }),
            500.. => Err(MlflowError::Server {
                uri: self.uri.clone(),
                status,
                path: path.to_owned(),
                body: excerpt(&body),
            }),
            _ => {
                let parsed: Option<Value> = serde_json::from_slice(&body).ok();
                let field = |name: &str| {
                    parsed
                        .as_ref()
                        .and_then(|v| v.get(name))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                Err(MlflowError::Api {
                    path: path.to_owned(),
                    status,
                    code: field("error_code").unwrap_or_else(|| "UNKNOWN".into()),
                    message: field("message").unwrap_or_else(|| excerpt(&body)),
                })
            }
        }
    }
}

/// The JSON body MLflow expects; reqwest's `json` feature is not enabled,
/// and this is all it would do.
trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// An error and its sources on one line ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_in_debug() {
        let basic = Credentials::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        let shown = format!("{basic:?} {:?}", Credentials::Bearer("tok3n".into()));
        assert!(shown.contains("alice"), "{shown}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("tok3n"),
            "{shown}"
        );
    }

    #[test]
    fn only_http_uris_are_accepted() {
        for uri in [
            "file:///tmp/mlruns",
            "sqlite:///mlflow.db",
            "127.0.0.1:5000",
        ] {
            let err = Client::new(uri, Credentials::None).expect_err(uri);
            assert!(matches!(err, MlflowError::Config(_)), "{uri}: {err}");
        }
        let client = Client::new("http://127.0.0.1:5000/", Credentials::None).expect("http");
        assert_eq!(
            client.run_url("1", "abc"),
            "http://127.0.0.1:5000/#/experiments/1/runs/abc"
        );
    }

    /// Answers every connection with one fixed HTTP response: the statuses
    /// a real MLflow server cannot be made to send on demand (5xx, 403).
    fn stub(response: &'static str) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten().take(4) {
                let mut stream = stream;
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        format!("http://{address}")
    }

    async fn error_from(response: &'static str) -> MlflowError {
        let client =
            Client::new(&stub(response), Credentials::Bearer("tok3n".into())).expect("client");
        client
            .post("runs/create", &serde_json::json!({}))
            .await
            .expect_err("the stub refuses")
    }

    #[tokio::test]
    async fn server_errors_and_refusals_say_what_to_do() {
        let err = error_from(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 8\r\nconnection: close\r\n\r\nbusy now",
        )
        .await;
        let text = err.to_string();
        assert!(
            matches!(err, MlflowError::Server { status: 503, .. }),
            "{text}"
        );
        assert!(
            text.contains("busy now") && text.contains("try again later"),
            "{text}"
        );

        let err =
            error_from("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        let text = err.to_string();
        assert!(text.contains("MLFLOW_TRACKING_USERNAME"), "{text}");
        assert!(
            text.contains("--allowed-hosts") && !text.contains("tok3n"),
            "{text}"
        );

        let err = error_from(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 64\r\nconnection: close\r\n\r\n{\"error_code\": \"INVALID_PARAMETER_VALUE\", \"message\": \"bad run\"} ",
        )
        .await;
        assert_eq!(err.code(), Some("INVALID_PARAMETER_VALUE"), "{err}");
        assert!(err.to_string().contains("bad run"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let client =
            Client::new(&format!("http://127.0.0.1:{port}"), Credentials::None).expect("client");
        let err = client
            .get("experiments/get-by-name", &[("experiment_name", "x")])
            .await
            .expect_err("nobody listens");
        let text = err.to_string();
        assert!(matches!(err, MlflowError::Unreachable { .. }), "{text}");
        assert!(text.contains("MLFLOW_TRACKING_URI"), "{text}");
    }
}
