//! Log setup for the binaries: JSON lines in Lambda and Batch (CloudWatch
//! parses them), human-readable locally. `RUST_LOG` filters, default `info`.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON logs without ANSI colours or timestamps (CloudWatch adds its own).
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// Human-readable logs on stderr.
pub fn init_human() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .try_init();
}
