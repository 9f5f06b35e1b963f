//! The prediction API: one axum `Router`, served by lambda_http behind API
//! Gateway (functions/predict) and on a local port by `cargo xtask serve`.
//!
//! Routes: `POST /predict`, `GET /models`, `GET /health`. Every response
//! carries an `x-request-id` header, and every failure is a JSON error with a
//! stable code (see `error`). Bad input is a 4xx with a message, never a 5xx
//! and never a panic; 503 means storage could not be read, with Retry-After.
//! docs/openapi.json is the contract: a test checks real responses against
//! it, and schemathesis fuzzes a running server with it (xtask/tests/contract.rs).

pub mod error;
pub mod key;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use self::error::ApiError;
use crate::config::GatePolicy;
use crate::ids::{Symbol, VersionId};
use crate::models::{MAX_HORIZON, ModelKind};
use crate::registry::{HorizonMetrics, Registry};
pub use crate::serving::ForecastPoint;
use crate::serving::{self, ModelCache};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 4096;
/// Trading days forecast when a request does not say.
pub const DEFAULT_DAYS_AHEAD: usize = 5;

/// The header that carries the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// How the API is set up.
///
/// | Name | Default | Purpose |
/// |---|---|---|
/// | `revalidate_after` | 60 s | how long a warm container trusts its cached models and data |
/// | `anchor_window` | 1000 | latest values a model is re-anchored on |
/// | `gate` | default policy | the metric and horizon that pick a symbol's best model |
/// | `api_key` | none | the `x-api-key` every request must carry, where no API Gateway checks it (see `key`) |
#[derive(Clone)]
pub struct ApiConfig {
    pub revalidate_after: Duration,
    pub anchor_window: usize,
    pub gate: GatePolicy,
    pub api_key: Option<String>,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("revalidate_after", &self.revalidate_after)
            .field("anchor_window", &self.anchor_window)
            .field("gate", &self.gate)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            revalidate_after: Duration::from_secs(60),
            anchor_window: 1000,
            gate: GatePolicy::default(),
            api_key: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiState {
    cache: Arc<ModelCache>,
    config: Arc<ApiConfig>,
}

impl ApiState {
    pub fn new(registry: Registry, config: ApiConfig) -> Self {
        ApiState {
            cache: Arc::new(ModelCache::new(
                registry,
                config.revalidate_after,
                config.anchor_window,
            )),
            config: Arc::new(config),
        }
    }
}

/// The whole API as a router.
pub fn app(state: ApiState) -> Router {
    let api_key: Option<Arc<str>> = state.config.api_key.as_deref().map(Arc::from);
    let router = Router::new()
        .route("/predict", post(predict))
        .route("/models", get(models))
        .route("/health", get(health))
        .fallback(|| async {
            ApiError::not_found(
                "unknown_route",
                "no such route; see GET /health, GET /models, POST /predict",
            )
        })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on this route"),
            )
        })
        .with_state(state);
    // The key is checked inside the request-id layer, so a refusal has an
    // id and a log line like every other answer.
    let router = match api_key {
        Some(key) => router.layer(middleware::from_fn_with_state(key, key::require_api_key)),
        None => router,
    };
    router.layer(middleware::from_fn(request_id))
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Gives every request an id (the caller's, if it sent a sane one), puts it
/// on the response, and logs the request with it.
async fn request_id(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let incoming = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    let id = incoming.unwrap_or_else(|| {
        let n = REQUESTS.fetch_add(1, Ordering::Relaxed);
        format!("{:x}-{n}", std::process::id())
    });
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    tracing::info!(
        request_id = %id,
        %method,
        path,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// The body of `POST /predict`, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictRequest {
    pub symbol: Symbol,
    pub model_type: Option<ModelKind>,
    pub days_ahead: Option<usize>,
}

/// The body as sent; the model name stays a string so an unknown one gets
/// an error that lists the known ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPredictRequest {
    symbol: String,
    #[serde(default, deserialize_with = "present")]
    model_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    days_ahead: Option<usize>,
}

/// An optional field that, when present, holds a value: the contract types
/// `model_type` as a string and `days_ahead` as an integer, so `null` is a
/// 400 rather than the default.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictResponse {
    pub symbol: Symbol,
    pub model_type: ModelKind,
    pub model_version: VersionId,
    /// Why this model: requested, or the symbol's best production model.
    pub selection: String,
    pub trained_at: String,
    /// The date of the last close the forecast starts from.
    pub data_through: Option<NaiveDate>,
    pub forecasts: Vec<ForecastPoint>,
}

