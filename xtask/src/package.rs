//! `cargo xtask package`: the deployable artifacts, built without Docker.
//!
//! - every Lambda as `<name>.zip` holding one arm64 executable named
//!   `bootstrap` (provided.al2023 on Graviton);
//! - the training job as an amd64 OCI image in `train-image/` (an OCI
//!   layout): one layer with the static musl binary and CA certificates;
//! - `manifest.json`: each artifact's SHA-256 and the content-addressed S3
//!   key deploy uploads it to, so an unchanged artifact is never uploaded
//!   twice.
//!
//! Everything is byte-for-byte reproducible from the same binaries: zip and
//! tar entries carry fixed times, owners and modes.

pub mod oci;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;
use stockcast::digest::sha256_hex;

use crate::{flags, process, tools};

/// Lambda artifacts: (artifact name, cargo package = binary name).
pub const LAMBDAS: [(&str, &str); 5] = [
    ("ingest", "stockcast-ingest"),
    ("predict", "stockcast-predict"),
    ("gate", "stockcast-gate"),
    ("monitor", "stockcast-monitor"),
    ("spend-stop", "stockcast-spend-stop"),
];
const TRAIN_PACKAGE: &str = "stockcast-train";
/// Lambda's hard limit is 50 MB zipped; ours must stay small for cold starts.
const MAX_ZIP_BYTES: u64 = 5 * 1024 * 1024;
/// glibc of Amazon Linux 2 and later; provided.al2023 has 2.34.
const LAMBDA_GLIBC: &str = "2.17";
/// The Lambdas' profile: small binaries.
const PROFILE: &str = "lambda";
/// The training image's profile: the library's model code at full speed.
const JOB_PROFILE: &str = "job";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// `cargo zigbuild` for one target, with zig (PyPI) on the PATH.
fn zigbuild(profile: &str, target: &str, packages: &[&str]) -> anyhow::Result<()> {
    let zigbuild = tools::ensure_python(tools::CARGO_ZIGBUILD)?;
    let bin = zigbuild.parent().context("cargo-zigbuild has no folder")?;
    let path = std::env::join_paths(
        std::iter::once(bin.to_path_buf()).chain(
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default(),
        ),
    )?;
    let mut command = Command::new("cargo");
    command
        .env("PATH", path)
        .args(["zigbuild", "--profile", profile, "--target", target]);
    for package in packages {
        command.args(["-p", package]);
    }
    eprintln!(
        "package: cargo zigbuild --profile {profile} --target {target} -p {}",
        packages.join(" -p ")
    );
    process::run(&format!("cross-compiling for {target}"), &mut command)?;
    Ok(())
}

/// A zip with one entry, `bootstrap`, executable, at a fixed time.
pub fn lambda_zip(executable: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(9))
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o755);
        zip.start_file("bootstrap", options)?;
        zip.write_all(executable)?;
        zip.finish()?;
    }
    Ok(buffer.into_inner())
}

impl flags::Package {
    /// `cargo xtask package --out <out>`: every artifact built, nothing pushed.
    pub fn build_only(out: PathBuf) -> flags::Package {
        flags::Package {
            out,
            push: None,
            no_build: false,
            registry_user: None,
            registry_password: None,
        }
    }

    pub fn run(self) -> anyhow::Result<()> {
        let image = if self.no_build {
            oci::Image::read_layout(&self.out.join("train-image"))?
        } else {
            self.build()?
        };
        if let Some(reference) = &self.push {
            let credentials = match (&self.registry_user, &self.registry_password) {
                (Some(user), Some(password)) => Some((user.clone(), password.clone())),
                (None, None) => None,
                _ => bail!("--registry-user and --registry-password go together"),
            };
            let pushed = tokio::runtime::Runtime::new()?.block_on(oci::push(
                &image,
                reference,
                credentials,
            ))?;
            println!("pushed {reference}@{pushed}");
        }
        Ok(())
    }

