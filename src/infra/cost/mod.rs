//! The monthly cost of an environment, estimated from its rendered templates,
//! a workload and a dated price table (issue 10).
//!
//! Everything that is counted comes from the templates: the alarms, the
//! dashboard if rendered, the keys, secrets, functions with their memory
//! and architecture, log groups with their retention, the Batch job's vCPUs
//! and memory, the state machines and their schedules, the budget. How
//! much a run does comes from its universe (issue 18): the estimate plans
//! each scheduled run as the workflows' plan step does, for the
//! environment's symbols or a universe of another size
//! ([`estimate_rendered_at`]), and counts the ingest Map's child executions,
//! the training array's tasks, the vendor requests and the per-symbol
//! volumes from it. The workload ([`Workload`]) says what the templates
//! cannot: API demand, call durations, CPU per fit and model, stored and
//! logged volumes, the custom metrics the code publishes. The prices
//! ([`PriceTable`]) are list prices with their source and date. The result
//! is one [`Line`] per priced item of each resource, and each vendor's
//! busiest day against its plan's daily limit ([`VendorDay`]).
//!
//! A resource type the estimate does not know is an error, as is a price
//! the templates need but the table lacks: an estimate that silently counts
//! something as free is worse than none.

mod choice;
mod cron;
mod lines;
mod path;
mod prices;
mod run;
mod usage;
mod workload;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use cron::{DAYS_PER_MONTH, HOURS_PER_MONTH, runs_per_month};
pub use lines::grouped;
pub use prices::{FreeTier, FreeTierKind, Price, PriceId, PriceTable};
pub use run::sized as sized_universe;
pub use workload::{
    ApiWorkload, BucketWorkload, CustomMetric, ExtraRequest, ExtraRequestWorkload, LogsWorkload,
    StorageWorkload, SymbolBucketWorkload, SymbolRunRequests, TrainingWorkload, Workload,
};

use super::file::FileError;
use super::model::{Model, Resource};
use super::render::{Rendered, RenderedStack};
use crate::ids::Symbol;

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// A workload or price table that cannot be read, or says something wrong.
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "no price table for region {region}: write {file} with the region's prices (copy stacks/prices/us-east-1.yaml and change every price, source and as_of)"
    )]
    NoPriceTable { region: String, file: String },
    #[error(
        "{file}: no price `{price}`, which {needed_by} needs: add it under `prices:` with its usd, per, what, source and update as_of"
    )]
    MissingPrice {
        file: String,
        price: PriceId,
        needed_by: String,
    },
    #[error("{resource}: {message}")]
    Template { resource: String, message: String },
    #[error("a universe of no symbol runs nothing to price: give at least one symbol")]
    NoSymbols,
}

impl CostError {
    /// What is wrong with a resource of the templates.
    fn template(resource: &Resource<'_>, message: String) -> Self {
        CostError::Template {
            resource: resource.key(),
            message,
        }
    }

    /// What is wrong with the workload, or missing from it.
    fn workload(workload: &Workload, message: String) -> Self {
        FileError::invalid(&workload.file, message).into()
    }
}

/// One priced item of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// `stack/LogicalId`, or what the item belongs to when it is not a
    /// resource (a custom metric).
    pub resource: String,
    /// What is charged, in words.
    pub what: String,
    pub quantity: f64,
    /// The unit of `quantity` ("GB-second").
    pub unit: String,
    /// USD per unit, after any Spot discount.
    pub unit_usd: f64,
    pub monthly_usd: f64,
    pub price: PriceId,
}

/// What a free-tier allowance takes off the total, per price.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeTierCredit {
    pub price: PriceId,
    pub kind: FreeTierKind,
    pub allowance: f64,
    pub unit: String,
    /// The quantity of the lines at this price.
    pub used: f64,
    pub credit_usd: f64,
}

/// A vendor's requests on the busiest day, against its plan's daily limit.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorDay {
    /// As sources are named (`alpha-vantage`).
    pub vendor: String,
    /// Requests on the busiest day of the schedules (every schedule that
    /// fires that day, and the runs they start: a retraining on drift).
    pub busiest_day: f64,
    /// The plan's limit (the price table's `daily_limit`), if it has one.
    pub daily_limit: Option<f64>,
}

