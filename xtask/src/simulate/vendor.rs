//! A fake Yahoo Finance chart API on 127.0.0.1 for the throttle scenario:
//! real prices in Yahoo's v8 chart format, after a scripted number of
//! HTTP 429 answers for one symbol.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::NaiveTime;
use stockcast::series::Bar;

#[derive(Default)]
struct Script {
    charts: BTreeMap<String, String>,
    /// 429 answers still to give, by symbol.
    throttles: BTreeMap<String, usize>,
    /// Every request: (symbol, status answered).
    requests: Vec<(String, u16)>,
}

/// The server; it stops when dropped (its runtime goes with it).
pub struct FakeYahoo {
    pub url: String,
    script: Arc<Mutex<Script>>,
    _runtime: tokio::runtime::Runtime,
}

/// The bars as Yahoo's chart JSON: one timestamp per day at the New York
/// open (14:30 UTC), with the exchange's offset, as the real API answers.
fn chart(symbol: &str, bars: &[Bar]) -> String {
    let open_utc = NaiveTime::from_hms_opt(14, 30, 0).unwrap_or_default();
    let column = |f: &dyn Fn(&Bar) -> Option<f64>| -> Vec<serde_json::Value> {
        bars.iter().map(|b| f(b).into()).collect()
    };
    serde_json::json!({"chart": {"result": [{
        "meta": {"currency": "USD", "symbol": symbol, "gmtoffset": -18000,
                 "timezone": "EST", "exchangeTimezoneName": "America/New_York",
                 "dataGranularity": "1d", "range": "3mo"},
        "timestamp": bars.iter().map(|b| b.date.and_time(open_utc).and_utc().timestamp()).collect::<Vec<_>>(),
        "indicators": {
            "quote": [{
                "open": column(&|b| b.open),
                "high": column(&|b| b.high),
                "low": column(&|b| b.low),
                "close": column(&|b| Some(b.close)),
                "volume": column(&|b| b.volume),
            }],
            "adjclose": [{"adjclose": column(&|b| b.adj_close)}],
        },
    }], "error": null}})
    .to_string()
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    Path(symbol): Path<String>,
) -> (StatusCode, String) {
    let Ok(mut script) = script.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "poisoned".into());
    };
    let (status, body) = match script.throttles.get_mut(&symbol) {
        Some(left) if *left > 0 => {
            *left -= 1;
            (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests".to_owned())
        }
        _ => match script.charts.get(&symbol) {
            Some(chart) => (StatusCode::OK, chart.clone()),
            None => (
                StatusCode::NOT_FOUND,
                r#"{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}"#.to_owned(),
            ),
        },
    };
    script.requests.push((symbol, status.as_u16()));
    (status, body)
}

impl FakeYahoo {
    /// Serves `series` (symbol → bars), answering 429 to the first
    /// `throttles[symbol]` requests of a symbol.
    pub fn start(
        series: &BTreeMap<String, Vec<Bar>>,
        throttles: BTreeMap<String, usize>,
    ) -> anyhow::Result<FakeYahoo> {
        let script = Arc::new(Mutex::new(Script {
            charts: series
                .iter()
                .map(|(s, bars)| (s.clone(), chart(s, bars)))
                .collect(),
            throttles,
            requests: Vec::new(),
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("failed to start the fake vendor's runtime")?;
        let app = Router::new()
            .route("/v8/finance/chart/{symbol}", get(answer))
            .with_state(script.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("the fake vendor cannot listen on 127.0.0.1")?;
        let url = format!("http://{}", listener.local_addr()?);
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeYahoo {
            url,
            script,
            _runtime: runtime,
        })
    }

    /// Every request so far: (symbol, status answered).
    pub fn requests(&self) -> Vec<(String, u16)> {
        self.script
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }
}
