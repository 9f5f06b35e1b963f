//! Market-data vendors: an HTTP client with timeouts, and one parser per
//! vendor format. Every failure is a typed error with a stable workflow
//! name (`Vendor.Throttled`, …); nothing a vendor sends is ever read as
//! "no new data".
//!
//! The client only fetches; the ingest step stores each response's bytes
//! before handing them to a parser (raw first), and decides on retries.

pub mod alpha_vantage;
pub mod yahoo;

use std::time::Duration;

use crate::series::Bar;
use crate::steps::{ErrorName, Source, StepError};

pub const ALPHA_VANTAGE_URL: &str = "https://www.alphavantage.co";
pub const YAHOO_URL: &str = "https://query1.finance.yahoo.com";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VendorError {
    #[error("{0}")]
    Throttled(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    UnknownSymbol(String),
    #[error("{0}")]
    BadResponse(String),
    /// The key's plan does not include the endpoint (Alpha Vantage "premium").
    #[error("{0}")]
    PremiumOnly(String),
    #[error("{0}")]
    NotConfigured(String),
}

impl VendorError {
    pub fn name(&self) -> ErrorName {
        match self {
            VendorError::Throttled(_) => ErrorName::VendorThrottled,
            VendorError::Unavailable(_) => ErrorName::VendorUnavailable,
            VendorError::UnknownSymbol(_) => ErrorName::VendorUnknownSymbol,
            VendorError::BadResponse(_)
            | VendorError::PremiumOnly(_)
            | VendorError::NotConfigured(_) => ErrorName::VendorBadResponse,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.name().is_retryable()
    }
}

impl From<VendorError> for StepError {
    fn from(e: VendorError) -> Self {
        StepError::new(e.name(), e.to_string())
    }
}

/// A vendor's answer, as received.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// HTTP-level failures, before the body is looked at.
    pub fn check_status(&self, vendor: &str) -> Result<(), VendorError> {
        match self.status {
            200..=299 => Ok(()),
            429 => Err(VendorError::Throttled(format!(
                "{vendor}: HTTP 429 too many requests"
            ))),
            404 => Err(VendorError::UnknownSymbol(format!(
                "{vendor}: HTTP 404 not found"
            ))),
            s if s >= 500 => Err(VendorError::Unavailable(format!("{vendor}: HTTP {s}"))),
            s => Err(VendorError::BadResponse(format!("{vendor}: HTTP {s}"))),
        }
    }
}

/// How often and how patiently to retry throttles and outages.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
}

impl RetryPolicy {
    /// Exponential backoff with full jitter: a random delay in [0, base·2^attempt].
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self.base_delay.saturating_mul(1 << attempt.min(10));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let fraction = f64::from(nanos % 1000) / 1000.0;
        cap.mul_f64(fraction)
    }
}

