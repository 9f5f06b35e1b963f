//! `cargo xtask local --universe`: a seeded synthetic universe and a
//! universe file through the whole pipeline, as a user runs them.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn local(root: &Path, args: &[&str]) -> Output {
    let output = Command::new(XTASK)
        .arg("local")
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("STOCKCAST_ROOT")
        .stdin(Stdio::null())
        .output()
        .expect("xtask runs");
    assert!(
        output.status.success(),
        "local {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn curated(root: &Path, symbol: &str) -> Vec<u8> {
    std::fs::read(root.join(format!("curated/{symbol}.csv"))).expect("the curated series")
}

#[test]
fn a_synthetic_universe_runs_the_whole_pipeline_and_the_seed_fixes_its_prices() {
    let (first, second) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let args = [
        "--universe",
        "synthetic:3",
        "--seed",
        "7",
        "--models",
        "naive,drift",
    ];
    let output = local(first.path(), &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("s CPU") && stdout.contains("peak memory"),
        "{stdout}"
    );
    for symbol in ["SYN0001", "SYN0002", "SYN0003"] {
        assert!(stdout.contains(&format!("{symbol}  naive")), "{stdout}");
        // Ingested, checked, trained and promoted (the baselines always are).
        let production = first
            .path()
            .join(format!("models/{symbol}/naive/aliases/production.json"));
        assert!(production.exists(), "{}", production.display());
        assert_eq!(
            curated(first.path(), symbol)
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            4001
        );
    }
    local(second.path(), &args);
    assert_eq!(
        curated(first.path(), "SYN0002"),
        curated(second.path(), "SYN0002")
    );
    let other_seed = tempfile::tempdir().expect("temp dir");
    local(
        other_seed.path(),
        &["--universe", "synthetic:1", "--models", "naive"],
    );
    assert_ne!(
        curated(first.path(), "SYN0001"),
        curated(other_seed.path(), "SYN0001")
    );
}

#[test]
fn a_universe_file_runs_its_symbols_from_the_sample_folder() {
    let root = tempfile::tempdir().expect("temp dir");
    let file = root.path().join("two.txt");
    std::fs::write(&file, "# two of the sample\nMSFT\n\nIBM  # a comment\n").expect("writes");
    let file = file.to_str().expect("utf-8 path");
    local(root.path(), &["--universe", file, "--models", "naive"]);
    for (symbol, ran) in [("MSFT", true), ("IBM", true), ("AAPL", false)] {
        assert_eq!(
            root.path().join(format!("curated/{symbol}.csv")).exists(),
            ran,
            "{symbol}"
        );
    }
}
