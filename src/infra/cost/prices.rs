//! The dated price table (stacks/prices/<region>.yaml): one list price per
//! [`PriceId`], each with its unit, its source page and, optionally, the
//! monthly free-tier allowance or (a vendor's plan) a daily limit.
//!
//! The ids are an enum so that a typo in the table is a parse error naming
//! the key, and a price the templates need but the table lacks is a
//! [`CostError::MissingPrice`] naming the resource that needs it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CostError;
use crate::infra::file;

/// Every price the estimator can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceId {
    LambdaArm64GbSecond,
    LambdaX86GbSecond,
    LambdaRequest,
    ApiGatewayRestRequest,
    StepFunctionsStateTransition,
    FargateVcpuHour,
    FargateGbHour,
    Ec2VcpuHour,
    S3StandardGbMonth,
    S3GlacierInstantGbMonth,
    S3GlacierFlexibleGbMonth,
    S3PutRequest,
    S3GetRequest,
    S3GlacierInstantTransition,
    S3GlacierFlexibleTransition,
    CloudwatchAlarmMetricMonth,
    CloudwatchHighResolutionAlarmMetricMonth,
    CloudwatchCompositeAlarmMonth,
    CloudwatchCustomMetricMonth,
    CloudwatchDashboardMonth,
    CloudwatchLogsIngestedGb,
    CloudwatchLogsStoredGbMonth,
    XrayTraceRecorded,
    EcrStorageGbMonth,
    SecretsManagerSecretMonth,
    KmsKeyMonth,
    KmsRequest,
    SnsPublish,
    SnsEmailDelivery,
    SchedulerInvocation,
    BudgetMonth,
    /// Not AWS: a request on the Alpha Vantage plan the key is on.
    AlphaVantageRequest,
}

impl fmt::Display for PriceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name is the key users see in the table.
        f.write_str(&crate::serde_name(self))
    }
}

/// Who gets a free-tier allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeTierKind {
    /// Every account, every month.
    Always,
    /// Accounts created before 2025-07-15, in their first 12 months.
    #[serde(rename = "first_12_months")]
    First12Months,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeTier {
    /// The allowance, in the price's unit.
    pub per_month: f64,
    pub kind: FreeTierKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per unit.
    pub usd: f64,
    /// The unit ("GB-second", "request").
    pub per: String,
    /// What is charged, as the pricing page says it.
    pub what: String,
    /// The page the price comes from.
    pub source: String,
    #[serde(default)]
    pub free_tier: Option<FreeTier>,
    /// Units a day the plan allows (a vendor's daily request limit), where
    /// it has a limit; `cargo xtask cost` holds the busiest day against it.
    #[serde(default)]
    pub daily_limit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub region: String,
    /// The date the prices were taken from their sources.
    pub as_of: String,
    pub currency: String,
    pub prices: BTreeMap<PriceId, Price>,
    /// The file it was read from, for error messages.
    #[serde(skip)]
    pub file: String,
}

impl PriceTable {
    /// The table of a region in a project: `stacks/prices/<region>.yaml`.
    pub fn for_region(stacks_dir: &Path, region: &str) -> Result<Self, CostError> {
        let path = stacks_dir.join("prices").join(format!("{region}.yaml"));
        if !path.exists() {
            return Err(CostError::NoPriceTable {
                region: region.to_owned(),
                file: path.display().to_string(),
            });
        }
        Self::load(&path)
    }

    pub fn load(path: &Path) -> Result<Self, CostError> {
        let (file, text) = file::read(path)?;
        Self::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Self, CostError> {
        let mut table: PriceTable = file::parse_yaml(file, text, PriceTable::validate)?;
        table.file = file.to_owned();
        Ok(table)
    }

    /// Prices in US dollars, each non-negative, with a positive daily limit
    /// where there is one, and the https:// page it comes from.
    fn validate(&self) -> Result<(), String> {
        if self.currency != "USD" {
            return Err(format!(
                "currency: should be USD, but is {:?}",
                self.currency
            ));
        }
        for (id, price) in &self.prices {
            if !(price.usd.is_finite() && price.usd >= 0.0) {
                return Err(format!(
                    "prices.{id}.usd: should be a non-negative number, but is {}",
                    price.usd
                ));
            }
            if let Some(limit) = price.daily_limit
                && !(limit.is_finite() && limit > 0.0)
            {
                return Err(format!(
                    "prices.{id}.daily_limit: should be a positive number, but is {limit}"
                ));
            }
            if !price.source.starts_with("https://") {
                return Err(format!(
                    "prices.{id}.source: should be the https:// page the price comes from, but is {:?}",
                    price.source
                ));
            }
        }
        Ok(())
    }

    /// The price `id`, or an error naming what needed it.
    pub fn get(&self, id: PriceId, needed_by: &str) -> Result<&Price, CostError> {
        self.prices.get(&id).ok_or_else(|| CostError::MissingPrice {
            file: self.file.clone(),
            price: id,
            needed_by: needed_by.to_owned(),
        })
    }
}