impl VendorDay {
    pub fn over_limit(&self) -> bool {
        self.daily_limit
            .is_some_and(|limit| self.busiest_day > limit)
    }
}

/// The estimate of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Largest first.
    pub lines: Vec<Line>,
    /// Not subtracted from `lines`; shown separately on request.
    pub free_tier: Vec<FreeTierCredit>,
    /// The vendors the functions call, by name.
    pub vendor_days: Vec<VendorDay>,
    pub region: String,
    pub prices_as_of: String,
    /// The size of the universe the runs were planned for.
    pub symbols: usize,
}

impl Estimate {
    pub fn total_usd(&self) -> f64 {
        self.lines.iter().map(|l| l.monthly_usd).sum()
    }

    /// The total over the universe's symbols: what a symbol costs a month,
    /// its share of what is there whatever the universe (alarms, keys)
    /// included.
    pub fn per_symbol_usd(&self) -> f64 {
        self.total_usd() / self.symbols.max(1) as f64
    }

    /// The total less the allowances of the given kinds.
    pub fn total_after_free_tier(&self, kinds: &[FreeTierKind]) -> f64 {
        let credit: f64 = self
            .free_tier
            .iter()
            .filter(|c| kinds.contains(&c.kind))
            .map(|c| c.credit_usd)
            .sum();
        self.total_usd() - credit
    }
}

/// Estimates a rendered environment running its universe; the price table
/// must be of its region.
pub fn estimate_rendered(
    rendered: &Rendered,
    workload: &Workload,
    prices: &PriceTable,
) -> Result<Estimate, CostError> {
    estimate_rendered_at(rendered, workload, prices, rendered.env.symbols().len())
}

/// Estimates a rendered environment running a universe of `symbols`
/// symbols: its own, cut or grown to that size ([`sized_universe`]).
pub fn estimate_rendered_at(
    rendered: &Rendered,
    workload: &Workload,
    prices: &PriceTable,
    symbols: usize,
) -> Result<Estimate, CostError> {
    if prices.region != rendered.env.region {
        let message = format!(
            "region: the table is for {}, but environment {} is in {}",
            prices.region, rendered.env.name, rendered.env.region
        );
        return Err(FileError::invalid(&prices.file, message).into());
    }
    let universe = sized_universe(rendered.env.symbols(), symbols);
    estimate(&rendered.stacks, &universe, workload, prices)
}

/// Estimates the monthly cost of the stacks running `universe` under a
/// workload.
pub fn estimate(
    stacks: &[RenderedStack],
    universe: &[Symbol],
    workload: &Workload,
    prices: &PriceTable,
) -> Result<Estimate, CostError> {
    if universe.is_empty() {
        return Err(CostError::NoSymbols);
    }
    let model = Model::new(stacks);
    let usage = usage::derive(&model, universe, workload.api.requests_per_month)?;
    let mut lines = lines::price(&model, &usage, workload, prices)?;
    let vendor_days = lines::vendor_days(&usage, prices)?;
    // Largest first; equal amounts in a fixed order, so output is stable.
    lines.sort_by(|a, b| {
        b.monthly_usd
            .total_cmp(&a.monthly_usd)
            .then_with(|| a.resource.cmp(&b.resource))
            .then_with(|| a.what.cmp(&b.what))
    });
    let mut used: BTreeMap<PriceId, f64> = BTreeMap::new();
    for line in &lines {
        *used.entry(line.price).or_default() += line.quantity;
    }
    let free_tier = used
        .into_iter()
        .filter_map(|(id, used)| {
            let price = prices.prices.get(&id)?;
            let free = price.free_tier.as_ref()?;
            Some(FreeTierCredit {
                price: id,
                kind: free.kind,
                allowance: free.per_month,
                unit: price.per.clone(),
                used,
                credit_usd: used.min(free.per_month) * price.usd,
            })
        })
        .collect();
    Ok(Estimate {
        lines,
        free_tier,
        vendor_days,
        region: prices.region.clone(),
        prices_as_of: prices.as_of.clone(),
        symbols: universe.len(),
    })
}
