//! The API through its router, in process (`tower::ServiceExt::oneshot`):
//! answers, bad input, and the warm-path cache.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::ids::{RunId, Symbol};
use crate::pipeline::LocalPipeline;
use crate::steps::{RunInput, Source};
use crate::store::Store;

const MODELS: [ModelKind; 3] = [ModelKind::Naive, ModelKind::Drift, ModelKind::LinregLag5];

/// Runs the local pipeline for MSFT with `models` into `store`.
async fn train_msft(store: &Store, run_id: &str, models: &[ModelKind]) {
    train_msft_with(
        store,
        run_id,
        models,
        crate::config::PipelineConfig::default(),
    )
    .await;
}

/// [`train_msft`] with another configuration (a shorter backtest).
async fn train_msft_with(
    store: &Store,
    run_id: &str,
    models: &[ModelKind],
    config: crate::config::PipelineConfig,
) {
    let pipeline = LocalPipeline {
        store: store.clone(),
        config,
        sample_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample"),
        git_commit: None,
    };
    let input = RunInput {
        run_id: RunId::new(run_id).expect("valid run id"),
        env: "test".into(),
        symbols: vec![Symbol::from_static("MSFT")],
        models: models.to_vec(),
        horizons: vec![1, 5, 21],
        source: Source::Sample,
        sentiment: None,
    };
    pipeline
        .run(input, Arc::new(|| {}))
        .await
        .expect("pipeline runs");
}

async fn seeded_store(dir: &std::path::Path) -> Store {
    let store = Store::local(dir).expect("store");
    train_msft(&store, "seed", &MODELS).await;
    store
}

fn router(store: &Store, revalidate_after: Duration) -> Router {
    app(ApiState::new(
        Registry::new(store.clone()),
        ApiConfig {
            revalidate_after,
            ..ApiConfig::default()
        },
    ))
}

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value, bool) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let has_id = response.headers().contains_key(REQUEST_ID);
    let bytes = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json, has_id)
}

async fn predict_json(router: &Router, body: &str) -> (StatusCode, serde_json::Value) {
    let (status, json, _) = call(
        router,
        "POST",
        "/predict",
        Some("application/json"),
        body.as_bytes().to_vec(),
    )
    .await;
    (status, json)
}

#[tokio::test]
async fn the_lstm_is_served_from_its_artifact_on_the_latest_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::local(dir.path()).expect("store");
    // Two backtest origins keep the test short; serving is what is tested.
    let config = crate::config::PipelineConfig {
        protocol: crate::backtest::Protocol {
            test_rows: 31,
            spacing: 10,
            ..crate::backtest::Protocol::default()
        },
        ..crate::config::PipelineConfig::default()
    };
    // News on every third day of the last four years, as ingestion writes
    // it: the LSTM trains on it and serving must read it back.
    let sample = crate::series::PriceSeries::from_csv_path(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample/MSFT.csv"),
    )
    .expect("sample");
    let last = sample.bars.last().expect("bars").date;
    let mut news = String::from("date,score,articles\n");
    for k in (0..1460u64).rev().step_by(3) {
        let day = last - chrono::Days::new(k);
        news.push_str(&format!(
            "{day},{:.2},{}\n",
            ((k % 7) as f64 - 3.0) / 10.0,
            1 + k % 5
        ));
    }
    store
        .create(
            &crate::layout::sentiment(&Symbol::from_static("MSFT")),
            news.into_bytes(),
        )
        .await
        .expect("writes the news");
    train_msft_with(&store, "seed", &[ModelKind::Naive, ModelKind::Lstm], config).await;
    let router = router(&store, Duration::from_secs(60));
    let (status, json) = predict_json(
        &router,
        r#"{"symbol":"MSFT","model_type":"lstm","days_ahead":21}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let response: PredictResponse = serde_json::from_value(json).expect("a predict response");
    assert_eq!(response.model_type, ModelKind::Lstm);
    assert_eq!(response.forecasts.len(), 21);
    // What the API answered is the stored network's forecast from the
    // features serving recomputed on the latest data: the same as the
    // stored artifact anchored here.
    let registry = Registry::new(store.clone());
    let fitted = registry
        .fitted_model(
            &Symbol::from_static("MSFT"),
            ModelKind::Lstm,
            &response.model_version,
        )
        .await
        .expect("the version's artifact");
    let crate::models::FittedModel::Lstm(lstm) = &fitted else {
        panic!("an lstm artifact")
    };
    assert!(
        lstm.features
            .features
            .contains(&crate::features::Feature::Sentiment)
    );
    let lineage = registry
        .lineage(
            &Symbol::from_static("MSFT"),
            ModelKind::Lstm,
            &response.model_version,
        )
        .await
        .expect("lineage");
    assert!(lineage.sentiment_digest.is_some(), "{lineage:?}");
    let series = crate::ingest::read_curated(&store, &Symbol::from_static("MSFT"))
        .await
        .expect("reads")
        .expect("curated")
        .series;
    let target = series.target();
    let start = target.len() - 1000;
    let expected = fitted
        .anchored(&crate::models::Window {
            sentiment: &series.sentiment,
            ..crate::models::Window::new(&target[start..], &series.bars[start..])
        })
        .expect("anchors")
        .forecast(21)
        .expect("forecasts");
    for (f, want) in response.forecasts.iter().zip(&expected.mean) {
        assert!(
            (f.forecast - want).abs() < 1e-9 * want,
            "{} vs {want}",
            f.forecast
        );
        let (lo, hi) = (f.lo80.expect("interval"), f.hi80.expect("interval"));
        assert!(lo < f.forecast && f.forecast < hi);
    }
}

