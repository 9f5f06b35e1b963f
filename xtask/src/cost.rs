//! `cargo xtask cost`: the monthly estimate of an environment, as a table.
//! The estimate itself is `stockcast::infra::cost`; this only reads the
//! files the flags name and prints.

use anyhow::Context;
use stockcast::infra::cost::{
    self, Estimate, FreeTierKind, PriceTable, VendorDay, Workload, grouped,
};
use stockcast::infra::{self, Environment, Sources};

use crate::flags;
use crate::table::Table;

impl flags::Cost {
    pub fn run(self) -> anyhow::Result<()> {
        let sources = Sources::in_project(&self.root);
        let env = &self.env.name;
        let rendered =
            infra::render(&sources, env).with_context(|| format!("rendering {env} failed"))?;
        let prices = PriceTable::for_region(&sources.stacks_dir, &rendered.env.region)?;
        let workload = Workload::load(&self.workload)?;
        let universe = rendered.env.symbols().len();
        let symbols = self.symbols.map_or(universe, |n| n as usize);
        let estimate = cost::estimate_rendered_at(&rendered, &workload, &prices, symbols)
            .with_context(|| format!("estimating {env} failed"))?;
        println!(
            "stockcast-{}: {} prices as of {} ({})",
            rendered.env.name,
            estimate.region,
            estimate.prices_as_of,
            prices.file.trim_start_matches("./"),
        );
        println!(
            "workload {}: {}",
            self.workload.display(),
            workload.description
        );
        println!("{}", universe_line(&rendered.env, symbols));
        println!();
        print!("{}", lines_table(&estimate));
        println!(
            "total: {} a month (no free tier), {} a symbol ({} symbols)",
            usd(estimate.total_usd()),
            usd_per_symbol(estimate.per_symbol_usd()),
            grouped(estimate.symbols as f64, 0)
        );
        for day in &estimate.vendor_days {
            println!("{}", vendor_day(day));
        }
        if self.free_tier {
            println!();
            print!("{}", free_tier_table(&estimate));
            println!(
                "total after the always-free allowances: {} a month",
                usd(estimate.total_after_free_tier(&[FreeTierKind::Always]))
            );
            println!(
                "total after every allowance (accounts opened before 2025-07-15, first 12 months): {} a month",
                usd(estimate
                    .total_after_free_tier(&[FreeTierKind::Always, FreeTierKind::First12Months]))
            );
        }
        Ok(())
    }
}

/// Which universe the runs are planned for, in a sentence.
fn universe_line(env: &Environment, symbols: usize) -> String {
    let own = env.symbols().len();
    let name = match &env.universe {
        Some(name) => format!("universe {name} (stacks/universes/{name}.txt)"),
        None => "the symbols listed in the environment".to_owned(),
    };
    if symbols == own {
        format!("{symbols} symbols: {name}")
    } else if symbols < own {
        format!("{symbols} symbols: the first {symbols} of {name}, which has {own}")
    } else {
        format!(
            "{symbols} symbols: the {own} of {name} and {} made-up company tickers (--symbols {symbols})",
            symbols - own
        )
    }
}

fn lines_table(estimate: &Estimate) -> String {
    let mut table =
        Table::new(&["resource", "what", "quantity", "unit price", "USD/month"]).text_columns(2);
    for line in &estimate.lines {
        table.row(vec![
            line.resource.clone(),
            line.what.clone(),
            format!("{} {}", quantity(line.quantity), line.unit),
            unit_price(line.unit_usd),
            format!("{:.4}", line.monthly_usd),
        ]);
    }
    table.render()
}

fn free_tier_table(estimate: &Estimate) -> String {
    let mut table =
        Table::new(&["price", "free tier", "allowance", "used", "USD/month"]).text_columns(2);
    for credit in &estimate.free_tier {
        table.row(vec![
            credit.price.to_string(),
            match credit.kind {
                FreeTierKind::Always => "always".into(),
                FreeTierKind::First12Months => "first 12 months".into(),
            },
            format!("{} {}", grouped(credit.allowance, 2), credit.unit),
            quantity(credit.used),
            format!("-{:.4}", credit.credit_usd),
        ]);
    }
    table.render()
}

/// A vendor's busiest day against its plan's daily limit, in a sentence.
fn vendor_day(day: &VendorDay) -> String {
    let most = format!(
        "{}: at most {} requests on the busiest day (the schedules that fire that day and a retraining on drift)",
        day.vendor,
        grouped(day.busiest_day, 1)
    );
    match day.daily_limit {
        None => format!("{most}; no daily limit"),
        Some(limit) if day.over_limit() => format!(
            "{most}: OVER the plan's {} a day; past it the vendor refuses the rest (Vendor.Throttled). Use fewer symbols, another price source, or a plan without a daily limit",
            grouped(limit, 0)
        ),
        Some(limit) => format!("{most}, within the plan's {} a day", grouped(limit, 0)),
    }
}

/// A quantity to about four significant digits, thousands grouped.
fn quantity(v: f64) -> String {
    if v == 0.0 || v.abs() >= 1000.0 {
        return grouped(v, 0);
    }
    // Digits after the point that keep four significant ones.
    let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
    grouped(v, digits)
}

/// A unit price with every digit it has (list prices are exact decimals).
fn unit_price(v: f64) -> String {
    let text = format!("{v:.10}");
    let text = text.trim_end_matches('0');
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    format!("${int}.{frac:0<2}")
}

fn usd(v: f64) -> String {
    format!("${v:.2}")
}

/// A cost per symbol: cents matter, so to a tenth of one.
fn usd_per_symbol(v: f64) -> String {
    format!("${v:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_keep_four_significant_digits() {
        assert_eq!(quantity(10_000.0), "10,000");
        assert_eq!(quantity(282.6339), "282.6");
        assert_eq!(quantity(21.7411), "21.74");
        assert_eq!(quantity(0.7247), "0.7247");
        assert_eq!(quantity(0.0000186), "0.0000186");
        assert_eq!(quantity(1.0), "1");
        assert_eq!(quantity(0.0), "0");
    }

    #[test]
    fn a_vendor_day_says_whether_it_is_within_the_limit() {
        let day = |busiest_day, daily_limit| VendorDay {
            vendor: "alpha-vantage".into(),
            busiest_day,
            daily_limit,
        };
        assert!(vendor_day(&day(10.0, Some(25.0))).ends_with("within the plan's 25 a day"));
        assert!(vendor_day(&day(26.0, Some(25.0))).contains(": OVER the plan's 25 a day"));
        assert!(vendor_day(&day(16.0, None)).ends_with("; no daily limit"));
    }

    #[test]
    fn unit_prices_keep_their_digits() {
        assert_eq!(unit_price(0.0000133334), "$0.0000133334");
        assert_eq!(unit_price(0.1), "$0.10");
        assert_eq!(unit_price(0.04048 * 0.3), "$0.012144");
        assert_eq!(unit_price(3.0), "$3.00");
        assert_eq!(unit_price(0.0), "$0.00");
    }
}
