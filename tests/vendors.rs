//! Ingestion from the vendors, against a fake vendor server on 127.0.0.1
//! that answers in the vendors' real formats (written from their public
//! documentation): normal days, splits, holidays, and every failure mode.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use proptest::prelude::*;
use stockcast::ids::{RunId, Symbol};
use stockcast::ingest::{IngestContext, ingest};
use stockcast::layout;
use stockcast::steps::{ErrorName, IngestInput, SentimentSource, Source};
use stockcast::store::Store;
use stockcast::vendors::alpha_vantage::{DailyFunction, parse_daily, parse_sentiment};
use stockcast::vendors::yahoo::parse_chart;
use stockcast::vendors::{RetryPolicy, VendorClient, VendorConfig};

use test_support::{runtime, temp_root};

const KEY: &str = "SECRET-KEY-0123";

pub(crate) fn av_daily(symbol: &str, adjusted: bool) -> String {
    let day = |date: &str, o: f64, h: f64, l: f64, c: f64, adj: f64, split: f64| {
        if adjusted {
            format!(
                r#""{date}": {{"1. open": "{o:.4}", "2. high": "{h:.4}", "3. low": "{l:.4}", "4. close": "{c:.4}", "5. adjusted close": "{adj:.4}", "6. volume": "5325469", "7. dividend amount": "0.0000", "8. split coefficient": "{split:.1}"}}"#
            )
        } else {
            format!(
                r#""{date}": {{"1. open": "{o:.4}", "2. high": "{h:.4}", "3. low": "{l:.4}", "4. close": "{c:.4}", "5. volume": "5325469"}}"#
            )
        }
    };
    // 2024-11-27 → 11-29 skips Thanksgiving; 11-29 is a 2:1 split day
    // (the close halves, the adjusted close does not).
    format!(
        r#"{{
    "Meta Data": {{"1. Information": "Daily Time Series with Splits and Dividend Events", "2. Symbol": "{symbol}", "3. Last Refreshed": "2024-11-29", "4. Output Size": "Compact", "5. Time Zone": "US/Eastern"}},
    "Time Series (Daily)": {{
        {},
        {},
        {}
    }}
}}"#,
        day("2024-11-29", 111.0, 113.0, 110.0, 112.5, 112.5, 2.0),
        day("2024-11-27", 222.0, 226.0, 221.0, 224.0, 112.0, 1.0),
        day("2024-11-26", 220.0, 223.0, 219.5, 222.0, 111.0, 1.0),
    )
}

pub(crate) const AV_THROTTLE_NOTE: &str = r#"{"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API call frequency."}"#;
const AV_THROTTLE_INFORMATION: &str = r#"{"Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."}"#;
const AV_PREMIUM: &str = r#"{"Information": "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly unlock all premium endpoints"}"#;
const AV_ERROR: &str = r#"{"Error Message": "Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) for TIME_SERIES_DAILY_ADJUSTED."}"#;
pub(crate) const AV_NEWS: &str = r#"{"items": "2", "sentiment_score_definition": "x <= -0.35: Bearish; ...", "relevance_score_definition": "0 < x <= 1",
  "feed": [
    {"title": "IBM beats", "url": "https://example.com/a", "time_published": "20241127T143000", "authors": [], "summary": "", "source": "Example", "overall_sentiment_score": 0.2, "overall_sentiment_label": "Somewhat-Bullish",
     "ticker_sentiment": [{"ticker": "IBM", "relevance_score": "0.8", "ticker_sentiment_score": "0.30", "ticker_sentiment_label": "Somewhat-Bullish"}, {"ticker": "MSFT", "relevance_score": "0.1", "ticker_sentiment_score": "-0.5", "ticker_sentiment_label": "Bearish"}]},
    {"title": "IBM misses", "url": "https://example.com/b", "time_published": "20241127T200000", "authors": [], "summary": "", "source": "Example", "overall_sentiment_score": -0.1, "overall_sentiment_label": "Neutral",
     "ticker_sentiment": [{"ticker": "IBM", "relevance_score": "0.2", "ticker_sentiment_score": "-0.20", "ticker_sentiment_label": "Somewhat-Bearish"}]}
  ]}"#;

