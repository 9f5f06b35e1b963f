//! The estimator's arithmetic on a small fixture, every line computed by hand.

use serde_json::{Value as Json, json};

use super::*;
use crate::infra::RenderedStack;

/// Round prices, so the expected figures can be worked out by hand.
const PRICES: &str = r#"
region: us-east-1
as_of: 2026-01-01
currency: USD
prices:
  lambda_arm64_gb_second: {usd: 0.00001, per: GB-second, what: x, source: "https://example.com/"}
  lambda_request: {usd: 0.000001, per: request, what: x, source: "https://example.com/", free_tier: {per_month: 1000000, kind: always}}
  api_gateway_rest_request: {usd: 0.000002, per: request, what: x, source: "https://example.com/", free_tier: {per_month: 1000000, kind: first_12_months}}
  step_functions_state_transition: {usd: 0.00002, per: state transition, what: x, source: "https://example.com/"}
  fargate_vcpu_hour: {usd: 0.04, per: vCPU-hour, what: x, source: "https://example.com/"}
  fargate_gb_hour: {usd: 0.004, per: GB-hour, what: x, source: "https://example.com/"}
  s3_standard_gb_month: {usd: 0.02, per: GB-month, what: x, source: "https://example.com/"}
  s3_glacier_instant_gb_month: {usd: 0.004, per: GB-month, what: x, source: "https://example.com/"}
  s3_put_request: {usd: 0.000005, per: request, what: x, source: "https://example.com/"}
  s3_get_request: {usd: 0.0000004, per: request, what: x, source: "https://example.com/"}
  s3_glacier_instant_transition: {usd: 0.00002, per: request, what: x, source: "https://example.com/"}
  cloudwatch_alarm_metric_month: {usd: 0.10, per: alarm metric-month, what: x, source: "https://example.com/"}
  cloudwatch_custom_metric_month: {usd: 0.30, per: metric-month, what: x, source: "https://example.com/", free_tier: {per_month: 10, kind: always}}
  cloudwatch_logs_ingested_gb: {usd: 0.50, per: GB, what: x, source: "https://example.com/"}
  cloudwatch_logs_stored_gb_month: {usd: 0.03, per: GB-month, what: x, source: "https://example.com/"}
  xray_trace_recorded: {usd: 0.000005, per: trace, what: x, source: "https://example.com/"}
  secrets_manager_secret_month: {usd: 0.40, per: secret-month, what: x, source: "https://example.com/"}
  kms_key_month: {usd: 1.00, per: key-month, what: x, source: "https://example.com/"}
  kms_request: {usd: 0.000003, per: request, what: x, source: "https://example.com/"}
  sns_publish: {usd: 0.0000005, per: request, what: x, source: "https://example.com/"}
  sns_email_delivery: {usd: 0.00002, per: notification, what: x, source: "https://example.com/"}
  scheduler_invocation: {usd: 0.000001, per: invocation, what: x, source: "https://example.com/"}
  budget_month: {usd: 0.0, per: budget-month, what: x, source: "https://example.com/"}
"#;

const WORKLOAD: &str = r#"
description: fixture
api: {requests_per_month: 984}
lambda_ms: {WorkFunction: 100}
lambda_ms_per_symbol: {WorkFunction: {plan: 10}}
training: {cpu_ms_per_fit: {naive: 1200}, spot_discount_pct: 50}
storage:
  s3:
    DataBucket:
      standard_gb: 7
      archived_gb: 5
      put_requests: 1000
      get_requests: 10000
      lifecycle_transitions: 40
      per_symbol:
        standard_gb: 1
        per_run: {Pipeline: {put_requests: 10, get_requests: 50, lifecycle_transitions: 2}}
  ecr_gb: {}
logs: {kb_per_lambda_invocation: 1024, kb_per_api_request: 0, kb_per_batch_job: 0, kb_per_execution: 0}
custom_metrics:
  - {namespace: App, name: Score, published_by: WorkFunction}
notifications_per_month: 100
kms_requests_per_month: 10000
"#;

/// The plan step's defaults the fixture's function is rendered with: naive
/// only, two training tasks at once.
const RUN_DEFAULTS: &str = r#"{"env":"fixture","universe_key":"universes/fixture.txt","models":["naive"],"horizons":[1],"source":"yahoo","sentiment":null,"ingest_concurrency":1,"tolerated_failure_percent":10.0,"max_parallel_jobs":2}"#;

