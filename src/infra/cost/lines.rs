//! One priced line per billable item of each resource: what the templates
//! declare (`usage.rs` says how often it runs) times the workload's volumes
//! times the list price.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::usage::Usage;
use super::{
    CostError, DAYS_PER_MONTH, ExtraRequest, HOURS_PER_MONTH, Line, PriceId, PriceTable, VendorDay,
    Workload, cron,
};
use crate::infra::model::{Model, Resource};
use crate::ingest::VendorRequest;
use crate::steps::Source;

/// Resource types that cost nothing by themselves, or whose cost is
/// counted through another resource (a job definition through its jobs).
const NOT_BILLED: [&str; 28] = [
    "AWS::ApiGateway::Account",
    "AWS::ApiGateway::ApiKey",
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Resource",
    "AWS::ApiGateway::Stage",
    "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::UsagePlanKey",
    "AWS::Batch::ComputeEnvironment",
    "AWS::Batch::JobQueue",
    "AWS::EC2::LaunchTemplate",
    // The Batch network: a VPC, its subnets, gateway, routes and security
    // group cost nothing; the public IPv4 address of a running Fargate task
    // ($0.005 an hour, ~45 minutes a month) is under a cent.
    "AWS::EC2::InternetGateway",
    "AWS::EC2::Route",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::Subnet",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPC",
    "AWS::EC2::VPCGatewayAttachment",
    // Rules matching AWS service events (the drift alarm) are free.
    "AWS::Events::Rule",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::Policy",
    "AWS::IAM::Role",
    "AWS::KMS::Alias",
    "AWS::Lambda::Permission",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
];

/// Adds lines, looking prices up in the table.
struct Pricer<'p> {
    prices: &'p PriceTable,
    lines: Vec<Line>,
}

impl Pricer<'_> {
    fn add(
        &mut self,
        resource: &str,
        what: String,
        id: PriceId,
        quantity: f64,
    ) -> Result<(), CostError> {
        self.add_discounted(resource, what, id, quantity, 0.0)
    }

    fn add_discounted(
        &mut self,
        resource: &str,
        what: String,
        id: PriceId,
        quantity: f64,
        discount_pct: f64,
    ) -> Result<(), CostError> {
        let price = self.prices.get(id, resource)?;
        let unit_usd = price.usd * (1.0 - discount_pct / 100.0);
        self.lines.push(Line {
            resource: resource.to_owned(),
            what,
            quantity,
            unit: price.per.clone(),
            unit_usd,
            monthly_usd: quantity * unit_usd,
            price: id,
        });
        Ok(())
    }
}