fn parse_predict(
    headers: &axum::http::HeaderMap,
    bytes: &[u8],
) -> Result<PredictRequest, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the request as JSON with `content-type: application/json` (got {content_type:?})"
            ),
        ));
    }
    let request: RawPredictRequest = serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            "malformed_json"
        } else {
            "invalid_request"
        };
        ApiError::bad_request(
            code,
            format!("the request body is not a valid predict request: {e}"),
        )
    })?;
    // Not trimmed: the contract's pattern has no room for spaces, and a
    // server that accepted " AAPL" would accept more than it promises.
    let symbol = Symbol::new(request.symbol)
        .map_err(|e| ApiError::bad_request("invalid_symbol", e.to_string()))?
        .to_ascii_uppercase();
    if let Some(days) = request.days_ahead
        && !(1..=MAX_HORIZON).contains(&days)
    {
        return Err(ApiError::bad_request(
            "invalid_days_ahead",
            format!("days_ahead should be in range [1, {MAX_HORIZON}], but is {days}"),
        ));
    }
    let model_type = match &request.model_type {
        Some(name) => Some(
            name.parse::<ModelKind>()
                .map_err(|e| ApiError::bad_request("invalid_model_type", e.to_string()))?,
        ),
        None => None,
    };
    Ok(PredictRequest {
        symbol,
        model_type,
        days_ahead: request.days_ahead,
    })
}

async fn predict(
    State(state): State<ApiState>,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body must be at most {MAX_BODY_BYTES} bytes"),
        )
    })?;
    let request = parse_predict(&parts.headers, &bytes)?;
    let days = request.days_ahead.unwrap_or(DEFAULT_DAYS_AHEAD);
    let symbol_state = state.cache.symbol(&request.symbol).await?.ok_or_else(|| {
        ApiError::not_found(
            "unknown_symbol",
            format!(
                "{} is not a symbol this service has data for; GET /models lists them",
                request.symbol
            ),
        )
    })?;
    let choice = serving::choose(
        &symbol_state,
        &request.symbol,
        request.model_type,
        &state.config.gate,
    )?;
    let forecasts = serving::forecast(&symbol_state, &request.symbol, choice.served, days)?;
    let served = choice.served;
    let response = PredictResponse {
        symbol: request.symbol,
        model_type: served.kind,
        model_version: served.version.clone(),
        selection: choice.selection,
        trained_at: served.trained_at.clone(),
        data_through: symbol_state.data_through,
        forecasts,
    };
    Ok(axum::Json(response).into_response())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub symbol: Symbol,
    pub model_type: ModelKind,
    pub version: VersionId,
    pub data_through: Option<NaiveDate>,
    pub metrics: Vec<HorizonMetrics>,
    /// Naive's metrics on the same backtest origins.
    pub naive: Vec<HorizonMetrics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsResponse {
    pub models: Vec<ModelSummary>,
}

async fn models(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let registry = state.cache.registry();
    let entries = registry.production_models().await?;
    let models = entries
        .into_iter()
        .map(|e| ModelSummary {
            symbol: e.symbol,
            model_type: e.model,
            version: e.alias.version,
            data_through: e.metrics.data_through,
            metrics: e.metrics.horizons,
            naive: e.metrics.naive,
        })
        .collect();
    Ok(axum::Json(ModelsResponse { models }).into_response())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
    pub version: String,
}

async fn health() -> Response {
    axum::Json(HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
    .into_response()
}

#[cfg(test)]
mod tests;
