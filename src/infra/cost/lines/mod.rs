//! One priced line per billable item of each resource: what the templates
//! declare (`usage.rs` says how often it runs) times the workload's volumes
//! times the list price.
//!
//! This module prices what has a fixed monthly price and sends each other
//! kind to its own: `compute.rs` (functions, the API, state machines, Batch
//! jobs), `storage.rs` (buckets, log groups), `monitoring.rs` (alarms,
//! custom metrics, topics) and `vendors.rs` (the vendors' requests and
//! their busiest day).

mod compute;
mod monitoring;
mod storage;
mod vendors;

use super::usage::Usage;
use super::{CostError, Line, PriceId, PriceTable, Workload};
use crate::infra::model::{Model, Resource};

pub use vendors::vendor_days;

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

/// What every line is computed from.
struct Inputs<'i> {
    model: &'i Model<'i>,
    usage: &'i Usage,
    workload: &'i Workload,
}

/// Adds lines, looking prices up in the table.
struct Pricer<'p> {
    prices: &'p PriceTable,
    lines: Vec<Line>,
}

impl<'p> Pricer<'p> {
    /// The lines of one resource, or of what an item belongs to when it is
    /// not a resource (a custom metric, a vendor).
    fn of<'s>(&'s mut self, resource: impl Into<String>) -> Lines<'s, 'p> {
        Lines {
            pricer: self,
            resource: resource.into(),
            discount_pct: 0.0,
        }
    }
}

/// The lines of one resource.
struct Lines<'s, 'p> {
    pricer: &'s mut Pricer<'p>,
    resource: String,
    discount_pct: f64,
}

impl Lines<'_, '_> {
    /// At a discount off the list price (Spot capacity).
    fn discounted(mut self, pct: f64) -> Self {
        self.discount_pct = pct;
        self
    }

    fn add(
        &mut self,
        what: impl Into<String>,
        id: PriceId,
        quantity: f64,
    ) -> Result<(), CostError> {
        let price = self.pricer.prices.get(id, &self.resource)?;
        let unit_usd = price.usd * (1.0 - self.discount_pct / 100.0);
        self.pricer.lines.push(Line {
            resource: self.resource.clone(),
            what: what.into(),
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

/// Every line of the stacks under the workload.
pub fn price(
    model: &Model<'_>,
    usage: &Usage,
    workload: &Workload,
    prices: &PriceTable,
) -> Result<Vec<Line>, CostError> {
    check_names(model, workload)?;
    let inputs = Inputs {
        model,
        usage,
        workload,
    };
    let mut p = Pricer {
        prices,
        lines: Vec::new(),
    };
    for r in model.resources() {
        price_resource(&mut p, r, &inputs)?;
    }
    monitoring::custom_metrics(&mut p, &inputs)?;
    vendors::vendor_requests(&mut p, &inputs)?;
    Ok(p.lines)
}

/// The lines of one resource, by its kind.
fn price_resource(
    p: &mut Pricer<'_>,
    r: &Resource<'_>,
    inputs: &Inputs<'_>,
) -> Result<(), CostError> {
    match r.kind {
        "AWS::Lambda::Function" => compute::function(p, r, inputs),
        "AWS::ApiGateway::RestApi" => compute::rest_api(p, r, inputs),
        "AWS::StepFunctions::StateMachine" => compute::state_machine(p, r, inputs),
        "AWS::Batch::JobDefinition" => compute::job_definition(p, r, inputs),
        "AWS::Scheduler::Schedule" => schedule(p, r, inputs),
        "AWS::Scheduler::ScheduleGroup" => Ok(()),
        "AWS::CloudWatch::Alarm" => monitoring::alarm(p, r, inputs),
        "AWS::CloudWatch::CompositeAlarm" => fixed(
            p,
            r,
            "composite alarm",
            PriceId::CloudwatchCompositeAlarmMonth,
        ),
        "AWS::CloudWatch::Dashboard" => fixed(p, r, "dashboard", PriceId::CloudwatchDashboardMonth),
        "AWS::Logs::LogGroup" => storage::log_group(p, r, inputs),
        "AWS::S3::Bucket" => storage::bucket(p, r, inputs),
        "AWS::ECR::Repository" => storage::ecr_repository(p, r, inputs),
        "AWS::SecretsManager::Secret" => fixed(p, r, "secret", PriceId::SecretsManagerSecretMonth),
        "AWS::KMS::Key" => kms_key(p, r, inputs),
        "AWS::SNS::Topic" => monitoring::topic(p, r, inputs),
        "AWS::Budgets::Budget" => fixed(
            p,
            r,
            "budget with notifications, no actions",
            PriceId::BudgetMonth,
        ),
        kind if NOT_BILLED.contains(&kind) => Ok(()),
        kind => Err(CostError::template(
            r,
            format!(
                "the estimate does not know what a {kind} costs; teach infra::cost (lines/) its price or add it to NOT_BILLED with the reason"
            ),
        )),
    }
}

/// One month of something with a monthly price.
fn fixed(p: &mut Pricer<'_>, r: &Resource<'_>, what: &str, id: PriceId) -> Result<(), CostError> {
    p.of(r.key()).add(what, id, 1.0)
}

/// Every resource the workload names exists, as the kind it is named as.
fn check_names(model: &Model<'_>, workload: &Workload) -> Result<(), CostError> {
    let exists = |kind: &str, id: &str| model.of_kind(kind).any(|r| r.id == id);
    let storage = &workload.storage;
    let named = (workload.lambda_ms.keys())
        .map(|id| ("lambda_ms", "AWS::Lambda::Function", id))
        .chain(
            (workload.lambda_ms_per_symbol.keys())
                .map(|id| ("lambda_ms_per_symbol", "AWS::Lambda::Function", id)),
        )
        .chain(
            storage
                .s3
                .keys()
                .map(|id| ("storage.s3", "AWS::S3::Bucket", id)),
        )
        .chain((storage.ecr_gb.keys()).map(|id| ("storage.ecr_gb", "AWS::ECR::Repository", id)))
        .chain(storage.s3.values().flat_map(|b| {
            let key = "storage.s3.*.per_symbol.per_run";
            (b.per_symbol.per_run.keys())
                .map(move |id| (key, "AWS::StepFunctions::StateMachine", id))
        }))
        .chain(workload.custom_metrics.iter().map(|m| {
            let key = "custom_metrics.published_by";
            (key, "AWS::Lambda::Function", &m.published_by)
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

fn schedule(p: &mut Pricer<'_>, r: &Resource<'_>, inputs: &Inputs<'_>) -> Result<(), CostError> {
    let key = r.key();
    let runs = inputs.usage.schedule_runs.get(&key).copied().unwrap_or(0.0);
    let expression = r.properties["ScheduleExpression"].as_str().unwrap_or("");
    p.of(key).add(
        format!("schedule firings ({expression})"),
        PriceId::SchedulerInvocation,
        runs,
    )
}

/// A key's month, and its share of the workload's key requests.
fn kms_key(p: &mut Pricer<'_>, r: &Resource<'_>, inputs: &Inputs<'_>) -> Result<(), CostError> {
    let keys = inputs.model.of_kind("AWS::KMS::Key").count() as f64;
    let mut lines = p.of(r.key());
    lines.add("customer managed key", PriceId::KmsKeyMonth, 1.0)?;
    lines.add(
        "key requests",
        PriceId::KmsRequest,
        inputs.workload.kms_requests_per_month / keys,
    )
}