/// The universe the fixture is estimated for.
fn universe() -> Vec<crate::ids::Symbol> {
    ["AAPL", "MSFT", "^GSPC"]
        .into_iter()
        .map(|s| crate::ids::Symbol::new(s).expect("valid"))
        .collect()
}

/// One stack: a scheduled state machine that plans a run, fans out to a
/// function in child executions and trains in a Fargate Spot array job, the
/// API in front of the same function, and the things around them.
fn fixture() -> Json {
    json!({"Resources": {
        "WorkFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": "work", "MemorySize": 1024, "Architectures": ["arm64"],
            "TracingConfig": {"Mode": "Active"},
            "Environment": {"Variables": {"STOCKCAST_RUN_DEFAULTS": RUN_DEFAULTS}},
            "LoggingConfig": {"LogGroup": {"Ref": "WorkLogGroup"}}}},
        "WorkLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": "/aws/lambda/work", "RetentionInDays": 30}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
        "Pipeline": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": true},
            "DefinitionSubstitutions": {
                "WorkFunctionArn": {"Fn::GetAtt": ["WorkFunction", "Arn"]},
                "DataBucket": {"Ref": "DataBucket"},
                "QueueArn": {"Ref": "Queue"},
                "JobArn": {"Fn::Sub": "arn:${AWS::Partition}:batch:${AWS::Region}:${AWS::AccountId}:job-definition/train"}},
            "Definition": {"StartAt": "Plan", "States": {
                "Plan": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "${WorkFunctionArn}",
                        "Payload": {"action": "plan", "execution_name.$": "$$.Execution.Name", "request.$": "$"}},
                    "OutputPath": "$.Payload", "Next": "Fan"},
                "Fan": {"Type": "Map", "Next": "TrainShards",
                    "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                        "ReaderConfig": {"InputType": "JSON"},
                        "Parameters": {"Bucket": "${DataBucket}", "Key.$": "$.symbols_key"}},
                    "ItemSelector": {"run_id.$": "$.run_id", "symbol.$": "$$.Map.Item.Value",
                        "source.$": "$.source", "sentiment.$": "$.sentiment"},
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "Work", "States": {"Work": {
                            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": "${WorkFunctionArn}", "Payload.$": "$"},
                            "End": true}}},
                    "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                        "Parameters": {"Bucket": "${DataBucket}", "Prefix": "results"}}},
                "TrainShards": {"Type": "Choice",
                    "Choices": [{"Variable": "$.quality.shards", "NumericGreaterThan": 1, "Next": "TrainArray"}],
                    "Default": "TrainOne"},
                "TrainArray": {"Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
                    "Parameters": {"JobQueue": "${QueueArn}", "JobDefinition": "${JobArn}",
                        "ArrayProperties": {"Size.$": "$.quality.shards"}},
                    "Next": "Done"},
                "TrainOne": {"Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
                    "Parameters": {"JobQueue": "${QueueArn}", "JobDefinition": "${JobArn}"},
                    "Next": "Done"},
                "Done": {"Type": "Succeed"}}}}},
        "Schedule": {"Type": "AWS::Scheduler::Schedule", "Properties": {
            "ScheduleExpression": "cron(0 12 1-10 * ? *)",
            "Target": {"Arn": {"Ref": "Pipeline"}, "Input": "{\"run_id\":\"fixture-run\"}"}}},
        "Environment": {"Type": "AWS::Batch::ComputeEnvironment", "Properties": {
            "ComputeResources": {"Type": "FARGATE_SPOT"}}},
        "Queue": {"Type": "AWS::Batch::JobQueue", "Properties": {
            "JobQueueName": "train",
            "ComputeEnvironmentOrder": [{"Order": 1, "ComputeEnvironment": {"Ref": "Environment"}}]}},
        "Job": {"Type": "AWS::Batch::JobDefinition", "Properties": {
            "JobDefinitionName": "train",
            "ContainerProperties": {"ResourceRequirements": [
                {"Type": "VCPU", "Value": "2.0"}, {"Type": "MEMORY", "Value": "4096"}]}}},
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {}},
        "Method": {"Type": "AWS::ApiGateway::Method", "Properties": {
            "RestApiId": {"Ref": "Api"},
            "Integration": {"Uri": {"Fn::Sub": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/${WorkFunction.Arn}/invocations"}}}},
        "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": {
            "RestApiId": {"Ref": "Api"}, "TracingEnabled": true}},
        "ErrorsAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmName": "work-errors", "Namespace": "AWS/Lambda", "MetricName": "Errors", "Period": 300}},
        "ScoreAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmName": "score", "Namespace": "App", "MetricName": "Score", "Period": 86400}},
        "DataBucket": {"Type": "AWS::S3::Bucket", "Properties": {
            "LifecycleConfiguration": {"Rules": [{"Status": "Enabled",
                "Transitions": [{"StorageClass": "GLACIER_IR", "TransitionInDays": 30}]}]}}},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
        "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Email": {"Type": "AWS::SNS::Subscription", "Properties": {
            "TopicArn": {"Ref": "Topic"}, "Protocol": "email"}},
        "Budget": {"Type": "AWS::Budgets::Budget", "Properties": {}}
    }})
}

