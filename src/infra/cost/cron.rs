//! How many times a month a schedule fires, from its EventBridge expression:
//! `cron(minutes hours day-of-month month day-of-week year)` or
//! `rate(value unit)`, on an average month of 365.25 / 12 days.
//!
//! Only what an estimate needs: `*`, `?`, numbers, names (MON, JAN), ranges,
//! lists and `/` steps. `L`, `W` and `#` are rejected rather than guessed.
//! [`firings_on`] says how often one fires on a given date, for limits that
//! vendors count per day.

use chrono::{Datelike, NaiveDate};

/// Days in an average month.
pub const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
/// Hours in an average month (730.5).
pub const HOURS_PER_MONTH: f64 = DAYS_PER_MONTH * 24.0;

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Average firings a month of an EventBridge schedule expression.
pub fn runs_per_month(expression: &str) -> Result<f64, String> {
    let expression = expression.trim();
    if let Some(body) = inner(expression, "rate") {
        return rate(body);
    }
    if let Some(body) = inner(expression, "cron") {
        return cron(body);
    }
    if inner(expression, "at").is_some() {
        // A one-time schedule: it fires once in its life, not every month.
        return Ok(0.0);
    }
    Err(format!(
        "{expression:?} is not a cron(...), rate(...) or at(...) expression"
    ))
}

/// Firings of an EventBridge schedule expression on one date (UTC). A
/// `rate` fires on every date, as often as it fits in a day (at least once);
/// `at` is a one-time schedule and counted nowhere, as in [`runs_per_month`].
pub fn firings_on(expression: &str, date: NaiveDate) -> Result<f64, String> {
    let expression = expression.trim();
    if let Some(body) = inner(expression, "rate") {
        return Ok((24.0 * 60.0 / rate_minutes(body)?).ceil().max(1.0));
    }
    if inner(expression, "at").is_some() {
        return Ok(0.0);
    }
    let Some(body) = inner(expression, "cron") else {
        return Err(format!(
            "{expression:?} is not a cron(...), rate(...) or at(...) expression"
        ));
    };
    // Validates the expression as runs_per_month does.
    cron(body)?;
    let fields: Vec<&str> = body.split_whitespace().collect();
    let [minutes, hours, day_of_month, month, day_of_week, _year] = fields[..] else {
        return Err(format!("cron({body}) should have 6 fields"));
    };
    let selects = |field: &str, min, max, names: &[&str], value: u32| -> Result<bool, String> {
        Ok(field == "?" || values(field, min, max, names, 1)?.contains(&value))
    };
    let fires = selects(month, 1, 12, &MONTHS, date.month())?
        && selects(day_of_month, 1, 31, &[], date.day())?
        && selects(
            day_of_week,
            1,
            7,
            &DAYS,
            date.weekday().number_from_sunday(),
        )?;
    if !fires {
        return Ok(0.0);
    }
    Ok((values(minutes, 0, 59, &[], 0)?.len() * values(hours, 0, 23, &[], 0)?.len()) as f64)
}

fn inner<'a>(expression: &'a str, function: &str) -> Option<&'a str> {
    expression
        .strip_prefix(function)?
        .strip_prefix('(')?
        .strip_suffix(')')
}

fn rate(body: &str) -> Result<f64, String> {
    Ok(HOURS_PER_MONTH * 60.0 / rate_minutes(body)?)
}

/// Minutes between two firings of `rate(<body>)`.
fn rate_minutes(body: &str) -> Result<f64, String> {
    let mut parts = body.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("rate({body}) should be rate(<value> <unit>)"));
    };
    let value: f64 = value
        .parse()
        .ok()
        .filter(|v: &f64| *v >= 1.0)
        .ok_or_else(|| format!("rate({body}): {value:?} is not a positive whole number"))?;
    let minutes = match unit.trim_end_matches('s') {
        "minute" => 1.0,
        "hour" => 60.0,
        "day" => 24.0 * 60.0,
        _ => return Err(format!("rate({body}): unknown unit {unit:?}")),
    };
    Ok(value * minutes)
}

fn cron(body: &str) -> Result<f64, String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    let [minutes, hours, day_of_month, month, day_of_week, _year] = fields[..] else {
        return Err(format!(
            "cron({body}) should have 6 fields, but has {}",
            fields.len()
        ));
    };
    let per_day = values(minutes, 0, 59, &[], 0)?.len() * values(hours, 0, 23, &[], 0)?.len();
    let months = values(month, 1, 12, &MONTHS, 1)?.len();
    let days = match (day_of_month, day_of_week) {
        ("?", "?") => {
            return Err(format!(
                "cron({body}): day-of-month and day-of-week are both ?"
            ));
        }
        ("?", dow) => values(dow, 1, 7, &DAYS, 1)?.len() as f64 / 7.0 * DAYS_PER_MONTH,
        ("*", "?") => DAYS_PER_MONTH,
        // A day of the month above 28 is missing from some months; the
        // estimate counts it every month, which errs on the high side.
        (dom, "?") => values(dom, 1, 31, &[], 1)?.len() as f64,
        _ => {
            return Err(format!(
                "cron({body}): one of day-of-month and day-of-week must be ?"
            ));
        }
    };
    Ok(per_day as f64 * days * months as f64 / 12.0)
}

