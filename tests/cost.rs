//! The cost estimate of the real rendered environments under the reference
//! workload (issue 10), with the real price table.

use stockcast::infra::cost::{self, CostError, Estimate, PriceTable, Workload};
use stockcast::infra::{Sources, render};

use crate::harness::project_root;

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
    for e in [&dev, &prod] {
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
    // drift; prod also 4 Throttles, API latency and 2 ExecutionsFailed.
    assert_eq!((alarms(&dev), alarms(&prod)), (7, 14));
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
