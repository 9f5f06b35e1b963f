//! The cost estimate of the real rendered environments under the reference
//! workload (issues 10 and 18), with the real price table.

use stockcast::infra::cost::{self, CostError, Estimate, PriceTable, Workload};
use stockcast::infra::{Sources, render};

use test_support::project_root;

fn sources() -> Sources {
    Sources::in_project(&project_root())
}

fn reference() -> Workload {
    Workload::load(&project_root().join("stacks/workloads/reference.yaml"))
        .expect("the reference workload parses")
}

fn prices_text() -> String {
    std::fs::read_to_string(project_root().join("stacks/prices/us-east-1.yaml"))
        .expect("the price table exists")
}

fn estimate(env: &str, prices: &PriceTable) -> Result<Estimate, CostError> {
    let rendered = render(&sources(), env).unwrap_or_else(|e| panic!("{env} renders: {e}"));
    cost::estimate_rendered(&rendered, &reference(), prices)
}

fn table(estimate: &Estimate) -> String {
    estimate
        .lines
        .iter()
        .map(|l| {
            format!(
                "{:<40} {:<60} {:>10.4}\n",
                l.resource, l.what, l.monthly_usd
            )
        })
        .collect()
}

/// Issue 10: the reference workload costs at most $1 a month in dev, with no
/// free tier counted.
#[test]
fn i10_the_reference_workload_costs_at_most_a_dollar_a_month_in_dev() {
    let prices = PriceTable::for_region(&sources().stacks_dir, "us-east-1").expect("prices");
    let estimate = estimate("dev", &prices).expect("dev estimates");
    let total = estimate.total_usd();
    assert!(
        total <= 1.0,
        "dev costs ${total:.4} a month, over $1:\n{}",
        table(&estimate)
    );
}

#[test]
fn every_environment_estimates_with_every_line_priced() {
    let prices = PriceTable::for_region(&sources().stacks_dir, "us-east-1").expect("prices");
    let dev = estimate("dev", &prices).expect("dev estimates");
    let prod = estimate("prod", &prices).expect("prod estimates");
    let scale = estimate("scale", &prices).expect("scale estimates");
    for e in [&dev, &prod, &scale] {
        assert!(
            e.lines
                .iter()
                .all(|l| l.monthly_usd.is_finite() && l.monthly_usd >= 0.0)
        );
        assert!(
            e.lines
                .windows(2)
                .all(|w| w[0].monthly_usd >= w[1].monthly_usd),
            "largest first"
        );
    }
    // Prod adds a dashboard ($3) and the alarms dev leaves out.
    assert!(
        prod.total_usd() > dev.total_usd() + 3.0,
        "prod {} vs dev {}",
        prod.total_usd(),
        dev.total_usd()
    );
    let alarms = |e: &Estimate| {
        e.lines
            .iter()
            .filter(|l| l.price == cost::PriceId::CloudwatchAlarmMetricMonth)
            .count()
    };
    // dev: 5 function Errors (the spend-stop function's too), API 5xx,
    // drift; prod also 4 Throttles, API latency and 2 ExecutionsFailed;
    // scale keeps dev's.
    assert_eq!((alarms(&dev), alarms(&prod), alarms(&scale)), (7, 14, 7));
    // Each runs its universe: the seed's 8, the S&P 500's 503.
    assert_eq!((dev.symbols, prod.symbols, scale.symbols), (8, 8, 503));
}

