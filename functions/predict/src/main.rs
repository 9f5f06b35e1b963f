//! The prediction API as a Lambda: API Gateway REST proxy events in, the
//! library's router (`stockcast::api::app`) does everything.
//!
//! Configuration (read once, at cold start): `STOCKCAST_BUCKET` (the data
//! bucket) and `STOCKCAST_REVALIDATE_SECS` (default 60). Try it locally with
//! `cargo xtask serve`, which runs the same router on a local port.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use stockcast::api::{ApiConfig, ApiState, app};
use stockcast::registry::Registry;
use stockcast::store::{S3_RETRY_SERVING, S3Options, Store};
use tower::ServiceExt;
use tower::util::MapRequest;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    stockcast::logging::init_json();
    let state = state_from_env()?;
    lambda_http::run(service(app(state))).await
}

fn state_from_env() -> anyhow::Result<ApiState> {
    let bucket =
        stockcast::functions::required_var("STOCKCAST_BUCKET").map_err(anyhow::Error::msg)?;
    let store = Store::s3_with(
        &bucket,
        S3Options {
            endpoint: std::env::var("AWS_ENDPOINT_URL").ok(),
            retry: Some(S3_RETRY_SERVING),
            ..S3Options::default()
        },
    )
    .context("failed to open the data bucket")?;
    let revalidate = match std::env::var("STOCKCAST_REVALIDATE_SECS") {
        Ok(v) => v.parse::<u64>().with_context(|| {
            format!("STOCKCAST_REVALIDATE_SECS should be whole seconds, but is {v:?}")
        })?,
        Err(_) => 60,
    };
    Ok(ApiState::new(
        Registry::new(store),
        ApiConfig {
            revalidate_after: Duration::from_secs(revalidate),
            ..ApiConfig::default()
        },
    ))
}

/// The router behind the Lambda adapter. lambda_http puts a REST API's
/// stage in front of the path (`/v1/predict`); the routes are stage-free,
/// so the stage is taken off again here.
pub fn service(router: Router) -> MapRequest<Router, fn(Request) -> Request> {
    router.map_request(strip_stage as fn(Request) -> Request)
}

fn strip_stage(mut request: Request) -> Request {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage else {
        return request;
    };
    let prefix = format!("/{stage}");
    let path = request.uri().path();
    if let Some(rest) = path.strip_prefix(&prefix)
        && (rest.is_empty() || rest.starts_with('/'))
    {
        let rest = if rest.is_empty() { "/" } else { rest };
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        if let Ok(uri) = format!("{rest}{query}").parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use lambda_http::request::LambdaRequest;
    use lambda_http::{Adapter, Context, LambdaEvent, Service};
    use stockcast::models::ModelKind;
    use test_support::seed::SampleRun;

    use super::*;

    const EVENT: &str = include_str!("../tests/fixtures/apigw_rest_predict.json");

    async fn seeded_state(dir: &std::path::Path) -> ApiState {
        let store = Store::local(dir).expect("store");
        let run = SampleRun {
            run_id: "seed",
            env: "test",
            symbols: &["MSFT"],
            models: &[ModelKind::Naive, ModelKind::Drift],
            config: Default::default(),
        };
        test_support::seed::trained(&store, &test_support::sample_dir(), run)
            .await
            .expect("seeds");
        ApiState::new(Registry::new(store), ApiConfig::default())
    }

    /// Sends an API Gateway REST proxy event through lambda_http's adapter,
    /// exactly as the runtime does, and returns the proxy response as JSON.
    async fn invoke(
        state: &ApiState,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> serde_json::Value {
        let mut event: serde_json::Value = serde_json::from_str(EVENT).expect("fixture is JSON");
        edit(&mut event);
        let payload: LambdaRequest =
            serde_json::from_value(event).expect("an API Gateway REST event");
        let mut adapter = Adapter::from(service(app(state.clone())));
        let response = adapter
            .call(LambdaEvent::new(payload, Context::default()))
            .await
            .expect("infallible");
        serde_json::to_value(response).expect("serialises")
    }

    fn body(response: &serde_json::Value) -> serde_json::Value {
        serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or_default()
    }

    #[tokio::test]
    async fn answers_api_gateway_rest_events() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = seeded_state(dir.path()).await;
        let ok = invoke(&state, |_| {}).await;
        assert_eq!(ok["statusCode"], 200, "{ok}");
        let answer = body(&ok);
        assert_eq!(answer["symbol"], "MSFT");
        assert_eq!(answer["forecasts"].as_array().map(Vec::len), Some(3));
        assert!(
            ok["multiValueHeaders"]["x-request-id"].is_array()
                || ok["headers"]["x-request-id"].is_string()
        );

        let health = invoke(&state, |e| {
            e["httpMethod"] = "GET".into();
            e["path"] = "/health".into();
            e["resource"] = "/health".into();
            e["body"] = serde_json::Value::Null;
        })
        .await;
        assert_eq!(health["statusCode"], 200, "{health}");

        let bad = invoke(&state, |e| {
            e["body"] = r#"{"symbol":"MSFT","days_ahead":99}"#.into()
        })
        .await;
        assert_eq!(bad["statusCode"], 400);
        assert_eq!(body(&bad)["error"]["code"], "invalid_days_ahead");

        let unknown = invoke(&state, |e| e["body"] = r#"{"symbol":"NOPE"}"#.into()).await;
        assert_eq!(unknown["statusCode"], 404);
        assert_eq!(body(&unknown)["error"]["code"], "unknown_symbol");
    }
}