/// A number with thousands separators and at most `digits` decimals.
pub fn grouped(v: f64, digits: usize) -> String {
    let text = format!("{v:.digits$}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, int) = int.strip_prefix('-').map_or(("", int), |i| ("-", i));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

pub fn price(
    model: &Model<'_>,
    usage: &Usage,
    workload: &Workload,
    prices: &PriceTable,
) -> Result<Vec<Line>, CostError> {
    check_names(model, workload)?;
    let mut p = Pricer {
        prices,
        lines: Vec::new(),
    };
    for r in model.resources() {
        match r.kind {
            "AWS::Lambda::Function" => function(&mut p, r, usage, workload)?,
            "AWS::ApiGateway::RestApi" => rest_api(&mut p, r, model, usage)?,
            "AWS::StepFunctions::StateMachine" => state_machine(&mut p, r, usage)?,
            "AWS::Scheduler::Schedule" => {
                let runs = usage.schedule_runs.get(&r.key()).copied().unwrap_or(0.0);
                p.add(
                    &r.key(),
                    format!(
                        "schedule firings ({})",
                        r.properties["ScheduleExpression"].as_str().unwrap_or("")
                    ),
                    PriceId::SchedulerInvocation,
                    runs,
                )?;
            }
            "AWS::Scheduler::ScheduleGroup" => {}
            "AWS::Batch::JobDefinition" => job_definition(&mut p, r, model, usage, workload)?,
            "AWS::CloudWatch::Alarm" => alarm(&mut p, r, workload)?,
            "AWS::CloudWatch::CompositeAlarm" => {
                p.add(
                    &r.key(),
                    "composite alarm".into(),
                    PriceId::CloudwatchCompositeAlarmMonth,
                    1.0,
                )?;
            }
            "AWS::CloudWatch::Dashboard" => {
                p.add(
                    &r.key(),
                    "dashboard".into(),
                    PriceId::CloudwatchDashboardMonth,
                    1.0,
                )?;
            }
            "AWS::Logs::LogGroup" => log_group(&mut p, r, model, usage, workload)?,
            "AWS::S3::Bucket" => bucket(&mut p, r, workload)?,
            "AWS::ECR::Repository" => {
                let gb = workload.storage.ecr_gb.get(r.id).copied().ok_or_else(|| {
                    CostError::workload(
                        workload,
                        format!(
                            "storage.ecr_gb: no size for {}: add `{}: <GB>`",
                            r.key(),
                            r.id
                        ),
                    )
                })?;
                p.add(
                    &r.key(),
                    "image storage".into(),
                    PriceId::EcrStorageGbMonth,
                    gb,
                )?;
            }
            "AWS::SecretsManager::Secret" => {
                p.add(
                    &r.key(),
                    "secret".into(),
                    PriceId::SecretsManagerSecretMonth,
                    1.0,
                )?;
            }
            "AWS::KMS::Key" => {
                let keys = model.of_kind("AWS::KMS::Key").count() as f64;
                p.add(
                    &r.key(),
                    "customer managed key".into(),
                    PriceId::KmsKeyMonth,
                    1.0,
                )?;
                p.add(
                    &r.key(),
                    "key requests".into(),
                    PriceId::KmsRequest,
                    workload.kms_requests_per_month / keys,
                )?;
            }
            "AWS::SNS::Topic" => topic(&mut p, r, model, workload)?,
            "AWS::Budgets::Budget" => {
                p.add(
                    &r.key(),
                    "budget with notifications, no actions".into(),
                    PriceId::BudgetMonth,
                    1.0,
                )?;
            }
            kind if NOT_BILLED.contains(&kind) => {}
            kind => {
                return Err(CostError::template(
                    r,
                    format!(
                        "the estimate does not know what a {kind} costs; teach infra::cost (lines.rs) its price or add it to NOT_BILLED with the reason"
                    ),
                ));
            }
        }
    }
    custom_metrics(&mut p, model, usage, workload)?;
    vendor_requests(&mut p, model, usage, workload)?;
    Ok(p.lines)
}

/// Every resource the workload names exists, as the kind it is named as.
fn check_names(model: &Model<'_>, workload: &Workload) -> Result<(), CostError> {
    let exists = |kind: &str, id: &str| model.of_kind(kind).any(|r| r.id == id);
    let named = workload
        .lambda_ms
        .keys()
        .map(|id| ("lambda_ms", "AWS::Lambda::Function", id))
        .chain(
            workload
                .storage
                .s3
                .keys()
                .map(|id| ("storage.s3", "AWS::S3::Bucket", id)),
        )
        .chain(
            workload
                .storage
                .ecr_gb
                .keys()
                .map(|id| ("storage.ecr_gb", "AWS::ECR::Repository", id)),
        )
        .chain(workload.custom_metrics.iter().map(|m| {
            (
                "custom_metrics.published_by",
                "AWS::Lambda::Function",
                &m.published_by,
            )
        }));
    for (key, kind, id) in named {
        if !exists(kind, id) {
            return Err(CostError::workload(
                workload,
                format!("{key}: {id} is not a {kind} of the rendered stacks"),
            ));
        }
    }
    Ok(())
}

/// A function's architecture, memory (MB) and the price of its compute.
fn compute<'j>(r: &Resource<'j>) -> (&'j str, f64, PriceId) {
    // CloudFormation's defaults: 128 MB, x86_64.
    let mb = r.properties["MemorySize"].as_f64().unwrap_or(128.0);
    let arch = r.properties["Architectures"][0]
        .as_str()
        .unwrap_or("x86_64");
    let id = if arch == "arm64" {
        PriceId::LambdaArm64GbSecond
    } else {
        PriceId::LambdaX86GbSecond
    };
    (arch, mb, id)
}

fn function(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    usage: &Usage,
    workload: &Workload,
) -> Result<(), CostError> {
    let key = r.key();
    let ms = workload.lambda_ms.get(r.id).copied().ok_or_else(|| {
        CostError::workload(
            workload,
            format!(
                "lambda_ms: no average duration for {key}: add `{}: <ms>`",
                r.id
            ),
        )
    })?;
    let (arch, mb, id) = compute(r);
    let calls = usage.invocations.get(&key).copied().unwrap_or(0.0);
    let gb_seconds = calls * ms / 1000.0 * mb / 1024.0;
    p.add(
        &key,
        format!(
            "{arch} compute: {} calls x {} ms x {} MB",
            grouped(calls, 1),
            grouped(ms, 0),
            grouped(mb, 0)
        ),
        id,
        gb_seconds,
    )?;
    p.add(&key, "requests".into(), PriceId::LambdaRequest, calls)?;
    // Calls from a traced state machine or API share their caller's trace.
    if r.properties["TracingConfig"]["Mode"] == "Active" {
        let untraced = calls - usage.traced_invocations.get(&key).copied().unwrap_or(0.0);
        if untraced > 0.0 {
            p.add(
                &key,
                "X-Ray traces of calls without a traced caller".into(),
                PriceId::XrayTraceRecorded,
                untraced,
            )?;
        }
    }
    Ok(())
}

fn rest_api(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    model: &Model<'_>,
    usage: &Usage,
) -> Result<(), CostError> {
    let key = r.key();
    let requests = usage.api_requests.get(&key).map_or(0.0, |(n, _)| *n);
    p.add(
        &key,
        "REST API requests".into(),
        PriceId::ApiGatewayRestRequest,
        requests,
    )?;
    let traced = model.of_kind("AWS::ApiGateway::Stage").any(|s| {
        s.stack == r.stack
            && s.properties["RestApiId"]["Ref"] == r.id
            && s.properties["TracingEnabled"] == Json::Bool(true)
    });
    if traced {
        p.add(
            &key,
            "X-Ray traces (stage tracing, one per request)".into(),
            PriceId::XrayTraceRecorded,
            requests,
        )?;
    }
    Ok(())
}

fn state_machine(p: &mut Pricer<'_>, r: &Resource<'_>, usage: &Usage) -> Result<(), CostError> {
    let key = r.key();
    let kind = r.properties["StateMachineType"]
        .as_str()
        .unwrap_or("STANDARD");
    if kind != "STANDARD" {
        return Err(CostError::template(
            r,
            format!("the estimate prices STANDARD state machines only, not {kind}"),
        ));
    }
    let executions = usage.executions.get(&key).copied().unwrap_or(0.0);
    let transitions = usage.transitions.get(&key).copied().unwrap_or(0.0);
    let per_run = if executions > 0.0 {
        transitions / executions
    } else {
        0.0
    };
    p.add(
        &key,
        format!(
            "{} runs x {} transitions (longest successful path)",
            grouped(executions, 2),
            grouped(per_run, 1)
        ),
        PriceId::StepFunctionsStateTransition,
        transitions,
    )?;
    if r.properties["TracingConfiguration"]["Enabled"] == Json::Bool(true) {
        p.add(
            &key,
            "X-Ray traces (one per execution)".into(),
            PriceId::XrayTraceRecorded,
            executions,
        )?;
    }
    Ok(())
}

fn job_definition(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    model: &Model<'_>,
    usage: &Usage,
    workload: &Workload,
) -> Result<(), CostError> {
    let key = r.key();
    let Some((jobs, queue)) = usage.jobs.get(&key) else {
        return Ok(());
    };
    let requirement = |kind: &str| -> Option<f64> {
        r.properties["ContainerProperties"]["ResourceRequirements"]
            .as_array()?
            .iter()
            .find(|q| q["Type"] == kind)
            .and_then(|q| {
                q["Value"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .or(q["Value"].as_f64())
            })
    };
    let (Some(vcpus), Some(memory_mb)) = (requirement("VCPU"), requirement("MEMORY")) else {
        return Err(CostError::template(
            r,
            "ContainerProperties.ResourceRequirements should give VCPU and MEMORY".into(),
        ));
    };
    let capacity = queue
        .split_once('/')
        .and_then(|(stack, id)| model.get(stack, id))
        .and_then(|q| {
            q.properties["ComputeEnvironmentOrder"][0]["ComputeEnvironment"]["Ref"]
                .as_str()
                .and_then(|ce| model.get(q.stack, ce))
        })
        .and_then(|ce| ce.properties["ComputeResources"]["Type"].as_str())
        .ok_or_else(|| {
            CostError::template(
                r,
                format!("the compute environment of queue {queue} has no ComputeResources.Type"),
            )
        })?;
    let discount = match capacity {
        "FARGATE_SPOT" | "SPOT" => workload.training.spot_discount_pct,
        _ => 0.0,
    };
    // Fargate bills at least one minute per task.
    let minutes = (workload.training.vcpu_minutes_per_run / vcpus).max(1.0);
    let hours = jobs * minutes / 60.0;
    let runs = format!("{} jobs x {} min", grouped(*jobs, 2), grouped(minutes, 1));
    let spot = if discount > 0.0 {
        format!(", Spot -{}%", grouped(discount, 1))
    } else {
        String::new()
    };
    match capacity {
        "FARGATE" | "FARGATE_SPOT" => {
            p.add_discounted(
                &key,
                format!("{capacity} vCPU: {runs} x {} vCPU{spot}", grouped(vcpus, 2)),
                PriceId::FargateVcpuHour,
                hours * vcpus,
                discount,
            )?;
            p.add_discounted(
                &key,
                format!(
                    "{capacity} memory: {runs} x {} GB{spot}",
                    grouped(memory_mb / 1024.0, 2)
                ),
                PriceId::FargateGbHour,
                hours * memory_mb / 1024.0,
                discount,
            )?;
        }
        "SPOT" | "EC2" => {
            p.add_discounted(
                &key,
                format!(
                    "EC2 {capacity} vCPU: {runs} x {} vCPU{spot}",
                    grouped(vcpus, 2)
                ),
                PriceId::Ec2VcpuHour,
                hours * vcpus,
                discount,
            )?;
        }
        other => {
            return Err(CostError::template(
                r,
                format!("the estimate does not price compute environments of type {other}"),
            ));
        }
    }
    Ok(())
}

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

fn alarm(p: &mut Pricer<'_>, r: &Resource<'_>, workload: &Workload) -> Result<(), CostError> {
    let metrics = alarm_metrics(r);
    for (namespace, name, _) in &metrics {
        let published = namespace.starts_with("AWS/")
            || workload
                .custom_metrics
                .iter()
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
    p.add(
        &r.key(),
        format!("{kind} on {}", names.join(", ")),
        id,
        metrics.len() as f64,
    )
}

fn custom_metrics(
    p: &mut Pricer<'_>,
    model: &Model<'_>,
    usage: &Usage,
    workload: &Workload,
) -> Result<(), CostError> {
    for metric in &workload.custom_metrics {
        let publisher = model
            .of_kind("AWS::Lambda::Function")
            .find(|f| f.id == metric.published_by)
            .map(Resource::key)
            .unwrap_or_default();
        // Billed per hour in which the metric receives data: one hour per
        // publishing call at most, and never more than the month's hours.
        let hours = usage
            .invocations
            .get(&publisher)
            .copied()
            .unwrap_or(0.0)
            .min(HOURS_PER_MONTH);
        p.add(
            &format!("metric {}/{}", metric.namespace, metric.name),
            format!(
                "custom metric, data in {} of {} hours",
                grouped(hours, 1),
                grouped(HOURS_PER_MONTH, 1)
            ),
            PriceId::CloudwatchCustomMetricMonth,
            hours / HOURS_PER_MONTH,
        )?;
    }
    Ok(())
}

/// KB a month written to a log group by the functions, API stages, Batch
/// jobs and state machines that log to it.
fn log_volume_kb(
    group: &Resource<'_>,
    model: &Model<'_>,
    usage: &Usage,
    workload: &Workload,
) -> f64 {
    let refers = |v: &Json| {
        v["Ref"] == group.id
            || v["Fn::GetAtt"][0] == group.id
            || v["Fn::Sub"]
                .as_str()
                .is_some_and(|s| s.contains(&format!("${{{}}}", group.id)))
    };
    let same_stack = |r: &&Resource<'_>| r.stack == group.stack;
    let name = group.properties["LogGroupName"].as_str().unwrap_or("");
    let logs = &workload.logs;
    let mut kb = 0.0;
    for f in model.of_kind("AWS::Lambda::Function").filter(same_stack) {
        let config = &f.properties["LoggingConfig"]["LogGroup"];
        let default = format!(
            "/aws/lambda/{}",
            f.properties["FunctionName"].as_str().unwrap_or("")
        );
        if refers(config) || (config.is_null() && name == default) {
            kb += usage.invocations.get(&f.key()).copied().unwrap_or(0.0)
                * logs.kb_per_lambda_invocation;
        }
    }
    for stage in model.of_kind("AWS::ApiGateway::Stage").filter(same_stack) {
        if refers(&stage.properties["AccessLogSetting"]["DestinationArn"]) {
            let api = format!(
                "{}/{}",
                stage.stack,
                stage.properties["RestApiId"]["Ref"].as_str().unwrap_or("")
            );
            kb += usage.api_requests.get(&api).map_or(0.0, |(n, _)| *n) * logs.kb_per_api_request;
        }
    }
    for job in model
        .of_kind("AWS::Batch::JobDefinition")
        .filter(same_stack)
    {
        if refers(
            &job.properties["ContainerProperties"]["LogConfiguration"]["Options"]["awslogs-group"],
        ) {
            kb += usage.jobs.get(&job.key()).map_or(0.0, |(n, _)| *n) * logs.kb_per_batch_job;
        }
    }
    for machine in model
        .of_kind("AWS::StepFunctions::StateMachine")
        .filter(same_stack)
    {
        let destinations = machine.properties["LoggingConfiguration"]["Destinations"].as_array();
        if destinations
            .into_iter()
            .flatten()
            .any(|d| refers(&d["CloudWatchLogsLogGroup"]["LogGroupArn"]))
        {
            kb += usage.executions.get(&machine.key()).copied().unwrap_or(0.0)
                * logs.kb_per_execution;
        }
    }
    kb
}

fn log_group(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    model: &Model<'_>,
    usage: &Usage,
    workload: &Workload,
) -> Result<(), CostError> {
    let Some(retention) = r.properties["RetentionInDays"].as_f64() else {
        return Err(CostError::template(
            r,
            "has no RetentionInDays: its storage grows without bound".into(),
        ));
    };
    let gb = log_volume_kb(r, model, usage, workload) / (1024.0 * 1024.0);
    let key = r.key();
    p.add(
        &key,
        "log ingestion".into(),
        PriceId::CloudwatchLogsIngestedGb,
        gb,
    )?;
    // Steady state: the log group holds the last `retention` days.
    p.add(
        &key,
        format!("log storage, {} days retained", grouped(retention, 0)),
        PriceId::CloudwatchLogsStoredGbMonth,
        gb * retention / DAYS_PER_MONTH,
    )
}

/// The storage class the bucket's enabled lifecycle rules move objects to.
fn lifecycle_class<'j>(r: &Resource<'j>) -> Option<&'j str> {
    let rules = r.properties["LifecycleConfiguration"]["Rules"].as_array()?;
    rules
        .iter()
        .filter(|rule| rule["Status"] == "Enabled")
        .flat_map(|rule| {
            rule["Transitions"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&rule["Transition"]))
        })
        .find_map(|t| t["StorageClass"].as_str())
}