/// Issue 18: the estimate grows with the universe as the workflows do. The
/// ingest Map starts a child execution per symbol in every run (two
/// transitions each), the vendor is asked once per symbol and run, the
/// training array has ceil(N / shard size) tasks with the shard size the
/// plan step computes, and its vCPU-hours are the symbols' fits on them;
/// what does not grow (alarms, the API) is shared, so a symbol costs less
/// in a larger universe.
#[test]
fn i18_the_estimate_grows_with_the_universe_as_the_model_says() {
    let prices = PriceTable::for_region(&sources().stacks_dir, "us-east-1").expect("prices");
    let rendered = render(&sources(), "dev").expect("dev renders");
    let workload = reference();
    let daily = cost::runs_per_month("cron(0 9 ? * MON-FRI *)").expect("cron");
    let training = cost::runs_per_month("cron(0 6 ? * SUN *)").expect("cron");
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
    // What training one symbol takes: every model and naive at the
    // protocol's 96 origins, and every model once more on the latest window.
    let per_fit: f64 = workload.training.cpu_ms_per_fit.values().sum();
    let cpu_seconds = per_fit * 97.0 / 1000.0;
    let mut per_symbol_usd = Vec::new();
    for n in [1, 8, 50, 500] {
        let estimate = cost::estimate_rendered_at(&rendered, &workload, &prices, n)
            .unwrap_or_else(|e| panic!("dev at {n} symbols estimates: {e}"));
        assert_eq!(estimate.symbols, n);
        let line = |resource: &str, what: &str| -> cost::Line {
            let found: Vec<&cost::Line> = (estimate.lines.iter())
                .filter(|l| l.resource == resource && l.what.starts_with(what))
                .collect();
            assert_eq!(found.len(), 1, "{resource} {what}:\n{}", table(&estimate));
            found[0].clone()
        };
        let n_f = n as f64;
        for (machine, runs) in [
            ("DailyStateMachine", daily),
            ("TrainingStateMachine", training),
        ] {
            let children = line(
                &format!("orchestration/{machine}"),
                "Map Ingest child executions",
            );
            assert!(close(children.quantity, runs * n_f * 2.0), "{children:?}");
        }
        // The training array: ceil(N / shard size) tasks of the symbols
        // split as evenly as shards are, each billed a minute at least.
        let shard_size = stockcast::universe::shard_size(n, rendered.env.max_parallel_jobs());
        let shards = stockcast::universe::shard_count(n, shard_size);
        let vcpu = line("app/TrainJobDefinition", "FARGATE_SPOT vCPU");
        assert!(
            vcpu.what.contains(&format!(" jobs x {shards} tasks x ")),
            "{n} symbols, {shards} shards: {}",
            vcpu.what
        );
        let task_minutes: f64 = (0..shards)
            .map(|i| {
                let symbols = n / shards + usize::from(i < n % shards);
                (symbols as f64 * cpu_seconds / 60.0).max(1.0)
            })
            .sum();
        assert!(
            close(vcpu.quantity, training * task_minutes / 60.0),
            "{n} symbols: {vcpu:?}"
        );
        // One price request per symbol a daily run, and as many again by
        // a retraining on drift the same day.
        let yahoo = (estimate.vendor_days.iter())
            .find(|d| d.vendor == "yahoo")
            .expect("yahoo is counted");
        assert_eq!(yahoo.busiest_day, 2.0 * n_f);
        per_symbol_usd.push(estimate.per_symbol_usd());
    }
    assert!(
        per_symbol_usd.windows(2).all(|w| w[0] > w[1]),
        "{per_symbol_usd:?}"
    );
    // The environment's own universe by default: dev's 8.
    let own = cost::estimate_rendered(&rendered, &workload, &prices).expect("estimates");
    assert_eq!(own.symbols, 8);
}

#[test]
fn a_price_the_rendered_templates_need_is_an_error_when_missing() {
    let text = prices_text();
    let start = text
        .find("  cloudwatch_alarm_metric_month:")
        .expect("the table prices alarms");
    let end = start
        + text[start..]
            .find("  cloudwatch_high_resolution_alarm_metric_month:")
            .expect("the next price follows");
    let without = format!("{}{}", &text[..start], &text[end..]);
    let prices = PriceTable::parse("stacks/prices/us-east-1.yaml", &without).expect("parses");
    let err = estimate("dev", &prices).expect_err("a price is missing");
    let message = err.to_string();
    assert!(
        message.starts_with(
            "stacks/prices/us-east-1.yaml: no price `cloudwatch_alarm_metric_month`, which monitoring/"
        ) && message.contains("add it under `prices:`"),
        "{message}"
    );
}

