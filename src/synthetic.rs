//! Seeded synthetic daily prices: a universe of any size to measure the
//! pipeline's cost at scale without vendor data (`cargo xtask local
//! --universe synthetic:N`).
//!
//! Each series is a drifting geometric random walk whose daily volatility
//! switches between a calm and a stormy regime (a two-state Markov chain,
//! [`REGIMES`]), with open, high, low and volume drawn around each close, on
//! the US trading calendar. The walk starts at a fixed [`epoch`] and runs to
//! the end date, of which the latest `rows` days are kept: a later end date
//! adds days and never changes one already generated, as a vendor's history
//! grows. It has no splits, dividends, gaps or halts, and no day moves far
//! enough to look like an unadjusted split, so every series passes the
//! quality checks. Being a random walk, nothing in it is predictable: a
//! model that beats naive on it does so by chance.
//!
//! The same seed, size, rows and end date give the same bytes (the normal
//! draws go through the platform's `ln` and `cos`). Symbol `SYN0001` is the
//! same series in every universe of the same seed, whatever its size.

use chrono::NaiveDate;

use crate::calendar;
use crate::ids::Symbol;
use crate::rng::Rng;
use crate::series::{Bar, PriceSeries};

/// Rows per series: the protocol's 1,500 (`Protocol::used_rows`) and ten
/// years of older history, as a listed stock has.
pub const DEFAULT_ROWS: usize = 4000;

/// Trading days a year, for the drift's daily share.
const TRADING_DAYS_A_YEAR: f64 = 252.0;

/// A normal draw is cut at this many standard deviations: a stormy day
/// then moves at most about 18 %, far from the ×1.5 or ×2/3 of a split
/// (the quality step flags moves within 3 % of those).
const MAX_SHOCK: f64 = 6.0;

/// The price the walk reflects off from below and above. A floor keeps a
/// cent a small share of the price (at a few cents, rounding would leave
/// the close unchanged for days, which the quality step reads as a halt);
/// real stocks that fall that far are delisted or reverse-split.
const FLOOR: f64 = 5.0;
const CEILING: f64 = 5000.0;

/// The two volatility regimes and how the chain moves between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regimes {
    /// Daily standard deviation of log returns in the calm regime.
    pub calm_vol: f64,
    /// Daily standard deviation of log returns in the stormy regime.
    pub stormy_vol: f64,
    /// Daily probability of a calm day being followed by a stormy one.
    pub calm_to_stormy: f64,
    /// Daily probability of a stormy day being followed by a calm one.
    pub stormy_to_calm: f64,
}

/// Calm spells of 200 trading days on average at 1 % a day, stormy ones of
/// 50 at 3 %: a fifth of the days stormy, about 24 % annualised volatility
/// overall, with the fat tails and volatility clustering of daily returns.
pub const REGIMES: Regimes = Regimes {
    calm_vol: 0.01,
    stormy_vol: 0.03,
    calm_to_stormy: 1.0 / 200.0,
    stormy_to_calm: 1.0 / 50.0,
};

impl Regimes {
    /// The long-run share of stormy days.
    pub fn stormy_share(&self) -> f64 {
        self.calm_to_stormy / (self.calm_to_stormy + self.stormy_to_calm)
    }
}

/// The day every walk starts from.
pub fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1990, 1, 2).unwrap_or(NaiveDate::MIN)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntheticError {
    #[error("a synthetic universe should have at least one symbol, but has 0")]
    NoSymbols,
    #[error("a synthetic series should have at least 2 rows, but has {0}")]
    TooFewRows(usize),
    #[error(
        "{rows} rows should end on {end}, but only {available} trading days lie between the synthetic epoch {epoch} and then",
        epoch = epoch()
    )]
    TooManyRows {
        rows: usize,
        end: NaiveDate,
        available: usize,
    },
}

/// The name of the `index`-th (from 0) synthetic symbol: `SYN0001`, ….
pub fn symbol(index: usize) -> Symbol {
    Symbol::new(format!("SYN{:04}", index + 1))
        .unwrap_or_else(|_| unreachable!("SYN and digits is a valid symbol"))
}

/// A universe of `count` synthetic series of `rows` rows, the last on the
/// last trading day up to `end`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticUniverse {
    count: usize,
    seed: u64,
    /// The trading days of every series, oldest first.
    dates: Vec<NaiveDate>,
    /// How many days from the epoch to the first kept row.
    skip: usize,
}

impl SyntheticUniverse {
    pub fn new(
        count: usize,
        seed: u64,
        rows: usize,
        end: NaiveDate,
    ) -> Result<Self, SyntheticError> {
        if count == 0 {
            return Err(SyntheticError::NoSymbols);
        }
        if rows < 2 {
            return Err(SyntheticError::TooFewRows(rows));
        }
        let dates: Vec<NaiveDate> = epoch()
            .iter_days()
            .take_while(|d| *d <= end)
            .filter(|d| calendar::is_trading_day(*d))
            .collect();
        let Some(skip) = dates.len().checked_sub(rows) else {
            return Err(SyntheticError::TooManyRows {
                rows,
                end,
                available: dates.len(),
            });
        };
        Ok(SyntheticUniverse {
            count,
            seed,
            dates,
            skip,
        })
    }