fn stacks(template: Json) -> Vec<RenderedStack> {
    vec![RenderedStack {
        name: "app".into(),
        stack_name: "fixture-app".into(),
        template,
    }]
}

fn run(template: Json, workload: &str, prices: &str) -> Result<Estimate, CostError> {
    let workload = Workload::parse("workload.yaml", workload).expect("fixture workload parses");
    let prices = PriceTable::parse("prices.yaml", prices).expect("fixture prices parse");
    estimate(&stacks(template), &universe(), &workload, &prices)
}

/// The sum of the expected lines below.
const TOTAL: f64 = 2.729691788501026;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn every_line_of_the_fixture_is_as_computed_by_hand() {
    use PriceId::*;
    let estimate = run(fixture(), WORKLOAD, PRICES).expect("estimates");
    // The schedule fires on days 1..=10 of every month at 12:00: 10 runs.
    // One run plans the 3 symbols of the universe (shard size ceil(3 / 2) =
    // 2, so 2 shards): Plan, Fan, TrainShards, TrainArray, Done = 5
    // transitions; 3 child executions of Fan, each 1 transition to start and
    // Work; 1 + 3 function calls; an array job of 2 tasks, one training 2
    // symbols and one 1. The function serves the API too: 10 x 4 + 984
    // requests = 1,024 calls.
    let expected: [(&str, PriceId, f64, f64); 32] = [
        // Largest first; equal amounts by resource, then by what.
        ("app/Key", KmsKeyMonth, 1.0, 1.0),
        // 1,024 calls x 1,024 KB = 1 GB at $0.50.
        ("app/WorkLogGroup", CloudwatchLogsIngestedGb, 1.0, 0.5),
        ("app/Secret", SecretsManagerSecretMonth, 1.0, 0.4),
        // 1,024 calls in a month of 730.5 hours: every hour has data, capped
        // at 730.5 hours = 1 metric-month at $0.30.
        ("metric App/Score", CloudwatchCustomMetricMonth, 1.0, 0.3),
        // 7 GB + 3 symbols x 1 GB = 10 GB x $0.02.
        ("app/DataBucket", S3StandardGbMonth, 10.0, 0.2),
        ("app/ErrorsAlarm", CloudwatchAlarmMetricMonth, 1.0, 0.1),
        ("app/ScoreAlarm", CloudwatchAlarmMetricMonth, 1.0, 0.1),
        // 10,000 requests x $0.000003.
        ("app/Key", KmsRequest, 10_000.0, 0.03),
        // 1 GB x 30 days retained / 30.4375 days a month = 0.985626... GB-month x $0.03.
        (
            "app/WorkLogGroup",
            CloudwatchLogsStoredGbMonth,
            30.0 / 30.4375,
            0.03 * 30.0 / 30.4375,
        ),
        // 5 GB x $0.004.
        ("app/DataBucket", S3GlacierInstantGbMonth, 5.0, 0.02),
        // A symbol: naive at 96 origins and the latest window = 97 fits x
        // 1.2 s = 116.4 CPU-s. The 2-symbol task on 2 vCPUs: 116.4 s = 1.94
        // min; the 1-symbol task 58.2 s, billed 1 min. 10 runs x 2.94 min =
        // 0.49 h x 2 vCPU = 0.98 vCPU-hours x $0.04 x (1 - 50 %).
        ("app/Job", FargateVcpuHour, 0.98, 0.0196),
        // 1,000 x $0.000005.
        ("app/DataBucket", S3PutRequest, 1000.0, 0.005),
        // 984 traced requests x $0.000005.
        ("app/Api", XrayTraceRecorded, 984.0, 0.00492),
        // 10,000 x $0.0000004.
        ("app/DataBucket", S3GetRequest, 10_000.0, 0.004),
        // 0.49 h x 4 GB = 1.96 GB-hours x $0.004 x (1 - 50 %).
        ("app/Job", FargateGbHour, 1.96, 0.00392),
        // 40 + 30 symbol-runs x 2 = 100 x $0.00002.
        ("app/DataBucket", S3GlacierInstantTransition, 100.0, 0.002),
        // 100 publishes x 1 email subscription x $0.00002.
        ("app/Topic", SnsEmailDelivery, 100.0, 0.002),
        // 984 x $0.000002.
        ("app/Api", ApiGatewayRestRequest, 984.0, 0.001968),
        // 10 runs x 3 symbols x 10 = 300 x $0.000005.
        ("app/DataBucket", S3PutRequest, 300.0, 0.0015),
        // 10 runs x 3 children x 2 transitions = 60 x $0.00002.
        ("app/Pipeline", StepFunctionsStateTransition, 60.0, 0.0012),
        // 1,024 calls x 100 ms x 1 GB = 102.4 GB-s x $0.00001.
        ("app/WorkFunction", LambdaArm64GbSecond, 102.4, 0.001024),
        // 1,024 x $0.000001.
        ("app/WorkFunction", LambdaRequest, 1024.0, 0.001024),
        // 10 runs x 5 transitions = 50 x $0.00002.
        ("app/Pipeline", StepFunctionsStateTransition, 50.0, 0.001),
        // 10 runs x 3 symbols x 50 = 1,500 x $0.0000004.
        ("app/DataBucket", S3GetRequest, 1500.0, 0.0006),
        // 30 child executions x $0.000005.
        ("app/Pipeline", XrayTraceRecorded, 30.0, 0.00015),
        // The ResultWriter's manifest and results: 10 x 2 x $0.000005.
        ("app/DataBucket", S3PutRequest, 20.0, 0.0001),
        // 10 executions x $0.000005.
        ("app/Pipeline", XrayTraceRecorded, 10.0, 0.00005),
        // 100 x $0.0000005.
        ("app/Topic", SnsPublish, 100.0, 0.00005),
        // 10 x $0.000001.
        ("app/Schedule", SchedulerInvocation, 10.0, 0.00001),
        // The ItemReader's 10 GETs x $0.0000004.
        ("app/DataBucket", S3GetRequest, 10.0, 0.000004),
        // The plan calls: 10 x 3 symbols x 10 ms x 1 GB = 0.3 GB-s x $0.00001.
        ("app/WorkFunction", LambdaArm64GbSecond, 0.3, 0.000003),
        ("app/Budget", BudgetMonth, 1.0, 0.0),
    ];
    // Every call of the function has a traced caller (the traced state
    // machine or the traced stage), so the function adds no traces.
    let got: Vec<(&str, PriceId, f64, f64)> = estimate
        .lines
        .iter()
        .map(|l| (l.resource.as_str(), l.price, l.quantity, l.monthly_usd))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(&expected) {
        assert!(
            g.0 == e.0 && g.1 == e.1 && close(g.2, e.2) && close(g.3, e.3),
            "got {g:?}, expected {e:?}"
        );
    }
    let total: f64 = expected.iter().map(|e| e.3).sum();
    // The sum of the column above.
    assert!(close(estimate.total_usd(), total));
    assert!(close(total, TOTAL), "{total}");
    assert_eq!(estimate.symbols, 3);
    assert!(close(estimate.per_symbol_usd(), TOTAL / 3.0));
    // Free tier: 1 of 10 free custom metrics ($0.30), 1,024 of a million
    // free requests ($0.001024); the API's allowance is first-12-months only.
    assert!(close(
        estimate.total_after_free_tier(&[FreeTierKind::Always]),
        total - 0.3 - 0.001024
    ));
    assert!(close(
        estimate.total_after_free_tier(&[FreeTierKind::Always, FreeTierKind::First12Months]),
        total - 0.3 - 0.001024 - 0.001968
    ));
}

