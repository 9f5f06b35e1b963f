//! Contract fuzzing (issue 20): schemathesis, pinned by `tools.rs`, runs
//! every one of its checks with docs/openapi.json against `cargo xtask serve`
//! on 127.0.0.1: no server errors, only documented status codes, content
//! types, headers and response schemas, data outside the contract refused,
//! data inside it accepted, and the API key enforced. Any failure fails the
//! test with schemathesis's report.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// The key the local server requires, as API Gateway requires one in AWS.
const API_KEY: &str = "contract-test-key";

/// Fixed, so a failure reproduces with the command the test prints.
const SEED: &str = "20";

/// Test cases per operation: the coverage phase's boundary values plus
/// this many fuzzed ones; about ten seconds against a debug build.
const MAX_EXAMPLES: &str = "500";

#[test]
fn schemathesis_finds_nothing_against_the_contract() {
    let Some(schemathesis) = test_support::tool("STOCKCAST_SCHEMATHESIS") else {
        return;
    };
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = tempfile::tempdir().expect("temp dir");
    let root_arg = root.path().to_str().expect("utf-8 path");
    // Two baselines keep the seeding to a second; what is fuzzed is the
    // router's handling of requests, which does not depend on the model.
    let seeded = Command::new(XTASK)
        .current_dir(&project)
        .args(["local", "--root", root_arg, "--symbols", "AAPL,MSFT"])
        .args(["--models", "naive,drift"])
        .output()
        .expect("runs xtask local");
    assert!(
        seeded.status.success(),
        "cargo xtask local failed:\n{}",
        String::from_utf8_lossy(&seeded.stderr)
    );

    let port = test_support::free_port();
    let mut serve = Command::new(XTASK);
    serve
        .current_dir(&project)
        .args(["serve", "--root", root_arg, "--port", &port.to_string()])
        .args(["--api-key", API_KEY]);
    let _server = test_support::spawn_listening(serve, port);

    let url = format!("http://127.0.0.1:{port}");
    let header = format!("x-api-key: {API_KEY}");
    let contract = project.join("docs/openapi.json");
    let args = [
        "run",
        contract.to_str().expect("utf-8 path"),
        "--url",
        &url,
        "--header",
        &header,
        "--checks",
        "all",
        "--continue-on-failure",
        "--seed",
        SEED,
        "--max-examples",
        MAX_EXAMPLES,
        // One worker, and no example database to read or write, so a run
        // depends only on the seed and the server.
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
    ];
    // Run from an empty folder: schemathesis reads a schemathesis.toml from
    // its working directory, and nothing here should configure it.
    let scratch = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let output = Command::new(&schemathesis)
        .args(args)
        .current_dir(scratch.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("runs schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let command = format!("schemathesis {}", args.join(" "));
    assert!(
        output.status.success(),
        "schemathesis found failures ({}); reproduce against `cargo xtask serve --api-key {API_KEY}` with\n{command}\n---- schemathesis ----\n{report}\n----------------------",
        output.status
    );
    // Exit 0 with nothing tested would pass silently: every operation ran.
    assert!(
        report.contains("Tested: 3") && report.contains(" passed"),
        "schemathesis should have tested all three operations:\n{report}"
    );
    eprintln!(
        "schemathesis: {} in {:.1} s",
        report
            .lines()
            .find(|l| l.contains(" generated"))
            .unwrap_or("no summary line")
            .trim(),
        started.elapsed().as_secs_f64()
    );
}
