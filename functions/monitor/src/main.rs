//! The monitor Lambda, the last task of the daily workflow: records the
//! forecasts production serves today, scores the recorded ones whose days
//! have come (see `stockcast::monitor`), and publishes two aggregate
//! metrics to CloudWatch, `MaseRatio` and `DirectionalAccuracy` in the
//! namespace `STOCKCAST_METRICS_NAMESPACE` with the dimension
//! `Environment`. Per-symbol metrics would cost $0.30 a month each; the
//! per-symbol detail stays in forecasts/ in the bucket.
//! Its output's `drift` tells the workflow whether to start training.

use std::sync::Arc;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use stockcast::functions::{StepEnv, monitor_step, required_var};
use stockcast::steps::{ErrorName, MonitorMetrics, MonitorOutput, StepError};

/// Where the metrics go.
#[derive(Debug, Clone)]
struct Metrics {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
    environment: String,
}

/// The metrics published, by CloudWatch name; `None` is not published.
fn published(metrics: &MonitorMetrics) -> [(&'static str, Option<f64>); 2] {
    [
        ("MaseRatio", metrics.mase_ratio),
        ("DirectionalAccuracy", metrics.directional_accuracy),
    ]
}

impl Metrics {
    fn data(&self, output: &MonitorOutput) -> Vec<MetricDatum> {
        let dimension = Dimension::builder()
            .name("Environment")
            .value(&self.environment)
            .build();
        published(&output.metrics)
            .into_iter()
            .filter_map(|(name, value)| {
                Some(
                    MetricDatum::builder()
                        .metric_name(name)
                        .dimensions(dimension.clone())
                        .value(value?)
                        .unit(StandardUnit::None)
                        .build(),
                )
            })
            .collect()
    }

    async fn publish(&self, output: &MonitorOutput) -> Result<(), StepError> {
        let data = self.data(output);
        if data.is_empty() {
            // Nothing realised yet: publishing nothing keeps the alarm's
            // missing-data treatment in charge, rather than a made-up value.
            return Ok(());
        }
        self.client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                StepError::new(
                    ErrorName::ServiceUnavailable,
                    format!(
                        "CloudWatch did not take the metrics: {}",
                        aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
                    ),
                )
            })
    }
}

async fn handle(env: &StepEnv, metrics: &Metrics, event: Value) -> Result<Value, StepError> {
    let output = monitor_step(env, event).await?;
    metrics.publish(&output).await?;
    serde_json::to_value(&output)
        .map_err(|e| StepError::new(ErrorName::InvalidInput, e.to_string()))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stockcast::logging::init_json();
    let env = Arc::new(StepEnv::from_env().map_err(lambda_runtime::Error::from)?);
    let config = aws_config::load_from_env().await;
    let metrics = Arc::new(Metrics {
        client: aws_sdk_cloudwatch::Client::new(&config),
        namespace: required_var("STOCKCAST_METRICS_NAMESPACE")?,
        // The dimension every metric and alarm is keyed by: a missing name
        // must not publish under another environment's.
        environment: required_var("STOCKCAST_ENV")?,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (env, metrics) = (env.clone(), metrics.clone());
        async move {
            handle(&env, &metrics, event.payload)
                .await
                .map_err(Diagnostic::from)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    //! Against the moto AWS emulator on 127.0.0.1: the data in its S3, the
    //! metrics through the real CloudWatch client, read back with
    //! GetMetricStatistics.

    use aws_sdk_cloudwatch::types::Statistic;
    use stockcast::ids::{RunId, Symbol, VersionId};
    use stockcast::models::ModelKind;
    use stockcast::monitor::{ServedForecast, ServedPoint};
    use stockcast::registry::pretty_json;
    use stockcast::series::PriceSeries;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scores_served_forecasts_and_publishes_two_metrics() {
        let Some(moto) = test_support::Moto::start() else {
            return;
        };
        let store = moto.s3_store("monitor-data");
        let sample = test_support::sample_dir();
        let env = StepEnv {
            store: store.clone(),
            config: Default::default(),
            // The sample data is historical: score everything recorded.
            monitor: stockcast::monitor::MonitorPolicy {
                lookback_days: 365 * 100,
                ..Default::default()
            },
            sample_dir: sample.clone(),
            vendors: None,
            mlflow: None,
            run_defaults: None,
        };
        stockcast::functions::ingest_event(
            &env,
            serde_json::json!({"run_id": "seed", "symbol": "IBM", "source": "sample"}),
        )
        .await
        .expect("ingests");
        // Forecasts "served" at the last 30 origins: always 1 % up.
        let series = PriceSeries::from_csv_path(&sample.join("IBM.csv")).expect("sample parses");
        let target = series.target();
        let n = target.len();
        for (origin, &last_value) in target.iter().enumerate().take(n - 5).skip(n - 35) {
            let record = ServedForecast {
                symbol: Symbol::from_static("IBM"),
                model: ModelKind::Drift,
                version: VersionId::from_static("v1"),
                origin: series.bars[origin].date,
                last_value,
                points: [1, 5]
                    .into_iter()
                    .map(|h| ServedPoint {
                        h,
                        date: series.bars[origin + h].date,
                        forecast: last_value * 1.01,
                    })
                    .collect(),
                recorded_at: String::new(),
                run_id: RunId::from_static("past"),
            };
            store
                .create(
                    &stockcast::layout::forecast(&record.symbol, record.origin),
                    pretty_json(&record),
                )
                .await
                .expect("recorded");
        }
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&moto.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_cloudwatch::config::Credentials::for_tests())
            .load()
            .await;
        let metrics = Metrics {
            client: aws_sdk_cloudwatch::Client::new(&config),
            namespace: "Stockcast".into(),
            environment: "test".into(),
        };
        let output = handle(
            &env,
            &metrics,
            serde_json::json!({"action": "monitor", "run_id": "daily-1", "symbols": ["IBM"]}),
        )
        .await
        .expect("monitors");
        let output: MonitorOutput = serde_json::from_value(output).expect("monitor output");
        assert_eq!(output.metrics.scored_points, 60);
        // No production model yet: nothing to record today.
        assert!(output.recorded.is_empty());

        for (name, value) in published(&output.metrics) {
            let now = std::time::SystemTime::now();
            let read = metrics
                .client
                .get_metric_statistics()
                .namespace("Stockcast")
                .metric_name(name)
                .dimensions(
                    Dimension::builder()
                        .name("Environment")
                        .value("test")
                        .build(),
                )
                .start_time((now - std::time::Duration::from_secs(3600)).into())
                .end_time((now + std::time::Duration::from_secs(60)).into())
                .period(60)
                .statistics(Statistic::Maximum)
                .send()
                .await
                .expect("reads the metric back");
            let points = read.datapoints();
            assert_eq!(points.len(), 1, "{name}: {points:?}");
            assert_eq!(points[0].maximum(), value, "{name}");
        }
    }
}