    pub fn symbols(&self) -> Vec<Symbol> {
        (0..self.count).map(symbol).collect()
    }

    /// Every series, generated one at a time as the iterator is read.
    pub fn series(&self) -> impl Iterator<Item = (Symbol, PriceSeries)> + '_ {
        // Each symbol's walk has its own seed, drawn in order from the
        // universe's: symbol i is the same in a universe of any size.
        let mut seeds = Rng::new(self.seed);
        (0..self.count).map(move |index| {
            let symbol = symbol(index);
            let bars = walk(seeds.next_u64(), &self.dates)
                .into_iter()
                .skip(self.skip)
                .map(|day| day.bar)
                .collect();
            let series = PriceSeries::new(symbol.as_str(), bars)
                .unwrap_or_else(|e| unreachable!("a synthetic series is valid: {e}"));
            (symbol, series)
        })
    }
}

/// Which regime a day was drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Regime {
    Calm,
    Stormy,
}

/// One generated day: the bar and the regime its move was drawn in.
#[derive(Debug, Clone, Copy)]
struct Day {
    bar: Bar,
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the tests measure each regime's volatility")
    )]
    regime: Regime,
}

/// A symbol's character, drawn once from its seed.
struct Character {
    start_price: f64,
    /// Expected log return a day, before the volatility's drag.
    daily_drift: f64,
    /// Shares traded on a calm day, typically.
    base_volume: f64,
}

impl Character {
    fn draw(rng: &mut Rng) -> Self {
        let log_uniform =
            |rng: &mut Rng, lo: f64, hi: f64| (lo.ln() + rng.uniform() * (hi.ln() - lo.ln())).exp();
        Character {
            start_price: log_uniform(rng, 10.0, 500.0),
            daily_drift: rng.uniform() * 0.12 / TRADING_DAYS_A_YEAR,
            base_volume: log_uniform(rng, 2e5, 2e7),
        }
    }
}

fn cents(price: f64) -> f64 {
    (price * 100.0).round() / 100.0
}

/// A standard normal draw cut at ±[`MAX_SHOCK`].
fn shock(rng: &mut Rng) -> f64 {
    rng.normal().clamp(-MAX_SHOCK, MAX_SHOCK)
}

/// Keeps a log price within [`FLOOR`, `CEILING`] by reflecting off them.
fn reflect(log_price: f64) -> f64 {
    let (lo, hi) = (FLOOR.ln(), CEILING.ln());
    if log_price < lo {
        2.0 * lo - log_price
    } else if log_price > hi {
        2.0 * hi - log_price
    } else {
        log_price
    }
}

/// The walk of one symbol over `dates`, from the start price on the epoch.
fn walk(seed: u64, dates: &[NaiveDate]) -> Vec<Day> {
    let mut rng = Rng::new(seed);
    let character = Character::draw(&mut rng);
    let mut regime = if rng.uniform() < REGIMES.stormy_share() {
        Regime::Stormy
    } else {
        Regime::Calm
    };
    let mut log_close = character.start_price.ln();
    let mut days = Vec::with_capacity(dates.len());
    for &date in dates {
        regime = next_regime(&mut rng, regime);
        let vol = match regime {
            Regime::Calm => REGIMES.calm_vol,
            Regime::Stormy => REGIMES.stormy_vol,
        };
        let previous = log_close;
        log_close =
            reflect(log_close + character.daily_drift - vol * vol / 2.0 + vol * shock(&mut rng));
        // The open gaps from the previous close by a share of the day's
        // move; the range reaches past both by half a day's volatility.
        let open = (previous + 0.3 * vol * shock(&mut rng)).exp();
        let close = log_close.exp();
        let high = open.max(close) * (0.5 * vol * shock(&mut rng).abs()).exp();
        let low = open.min(close) * (-0.5 * vol * shock(&mut rng).abs()).exp();
        let volume =
            character.base_volume * (vol / REGIMES.calm_vol) * (0.3 * shock(&mut rng)).exp();
        let close = cents(close);
        // Rounding is monotone, so high ≥ max(open, close) and low ≤
        // min(open, close) still hold in cents.
        days.push(Day {
            bar: Bar {
                date,
                open: Some(cents(open)),
                high: Some(cents(high)),
                low: Some(cents(low)),
                close,
                adj_close: Some(close),
                volume: Some(volume.round().max(1.0)),
            },
            regime,
        });
    }
    days
}

fn next_regime(rng: &mut Rng, regime: Regime) -> Regime {
    let u = rng.uniform();
    match regime {
        Regime::Calm if u < REGIMES.calm_to_stormy => Regime::Stormy,
        Regime::Stormy if u < REGIMES.stormy_to_calm => Regime::Calm,
        unchanged => unchanged,
    }
}

#[cfg(test)]
mod tests;
