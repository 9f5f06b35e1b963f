//! The US equity trading calendar (NYSE/Nasdaq full-day closures).
//!
//! Used to tell a real data gap from a market holiday and to date the
//! trading days after the last close. Holidays follow the exchange rules
//! (with Saturday holidays observed on Friday and Sunday ones on Monday, and
//! no Friday observance of a Saturday New Year's Day), plus the unscheduled
//! closures since 2001.

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// Unscheduled full-day closures (national mourning, weather, 9/11).
const SPECIAL_CLOSURES: [(i32, u32, u32); 11] = [
    (2001, 9, 11),
    (2001, 9, 12),
    (2001, 9, 13),
    (2001, 9, 14),
    (2004, 6, 11),
    (2007, 1, 2),
    (2012, 10, 29),
    (2012, 10, 30),
    (2018, 12, 5),
    (2025, 1, 9),
    (1994, 4, 27),
];

fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

/// The n-th (1-based) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n as u8)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    nth_weekday(year, month, weekday, 5).or_else(|| nth_weekday(year, month, weekday, 4))
}

/// Easter Sunday (anonymous Gregorian algorithm).
fn easter(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    date(year, month as u32, day as u32)
}

/// A fixed-date holiday moved off the weekend.
fn observed(day: NaiveDate) -> NaiveDate {
    match day.weekday() {
        Weekday::Sat => day - Days::new(1),
        Weekday::Sun => day + Days::new(1),
        _ => day,
    }
}

/// Whether the market is closed all day on `day` for a holiday or closure.
pub fn is_holiday(day: NaiveDate) -> bool {
    let year = day.year();
    let mut holidays: Vec<Option<NaiveDate>> = vec![
        nth_weekday(year, 1, Weekday::Mon, 3),
        nth_weekday(year, 2, Weekday::Mon, 3),
        easter(year).map(|e| e - Days::new(2)),
        last_weekday(year, 5, Weekday::Mon),
        date(year, 7, 4).map(observed),
        nth_weekday(year, 9, Weekday::Mon, 1),
        nth_weekday(year, 11, Weekday::Thu, 4),
        date(year, 12, 25).map(observed),
    ];
    // New Year's Day on a Saturday is not observed on the Friday before.
    if let Some(new_year) = date(year, 1, 1)
        && new_year.weekday() != Weekday::Sat
    {
        holidays.push(Some(observed(new_year)));
    }
    if year >= 2022 {
        holidays.push(date(year, 6, 19).map(observed));
    }
    holidays.into_iter().flatten().any(|h| h == day)
        || SPECIAL_CLOSURES
            .iter()
            .any(|&(y, m, d)| date(y, m, d) == Some(day))
}

/// Whether the market trades on `day`.
pub fn is_trading_day(day: NaiveDate) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !is_holiday(day)
}

/// The `n` trading days after `day`.
pub fn next_trading_days(day: NaiveDate, n: usize) -> Vec<NaiveDate> {
    let mut out = Vec::with_capacity(n);
    let mut current = day;
    while out.len() < n {
        current = current + Days::new(1);
        if is_trading_day(current) {
            out.push(current);
        }
    }
    out
}

/// Trading days strictly between two dates: the sessions a series skipped.
pub fn trading_days_between(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    from.iter_days()
        .skip(1)
        .take_while(|d| *d < to)
        .filter(|d| is_trading_day(*d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("valid date")
    }

    #[test]
    fn known_holidays_2024() {
        for day in [
            "2024-01-01",
            "2024-01-15",
            "2024-02-19",
            "2024-03-29",
            "2024-05-27",
            "2024-06-19",
            "2024-07-04",
            "2024-09-02",
            "2024-11-28",
            "2024-12-25",
        ] {
            assert!(is_holiday(d(day)), "{day}");
        }
        assert!(is_trading_day(d("2024-07-05")));
    }

    #[test]
    fn weekend_observance() {
        // 2021-07-04 was a Sunday: closed Monday 5th. 2022-01-01 was a Saturday: open Friday 2021-12-31.
        assert!(is_holiday(d("2021-07-05")));
        assert!(is_trading_day(d("2021-12-31")));
        // 2021-12-25 was a Saturday: closed Friday 24th.
        assert!(is_holiday(d("2021-12-24")));
    }

    #[test]
    fn next_trading_days_skip_weekends_and_holidays() {
        // Wednesday 2024-11-27 → Thanksgiving Thursday closed → Fri, Mon.
        assert_eq!(
            next_trading_days(d("2024-11-27"), 2),
            vec![d("2024-11-29"), d("2024-12-02")]
        );
    }

    #[test]
    fn sample_data_has_no_unexplained_gaps() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
        for series in crate::series::load_folder(&dir).expect("sample loads") {
            for pair in series.bars.windows(2) {
                let missing = trading_days_between(pair[0].date, pair[1].date);
                assert!(
                    missing.is_empty(),
                    "{}: {:?} missing between {} and {}",
                    series.name,
                    missing,
                    pair[0].date,
                    pair[1].date
                );
                assert!(
                    is_trading_day(pair[1].date),
                    "{}: {} is not a trading day",
                    series.name,
                    pair[1].date
                );
            }
        }
    }
}
