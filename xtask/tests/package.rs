//! The artifacts of `cargo xtask package`, which `cargo xtask ci` builds
//! once, before the tests, into `STOCKCAST_PACKAGE_DIR`: every Lambda zip
//! holds an aarch64 executable named `bootstrap`; the training image is a
//! static amd64 binary that a real registry (Debian's docker-registry, on
//! 127.0.0.1) accepts, and skopeo reads back.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// The machine of a 64-bit little-endian ELF, and whether it asks for a
/// dynamic loader (a PT_INTERP program header).
fn elf(bytes: &[u8]) -> (u16, bool) {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(bytes[4], 2, "not a 64-bit ELF");
    assert_eq!(bytes[5], 1, "not little-endian");
    let machine = u16_at(bytes, 18);
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(bytes, 54) as usize, u16_at(bytes, 56) as usize);
    let dynamic = (0..phnum).any(|i| u32_at(bytes, phoff + i * phentsize) == PT_INTERP);
    (machine, dynamic)
}

fn manifest(dir: &Path) -> Value {
    let bytes = std::fs::read(dir.join("manifest.json")).expect("manifest.json");
    serde_json::from_slice(&bytes).expect("manifest is JSON")
}

#[test]
fn every_lambda_zip_holds_an_aarch64_bootstrap() {
    let Some(dir) = test_support::tool("STOCKCAST_PACKAGE_DIR") else {
        return;
    };
    let artifacts = &manifest(&dir)["artifacts"];
    for name in ["ingest", "predict", "gate", "monitor", "spend-stop"] {
        let entry = &artifacts[name];
        let file = dir.join(entry["file"].as_str().expect("file"));
        let bytes = std::fs::read(&file).expect("the zip exists");
        assert!(
            bytes.len() < 5 * 1024 * 1024,
            "{name}.zip is {} bytes",
            bytes.len()
        );
        let digest = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(entry["sha256"], digest.as_str(), "{name}");
        assert_eq!(entry["s3_key"], format!("lambda/{name}/{digest}.zip"));

        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
        assert_eq!(zip.len(), 1, "{name}.zip holds one file");
        let mut bootstrap = zip.by_index(0).expect("entry");
        assert_eq!(bootstrap.name().expect("a name"), "bootstrap");
        assert_eq!(bootstrap.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut executable = Vec::new();
        bootstrap.read_to_end(&mut executable).expect("reads");
        let (machine, dynamic) = elf(&executable);
        assert_eq!(machine, EM_AARCH64, "{name} is built for arm64");
        assert!(
            dynamic,
            "{name} links glibc dynamically, as provided.al2023 expects"
        );
    }
}

fn push(dir: &Path, reference: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["package", "--no-build", "--out"])
        .arg(dir)
        .args(["--push", reference])
        .output()
        .expect("runs xtask");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "push failed:\n{stderr}");
    stderr
}

fn skopeo(skopeo: &Path, args: &[&str], reference: &str) -> Value {
    let output = Command::new(skopeo)
        .args(["inspect", "--tls-verify=false"])
        .args(args)
        .arg(format!("docker://{reference}"))
        .output()
        .expect("runs skopeo");
    assert!(
        output.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("skopeo prints JSON")
}

#[test]
fn the_training_image_is_pushed_once_and_reads_back_as_built() {
    let (Some(dir), Some(skopeo_bin)) = (
        test_support::tool("STOCKCAST_PACKAGE_DIR"),
        test_support::tool("STOCKCAST_SKOPEO"),
    ) else {
        return;
    };
    let built = &manifest(&dir)["artifacts"]["train-image"];
    let digest = built["manifest_digest"].as_str().expect("digest");

    // The layer's binary: static, amd64.
    let layout = dir.join("train-image");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
            .expect("json");
    assert_eq!(index["manifests"][0]["digest"], digest);
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .expect("blob")
    };
    let image_manifest: Value = serde_json::from_slice(&blob(digest)).expect("manifest");
    let layer = blob(
        image_manifest["layers"][0]["digest"]
            .as_str()
            .expect("layer"),
    );
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer.as_slice()));
    let mut found = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").display().to_string();
        if path == "usr/local/bin/stockcast-train" {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("reads");
            assert_eq!(elf(&bytes), (EM_X86_64, false), "a static amd64 binary");
        }
        found.push(path);
    }
    assert!(
        found.contains(&"etc/ssl/certs/ca-certificates.crt".to_owned()),
        "{found:?}"
    );

    let Some(registry) = test_support::OciRegistry::start() else {
        return;
    };
    let reference = format!("{}/stockcast-train:test", registry.address);
    push(&dir, &reference);
    let inspected = skopeo(&skopeo_bin, &[], &reference);
    assert_eq!(inspected["Digest"], digest);
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Os"], "linux");
    let raw = skopeo(&skopeo_bin, &["--raw"], &reference);
    assert_eq!(
        raw, image_manifest,
        "the registry serves the manifest as built"
    );
    let config = skopeo(&skopeo_bin, &["--config"], &reference);
    assert_eq!(
        config["config"]["Entrypoint"][0],
        "/usr/local/bin/stockcast-train"
    );
    assert_eq!(config["config"]["User"], "65534:65534");

    // A second push of the same image uploads no blob again.
    let second = push(&dir, &reference);
    assert_eq!(second.matches("is already in").count(), 2, "{second}");
}
