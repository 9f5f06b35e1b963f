//! A newcomer's mistakes: each gets one line that says what is wrong and
//! what to run, and a non-zero exit where nothing was done.

use std::process::{Command, Output, Stdio};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn xtask(args: &[&str]) -> Output {
    Command::new(XTASK)
        .args(args)
        .env_remove("STOCKCAST_ROOT")
        .stdin(Stdio::null())
        .output()
        .expect("xtask runs")
}

/// The failure's stderr; panics if the command succeeded.
fn failure(args: &[&str]) -> String {
    let output = xtask(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{args:?} should fail: {stderr}");
    stderr
}

#[test]
fn a_missing_data_folder_is_said_once() {
    let stderr = failure(&["backtest", "--data", "no-such-folder"]);
    assert!(stderr.contains("no-such-folder"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn an_unknown_environment_lists_the_environments_there_are() {
    let stderr = failure(&["cost", "--env", "nope"]);
    assert!(
        stderr.contains("there is no environment nope") && stderr.contains("dev, prod"),
        "{stderr}"
    );
}

#[test]
fn serving_an_empty_store_says_to_run_the_pipeline_first() {
    let empty = tempfile::tempdir().expect("temp dir");
    let root = empty.path().to_str().expect("utf-8 path");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
        .to_string();
    let stderr = failure(&["serve", "--root", root, "--port", &port]);
    assert!(
        stderr.contains("has no production models") && stderr.contains("cargo xtask local"),
        "{stderr}"
    );
}

#[test]
fn a_symbol_flag_is_checked_before_anything_runs() {
    let empty = tempfile::tempdir().expect("temp dir");
    let root = empty.path().to_str().expect("utf-8 path");
    let stderr = failure(&["local", "--root", root, "--symbols", "AAPL,../sample/IBM"]);
    assert!(
        stderr.contains(r#"symbol "../sample/IBM" has characters other than letters"#),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(empty.path()).expect("lists").count(),
        0,
        "nothing was written"
    );
}

#[test]
fn a_bad_universe_is_named_before_anything_runs() {
    let empty = tempfile::tempdir().expect("temp dir");
    let root = empty.path().to_str().expect("utf-8 path");
    let stderr = failure(&["local", "--root", root, "--universe", "synthetic:0"]);
    assert!(
        stderr.contains(
            "a synthetic universe is synthetic:N, N the number of series (synthetic:50), but N is 0"
        ),
        "{stderr}"
    );
    let stderr = failure(&["local", "--root", root, "--universe", "synthetic:many"]);
    assert!(stderr.contains(r#"but is "synthetic:many""#), "{stderr}");
    let stderr = failure(&[
        "local",
        "--root",
        root,
        "--universe",
        "synthetic:5",
        "--symbols",
        "AAPL",
    ]);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let file = empty.path().join("universe.txt");
    std::fs::write(&file, "AAPL\nMSFT\nAAPL\n").expect("writes");
    let file = file.to_str().expect("utf-8 path");
    let stderr = failure(&["local", "--root", root, "--universe", file]);
    assert!(
        stderr.contains(&format!("{file}:3: AAPL is already on line 1")),
        "{stderr}"
    );
    let stderr = failure(&["local", "--root", root, "--universe", file, "--seed", "3"]);
    assert!(
        stderr.contains("--seed seeds a synthetic universe"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(empty.path()).expect("lists").count(),
        1,
        "nothing but the universe file was written"
    );
}