/// Asserts that the estimate fails with a message containing `expected`.
fn check_err(template: Json, workload: &str, prices: &str, expected: &str) {
    let err = run(template, workload, prices).expect_err("should fail");
    let text = err.to_string();
    assert!(
        text.contains(expected),
        "{text:?} should contain {expected:?}"
    );
}

#[test]
fn a_price_the_templates_need_but_the_table_lacks_is_an_error() {
    let prices = PRICES.replace(
        "  kms_key_month: {usd: 1.00, per: key-month, what: x, source: \"https://example.com/\"}\n",
        "",
    );
    check_err(
        fixture(),
        WORKLOAD,
        &prices,
        "prices.yaml: no price `kms_key_month`, which app/Key needs",
    );
    // An x86_64 function needs the x86 compute price, which the table lacks.
    let mut template = fixture();
    template["Resources"]["WorkFunction"]["Properties"]["Architectures"] = json!(["x86_64"]);
    check_err(
        template,
        WORKLOAD,
        PRICES,
        "no price `lambda_x86_gb_second`, which app/WorkFunction needs",
    );
}

#[test]
fn what_the_estimate_cannot_price_is_an_error() {
    let mut template = fixture();
    template["Resources"]["Nat"] = json!({"Type": "AWS::EC2::NatGateway", "Properties": {}});
    check_err(
        template,
        WORKLOAD,
        PRICES,
        "app/Nat: the estimate does not know what a AWS::EC2::NatGateway costs",
    );
    let mut template = fixture();
    template["Resources"]["ScoreAlarm"]["Properties"]["MetricName"] = json!("Unpublished");
    check_err(
        template,
        WORKLOAD,
        PRICES,
        "app/ScoreAlarm: the alarm watches App/Unpublished, which no workload custom metric publishes",
    );
    let mut template = fixture();
    template["Resources"]["WorkLogGroup"]["Properties"] =
        json!({"LogGroupName": "/aws/lambda/work"});
    check_err(
        template,
        WORKLOAD,
        PRICES,
        "app/WorkLogGroup: has no RetentionInDays",
    );
}

