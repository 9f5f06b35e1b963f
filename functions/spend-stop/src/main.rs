//! The spend-stop Lambda. It is subscribed to the topic
//! `stockcast-<env>-spend-cap`, to which only the budget's notification at
//! 100 % of ACTUAL spend publishes, so every message is a stop: it disables
//! the environment's schedules and throttles its API to zero (see
//! `stockcast::spend_cap`). `cargo xtask resume --env ENV` lifts the stop.
//!
//! Configuration: `STOCKCAST_ENV`, the environment's name.

use std::sync::Arc;

use aws_lambda_events::event::sns::SnsEvent;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use stockcast::spend_cap::{CapState, SpendCap};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stockcast::logging::init_json();
    let env = stockcast::functions::required_var("STOCKCAST_ENV")?;
    let config = aws_config::load_from_env().await;
    let cap = Arc::new(SpendCap::new(
        aws_sdk_scheduler::Client::new(&config),
        aws_sdk_apigateway::Client::new(&config),
        &env,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SnsEvent>| {
        let cap = cap.clone();
        async move { stop(&cap, &event.payload).await }
    }))
    .await
}

/// Applies the stop; a failure is retried by SNS's Lambda delivery (and
/// raises the function's Errors alarm), since the budget will not notify
/// twice in a month.
async fn stop(cap: &SpendCap, event: &SnsEvent) -> Result<CapState, Diagnostic> {
    for record in &event.records {
        tracing::warn!(
            subject = record.sns.subject.as_deref().unwrap_or(""),
            message = %record.sns.message,
            "the budget's spend cap was reached: stopping"
        );
    }
    // An error name of the workflows' set (`ErrorName`), not one of its own.
    let state = cap
        .stop()
        .await
        .map_err(|e| Diagnostic::from(stockcast::steps::StepError::from(e)))?;
    tracing::warn!(
        state = %state.summary(),
        "stopped: run `cargo xtask resume --env <env>` to lift it"
    );
    Ok(state)
}

#[cfg(test)]
mod tests {
    //! Against moto on 127.0.0.1: the schedules and the usage plan the
    //! templates declare (moto's CloudFormation creates neither, so the test
    //! creates them with the same names), then the Lambda's stop, then the
    //! library's resume.

    use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
    use stockcast::spend_cap::Throttle;

    use super::*;

    const INPUT: &str = r#"{"run_id":"<aws.scheduler.scheduled-time>-daily","env":"dev"}"#;

    async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_scheduler::config::Credentials::for_tests())
            .load()
            .await
    }

    /// What the orchestration and app stacks create, by the same names.
    async fn deployed(config: &aws_config::SdkConfig) {
        let scheduler = aws_sdk_scheduler::Client::new(config);
        scheduler
            .create_schedule_group()
            .name("stockcast-dev")
            .send()
            .await
            .expect("group");
        for name in ["stockcast-dev-daily", "stockcast-dev-training"] {
            scheduler
                .create_schedule()
                .group_name("stockcast-dev")
                .name(name)
                .schedule_expression("cron(0 9 ? * MON-FRI *)")
                .schedule_expression_timezone("UTC")
                .flexible_time_window(
                    FlexibleTimeWindow::builder()
                        .mode(FlexibleTimeWindowMode::Off)
                        .build()
                        .expect("window"),
                )
                .target(
                    Target::builder()
                        .arn("arn:aws:states:us-east-1:123456789012:stateMachine:stockcast-dev-daily")
                        .role_arn("arn:aws:iam::123456789012:role/scheduler")
                        .input(INPUT)
                        .build()
                        .expect("target"),
                )
                .send()
                .await
                .expect("schedule");
        }
        let apigateway = aws_sdk_apigateway::Client::new(config);
        apigateway
            .create_usage_plan()
            .name("stockcast-dev")
            .throttle(
                aws_sdk_apigateway::types::ThrottleSettings::builder()
                    .rate_limit(10.0)
                    .burst_limit(20)
                    .build(),
            )
            .send()
            .await
            .expect("usage plan");
        // Another environment's plan, which the cap must not touch.
        apigateway
            .create_usage_plan()
            .name("stockcast-prod")
            .send()
            .await
            .expect("usage plan");
    }

    fn notification() -> SnsEvent {
        serde_json::from_value(serde_json::json!({"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:stockcast-dev-spend-cap:1",
            "Sns": {"Type": "Notification", "MessageId": "1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:stockcast-dev-spend-cap",
                    "Subject": "AWS Budgets: stockcast-dev has exceeded your alert threshold",
                    "Message": "AWS Budget Notification November 27, 2026\nAWS Account 123456789012\n\nDear AWS Customer,\n\nYou requested that we alert you when the ACTUAL Cost associated with your stockcast-dev budget is greater than $50.00 for the current month. The ACTUAL Cost associated with this budget is $50.12.",
                    "Timestamp": "2026-11-27T09:00:00.000Z", "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://x",
                    "MessageAttributes": {}}}]}))
        .expect("an SNS event")
    }

    #[tokio::test]
    async fn a_budget_notification_stops_schedules_and_api_and_resume_lifts_it() {
        let Some(moto) = test_support::Moto::start() else {
            return;
        };
        let config = sdk(&moto.endpoint).await;
        let cap = SpendCap::new(
            aws_sdk_scheduler::Client::new(&config),
            aws_sdk_apigateway::Client::new(&config),
            "dev",
        );
        assert!(cap.state().await.is_err(), "nothing deployed yet");
        // Nothing to stop is not something a redelivery can fix.
        let undeployed = stop(&cap, &notification())
            .await
            .expect_err("nothing deployed");
        assert_eq!(
            undeployed.error_type, "Step.InvalidInput",
            "{}",
            undeployed.error_message
        );
        deployed(&config).await;
        assert!(!cap.state().await.expect("state").stopped());

        let stopped = stop(&cap, &notification()).await.expect("stopped");
        assert!(stopped.stopped());
        assert!(stopped.schedules.iter().all(|s| !s.enabled), "{stopped:?}");
        assert_eq!(stopped.schedules.len(), 2);
        assert_eq!(stopped.throttle, Some(Throttle::STOPPED));
        // The update kept the rest of the schedule.
        let daily = aws_sdk_scheduler::Client::new(&config)
            .get_schedule()
            .group_name("stockcast-dev")
            .name("stockcast-dev-daily")
            .send()
            .await
            .expect("schedule");
        assert_eq!(daily.target().and_then(|t| t.input()), Some(INPUT));
        assert_eq!(daily.schedule_expression(), Some("cron(0 9 ? * MON-FRI *)"));
        // A second notification changes nothing and still succeeds.
        assert_eq!(stop(&cap, &notification()).await.expect("again"), stopped);

        let open = Throttle {
            rate_limit: 10.0,
            burst_limit: 20,
        };
        let resumed = cap.resume(open).await.expect("resumed");
        assert!(!resumed.stopped(), "{resumed:?}");
        assert_eq!(resumed.throttle, Some(open));
        let prod = aws_sdk_apigateway::Client::new(&config)
            .get_usage_plans()
            .send()
            .await
            .expect("plans");
        let prod = prod
            .items()
            .iter()
            .find(|p| p.name() == Some("stockcast-prod"))
            .expect("prod plan");
        assert!(prod.throttle().is_none(), "another environment untouched");
    }
}
