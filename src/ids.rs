//! The names of things the store keeps: a [`Symbol`], a [`RunId`] and a
//! [`VersionId`]. Each becomes a storage key part, and a symbol also a
//! sample file name and a vendor URL parameter, so each is checked once,
//! where it is made or deserialised, and is harmless in all of them after.
//! A value that breaks the rule is a validation error that names the rule,
//! never a storage or vendor error later.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest symbol accepted (`^GSPC`, `BRK-B`, `EURUSD=X` are far shorter).
pub const MAX_SYMBOL_LEN: usize = 16;

/// The longest run or version id: Step Functions' limit on an execution
/// name, which becomes the run id of a console run.
pub const MAX_ID_LEN: usize = 80;

/// Why a name is refused, in words that name the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} {problem}")]
pub struct IdError {
    /// `symbol`, `run id` or `version id`.
    pub what: &'static str,
    pub value: String,
    pub problem: &'static str,
}

/// What a kind of name may be.
struct Rule {
    what: &'static str,
    max_len: usize,
    too_long: &'static str,
    allowed: fn(char) -> bool,
    not_allowed: &'static str,
}

impl Rule {
    fn check(&self, value: &str) -> Result<(), IdError> {
        let refuse = |problem| {
            Err(IdError {
                what: self.what,
                value: value.to_owned(),
                problem,
            })
        };
        if value.is_empty() {
            return refuse("is empty");
        }
        if value.len() > self.max_len {
            return refuse(self.too_long);
        }
        if !value.chars().all(self.allowed) {
            return refuse(self.not_allowed);
        }
        if value.starts_with('.') {
            // Never `.`, `..` or a hidden file name.
            return refuse("starts with a dot");
        }
        Ok(())
    }
}

/// Accepts 1 to 16 ASCII letters, digits and `^ . - =`, not starting with `.`.
pub fn check_symbol(symbol: &str) -> Result<(), IdError> {
    Rule {
        what: "symbol",
        max_len: MAX_SYMBOL_LEN,
        too_long: "is longer than 16 characters",
        allowed: |c| c.is_ascii_alphanumeric() || matches!(c, '^' | '.' | '-' | '='),
        not_allowed: "has characters other than letters, digits and ^ . - =",
    }
    .check(symbol)
}

/// Accepts 1 to 80 ASCII letters, digits and `- _ . :`, not starting with
/// `.`: an execution name (the run id of a console run), a scheduled time
/// (EventBridge Scheduler's `2026-11-27T09:00:00Z`, the run id of a
/// scheduled one), and nothing a key or a URL path would have to escape.
fn check_id(what: &'static str, id: &str) -> Result<(), IdError> {
    Rule {
        what,
        max_len: MAX_ID_LEN,
        too_long: "is longer than 80 characters",
        allowed: |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'),
        not_allowed: "has characters other than letters, digits and - _ . :",
    }
    .check(id)
}

/// Defines a string newtype that is checked when made or deserialised and
/// reads as a `&str` everywhere after.
macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                ($check)(value.as_str())?;
                Ok($name(value))
            }

            /// For constants and tests, as `http::HeaderValue::from_static`:
            /// panics on a name that breaks the rule, so never use it on input.
            pub fn from_static(value: &'static str) -> Self {
                match $name::new(value) {
                    Ok(name) => name,
                    Err(e) => panic!("{e}"),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                $name::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(value: &str) -> Result<Self, IdError> {
                $name::new(value)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

checked_name!(
    /// A ticker as users type it (`AAPL`, `^GSPC`, `BRK-B`).
    Symbol,
    check_symbol
);

impl Symbol {
    /// The symbol as the store keeps it (requests may say `aapl`); the rule
    /// holds for the upper case of anything it accepts.
    pub fn to_ascii_uppercase(&self) -> Symbol {
        Symbol(self.0.to_ascii_uppercase())
    }
}

checked_name!(
    /// A pipeline run: `runs/<run_id>/`, `decisions/<run_id>.json`, and the
    /// execution's name in AWS.
    RunId,
    |id| check_id("run id", id)
);

checked_name!(
    /// A model version: `models/<symbol>/<model>/versions/<version>/`.
    VersionId,
    |id| check_id("version id", id)
);

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

    #[test]
    fn ids_take_execution_names_and_refuse_paths() {
        for ok in [
            "2026-11-27T09-00-12Z-local",
            "rollback-20261127T090012Z",
            "20261127T090312.114Z-3fa2c1",
            "0f6c2a3e-5d7b-4f1e-9a2b-8c3d4e5f6a7b",
            "2026-11-27T09:00:00Z-daily",
        ] {
            assert!(RunId::new(ok).is_ok(), "{ok}");
            assert!(VersionId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", "a b", ".x", &"x".repeat(81)] {
            assert!(RunId::new(bad).is_err(), "{bad}");
        }
        let e = VersionId::new("a/b").expect_err("slash");
        assert_eq!(
            e.to_string(),
            "version id \"a/b\" has characters other than letters, digits and - _ . :"
        );
    }

    #[test]
    fn deserialising_checks_and_serialising_is_the_plain_string() {
        let symbol: Symbol = serde_json::from_str("\"AAPL\"").expect("valid");
        assert_eq!(symbol, "AAPL");
        assert_eq!(
            serde_json::to_string(&symbol).expect("serialises"),
            "\"AAPL\""
        );
        let e = serde_json::from_str::<Symbol>("\"../sample/IBM\"").expect_err("refused");
        assert!(e.to_string().contains("has characters other"), "{e}");
    }
}