    /// Builds every artifact into `--out` and returns the image.
    fn build(&self) -> anyhow::Result<oci::Image> {
        for target in [tools::LAMBDA_TARGET, tools::TRAIN_TARGET] {
            tools::ensure_rust_target(target)?;
        }
        let started = Instant::now();
        let lambda_target = format!("{}.{LAMBDA_GLIBC}", tools::LAMBDA_TARGET);
        let packages: Vec<&str> = LAMBDAS.iter().map(|(_, p)| *p).collect();
        zigbuild(PROFILE, &lambda_target, &packages)?;
        let lambdas_built = started.elapsed();
        let started = Instant::now();
        zigbuild(JOB_PROFILE, tools::TRAIN_TARGET, &[TRAIN_PACKAGE])?;
        let train_built = started.elapsed();

        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("cannot create {}", self.out.display()))?;
        let mut written = Written::default();
        for (name, package) in LAMBDAS {
            written.lambda_zip(&self.out, name, package)?;
        }
        let image = written.train_image(&self.out)?;
        let manifest = serde_json::to_vec_pretty(&json!({ "artifacts": written.manifest }))?;
        write(&self.out.join("manifest.json"), &manifest)?;
        written.print();
        println!(
            "built in {:.1} s (Lambdas, aarch64) + {:.1} s (training job, x86_64 musl); written to {}",
            lambdas_built.as_secs_f64(),
            train_built.as_secs_f64(),
            self.out.display()
        );
        Ok(image)
    }
}

/// The artifacts written so far: manifest.json's entries, and the rows of
/// the table printed at the end (name, bytes, SHA-256, where deploy puts it).
#[derive(Debug, Default)]
struct Written {
    manifest: serde_json::Map<String, serde_json::Value>,
    rows: Vec<(String, u64, String, String)>,
}

impl Written {
    /// `<out>/<name>.zip` from the Lambda `package` built, within budget.
    fn lambda_zip(&mut self, out: &Path, name: &str, package: &str) -> anyhow::Result<()> {
        let path = binaries(tools::LAMBDA_TARGET, PROFILE).join(package);
        let executable =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let zip = lambda_zip(&executable)?;
        let size = zip.len() as u64;
        if size > MAX_ZIP_BYTES {
            bail!("{name}.zip is {size} bytes, over the {MAX_ZIP_BYTES}-byte budget");
        }
        let digest = sha256_hex(&zip);
        let file = format!("{name}.zip");
        write(&out.join(&file), &zip)?;
        let key = format!("lambda/{name}/{digest}.zip");
        self.rows
            .push((name.to_owned(), size, digest.clone(), key.clone()));
        self.manifest.insert(
            name.to_owned(),
            json!({"file": file, "sha256": digest, "bytes": size, "s3_key": key}),
        );
        Ok(())
    }

    /// `<out>/train-image`, the OCI layout of the training job's image.
    fn train_image(&mut self, out: &Path) -> anyhow::Result<oci::Image> {
        let train = binaries(tools::TRAIN_TARGET, JOB_PROFILE).join(TRAIN_PACKAGE);
        let executable =
            std::fs::read(&train).with_context(|| format!("cannot read {}", train.display()))?;
        let image = oci::Image::train(
            &executable,
            &certificates()?,
            process::git_commit().as_deref(),
        )?;
        image.write_layout(&out.join("train-image"))?;
        self.rows.push((
            "train-image".to_owned(),
            image.size(),
            image
                .manifest_digest()
                .trim_start_matches("sha256:")
                .to_owned(),
            "(ECR: stockcast-<env>-train)".to_owned(),
        ));
        self.manifest.insert(
            "train-image".to_owned(),
            json!({
                "layout": "train-image",
                "manifest_digest": image.manifest_digest(),
                "bytes": image.size(),
                "platform": "linux/amd64",
            }),
        );
        Ok(image)
    }

    fn print(&self) {
        println!(
            "{:<12} {:>10}  {:<14} s3 key",
            "artifact", "bytes", "sha256"
        );
        for (name, size, digest, key) in &self.rows {
            println!("{name:<12} {size:>10}  {:<14} {key}", &digest[..12]);
        }
    }
}

/// Where cargo put the binaries of `target` built with `profile`.
fn binaries(target: &str, profile: &str) -> PathBuf {
    target_dir().join(target).join(profile)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// The CA bundle the image's TLS (rustls with the platform verifier) reads.
fn certificates() -> anyhow::Result<Vec<u8>> {
    const BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
    std::fs::read(BUNDLE).with_context(|| {
        format!("cannot read {BUNDLE}: install Debian's (or Ubuntu's) ca-certificates package")
    })
}
