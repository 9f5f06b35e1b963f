//! External tools the tests and checks need, installed by the project into
//! `<target dir>/tools/`, pinned to exact versions.
//!
//! Python tools live in one virtualenv (PyPI); Node tools in an npm prefix.
//! An install is recorded by a marker file naming the version, so a second
//! run is instant and a version bump reinstalls. A tool that cannot be
//! installed is an error naming the step that failed, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::flags;

/// A tool from PyPI.
#[derive(Debug, Clone, Copy)]
pub struct PythonTool {
    pub requirement: &'static str,
    /// The executable it provides, in the venv's bin/.
    pub bin: &'static str,
}

/// The AWS emulator the storage and deploy tests run against.
pub const MOTO: PythonTool = PythonTool {
    requirement: "moto[server]==5.2.5",
    bin: "moto_server",
};

/// The CloudFormation linter.
pub const CFN_LINT: PythonTool = PythonTool {
    requirement: "cfn-lint==1.58.0",
    bin: "cfn-lint",
};

/// The infrastructure policy scanner.
pub const CHECKOV: PythonTool = PythonTool {
    requirement: "checkov==3.3.30",
    bin: "checkov",
};

pub const ALL_PYTHON: [PythonTool; 3] = [MOTO, CFN_LINT, CHECKOV];

/// A tool from the npm registry.
#[derive(Debug, Clone, Copy)]
pub struct NodeTool {
    pub package: &'static str,
    pub version: &'static str,
    pub bin: &'static str,
}

/// The Amazon States Language validator.
pub const ASL_VALIDATOR: NodeTool = NodeTool {
    package: "asl-validator",
    version: "4.0.0",
    bin: "asl-validator",
};

/// `<CARGO_TARGET_DIR or target>/tools`: outside the clone in CI, so the
/// tools are installed once per machine, not once per run.
pub fn tools_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let target = if target.is_absolute() {
        target
    } else {
        std::env::current_dir().unwrap_or_default().join(target)
    };
    target.join("tools")
}

fn run(what: &str, command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("{what}: failed to start {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({})\n---- stderr ----\n{}\n----------------",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(())
}

/// Installs (once) and returns the path of a Python tool's executable.
/// Each tool has its own virtualenv, so their dependency pins never clash.
pub fn ensure_python(tool: PythonTool) -> anyhow::Result<PathBuf> {
    let dir = tools_dir();
    let venv = dir.join(format!("venv-{}", tool.bin));
    let python = venv.join("bin/python");
    if !python.exists() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        eprintln!("tools: creating a Python virtualenv in {}", venv.display());
        let _ = std::fs::remove_dir_all(&venv);
        run(
            "creating the tools virtualenv (needs python3 with the venv module)",
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        )?;
    }
    let marker = dir
        .join("installed")
        .join(tool.requirement.replace(['[', ']', '=', ','], "_"));
    let bin = venv.join("bin").join(tool.bin);
    if !marker.exists() || !bin.exists() {
        eprintln!("tools: installing {} (PyPI)", tool.requirement);
        run(
            &format!("installing {}", tool.requirement),
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                tool.requirement,
            ]),
        )?;
        write_marker(&marker)?;
    }
    Ok(bin)
}

/// Installs (once) and returns the path of a Node tool's executable.
pub fn ensure_node(tool: NodeTool) -> anyhow::Result<PathBuf> {
    let dir = tools_dir();
    let prefix = dir.join("npm");
    let bin = prefix.join("node_modules/.bin").join(tool.bin);
    let marker = dir
        .join("installed")
        .join(format!("{}@{}", tool.package, tool.version));
    if !marker.exists() || !bin.exists() {
        std::fs::create_dir_all(&prefix)
            .with_context(|| format!("cannot create {}", prefix.display()))?;
        eprintln!("tools: installing {}@{} (npm)", tool.package, tool.version);
        run(
            &format!(
                "installing {}@{} (needs node and npm)",
                tool.package, tool.version
            ),
            Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&prefix)
                .args(["--no-audit", "--no-fund", "--silent", "--save-exact"])
                .arg(format!("{}@{}", tool.package, tool.version)),
        )?;
        write_marker(&marker)?;
    }
    Ok(bin)
}

fn write_marker(marker: &Path) -> anyhow::Result<()> {
    if let Some(parent) = marker.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(marker, b"").with_context(|| format!("cannot write {}", marker.display()))
}

/// The environment variables through which the tests find the tools.
pub fn test_environment() -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    // The check test runs the validators through `xtask check`, which
    // installs them itself; installing them here keeps that test's time honest.
    ensure_python(CFN_LINT)?;
    ensure_python(CHECKOV)?;
    ensure_node(ASL_VALIDATOR)?;
    Ok(vec![("STOCKCAST_MOTO_SERVER", ensure_python(MOTO)?)])
}

impl flags::Tools {
    pub fn run(self) -> anyhow::Result<()> {
        for tool in ALL_PYTHON {
            let path = ensure_python(tool)?;
            println!("{:<28} {}", tool.requirement, path.display());
        }
        let path = ensure_node(ASL_VALIDATOR)?;
        println!(
            "{:<28} {}",
            format!("{}@{}", ASL_VALIDATOR.package, ASL_VALIDATOR.version),
            path.display()
        );
        Ok(())
    }
}
