//! Universes: the symbols an environment runs, as a list or as a file of
//! one symbol per line (stacks/universes/*.txt), and how a run's symbols
//! are cut into training shards.
//!
//! A file is checked as it is read, with the same [`Symbol`] rule as the
//! API and ingestion: a bad or repeated symbol is an error naming its line.
//! Blank lines and `#` comments (whole-line or after a symbol) are allowed,
//! so a file can say where its list comes from.

use crate::ids::Symbol;

/// Why a universe file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UniverseError {
    #[error("line {line}: {source}")]
    Invalid {
        line: usize,
        source: crate::ids::IdError,
    },
    #[error("line {line}: {symbol} is already on line {first}")]
    Duplicate {
        line: usize,
        first: usize,
        symbol: Symbol,
    },
    #[error("line {line}: one symbol per line, found {text:?}")]
    SeveralOnALine { line: usize, text: String },
    #[error("the universe lists no symbol")]
    Empty,
}

/// Reads a universe file's text: one symbol per line, in file order.
pub fn parse(text: &str) -> Result<Vec<Symbol>, UniverseError> {
    let mut symbols: Vec<(Symbol, usize)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        if content.split_whitespace().nth(1).is_some() {
            return Err(UniverseError::SeveralOnALine {
                line,
                text: content.to_owned(),
            });
        }
        let symbol =
            Symbol::new(content).map_err(|source| UniverseError::Invalid { line, source })?;
        if let Some((_, first)) = symbols.iter().find(|(s, _)| *s == symbol) {
            return Err(UniverseError::Duplicate {
                line,
                first: *first,
                symbol,
            });
        }
        symbols.push((symbol, line));
    }
    if symbols.is_empty() {
        return Err(UniverseError::Empty);
    }
    Ok(symbols.into_iter().map(|(s, _)| s).collect())
}

/// The text a universe is stored as in the data bucket (what
/// [`parse`] reads back).
pub fn render(symbols: &[Symbol]) -> String {
    let mut text = String::with_capacity(symbols.len() * 6);
    for symbol in symbols {
        text.push_str(symbol);
        text.push('\n');
    }
    text
}

/// Which part of a run's symbols one training job (one Batch array child)
/// trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// `AWS_BATCH_JOB_ARRAY_INDEX`; 0 for a job that is not an array.
    pub index: usize,
    /// The number of shards of the run (the array's size, or 1).
    pub count: usize,
}

impl Shard {
    /// The one shard of a run that is not split.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };
}

/// Why a shard cannot be trained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("shard {index} of {count} does not exist")]
    OutOfRange { index: usize, count: usize },
    #[error("shard {index} of {count} has no symbol: the run has only {symbols}")]
    Empty {
        index: usize,
        count: usize,
        symbols: usize,
    },
}

/// How many symbols each shard gets so that no more shards run than the
/// compute environment runs at once (`max_parallel` jobs): the fewest
/// shards that keep every vCPU busy, each as large as needed.
pub fn shard_size(symbols: usize, max_parallel: usize) -> usize {
    symbols.div_ceil(max_parallel.max(1)).max(1)
}

/// How many shards `symbols` symbols make at `size` symbols each.
pub fn shard_count(symbols: usize, size: usize) -> usize {
    symbols.div_ceil(size.max(1))
}

/// The symbols of one shard: contiguous runs of the list, the first
/// `len % count` shards one symbol longer, so every shard has work when
/// `count <= len` and sizes differ by at most one.
pub fn select(symbols: &[Symbol], shard: Shard) -> Result<&[Symbol], ShardError> {
    let Shard { index, count } = shard;
    if count == 0 || index >= count {
        return Err(ShardError::OutOfRange { index, count });
    }
    let (base, extra) = (symbols.len() / count, symbols.len() % count);
    let start = index * base + index.min(extra);
    let len = base + usize::from(index < extra);
    if len == 0 {
        return Err(ShardError::Empty {
            index,
            count,
            symbols: symbols.len(),
        });
    }
    Ok(&symbols[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(names: &[&str]) -> Vec<Symbol> {
        names
            .iter()
            .map(|n| Symbol::new(*n).expect("valid"))
            .collect()
    }

    #[test]
    fn reads_one_symbol_per_line_with_comments_and_blanks() {
        let text =
            "# S&P 500, from datasets/s-and-p-500-companies\n\nAAPL\n  BRK-B  # Berkshire\n^GSPC\n";
        assert_eq!(parse(text), Ok(symbols(&["AAPL", "BRK-B", "^GSPC"])));
    }

    #[test]
    fn names_the_line_of_a_bad_symbol() {
        let error = parse("AAPL\n\n../etc\n").expect_err("refused");
        assert!(
            matches!(error, UniverseError::Invalid { line: 3, .. }),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("line 3: symbol \"../etc\""),
            "{error}"
        );
    }

    #[test]
    fn names_both_lines_of_a_duplicate() {
        let error = parse("AAPL\nMSFT\nAAPL\n").expect_err("refused");
        assert_eq!(error.to_string(), "line 3: AAPL is already on line 1");
    }

    #[test]
    fn refuses_two_symbols_on_a_line_and_an_empty_file() {
        assert!(matches!(
            parse("AAPL MSFT\n"),
            Err(UniverseError::SeveralOnALine { line: 1, .. })
        ));
        assert_eq!(parse("# nothing\n\n"), Err(UniverseError::Empty));
    }

    #[test]
    fn render_reads_back() {
        let list = symbols(&["AAPL", "^GSPC", "BRK-B"]);
        assert_eq!(parse(&render(&list)), Ok(list));
    }

    #[test]
    fn shards_cover_every_symbol_once_in_order() {
        for len in 1..40 {
            let list: Vec<Symbol> = (0..len)
                .map(|i| Symbol::new(format!("S{i}")).expect("valid"))
                .collect();
            for max_parallel in 1..9 {
                let count = shard_count(len, shard_size(len, max_parallel));
                assert!(count <= max_parallel && count >= 1, "{len} {max_parallel}");
                let joined: Vec<Symbol> = (0..count)
                    .flat_map(|index| {
                        select(&list, Shard { index, count })
                            .expect("a shard")
                            .to_vec()
                    })
                    .collect();
                assert_eq!(joined, list, "{len} symbols, {count} shards");
            }
        }
    }

    #[test]
    fn a_shard_past_the_end_or_without_symbols_is_an_error() {
        let list = symbols(&["AAPL", "MSFT"]);
        assert_eq!(
            select(&list, Shard { index: 2, count: 2 }),
            Err(ShardError::OutOfRange { index: 2, count: 2 })
        );
        assert_eq!(
            select(&list, Shard { index: 2, count: 3 }),
            Err(ShardError::Empty {
                index: 2,
                count: 3,
                symbols: 2
            })
        );
    }
}