/// A Yahoo chart: 2024-11-26, 11-27, (Thanksgiving closed), 11-29, and a
/// still-open session with null values that must be dropped.
fn yahoo_chart(symbol: &str) -> String {
    // Session opens at 14:30 UTC; gmtoffset -18000 (EST).
    format!(
        r#"{{"chart":{{"result":[{{"meta":{{"currency":"USD","symbol":"{symbol}","exchangeName":"SNP","instrumentType":"INDEX","firstTradeDate":-1325583000,"regularMarketTime":1732914000,"gmtoffset":-18000,"timezone":"EST","exchangeTimezoneName":"America/New_York","dataGranularity":"1d","range":"3mo"}},
"timestamp":[1732631400,1732717800,1732890600,1733149800],
"indicators":{{"quote":[{{"open":[5992.0,6014.0,6003.9,null],"high":[6025.4,6020.2,6044.2,null],"low":[5983.3,5984.9,6003.9,null],"close":[6021.6,5998.7,6032.4,null],"volume":[2870000000,2800000000,1900000000,null]}}],
"adjclose":[{{"adjclose":[6021.6,5998.7,6032.4,null]}}]}}}}],"error":null}}}}"#
    )
}

const YAHOO_NOT_FOUND: &str = r#"{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}"#;

/// Scripted answers, popped one per request; the last one repeats.
#[derive(Clone, Default)]
pub(crate) struct Script {
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Script {
    pub(crate) fn push(&self, status: u16, body: impl Into<String>) {
        self.answers
            .lock()
            .expect("lock")
            .push_back((status, body.into()));
    }

    fn next(&self, request: String) -> (StatusCode, String) {
        self.requests.lock().expect("lock").push(request);
        let mut answers = self.answers.lock().expect("lock");
        let (status, body) = if answers.len() > 1 {
            answers.pop_front()
        } else {
            answers.front().cloned()
        }
        .unwrap_or((500, "no scripted answer".into()));
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
    }
}

pub(crate) struct FakeVendor {
    pub(crate) url: String,
    pub(crate) av: Script,
    pub(crate) news: Script,
    yahoo: Script,
    _server: tokio::task::JoinHandle<()>,
}

pub(crate) async fn fake_vendor() -> FakeVendor {
    let (av, news, yahoo) = (Script::default(), Script::default(), Script::default());
    let app = Router::new()
        .route(
            "/query",
            get(
                |State((av, news)): State<(Script, Script)>, Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    let f = q.get("function").cloned().unwrap_or_default();
                    let script = if f == "NEWS_SENTIMENT" { news } else { av };
                    script.next(format!("{f} {}", q.get("symbol").or(q.get("tickers")).cloned().unwrap_or_default()))
                },
            ),
        )
        .with_state((av.clone(), news.clone()))
        .merge(
            Router::new()
                .route(
                    "/v8/finance/chart/{symbol}",
                    get(|State(y): State<Script>, axum::extract::Path(symbol): axum::extract::Path<String>| async move { y.next(symbol) }),
                )
                .with_state(yahoo.clone()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeVendor {
        url,
        av,
        news,
        yahoo,
        _server: server,
    }
}

pub(crate) fn client(url: &str) -> VendorClient {
    VendorClient::new(VendorConfig {
        alpha_vantage_url: url.into(),
        yahoo_url: url.into(),
        alpha_vantage_key: Some(KEY.into()),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
        },
    })
    .expect("client")
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    ctx: IngestContext,
}

fn setup(url: &str) -> Setup {
    let dir = temp_root();
    let store = Store::local(dir.path()).expect("store");
    let ctx = IngestContext {
        store: store.clone(),
        sample_dir: dir.path().join("no-sample"),
        vendors: Some(client(url)),
    };
    Setup {
        _dir: dir,
        store,
        ctx,
    }
}

pub(crate) fn input(symbol: &str, source: Source) -> IngestInput {
    // Alpha Vantage prices with its news, as an environment declares them.
    let sentiment = (source == Source::AlphaVantage).then_some(SentimentSource::AlphaVantage);
    IngestInput {
        run_id: RunId::from_static("test"),
        symbol: Symbol::new(symbol).expect("valid symbol"),
        source,
        sentiment,
    }
}

async fn raw_count(store: &Store, source: Source, symbol: &str) -> usize {
    store
        .list(&format!("raw/{source}/{symbol}/"))
        .await
        .expect("lists")
        .len()
}

#[test]
fn alpha_vantage_normal_days_split_and_sentiment() {
    runtime().block_on(async {
        let vendor = fake_vendor().await;
        vendor.av.push(200, av_daily("IBM", true));
        vendor.news.push(200, AV_NEWS);
        let s = setup(&vendor.url);
        let out = ingest(&s.ctx, &input("IBM", Source::AlphaVantage))
            .await
            .expect("ingests");
        assert_eq!(
            (out.rows_added, out.last_date.map(|d| d.to_string())),
            (3, Some("2024-11-29".into()))
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let curated = s
            .store
            .get(&layout::curated(&Symbol::from_static("IBM")))
            .await
            .expect("reads")
            .expect("curated");
        let series = stockcast::series::PriceSeries::from_csv_bytes("IBM", "c", &curated.bytes)
            .expect("valid");
        // The split day's close halves; the adjusted close, the target, is smooth.
        assert_eq!(series.target(), vec![111.0, 112.0, 112.5]);
        let sentiment = s
            .store
            .get(&layout::sentiment(&Symbol::from_static("IBM")))
            .await
            .expect("reads")
            .expect("sentiment");
        // Relevance-weighted: (0.8·0.3 + 0.2·−0.2) / 1.0 = 0.2.
        let text = String::from_utf8_lossy(&sentiment.bytes).to_string();
        let row: Vec<&str> = text.lines().nth(1).expect("a day").split(',').collect();
        assert_eq!((row[0], row[2]), ("2024-11-27", "2"), "{text}");
        let score: f64 = row[1].parse().expect("a number");
        assert!((score - 0.2).abs() < 1e-12, "{text}");
        assert_eq!(
            raw_count(&s.store, Source::AlphaVantage, "IBM").await,
            2,
            "daily and news stored raw"
        );
        // Nothing secret in what was asked or answered.
        assert!(
            vendor
                .av
                .requests
                .lock()
                .expect("lock")
                .iter()
                .all(|r| !r.contains(KEY))
        );
        assert!(!format!("{out:?}").contains(KEY));
    });
}

/// Issue 15 item 6: an environment takes prices from Yahoo and news from
/// Alpha Vantage. The input asks for news, so it is fetched from Alpha
/// Vantage (never for an index, which has none), stored raw under the
/// vendor that answered, and merged per day; a news failure is a warning
/// and the prices still land.
#[test]
fn yahoo_prices_with_alpha_vantage_news_where_the_input_asks() {
    runtime().block_on(async {
        let vendor = fake_vendor().await;
        // Answers in request order: IBM, ^GSPC, MSFT; news for IBM, then a refusal.
        for symbol in ["IBM", "^GSPC", "MSFT"] {
            vendor.yahoo.push(200, yahoo_chart(symbol));
        }
        vendor.news.push(200, AV_NEWS);
        vendor.news.push(200, AV_THROTTLE_INFORMATION);
        let s = setup(&vendor.url);
        let asks = |symbol: &str| IngestInput {
            sentiment: Some(SentimentSource::AlphaVantage),
            ..input(symbol, Source::Yahoo)
        };
        let out = ingest(&s.ctx, &asks("IBM")).await.expect("ingests");
        assert_eq!((out.source, out.rows_added), (Source::Yahoo, 3));
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let sentiment = s
            .store
            .get(&layout::sentiment(&Symbol::from_static("IBM")))
            .await
            .expect("reads")
            .expect("the news was merged");
        let text = String::from_utf8_lossy(&sentiment.bytes).to_string();
        assert!(
            text.starts_with("date,score,articles\n2024-11-27,"),
            "{text}"
        );
        assert_eq!(raw_count(&s.store, Source::Yahoo, "IBM").await, 1);
        assert_eq!(
            raw_count(&s.store, Source::AlphaVantage, "IBM").await,
            1,
            "the news response is stored raw under alpha-vantage"
        );
        assert!(
            vendor.av.requests.lock().expect("lock").is_empty(),
            "no Alpha Vantage prices"
        );
        // An index has no news feed: not asked, so no request of the daily limit is spent.
        let out = ingest(&s.ctx, &asks("^GSPC")).await.expect("ingests");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        assert_eq!(
            *vendor.news.requests.lock().expect("lock"),
            ["NEWS_SENTIMENT IBM"]
        );
        // The vendor refuses the news: a warning, and the prices still land.
        let out = ingest(&s.ctx, &asks("MSFT")).await.expect("prices land");
        assert_eq!(out.rows_added, 3);
        assert!(
            out.warnings.len() == 1
                && out.warnings[0].starts_with("news sentiment not updated: Vendor.Throttled"),
            "{:?}",
            out.warnings
        );
        assert!(!out.warnings[0].contains(KEY));
        assert!(
            s.store
                .get(&layout::sentiment(&Symbol::from_static("MSFT")))
                .await
                .expect("reads")
                .is_none()
        );
    });
}

/// Prices from Alpha Vantage no longer imply its news: without `sentiment`
/// in the input (as in every input written before the field existed) only
/// the prices are asked for.
#[test]
fn alpha_vantage_prices_without_sentiment_ask_for_no_news() {
    runtime().block_on(async {
        let vendor = fake_vendor().await;
        vendor.av.push(200, av_daily("IBM", true));
        vendor.news.push(200, AV_NEWS);
        let s = setup(&vendor.url);
        let prices_only = IngestInput {
            sentiment: None,
            ..input("IBM", Source::AlphaVantage)
        };
        let out = ingest(&s.ctx, &prices_only).await.expect("ingests");
        assert_eq!(out.rows_added, 3);
        assert!(vendor.news.requests.lock().expect("lock").is_empty());
        assert!(
            s.store
                .get(&layout::sentiment(&Symbol::from_static("IBM")))
                .await
                .expect("reads")
                .is_none()
        );
    });
}

#[test]
fn premium_endpoint_falls_back_to_the_unadjusted_series_and_says_so() {
    runtime().block_on(async {
        let vendor = fake_vendor().await;
        vendor.av.push(200, AV_PREMIUM);
        vendor.av.push(200, av_daily("IBM", false));
        vendor.news.push(200, AV_NEWS);
        let s = setup(&vendor.url);
        let out = ingest(&s.ctx, &input("IBM", Source::AlphaVantage))
            .await
            .expect("ingests");
        assert_eq!(out.rows_added, 3);
        assert!(
            out.warnings
                .iter()
                .any(|w| w.contains("fell back to TIME_SERIES_DAILY")),
            "{:?}",
            out.warnings
        );
        let requests = vendor.av.requests.lock().expect("lock").clone();
        assert_eq!(
            requests,
            vec!["TIME_SERIES_DAILY_ADJUSTED IBM", "TIME_SERIES_DAILY IBM"]
        );
    });
}

#[test]
fn a_throttle_is_retried_and_nothing_is_lost() {
    runtime().block_on(async {
        let vendor = fake_vendor().await;
        vendor.av.push(200, AV_THROTTLE_NOTE);
        vendor.av.push(200, av_daily("IBM", true));
        vendor.news.push(200, AV_NEWS);
        vendor.yahoo.push(429, "Too Many Requests");
        vendor.yahoo.push(503, "<html>Service Unavailable</html>");
        vendor.yahoo.push(200, yahoo_chart("^GSPC"));
        let s = setup(&vendor.url);
        let out = ingest(&s.ctx, &input("IBM", Source::AlphaVantage))
            .await
            .expect("retried");
        assert_eq!(out.rows_added, 3);
        let out = ingest(&s.ctx, &input("^GSPC", Source::Yahoo))
            .await
            .expect("retried");
        assert_eq!(out.rows_added, 3, "the null session is dropped");
        assert_eq!(
            raw_count(&s.store, Source::Yahoo, "^GSPC").await,
            3,
            "every attempt stored raw"
        );
        assert_eq!(
            vendor
                .yahoo
                .requests
                .lock()
                .expect("lock")
                .last()
                .map(String::as_str),
            Some("^GSPC")
        );
    });
}

#[test]
fn every_failure_mode_is_a_typed_error_with_raw_kept_and_curated_unchanged() {
    runtime().block_on(async {
        let cases: Vec<(Source, u16, String, ErrorName, &str)> = vec![
            (
                Source::AlphaVantage,
                200,
                AV_THROTTLE_NOTE.into(),
                ErrorName::VendorThrottled,
                "standard API call frequency",
            ),
            (
                Source::AlphaVantage,
                200,
                AV_THROTTLE_INFORMATION.into(),
                ErrorName::VendorThrottled,
                "rate limit",
            ),
            (
                Source::AlphaVantage,
                200,
                AV_ERROR.into(),
                ErrorName::VendorUnknownSymbol,
                "Invalid API call",
            ),
            (
                Source::AlphaVantage,
                429,
                String::new(),
                ErrorName::VendorThrottled,
                "HTTP 429",
            ),
            (
                Source::AlphaVantage,
                502,
                "<html>Bad Gateway</html>".into(),
                ErrorName::VendorUnavailable,
                "HTTP 502",
            ),
            (
                Source::AlphaVantage,
                200,
                av_daily("MSFT", true),
                ErrorName::VendorBadResponse,
                "asked for IBM, the response is for MSFT",
            ),
            (
                Source::AlphaVantage,
                200,
                av_daily("IBM", true)[..120].to_owned(),
                ErrorName::VendorBadResponse,
                "not JSON",
            ),
            (
                Source::AlphaVantage,
                200,
                r#"{"Meta Data": {"2. Symbol": "IBM"}, "Time Series (Daily)": {}}"#.into(),
                ErrorName::VendorBadResponse,
                "empty",
            ),
            (
                Source::Yahoo,
                404,
                YAHOO_NOT_FOUND.into(),
                ErrorName::VendorUnknownSymbol,
                "HTTP 404",
            ),
            (
                Source::Yahoo,
                200,
                YAHOO_NOT_FOUND.into(),
                ErrorName::VendorUnknownSymbol,
                "No data found",
            ),
            (
                Source::Yahoo,
                200,
                yahoo_chart("^DJI"),
                ErrorName::VendorBadResponse,
                "asked for IBM",
            ),
            (
                Source::Yahoo,
                200,
                "{\"chart\":{\"result\":[{\"meta\":{\"symbol\":\"IBM\"}}],\"error\":null}}".into(),
                ErrorName::VendorBadResponse,
                "empty",
            ),
            (
                Source::Yahoo,
                200,
                "<!doctype html><p>consent</p>".into(),
                ErrorName::VendorBadResponse,
                "not JSON",
            ),
            (
                Source::Yahoo,
                500,
                String::new(),
                ErrorName::VendorUnavailable,
                "HTTP 500",
            ),
        ];
        for (source, status, body, name, message) in cases {
            let vendor = fake_vendor().await;
            let script = if source == Source::Yahoo {
                &vendor.yahoo
            } else {
                &vendor.av
            };
            script.push(status, body);
            let s = setup(&vendor.url);
            // Curated data from an earlier, good ingest.
            let earlier = fake_vendor().await;
            if source == Source::Yahoo {
                earlier.yahoo.push(200, yahoo_chart("IBM"))
            } else {
                earlier.av.push(200, av_daily("IBM", true));
                earlier.news.push(200, AV_NEWS)
            }
            let earlier_ctx = IngestContext {
                vendors: Some(client(&earlier.url)),
                ..s.ctx.clone()
            };
            ingest(&earlier_ctx, &input("IBM", source))
                .await
                .expect("earlier ingest");
            let before = s
                .store
                .get(&layout::curated(&Symbol::from_static("IBM")))
                .await
                .expect("reads")
                .map(|o| o.bytes);
            let raws_before = raw_count(&s.store, source, "IBM").await;

            let err = ingest(&s.ctx, &input("IBM", source))
                .await
                .expect_err("fails");
            assert_eq!(err.name, name, "{source} {status}: {err}");
            assert!(
                err.message.contains(message),
                "{source} {status}: {:?} should contain {message:?}",
                err.message
            );
            assert!(
                !err.message.contains(KEY),
                "the key leaked: {}",
                err.message
            );
            let after = s
                .store
                .get(&layout::curated(&Symbol::from_static("IBM")))
                .await
                .expect("reads")
                .map(|o| o.bytes);
            assert_eq!(
                before, after,
                "{source} {status}: curated data must not change"
            );
            assert!(
                raw_count(&s.store, source, "IBM").await > raws_before,
                "{source} {status}: the response is stored raw"
            );
        }
    });
}

#[test]
fn an_unreachable_vendor_is_unavailable_and_the_key_stays_secret() {
    runtime().block_on(async {
        let port = test_support::free_port();
        let s = setup(&format!("http://127.0.0.1:{port}"));
        let err = ingest(&s.ctx, &input("IBM", Source::AlphaVantage))
            .await
            .expect_err("unreachable");
        assert_eq!(err.name, ErrorName::VendorUnavailable);
        assert!(!err.message.contains(KEY), "{}", err.message);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes are an error or bars, never a panic.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_daily(&bytes, "IBM", DailyFunction::Adjusted);
        let _ = parse_daily(&bytes, "IBM", DailyFunction::Unadjusted);
        let _ = parse_sentiment(&bytes, "IBM");
        let _ = parse_chart(&bytes, "IBM");
    }

    /// Valid JSON of the right shape with arbitrary values is handled too.
    #[test]
    fn parsers_never_panic_on_shaped_json(close in "\\PC*", date in "\\PC*", ts in any::<i64>(), offset in any::<i64>()) {
        let av = format!(r#"{{"Meta Data": {{"2. Symbol": "IBM"}}, "Time Series (Daily)": {{"{date}": {{"4. close": "{close}", "5. adjusted close": "1"}}}}}}"#);
        let _ = parse_daily(av.as_bytes(), "IBM", DailyFunction::Adjusted);
        let chart = format!(r#"{{"chart":{{"result":[{{"meta":{{"symbol":"IBM","gmtoffset":{offset}}},"timestamp":[{ts}],"indicators":{{"quote":[{{"open":[1],"high":[1],"low":[1],"close":[1],"volume":[1]}}]}}}}],"error":null}}}}"#);
        let _ = parse_chart(chart.as_bytes(), "IBM");
    }
}