fn bucket(p: &mut Pricer<'_>, r: &Resource<'_>, workload: &Workload) -> Result<(), CostError> {
    let key = r.key();
    let volumes = workload.storage.s3.get(r.id).ok_or_else(|| {
        CostError::workload(
            workload,
            format!(
                "storage.s3: no volumes for {key}: add `{}: {{standard_gb: ...}}`",
                r.id
            ),
        )
    })?;
    p.add(
        &key,
        "Standard storage".into(),
        PriceId::S3StandardGbMonth,
        volumes.standard_gb,
    )?;
    p.add(
        &key,
        "PUT, COPY, POST, LIST requests".into(),
        PriceId::S3PutRequest,
        volumes.put_requests,
    )?;
    p.add(
        &key,
        "GET and other requests".into(),
        PriceId::S3GetRequest,
        volumes.get_requests,
    )?;
    let archived = volumes.archived_gb > 0.0 || volumes.lifecycle_transitions > 0.0;
    match lifecycle_class(r) {
        Some(class) => {
            let (storage, transition) = match class {
                "GLACIER_IR" => (
                    PriceId::S3GlacierInstantGbMonth,
                    PriceId::S3GlacierInstantTransition,
                ),
                "GLACIER" => (
                    PriceId::S3GlacierFlexibleGbMonth,
                    PriceId::S3GlacierFlexibleTransition,
                ),
                other => {
                    return Err(CostError::template(
                        r,
                        format!("the estimate does not price the storage class {other}"),
                    ));
                }
            };
            p.add(
                &key,
                format!("{class} storage (lifecycle)"),
                storage,
                volumes.archived_gb,
            )?;
            p.add(
                &key,
                format!("lifecycle transitions to {class}"),
                transition,
                volumes.lifecycle_transitions,
            )?;
        }
        None if archived => {
            return Err(CostError::workload(
                workload,
                format!(
                    "storage.s3.{}: archived_gb and lifecycle_transitions need a lifecycle transition in {key}, which has none",
                    r.id
                ),
            ));
        }
        None => {}
    }
    Ok(())
}