#[test]
fn the_workload_and_the_templates_must_agree() {
    check_err(
        fixture(),
        &WORKLOAD.replace("lambda_ms: {WorkFunction: 100}", "lambda_ms: {}"),
        PRICES,
        "workload.yaml: lambda_ms: no average duration for app/WorkFunction",
    );
    check_err(
        fixture(),
        &WORKLOAD.replace(
            "{WorkFunction: 100}",
            "{WorkFunction: 100, GoneFunction: 5}",
        ),
        PRICES,
        "lambda_ms: GoneFunction is not a AWS::Lambda::Function of the rendered stacks",
    );
    check_err(
        fixture(),
        &WORKLOAD.replace("{naive: 1200}", "{drift: 1200}"),
        PRICES,
        "workload.yaml: training.cpu_ms_per_fit: no figure for naive, which the runs train",
    );
    check_err(
        fixture(),
        &WORKLOAD.replace("per_run: {Pipeline:", "per_run: {Gone:"),
        PRICES,
        "storage.s3.*.per_symbol.per_run: Gone is not a AWS::StepFunctions::StateMachine of the rendered stacks",
    );
    let err = Workload::parse(
        "workload.yaml",
        &WORKLOAD.replace("spot_discount_pct: 50", "spot_discount_pct: 150"),
    )
    .expect_err("invalid");
    assert!(
        err.to_string()
            .contains("training.spot_discount_pct: should be in range [0, 100), but is 150"),
        "{err}"
    );
    let err = PriceTable::parse(
        "prices.yaml",
        &PRICES.replace("kms_request:", "kms_requests:"),
    )
    .expect_err("invalid");
    assert!(
        err.to_string()
            .contains("prices.yaml: prices.?: prices: unknown variant `kms_requests`"),
        "{err}"
    );
}

#[test]
fn thousands_are_grouped() {
    assert_eq!(lines::grouped(1234567.891, 2), "1,234,567.89");
    assert_eq!(lines::grouped(21.75, 1), "21.8");
    assert_eq!(lines::grouped(100.0, 2), "100");
    assert_eq!(lines::grouped(-1234.5, 1), "-1,234.5");
}
