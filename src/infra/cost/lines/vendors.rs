//! The vendors' requests: what those beyond the prices add to the calls
//! that send them, each at its vendor's price, and each vendor's busiest
//! day against its plan's daily limit.

use std::collections::BTreeMap;

use super::compute::compute;
use super::{Inputs, Pricer, grouped};
use crate::infra::cost::usage::Usage;
use crate::infra::cost::{
    CostError, ExtraRequest, ExtraRequestWorkload, PriceId, PriceTable, VendorDay, cron,
};
use crate::infra::model::Resource;
use crate::ingest::VendorRequest;
use crate::steps::Source;

/// The price of a vendor's requests: Alpha Vantage's plan. Yahoo's chart API
/// takes no key and publishes no plan, so its requests are not priced.
fn vendor_price(vendor: &str) -> Option<PriceId> {
    (vendor == Source::AlphaVantage.name()).then_some(PriceId::AlphaVantageRequest)
}

/// What a request adds beyond the call's price request, which `lambda_ms`
/// and the buckets' volumes already count.
fn extra_request(request: VendorRequest) -> Option<ExtraRequest> {
    match request {
        VendorRequest::DailyPrices(_) => None,
        VendorRequest::NewsSentiment(_) => Some(ExtraRequest::NewsSentiment),
    }
}

/// The vendor requests of the functions: what those beyond the prices add
/// to the calls that send them (compute, and S3 requests in the bucket the
/// function writes, its `STOCKCAST_BUCKET`), and each at its vendor's price.
pub(super) fn vendor_requests(p: &mut Pricer<'_>, inputs: &Inputs<'_>) -> Result<(), CostError> {
    for ((function, request), &n) in &inputs.usage.vendor_requests {
        let what = request.what();
        if let Some(extra) = extra_request(*request)
            && let Some(r) = (inputs.model.resources().iter()).find(|r| r.key() == *function)
        {
            let added = inputs.workload.vendor_requests.get(&extra).ok_or_else(|| {
                CostError::workload(
                    inputs.workload,
                    format!(
                        "vendor_requests: nothing says what a {what} request adds to {function}: add `{extra}: {{lambda_ms: <ms>, s3_put_requests: <n>, s3_get_requests: <n>}}`"
                    ),
                )
            })?;
            extra_request_lines(p, inputs, r, *request, n, added)?;
        }
        if let Some(price) = vendor_price(request.vendor()) {
            p.of(format!("vendor {}", request.vendor())).add(
                format!("{what} requests ({function})"),
                price,
                n,
            )?;
        }
    }
    Ok(())
}

/// What `n` requests add to the function `r` that sends them: compute, and
/// S3 requests in its bucket.
fn extra_request_lines(
    p: &mut Pricer<'_>,
    inputs: &Inputs<'_>,
    r: &Resource<'_>,
    request: VendorRequest,
    n: f64,
    added: &ExtraRequestWorkload,
) -> Result<(), CostError> {
    let (what, function) = (request.what(), r.key());
    let (arch, mb, id) = compute(r);
    p.of(function.clone()).add(
        format!(
            "{arch} compute, {what} requests: {} x {} ms x {} MB",
            grouped(n, 1),
            grouped(added.lambda_ms, 0),
            grouped(mb, 0)
        ),
        id,
        n * added.lambda_ms / 1000.0 * mb / 1024.0,
    )?;
    let variable = &r.properties["Environment"]["Variables"]["STOCKCAST_BUCKET"];
    let bucket = (inputs
        .model
        .resource_of_kind(r.stack, variable, "AWS::S3::Bucket"))
    .ok_or_else(|| {
        let message = format!(
            "sends {what} requests, but its STOCKCAST_BUCKET names no bucket of the stacks"
        );
        CostError::template(r, message)
    })?;
    let mut lines = p.of(bucket.key());
    for (kind, per_request, price) in [
        ("PUT", added.s3_put_requests, PriceId::S3PutRequest),
        ("GET", added.s3_get_requests, PriceId::S3GetRequest),
    ] {
        let what = format!(
            "{kind} requests of {what}: {} x {} ({function})",
            grouped(n, 1),
            grouped(per_request, 1)
        );
        lines.add(what, price, n * per_request)?;
    }
    Ok(())
}

/// The first day of the years a busiest day is looked for in; four years
/// hold every date of the calendar, 29 February included.
const DAYS_FROM: (i32, u32, u32) = (2028, 1, 1);
const DAYS_LOOKED_AT: usize = 4 * 365 + 1;

/// Each vendor's busiest day: the most requests that the schedules firing
/// on one date send, with the runs they start, against its plan's limit.
pub fn vendor_days(usage: &Usage, prices: &PriceTable) -> Result<Vec<VendorDay>, CostError> {
    let mut busiest: BTreeMap<&'static str, f64> = BTreeMap::new();
    let (year, month, day) = DAYS_FROM;
    let Some(first) = chrono::NaiveDate::from_ymd_opt(year, month, day) else {
        return Ok(Vec::new());
    };
    for date in first.iter_days().take(DAYS_LOOKED_AT) {
        let mut today: BTreeMap<&'static str, f64> = BTreeMap::new();
        for (schedule, expression, requests) in &usage.firings {
            let firings =
                cron::firings_on(expression, date).map_err(|message| CostError::Template {
                    resource: schedule.clone(),
                    message,
                })?;
            for (vendor, n) in requests {
                *today.entry(vendor).or_default() += firings * n;
            }
        }
        for (vendor, n) in today {
            let most = busiest.entry(vendor).or_default();
            *most = most.max(n);
        }
    }
    Ok(busiest
        .into_iter()
        .map(|(vendor, busiest_day)| VendorDay {
            vendor: vendor.to_owned(),
            busiest_day,
            daily_limit: vendor_price(vendor)
                .and_then(|id| prices.prices.get(&id))
                .and_then(|price| price.daily_limit),
        })
        .collect())
}