fn topic(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    model: &Model<'_>,
    workload: &Workload,
) -> Result<(), CostError> {
    let key = r.key();
    let topics = model.of_kind("AWS::SNS::Topic").count() as f64;
    let publishes = workload.notifications_per_month / topics;
    let emails = model
        .of_kind("AWS::SNS::Subscription")
        .filter(|s| s.stack == r.stack && s.properties["TopicArn"]["Ref"] == r.id)
        .filter(|s| {
            s.properties["Protocol"]
                .as_str()
                .is_some_and(|p| p.starts_with("email"))
        })
        .count() as f64;
    p.add(&key, "publishes".into(), PriceId::SnsPublish, publishes)?;
    p.add(
        &key,
        format!(
            "email deliveries ({} subscription{})",
            grouped(emails, 0),
            if emails == 1.0 { "" } else { "s" }
        ),
        PriceId::SnsEmailDelivery,
        publishes * emails,
    )
}

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
fn vendor_requests(
    p: &mut Pricer<'_>,
    model: &Model<'_>,
    usage: &Usage,
    workload: &Workload,
) -> Result<(), CostError> {
    for ((function, request), &n) in &usage.vendor_requests {
        let what = request.what();
        if let Some(extra) = extra_request(*request)
            && let Some(r) = model.resources().iter().find(|r| r.key() == *function)
        {
            let added = workload.vendor_requests.get(&extra).ok_or_else(|| {
                CostError::workload(
                    workload,
                    format!(
                        "vendor_requests: nothing says what a {what} request adds to {function}: add `{extra}: {{lambda_ms: <ms>, s3_put_requests: <n>, s3_get_requests: <n>}}`"
                    ),
                )
            })?;
            let (arch, mb, id) = compute(r);
            p.add(
                function,
                format!(
                    "{arch} compute, {what} requests: {} x {} ms x {} MB",
                    grouped(n, 1),
                    grouped(added.lambda_ms, 0),
                    grouped(mb, 0)
                ),
                id,
                n * added.lambda_ms / 1000.0 * mb / 1024.0,
            )?;
            let bucket = model
                .resource_of_kind(
                    r.stack,
                    &r.properties["Environment"]["Variables"]["STOCKCAST_BUCKET"],
                    "AWS::S3::Bucket",
                )
                .ok_or_else(|| {
                    CostError::template(
                        r,
                        format!("sends {what} requests, but its STOCKCAST_BUCKET names no bucket of the stacks"),
                    )
                })?
                .key();
            for (kind, per_request, price) in [
                ("PUT", added.s3_put_requests, PriceId::S3PutRequest),
                ("GET", added.s3_get_requests, PriceId::S3GetRequest),
            ] {
                p.add(
                    &bucket,
                    format!(
                        "{kind} requests of {what}: {} x {} ({function})",
                        grouped(n, 1),
                        grouped(per_request, 1)
                    ),
                    price,
                    n * per_request,
                )?;
            }
        }
        if let Some(price) = vendor_price(request.vendor()) {
            p.add(
                &format!("vendor {}", request.vendor()),
                format!("{what} requests ({function})"),
                price,
                n,
            )?;
        }
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
