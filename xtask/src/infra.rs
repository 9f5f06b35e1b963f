//! `cargo xtask render` and `cargo xtask check`: the stacks as plain JSON,
//! and the proof that they are right (own checks, cfn-lint, checkov,
//! asl-validator).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use stockcast::infra::{self, Rendered, Sources};

use crate::{flags, process, tools};

/// Writes an environment's templates and workflow definitions under `out/<env>/`.
fn write_rendered(rendered: &Rendered, out: &Path) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let dir = out.join(&rendered.env.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut stacks = Vec::new();
    for stack in &rendered.stacks {
        let path = dir.join(format!("{}.json", stack.name));
        std::fs::write(&path, stack.to_json_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
        stacks.push(path);
    }
    let mut workflows = Vec::new();
    for (name, definition) in &rendered.workflows {
        let path = dir.join(format!("{name}.asl.json"));
        let text = serde_json::to_string_pretty(definition)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        workflows.push(path);
    }
    Ok((stacks, workflows))
}

impl flags::Render {
    pub fn run(self) -> anyhow::Result<()> {
        let sources = Sources::in_project(Path::new("."));
        let rendered = infra::render(&sources, &self.env.name)?;
        let (stacks, workflows) = write_rendered(&rendered, &self.out)?;
        for path in stacks.iter().chain(&workflows) {
            println!("{}", path.display());
        }
        Ok(())
    }
}

impl flags::Check {
    pub fn run(self) -> anyhow::Result<()> {
        let sources = Sources::in_project(&self.root);
        let envs = match (&self.env, self.all) {
            (Some(_), true) => bail!("invalid options: --env and --all cannot be set together"),
            (Some(env), false) => vec![env.clone()],
            (None, _) => sources.environments()?,
        };
        let started = Instant::now();
        let (rendered, mut failures) = own_checks(&sources, &envs)?;
        eprintln!(
            "check: rendered and checked {} environment(s) in {:.1} ms ({} finding(s))",
            envs.len(),
            started.elapsed().as_secs_f64() * 1e3,
            failures.len()
        );
        if !self.skip_external {
            let out = self.root.join("target/rendered-check");
            external_checks(&rendered, &out, &mut failures)?;
        }
        if !failures.is_empty() {
            for f in &failures {
                eprintln!("{f}");
            }
            bail!("{} check(s) failed", failures.len());
        }
        println!(
            "check: {} passed ({})",
            envs.join(", "),
            if self.skip_external {
                "own checks"
            } else {
                "own checks, cfn-lint, checkov, asl-validator"
            }
        );
        Ok(())
    }
}

/// Renders every environment and runs the project's own checks on it;
/// returns the rendered environments and the findings, each prefixed by
/// its environment.
fn own_checks(sources: &Sources, envs: &[String]) -> anyhow::Result<(Vec<Rendered>, Vec<String>)> {
    let mut rendered_all = Vec::new();
    let mut failures = Vec::new();
    for env in envs {
        let rendered =
            infra::render(sources, env).with_context(|| format!("rendering {env} failed"))?;
        for finding in infra::check(&rendered) {
            failures.push(format!("{env}: {finding}"));
        }
        rendered_all.push(rendered);
    }
    Ok((rendered_all, failures))
}

/// cfn-lint, checkov and asl-validator (installed on first use) on each
/// environment as written under `out`; each finding is added to `failures`.
fn external_checks(
    rendered_all: &[Rendered],
    out: &Path,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let cfn_lint = tools::ensure_python(tools::CFN_LINT)?;
    let checkov = tools::ensure_python(tools::CHECKOV)?;
    let asl_validator = tools::ensure_node(tools::ASL_VALIDATOR)?;
    for rendered in rendered_all {
        let env = &rendered.env.name;
        let (stacks, workflows) = write_rendered(rendered, out)?;
        let mut lint = Command::new(&cfn_lint);
        // Templates first: --regions takes every value after it.
        lint.args(&stacks)
            .args(["--format", "parseable", "--regions", &rendered.env.region]);
        external(&format!("{env}: cfn-lint"), &mut lint, failures)?;
        let mut scan = Command::new(&checkov);
        scan.args([
            "--framework",
            "cloudformation",
            "--compact",
            "--quiet",
            "--skip-download",
            "-o",
            "cli",
            "-d",
        ])
        .arg(out.join(env));
        external(&format!("{env}: checkov"), &mut scan, failures)?;
        let mut asl = Command::new(&asl_validator);
        for w in &workflows {
            asl.arg("--json-path").arg(w);
        }
        external(&format!("{env}: asl-validator"), &mut asl, failures)?;
    }
    Ok(())
}

/// Runs a validator; a non-zero exit adds its output as a failure.
fn external(what: &str, command: &mut Command, failures: &mut Vec<String>) -> anyhow::Result<()> {
    let started = Instant::now();
    let finding = match process::output(what, command) {
        Ok(_) => None,
        Err(e) if e.exited() => Some(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "check: {what}: {} in {:.1} s",
        if finding.is_none() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    failures.extend(finding);
    Ok(())
}