/// The distinct values a field selects, within `min..=max`; `names` are
/// the names of the values from `first_name`.
fn values(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    first_name: u32,
) -> Result<Vec<u32>, String> {
    let number = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(first_name + i as u32);
        }
        if s.contains(['L', 'W', '#']) {
            return Err(format!(
                "{s:?} in field {field:?}: L, W and # are not supported by the estimate"
            ));
        }
        s.parse()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| format!("{s:?} is not a value in [{min}, {max}] in field {field:?}"))
    };
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{step:?} is not a step in field {field:?}"))?,
            ),
            None => (item, 1),
        };
        let (start, end) = match range {
            "*" | "?" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                // "5/15" starts at 5 and runs to the end of the range.
                None if step > 1 => (number(range)?, max),
                None => {
                    let v = number(range)?;
                    (v, v)
                }
            },
        };
        if start > end {
            return Err(format!("{range:?} in field {field:?} runs backwards"));
        }
        out.extend((start..=end).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expression: &str, expected: f64) {
        let got = runs_per_month(expression).expect("parses");
        assert!(
            (got - expected).abs() < 1e-9,
            "{expression}: {got} != {expected}"
        );
    }

    #[test]
    fn counts_firings_in_an_average_month() {
        // Weekdays at 09:00: 5 of 7 days of 30.4375.
        check("cron(0 9 ? * MON-FRI *)", 5.0 / 7.0 * DAYS_PER_MONTH);
        // Sundays: 30.4375 / 7 = 4.348.
        check("cron(0 6 ? * SUN *)", DAYS_PER_MONTH / 7.0);
        // Every 15 minutes (4 an hour) of hours 8..=17 (10), every day.
        check("cron(0/15 8-17 * * ? *)", 40.0 * DAYS_PER_MONTH);
        // The 1st and 15th of January and July: 2 days x 2 of 12 months.
        check("cron(30 2 1,15 JAN,JUL ? *)", 2.0 * 2.0 / 12.0);
        // Names that contain L or W are names, not the L and W operators.
        check("cron(0 0 ? * MON-WED *)", 3.0 / 7.0 * DAYS_PER_MONTH);
        check("cron(0 0 1 JUN-JUL ? *)", 2.0 / 12.0);
        check("rate(1 day)", DAYS_PER_MONTH);
        check("rate(5 minutes)", HOURS_PER_MONTH * 12.0);
        check("at(2026-12-01T00:00:00)", 0.0);
    }

    #[test]
    fn counts_firings_on_a_date() {
        let date = |s: &str| s.parse::<NaiveDate>().expect("a date");
        // 2026-11-27 is a Friday, 2026-11-29 a Sunday.
        let (friday, sunday) = (date("2026-11-27"), date("2026-11-29"));
        let on = |expression: &str, d| firings_on(expression, d).expect("parses");
        assert_eq!(on("cron(0 9 ? * MON-FRI *)", friday), 1.0);
        assert_eq!(on("cron(0 9 ? * MON-FRI *)", sunday), 0.0);
        assert_eq!(on("cron(0 6 ? * SUN *)", sunday), 1.0);
        assert_eq!(on("cron(0/15 8-17 * * ? *)", friday), 40.0);
        assert_eq!(on("cron(30 2 27 NOV ? *)", friday), 1.0);
        assert_eq!(on("cron(30 2 27 DEC ? *)", friday), 0.0);
        assert_eq!(on("rate(5 minutes)", sunday), 288.0);
        assert_eq!(on("rate(2 days)", sunday), 1.0);
        assert_eq!(on("at(2026-11-27T00:00:00)", friday), 0.0);
        assert!(firings_on("cron(0 9 ? * 6L *)", friday).is_err());
    }

    #[test]
    fn rejects_what_it_cannot_count() {
        for bad in [
            "cron(0 9 ? * 6L *)",
            "cron(0 9 * * MON *)",
            "cron(0 9 ? * MON-FRI)",
            "rate(0 days)",
            "every day",
        ] {
            assert!(runs_per_month(bad).is_err(), "{bad} should be rejected");
        }
    }
}
