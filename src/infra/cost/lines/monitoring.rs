//! What watches and tells: alarms on the metrics they watch, the custom
//! metrics the functions publish, and the topics' publishes and emails.

use serde_json::Value as Json;

use super::{Inputs, Pricer, grouped};
use crate::infra::cost::{CostError, HOURS_PER_MONTH, PriceId};
use crate::infra::model::Resource;

/// The metrics an alarm evaluates: (namespace, name, period) of each.
fn alarm_metrics(r: &Resource<'_>) -> Vec<(String, String, f64)> {
    let p = r.properties;
    let text = |v: &Json| v.as_str().unwrap_or("").to_owned();
    match p["Metrics"].as_array() {
        Some(queries) => queries
            .iter()
            .filter(|q| q["MetricStat"].is_object())
            .map(|q| {
                let stat = &q["MetricStat"];
                (
                    text(&stat["Metric"]["Namespace"]),
                    text(&stat["Metric"]["MetricName"]),
                    stat["Period"].as_f64().unwrap_or(60.0),
                )
            })
            .collect(),
        None => vec![(
            text(&p["Namespace"]),
            text(&p["MetricName"]),
            p["Period"].as_f64().unwrap_or(60.0),
        )],
    }
}

pub(super) fn alarm(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    let metrics = alarm_metrics(r);
    for (namespace, name, _) in &metrics {
        let published = namespace.starts_with("AWS/")
            || (inputs.workload.custom_metrics.iter())
                .any(|m| &m.namespace == namespace && &m.name == name);
        if !published {
            return Err(CostError::template(
                r,
                format!(
                    "the alarm watches {namespace}/{name}, which no workload custom metric publishes: it can never fire (add the metric to custom_metrics with its publisher, or remove the alarm)"
                ),
            ));
        }
    }
    let high_resolution = metrics.iter().any(|(_, _, period)| *period < 60.0);
    let (id, kind) = if high_resolution {
        (
            PriceId::CloudwatchHighResolutionAlarmMetricMonth,
            "high-resolution alarm",
        )
    } else {
        (PriceId::CloudwatchAlarmMetricMonth, "alarm")
    };
    let names: Vec<String> = metrics
        .iter()
        .map(|(ns, n, _)| format!("{ns} {n}"))
        .collect();
    let what = format!("{kind} on {}", names.join(", "));
    p.of(r.key()).add(what, id, metrics.len() as f64)
}

pub(super) fn custom_metrics(p: &mut Pricer<'_>, inputs: &Inputs<'_>) -> Result<(), CostError> {
    for metric in &inputs.workload.custom_metrics {
        let publisher = (inputs.model.of_kind("AWS::Lambda::Function"))
            .find(|f| f.id == metric.published_by)
            .map(Resource::key)
            .unwrap_or_default();
        // Billed per hour in which the metric receives data: one hour per
        // publishing call at most, and never more than the month's hours.
        let hours = (inputs.usage.invocations.get(&publisher).copied())
            .unwrap_or(0.0)
            .min(HOURS_PER_MONTH);
        let what = format!(
            "custom metric, data in {} of {} hours",
            grouped(hours, 1),
            grouped(HOURS_PER_MONTH, 1)
        );
        p.of(format!("metric {}/{}", metric.namespace, metric.name))
            .add(
                what,
                PriceId::CloudwatchCustomMetricMonth,
                hours / HOURS_PER_MONTH,
            )?;
    }
    Ok(())
}

/// A topic's share of the workload's notifications, each delivered to its
/// email subscriptions.
pub(super) fn topic(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    let model = inputs.model;
    let topics = model.of_kind("AWS::SNS::Topic").count() as f64;
    let publishes = inputs.workload.notifications_per_month / topics;
    let emails = model
        .of_kind("AWS::SNS::Subscription")
        .filter(|s| s.stack == r.stack && s.properties["TopicArn"]["Ref"] == r.id)
        .filter(|s| {
            s.properties["Protocol"]
                .as_str()
                .is_some_and(|p| p.starts_with("email"))
        })
        .count() as f64;
    let mut lines = p.of(r.key());
    lines.add("publishes", PriceId::SnsPublish, publishes)?;
    let plural = if emails == 1.0 { "" } else { "s" };
    lines.add(
        format!(
            "email deliveries ({} subscription{plural})",
            grouped(emails, 0)
        ),
        PriceId::SnsEmailDelivery,
        publishes * emails,
    )
}
