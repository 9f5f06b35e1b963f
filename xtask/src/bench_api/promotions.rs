//! `cargo xtask bench-api --promotions`: the registry moves production while
//! the load runs, and every answer is held to the cache's promise.
//!
//! The API promises that a promotion is visible within its revalidation
//! interval (`api::cache`). So an answer to a request sent at `s` and
//! received at `e` may name any version that was production at some
//! instant of `[s - interval, e]`, and no other (issue 20, item 8). The
//! promoter moves production through the library's registry, the same
//! compare-and-swap `cargo xtask promote` and `rollback` use, and notes
//! when each move started and ended: the alias changed in between.

use std::time::{Duration, Instant};
use stockcast::ids::{RunId, Symbol, VersionId};

use anyhow::{Context, ensure};
use stockcast::models::ModelKind;
use stockcast::registry::Registry;

/// One move of the production alias.
#[derive(Debug, Clone)]
pub struct Move {
    pub version: String,
    /// Before the registry call: the alias still named the version before.
    pub started: Instant,
    /// After it: the alias named `version`.
    pub done: Instant,
}

/// Every move of a run, in order, the first being the starting point.
#[derive(Debug, Default)]
pub struct History {
    pub moves: Vec<Move>,
    pub promotions: usize,
    pub rollbacks: usize,
}

impl History {
    /// Whether `version` may have been production at some instant of
    /// `[from, to]`: a move took effect somewhere between its start and its
    /// end, so each version's time in production is widened to both.
    pub fn was_production(&self, version: &str, from: Instant, to: Instant) -> bool {
        self.moves.iter().enumerate().any(|(i, m)| {
            let replaced = self.moves.get(i + 1).map(|next| next.done);
            m.version == version && m.started <= to && replaced.is_none_or(|r| r >= from)
        })
    }
}

/// Moves production of one (symbol, model) between its two newest
/// versions: a promotion of the newer, then a rollback to the previous.
pub struct Promoter {
    registry: Registry,
    symbol: Symbol,
    model: ModelKind,
    newer: VersionId,
    history: History,
}

impl Promoter {
    /// Puts production on the older of the two newest versions, the
    /// starting point of the history.
    pub async fn start(
        registry: Registry,
        symbol: &'static str,
        model: ModelKind,
    ) -> anyhow::Result<Promoter> {
        let symbol = Symbol::from_static(symbol);
        let run_id = RunId::from_static("bench-api");
        let versions = registry.versions(&symbol, model).await?;
        ensure!(
            versions.len() >= 2,
            "{symbol} {model} has {} versions; promotions need two",
            versions.len()
        );
        let (older, newer) = (&versions[versions.len() - 2], &versions[versions.len() - 1]);
        let started = Instant::now();
        let moved = registry
            .promote(
                &symbol,
                model,
                older,
                &run_id,
                "bench-api --promotions: start",
            )
            .await
            .context("failed to put production on the older version")?;
        let history = History {
            moves: vec![Move {
                version: moved.version.to_string(),
                started,
                done: Instant::now(),
            }],
            ..History::default()
        };
        Ok(Promoter {
            registry,
            symbol,
            model,
            newer: newer.clone(),
            history,
        })
    }

    /// Promotes and rolls back in turn, one move every `every`, until `until`.
    pub async fn run(mut self, every: Duration, until: Instant) -> anyhow::Result<History> {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        let mut promote = true;
        loop {
            ticker.tick().await;
            if Instant::now() >= until {
                return Ok(self.history);
            }
            let started = Instant::now();
            let moved = if promote {
                self.history.promotions += 1;
                self.registry
                    .promote(
                        &self.symbol,
                        self.model,
                        &self.newer,
                        &RunId::from_static("bench-api"),
                        "bench-api --promotions",
                    )
                    .await
            } else {
                self.history.rollbacks += 1;
                self.registry
                    .rollback(&self.symbol, self.model, None, "bench-api --promotions")
                    .await
            }
            .context("the promoter failed to move production")?;
            self.history.moves.push(Move {
                version: moved.version.to_string(),
                started,
                done: Instant::now(),
            });
            promote = !promote;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// v1 from 0 ms, v2 promoted between 1000 and 1010 ms, v1 back between
    /// 2000 and 2010 ms.
    fn history(t0: Instant) -> History {
        let at = |ms| t0 + Duration::from_millis(ms);
        let step = |v: &str, from, to| Move {
            version: v.into(),
            started: at(from),
            done: at(to),
        };
        History {
            moves: vec![
                step("v1", 0, 0),
                step("v2", 1000, 1010),
                step("v1", 2000, 2010),
            ],
            ..History::default()
        }
    }

    #[test]
    fn an_answer_may_name_what_was_production_within_its_window() {
        let t0 = Instant::now();
        let history = history(t0);
        let at = |ms| t0 + Duration::from_millis(ms);
        // (version, window from, window to, allowed)
        #[rustfmt::skip]
        let cases = [
            ("v1", 0, 500, true),
            ("v2", 0, 500, false),      // not promoted yet
            ("v2", 900, 1000, true),    // the promotion may already have landed
            ("v1", 1005, 1500, true),   // it may not have landed yet
            ("v1", 1011, 1999, false),  // v2 was production the whole window
            ("v2", 1011, 1999, true),
            ("v2", 2005, 2500, true),   // the rollback may not have landed
            ("v2", 2011, 3000, false),  // it had
            ("v1", 5000, 6000, true),   // the last move stays
            ("v3", 0, 6000, false),     // never production
        ];
        for (version, from, to, allowed) in cases {
            assert_eq!(
                history.was_production(version, at(from), at(to)),
                allowed,
                "{version} in [{from}, {to}] ms"
            );
        }
    }
}
