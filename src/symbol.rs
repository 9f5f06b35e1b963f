//! The one rule for a symbol, checked wherever a symbol enters (environment
//! files, ingest events, API requests): it becomes a storage key part, a
//! sample file name and a vendor URL parameter, so it must be harmless in
//! all three.

/// The longest symbol accepted (`^GSPC`, `BRK-B`, `EURUSD=X` are far shorter).
pub const MAX_SYMBOL_LEN: usize = 16;

/// Why a symbol is refused, in words that name the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("symbol {symbol:?} {problem}")]
pub struct SymbolError {
    pub symbol: String,
    pub problem: &'static str,
}

/// Accepts 1 to 16 ASCII letters, digits and `^ . - =`, not starting with
/// `.` (so never `.`, `..` or a hidden file name).
pub fn check_symbol(symbol: &str) -> Result<(), SymbolError> {
    let refuse = |problem| {
        Err(SymbolError {
            symbol: symbol.to_owned(),
            problem,
        })
    };
    if symbol.is_empty() {
        return refuse("is empty");
    }
    if symbol.len() > MAX_SYMBOL_LEN {
        return refuse("is longer than 16 characters");
    }
    if !symbol
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '^' | '.' | '-' | '='))
    {
        return refuse("has characters other than letters, digits and ^ . - =");
    }
    if symbol.starts_with('.') {
        return refuse("starts with a dot");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickers_pass_and_paths_do_not() {
        for ok in ["AAPL", "^GSPC", "BRK-B", "BRK.B", "EURUSD=X", "7203"] {
            assert_eq!(check_symbol(ok), Ok(()), "{ok}");
        }
        for (bad, problem) in [
            ("", "is empty"),
            ("../sample/IBM", "has characters other"),
            ("..", "starts with a dot"),
            (".hidden", "starts with a dot"),
            ("A B", "has characters other"),
            ("ABCDEFGHIJKLMNOPQ", "longer than 16"),
        ] {
            let e = check_symbol(bad).expect_err(bad);
            assert!(e.to_string().contains(problem), "{bad}: {e}");
        }
    }
}