/// Where the vendors are and how to reach them.
#[derive(Clone)]
pub struct VendorConfig {
    pub alpha_vantage_url: String,
    pub yahoo_url: String,
    /// Never logged or put in an error.
    pub alpha_vantage_key: Option<String>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for VendorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorConfig")
            .field("alpha_vantage_url", &self.alpha_vantage_url)
            .field("yahoo_url", &self.yahoo_url)
            .field(
                "alpha_vantage_key",
                &self.alpha_vantage_key.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl VendorConfig {
    /// Base URLs from `STOCKCAST_ALPHA_VANTAGE_URL` and `STOCKCAST_YAHOO_URL`
    /// (default: the vendors' hosts), the key from `ALPHA_VANTAGE_API_KEY`.
    pub fn from_env() -> Self {
        VendorConfig {
            alpha_vantage_url: std::env::var("STOCKCAST_ALPHA_VANTAGE_URL")
                .unwrap_or_else(|_| ALPHA_VANTAGE_URL.into()),
            yahoo_url: std::env::var("STOCKCAST_YAHOO_URL").unwrap_or_else(|_| YAHOO_URL.into()),
            alpha_vantage_key: std::env::var("ALPHA_VANTAGE_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(20),
            retry: RetryPolicy {
                attempts: 4,
                base_delay: Duration::from_secs(2),
            },
        }
    }
}

/// An HTTP client for the vendors; cheap to clone.
#[derive(Debug, Clone)]
pub struct VendorClient {
    http: reqwest::Client,
    pub config: VendorConfig,
}

/// What a request asks a vendor for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    AlphaVantageDaily(alpha_vantage::DailyFunction),
    AlphaVantageNews,
    YahooChart,
}

impl VendorClient {
    pub fn new(config: VendorConfig) -> Result<Self, VendorError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("stockcast/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                VendorError::NotConfigured(format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(VendorClient { http, config })
    }

    /// Sends one request; transport failures are `Unavailable`, and never
    /// carry the URL (it holds the API key).
    pub async fn fetch(&self, request: Request, symbol: &str) -> Result<Response, VendorError> {
        let url = match request {
            Request::YahooChart => {
                let mut url = reqwest::Url::parse(&self.config.yahoo_url).map_err(|e| {
                    VendorError::NotConfigured(format!("STOCKCAST_YAHOO_URL is not a URL: {e}"))
                })?;
                url.path_segments_mut()
                    .map_err(|_| {
                        VendorError::NotConfigured("STOCKCAST_YAHOO_URL cannot have a path".into())
                    })?
                    .extend(["v8", "finance", "chart", symbol]);
                url.query_pairs_mut()
                    .append_pair("range", "3mo")
                    .append_pair("interval", "1d")
                    .append_pair("events", "div,splits")
                    .append_pair("includeAdjustedClose", "true");
                url
            }
            Request::AlphaVantageDaily(_) | Request::AlphaVantageNews => {
                let key = self.config.alpha_vantage_key.as_deref().ok_or_else(|| {
                    VendorError::NotConfigured(
                        "no Alpha Vantage key: set ALPHA_VANTAGE_API_KEY (locally) or the vendor secret (in AWS)".into(),
                    )
                })?;
                let mut url = reqwest::Url::parse(&self.config.alpha_vantage_url).map_err(|e| {
                    VendorError::NotConfigured(format!(
                        "STOCKCAST_ALPHA_VANTAGE_URL is not a URL: {e}"
                    ))
                })?;
                url.set_path("/query");
                {
                    let mut q = url.query_pairs_mut();
                    match request {
                        Request::AlphaVantageDaily(function) => {
                            q.append_pair("function", function.name())
                                .append_pair("symbol", symbol)
                                .append_pair("outputsize", "compact");
                        }
                        _ => {
                            q.append_pair("function", "NEWS_SENTIMENT")
                                .append_pair("tickers", symbol)
                                .append_pair("limit", "200");
                        }
                    }
                    q.append_pair("apikey", key);
                }
                url
            }
        };
        let vendor = if request == Request::YahooChart {
            "yahoo"
        } else {
            "alpha-vantage"
        };
        let response = self.http.get(url).send().await.map_err(|e| {
            VendorError::Unavailable(format!("{vendor}: request failed: {}", e.without_url()))
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            VendorError::Unavailable(format!(
                "{vendor}: reading the response failed: {}",
                e.without_url()
            ))
        })?;
        Ok(Response {
            status,
            body: body.to_vec(),
        })
    }
}

/// Parses a response to daily bars, status first.
pub fn parse_daily(
    request: Request,
    response: &Response,
    symbol: &str,
) -> Result<Vec<Bar>, VendorError> {
    match request {
        Request::YahooChart => {
            response.check_status("yahoo")?;
            yahoo::parse_chart(&response.body, symbol)
        }
        Request::AlphaVantageDaily(function) => {
            response.check_status("alpha-vantage")?;
            alpha_vantage::parse_daily(&response.body, symbol, function)
        }
        Request::AlphaVantageNews => Err(VendorError::BadResponse(
            "a news response has no daily bars".into(),
        )),
    }
}

/// The first request for a source's daily prices.
pub fn daily_request(source: Source) -> Option<Request> {
    match source {
        Source::AlphaVantage => Some(Request::AlphaVantageDaily(
            alpha_vantage::DailyFunction::Adjusted,
        )),
        Source::Yahoo => Some(Request::YahooChart),
        Source::Sample => None,
    }
}