#[tokio::test]
async fn a_model_the_gate_rejected_is_served_when_asked_for_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::local(dir.path()).expect("store");
    train_msft(
        &store,
        "seed",
        &[ModelKind::Naive, ModelKind::Drift, ModelKind::Prophet],
    )
    .await;
    let router = router(&store, Duration::from_secs(60));
    // The seed's request, for a symbol of the sample.
    let (status, json) = predict_json(
        &router,
        r#"{"symbol":"MSFT","model_type":"prophet","days_ahead":5}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let response: PredictResponse = serde_json::from_value(json).expect("a predict response");
    assert_eq!(response.model_type, ModelKind::Prophet);
    assert_eq!(response.forecasts.len(), 5);
    // Prophet loses to the random walk on daily prices: the gate said so,
    // and the answer says it is not the production model.
    assert!(
        response
            .selection
            .starts_with("requested; not in production"),
        "{}",
        response.selection
    );
    for f in &response.forecasts {
        let (lo, hi) = (f.lo80.expect("interval"), f.hi80.expect("interval"));
        assert!(lo < f.forecast && f.forecast < hi);
    }
    // Without a model type, a production model is chosen, never Prophet.
    let (status, json) = predict_json(&router, r#"{"symbol":"MSFT"}"#).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_ne!(json["model_type"].as_str(), Some("prophet"), "{json}");
}

#[tokio::test]
async fn predicts_with_dates_intervals_and_provenance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = seeded_store(dir.path()).await;
    let router = router(&store, Duration::from_secs(60));
    let (status, json) = predict_json(
        &router,
        r#"{"symbol":"msft","model_type":"drift","days_ahead":3}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let response: PredictResponse = serde_json::from_value(json).expect("a predict response");
    assert_eq!(response.symbol, "MSFT");
    assert_eq!(response.model_type, ModelKind::Drift);
    assert_eq!(response.selection, "requested");
    assert_eq!(response.data_through, "2013-03-01".parse().ok());
    // 2013-03-01 was a Friday: the next trading days are Mon, Tue, Wed.
    let dates: Vec<String> = response
        .forecasts
        .iter()
        .map(|f| f.date.to_string())
        .collect();
    assert_eq!(dates, ["2013-03-04", "2013-03-05", "2013-03-06"]);
    for f in &response.forecasts {
        let (lo, hi) = (
            f.lo80.expect("drift has intervals"),
            f.hi80.expect("drift has intervals"),
        );
        assert!(lo < f.forecast && f.forecast < hi);
    }
    // Without a model type: the best production model by the gate's metric.
    let (status, json) = predict_json(&router, r#"{"symbol":"MSFT"}"#).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["forecasts"].as_array().map(Vec::len),
        Some(DEFAULT_DAYS_AHEAD)
    );
    assert!(
        json["selection"]
            .as_str()
            .unwrap_or("")
            .starts_with("best production model by MASE h5")
    );
    let (status, json, _) = call(&router, "GET", "/models", None, Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let models: ModelsResponse = serde_json::from_value(json).expect("a models response");
    assert!(
        models
            .models
            .iter()
            .all(|m| m.symbol == "MSFT" && !m.naive.is_empty())
    );
    let (status, json, _) = call(&router, "GET", "/health", None, Vec::new()).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
}

/// method, path, content type, body, expected status, expected error code.
type BadInput<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_code_and_never_a_5xx() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = seeded_store(dir.path()).await;
    let router = router(&store, Duration::from_secs(60));
    let json = Some("application/json");
    let big = format!(
        r#"{{"symbol":"MSFT","pad":"{}"}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    let nested = format!("{}{}", "[".repeat(300), "]".repeat(300));
    #[rustfmt::skip]
    let cases: Vec<BadInput> = vec![
        ("POST", "/predict", None, br#"{"symbol":"MSFT"}"#.to_vec(), 415, "unsupported_media_type"),
        ("POST", "/predict", Some("text/plain"), br#"{"symbol":"MSFT"}"#.to_vec(), 415, "unsupported_media_type"),
        ("POST", "/predict", Some("application/xml"), b"<symbol/>".to_vec(), 415, "unsupported_media_type"),
        ("POST", "/predict", Some("application/x-www-form-urlencoded"), b"symbol=MSFT".to_vec(), 415, "unsupported_media_type"),
        ("POST", "/predict", json, b"".to_vec(), 400, "malformed_json"),
        ("POST", "/predict", json, b"{".to_vec(), 400, "malformed_json"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT"}x"#.to_vec(), 400, "malformed_json"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT",}"#.to_vec(), 400, "malformed_json"),
        ("POST", "/predict", json, b"\xff\xfe".to_vec(), 400, "malformed_json"),
        ("POST", "/predict", Some("application/json; charset=utf-8"), b"{'symbol':'MSFT'}".to_vec(), 400, "malformed_json"),
        ("POST", "/predict", json, nested.into_bytes(), 400, "invalid_request"),
        ("POST", "/predict", json, b"[]".to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, b"null".to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, b"123".to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#""MSFT""#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, b"{}".to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":1}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":null}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":true}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":["MSFT"]}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":{"s":"MSFT"}}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":""}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"   "}"#.to_vec(), 400, "invalid_symbol"),
        // Issue 20: the contract's pattern has no room for spaces or a leading dot.
        ("POST", "/predict", json, br#"{"symbol":" MSFT"}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT\n"}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":".MSFT"}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"ABCDEFGHIJKLMNOPQ"}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"MS FT"}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT;DROP"}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":".."}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"../etc"}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT\u0000"}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, "{\"symbol\":\"ÄAPL\"}".as_bytes().to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"models/MSFT"}"#.to_vec(), 400, "invalid_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":0}"#.to_vec(), 400, "invalid_days_ahead"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":22}"#.to_vec(), 400, "invalid_days_ahead"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":100000}"#.to_vec(), 400, "invalid_days_ahead"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":-1}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":1.5}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":"5"}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":1e3}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":18446744073709551616}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":true}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","days_ahead":null}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","model_type":null}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","model_type":"prophet2"}"#.to_vec(), 400, "invalid_model_type"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","model_type":"ARIMA"}"#.to_vec(), 400, "invalid_model_type"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","model_type":1}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","model_type":""}"#.to_vec(), 400, "invalid_model_type"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","model_type":["arima"]}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","foo":1}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","Symbol":"X"}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","symbol":"AAPL"}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","model_type":"naive","days_ahead":5,"x":null}"#.to_vec(), 400, "invalid_request"),
        ("POST", "/predict", json, big.into_bytes(), 413, "payload_too_large"),
        ("POST", "/predict", json, br#"{"symbol":"ZZZZ"}"#.to_vec(), 404, "unknown_symbol"),
        ("POST", "/predict", json, br#"{"symbol":"MSFT","model_type":"arima"}"#.to_vec(), 404, "no_production_model"),
        ("GET", "/predict", None, Vec::new(), 405, "method_not_allowed"),
        ("PUT", "/predict", json, br#"{"symbol":"MSFT"}"#.to_vec(), 405, "method_not_allowed"),
        ("DELETE", "/models", None, Vec::new(), 405, "method_not_allowed"),
        ("POST", "/health", json, b"{}".to_vec(), 405, "method_not_allowed"),
        ("GET", "/nope", None, Vec::new(), 404, "unknown_route"),
        ("GET", "/", None, Vec::new(), 404, "unknown_route"),
        ("POST", "/predict/extra", json, br#"{"symbol":"MSFT"}"#.to_vec(), 404, "unknown_route"),
        ("GET", "/models/MSFT", None, Vec::new(), 404, "unknown_route"),
    ];
    assert!(cases.len() >= 50);
    for (method, path, content_type, body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let (actual, json, has_id) = call(&router, method, path, content_type, body).await;
        assert_eq!(
            actual.as_u16(),
            status,
            "{method} {path} {content_type:?} {shown}: {json}"
        );
        assert_eq!(
            json["error"]["code"].as_str(),
            Some(code),
            "{method} {path} {shown}: {json}"
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(has_id, "every response has a request id");
    }
}

#[tokio::test]
async fn a_promotion_is_visible_after_revalidation_and_not_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = seeded_store(dir.path()).await;
    let registry = Registry::new(store.clone());
    let cached = router(&store, Duration::from_secs(3600));
    let revalidating = router(&store, Duration::ZERO);
    let body = r#"{"symbol":"MSFT","model_type":"drift"}"#;
    let before = predict_json(&cached, body).await.1["model_version"].clone();
    assert_eq!(
        predict_json(&revalidating, body).await.1["model_version"],
        before
    );
    // A new drift version is trained and promoted behind the API's back.
    train_msft(&store, "second", &[ModelKind::Drift]).await;
    let now = registry
        .production(&Symbol::from_static("MSFT"), ModelKind::Drift)
        .await
        .expect("reads")
        .expect("alias");
    assert_ne!(serde_json::Value::String(now.version.to_string()), before);
    // Within the interval the warm container serves what it has, with no storage I/O…
    assert_eq!(predict_json(&cached, body).await.1["model_version"], before);
    // …and after it, the promotion is visible.
    assert_eq!(
        predict_json(&revalidating, body).await.1["model_version"],
        serde_json::Value::String(now.version.to_string())
    );
}

#[tokio::test]
async fn storage_failure_is_a_503_with_retry_after() {
    // A store whose root is a file, not a folder: every read fails.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = seeded_store(dir.path()).await;
    let router = router(&store, Duration::ZERO);
    std::fs::remove_dir_all(dir.path().join("models")).expect("removes");
    std::fs::write(dir.path().join("models"), b"not a folder").expect("writes");
    let request = Request::builder()
        .method("POST")
        .uri("/predict")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"symbol":"MSFT"}"#))
        .expect("request");
    let response = router.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
}

/// A key set in the config is required on every route, as API Gateway
/// requires it in AWS, and a refusal is the gateway's 403 (issue 20).
#[tokio::test]
async fn an_api_key_where_one_is_set_is_required_on_every_route() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/openapi.json")).expect("openapi.json parses");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = seeded_store(dir.path()).await;
    let keyed = app(ApiState::new(
        Registry::new(store.clone()),
        ApiConfig {
            api_key: Some("local-key".into()),
            ..ApiConfig::default()
        },
    ));
    let open = router(&store, Duration::from_secs(60));
    let predict = br#"{"symbol":"MSFT"}"#;
    for (method, path, body) in [
        ("POST", "/predict", &predict[..]),
        ("GET", "/models", &b""[..]),
        ("GET", "/health", &b""[..]),
    ] {
        let send = |router: Router, key: Option<&'static str>| async move {
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json");
            if let Some(key) = key {
                request = request.header(key::API_KEY_HEADER, key);
            }
            let response = router
                .oneshot(request.body(Body::from(body.to_vec())).expect("request"))
                .await
                .expect("infallible");
            let status = response.status().as_u16();
            let has_id = response.headers().contains_key(REQUEST_ID);
            let bytes = to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            (status, json, has_id)
        };
        for key in [None, Some("wrong-key"), Some("local-key ")] {
            let (status, json, has_id) = send(keyed.clone(), key).await;
            assert_eq!(status, 403, "{method} {path} with {key:?}: {json}");
            assert_eq!(json, serde_json::json!({"message": "Forbidden"}));
            assert!(has_id, "a refusal has a request id too");
            let documented = doc["paths"][path][method.to_lowercase()]["responses"]["403"]["$ref"]
                .as_str()
                .and_then(|r| doc.pointer(r.trim_start_matches('#')))
                .unwrap_or_else(|| panic!("openapi.json documents no 403 for {method} {path}"));
            conforms(
                &doc,
                &documented["content"]["application/json"]["schema"],
                &json,
                "$",
            )
            .unwrap_or_else(|e| panic!("{method} {path} 403: {e}"));
        }
        assert_eq!(
            send(keyed.clone(), Some("local-key")).await.0,
            200,
            "{method} {path}"
        );
        // Without a key in the config (the Lambda, plain `xtask serve`) the
        // header is not looked at.
        assert_eq!(send(open.clone(), None).await.0, 200, "{method} {path}");
        assert_eq!(
            send(open.clone(), Some("any")).await.0,
            200,
            "{method} {path}"
        );
    }
}

/// Checks `value` against an OpenAPI 3.0 schema (the subset docs/openapi.json
/// uses: $ref, type, nullable, enum, required, properties,
/// additionalProperties: false, items, minimum/maximum); returns the first
/// mismatch with its JSON path.
fn conforms(
    doc: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
) -> Result<(), String> {
    use serde_json::Value;
    if let Some(reference) = schema["$ref"].as_str() {
        let pointer = reference.trim_start_matches('#');
        let target = doc
            .pointer(pointer)
            .ok_or_else(|| format!("{at}: dangling {reference}"))?;
        return conforms(doc, target, value, at);
    }
    if value.is_null() {
        return if schema["nullable"] == Value::Bool(true) {
            Ok(())
        } else {
            Err(format!("{at}: null is not allowed"))
        };
    }
    let kind = schema["type"].as_str().unwrap_or("");
    let ok = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_u64() || value.is_i64(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !ok {
        return Err(format!("{at}: expected {kind}, got {value}"));
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    if let (Some(min), Some(v)) = (schema["minimum"].as_f64(), value.as_f64())
        && v < min
    {
        return Err(format!("{at}: {v} < minimum {min}"));
    }
    if let (Some(max), Some(v)) = (schema["maximum"].as_f64(), value.as_f64())
        && v > max
    {
        return Err(format!("{at}: {v} > maximum {max}"));
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or("");
            if !object.contains_key(name) {
                return Err(format!("{at}: missing required {name}"));
            }
        }
        for (name, v) in object {
            match schema["properties"].get(name) {
                Some(property) => conforms(doc, property, v, &format!("{at}.{name}"))?,
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    return Err(format!("{at}: {name} is not in the schema"));
                }
                None => {}
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[test]
fn the_openapi_model_enum_lists_every_model() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/openapi.json")).expect("openapi.json parses");
    let documented = &doc["components"]["schemas"]["ModelType"]["enum"];
    let known: Vec<&str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        documented,
        &serde_json::json!(known),
        "docs/openapi.json ModelType should list every ModelKind, in ModelKind::ALL order"
    );
}

#[tokio::test]
async fn responses_conform_to_the_openapi_document() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/openapi.json")).expect("openapi.json parses");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = seeded_store(dir.path()).await;
    let router = router(&store, Duration::from_secs(60));
    let json = Some("application/json");
    let cases: Vec<(&str, &str, Option<&str>, &str, u16)> = vec![
        (
            "post",
            "/predict",
            json,
            r#"{"symbol":"MSFT","model_type":"drift","days_ahead":21}"#,
            200,
        ),
        (
            "post",
            "/predict",
            json,
            r#"{"symbol":"MSFT","model_type":"linreg_lag5"}"#,
            200,
        ),
        ("post", "/predict", json, r#"{"symbol":"MSFT"}"#, 200),
        (
            "post",
            "/predict",
            json,
            r#"{"symbol":"MSFT","days_ahead":0}"#,
            400,
        ),
        ("post", "/predict", json, r#"{"symbol":"NOPE"}"#, 404),
        ("post", "/predict", Some("text/plain"), "x", 415),
        ("get", "/models", None, "", 200),
        ("get", "/health", None, "", 200),
    ];
    for (method, path, content_type, body, status) in cases {
        let (actual, value, _) = call(
            &router,
            &method.to_uppercase(),
            path,
            content_type,
            body.as_bytes().to_vec(),
        )
        .await;
        assert_eq!(actual.as_u16(), status, "{method} {path} {body}: {value}");
        let response = &doc["paths"][path][method]["responses"][status.to_string()];
        assert!(
            !response.is_null(),
            "openapi.json documents no {status} for {method} {path}"
        );
        let response = match response["$ref"].as_str() {
            Some(r) => doc
                .pointer(r.trim_start_matches('#'))
                .expect("response ref resolves"),
            None => response,
        };
        let schema = &response["content"]["application/json"]["schema"];
        conforms(&doc, schema, &value, "$")
            .unwrap_or_else(|e| panic!("{method} {path} {status}: {e}\n{value}"));
    }
}