/// Issue 15: news sentiment in prod (Yahoo's prices, Alpha Vantage's news)
/// is priced: the vendor secret it renders, what each NEWS_SENTIMENT request
/// adds to the ingest call (compute, S3 requests), and the requests
/// themselves, held against Alpha Vantage's daily limit with a retraining
/// on drift the same day. Dev asks for no news and pays for none of it.
#[test]
fn news_sentiment_is_priced_and_counted_against_the_daily_limit() {
    let prices = PriceTable::for_region(&sources().stacks_dir, "us-east-1").expect("prices");
    let dev = estimate("dev", &prices).expect("dev estimates");
    let prod = estimate("prod", &prices).expect("prod estimates");
    let about = |e: &Estimate, text: &str| -> Vec<cost::Line> {
        e.lines
            .iter()
            .filter(|l| l.what.contains(text) || l.resource.contains(text))
            .cloned()
            .collect()
    };
    assert!(about(&dev, "NEWS_SENTIMENT").is_empty(), "{}", table(&dev));
    assert!(about(&dev, "VendorSecret").is_empty());
    assert!(dev.vendor_days.iter().all(|d| d.vendor != "alpha-vantage"));

    // 5 company tickers (the 3 indices have no news) in every daily run
    // (weekdays) and training run (Sundays).
    let runs = cost::runs_per_month("cron(0 9 ? * MON-FRI *)").expect("cron")
        + cost::runs_per_month("cron(0 6 ? * SUN *)").expect("cron");
    let requests = 5.0 * runs;
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
    let news = about(&prod, "NEWS_SENTIMENT");
    let line = |resource: &str, price: cost::PriceId| {
        news.iter()
            .find(|l| l.resource == resource && l.price == price)
            .unwrap_or_else(|| panic!("no {price} line for {resource}:\n{}", table(&prod)))
    };
    let vendor = line("vendor alpha-vantage", cost::PriceId::AlphaVantageRequest);
    assert!(
        close(vendor.quantity, requests) && vendor.monthly_usd == 0.0,
        "{vendor:?}"
    );
    // 800 ms at 256 MB a request (the reference workload).
    let compute = line("app/IngestFunction", cost::PriceId::LambdaArm64GbSecond);
    assert!(
        close(compute.quantity, requests * 0.8 * 0.25),
        "{compute:?}"
    );
    let puts = line("data/DataBucket", cost::PriceId::S3PutRequest);
    let gets = line("data/DataBucket", cost::PriceId::S3GetRequest);
    assert!(close(puts.quantity, 2.0 * requests) && close(gets.quantity, requests));
    let secret = about(&prod, "app/VendorSecret");
    assert!(
        secret.len() == 1 && close(secret[0].monthly_usd, 0.40),
        "{secret:?}"
    );
    // A weekday: the daily run's 5 and a retraining's 5, within the free 25.
    let av = prod
        .vendor_days
        .iter()
        .find(|d| d.vendor == "alpha-vantage")
        .expect("alpha-vantage is counted");
    assert_eq!((av.busiest_day, av.daily_limit), (10.0, Some(25.0)));
    assert!(!av.over_limit());

    // Prices from Alpha Vantage too: 8 price and 5 news requests a run, 26
    // on a drift day, over the free plan's 25.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prod-av.yaml");
    let text = std::fs::read_to_string(project_root().join("stacks/environments/prod.yaml"))
        .expect("prod.yaml")
        .replace("source: yahoo ", "source: alpha-vantage ");
    std::fs::write(&path, text).expect("writes");
    let rendered = render(&sources(), &path.display().to_string()).expect("renders");
    let both = cost::estimate_rendered(&rendered, &reference(), &prices).expect("estimates");
    let av = both
        .vendor_days
        .iter()
        .find(|d| d.vendor == "alpha-vantage")
        .expect("alpha-vantage is counted");
    assert_eq!(av.busiest_day, 26.0);
    assert!(av.over_limit());

    // The workload must say what a news request adds.
    let mut workload = reference();
    workload.vendor_requests.clear();
    let err = cost::estimate_rendered(
        &render(&sources(), "prod").expect("renders"),
        &workload,
        &prices,
    )
    .expect_err("the workload lacks news_sentiment");
    assert!(
        err.to_string().contains(
            "vendor_requests: nothing says what a NEWS_SENTIMENT request adds to app/IngestFunction"
        ),
        "{err}"
    );
}
