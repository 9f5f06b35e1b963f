//! The training image as an OCI image, assembled in memory: one gzip layer,
//! an image config and a manifest, written as an OCI layout and pushed with
//! the OCI distribution API (oci-client).

use std::path::Path;

use anyhow::Context;
use flate2::Compression;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::json;
use stockcast::digest::sha256_hex;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ENTRYPOINT: &str = "/usr/local/bin/stockcast-train";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A content-addressed blob.
#[derive(Debug, Clone)]
pub struct Blob {
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Self {
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        Blob { bytes, digest }
    }

    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

#[derive(Debug, Clone)]
pub struct Image {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
}

/// A tar of the given files (and their parent folders), reproducible:
/// fixed times and owners, entries in the order given.
fn layer_tar(files: &[(&str, &[u8], u32)]) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut folders: Vec<String> = Vec::new();
    for (path, _, _) in files {
        let mut prefix = String::new();
        for part in path
            .trim_start_matches('/')
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            prefix.push_str(part);
            prefix.push('/');
            if !folders.contains(&prefix) {
                folders.push(prefix.clone());
            }
        }
    }
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for folder in &folders {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, folder, std::io::empty())?;
    }
    for (path, bytes, mode) in files {
        let mut h = header(tar::EntryType::Regular, *mode, bytes.len() as u64);
        tar.append_data(&mut h, path.trim_start_matches('/'), *bytes)?;
    }
    Ok(tar.into_inner()?)
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    // GzBuilder writes mtime 0 unless told otherwise: reproducible.
    let mut encoder = flate2::GzBuilder::new().write(Vec::new(), Compression::best());
    std::io::Write::write_all(&mut encoder, bytes)?;
    Ok(encoder.finish()?)
}

impl Image {
    /// The training job's image: the static binary as entrypoint, run as
    /// nobody, with the CA bundle for TLS to S3.
    pub fn train(
        executable: &[u8],
        certificates: &[u8],
        git_commit: Option<&str>,
    ) -> anyhow::Result<Self> {
        let tar = layer_tar(&[
            (CA_BUNDLE, certificates, 0o644),
            (ENTRYPOINT, executable, 0o755),
        ])?;
        let diff_id = format!("sha256:{}", sha256_hex(&tar));
        let layer = Blob::new(gzip(&tar)?);
        let mut env = vec![
            "PATH=/usr/local/bin".to_owned(),
            format!("SSL_CERT_FILE={CA_BUNDLE}"),
        ];
        if let Some(commit) = git_commit {
            // Recorded in every version's lineage by the job.
            env.push(format!("STOCKCAST_GIT_COMMIT={commit}"));
        }
        let config = Blob::new(serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "User": "65534:65534",
                "Entrypoint": [ENTRYPOINT],
                "Env": env,
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))?);
        let manifest = Blob::new(serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": config.descriptor(CONFIG_TYPE),
            "layers": [layer.descriptor(LAYER_TYPE)],
        }))?);
        Ok(Image {
            layer,
            config,
            manifest,
        })
    }

    pub fn manifest_digest(&self) -> &str {
        &self.manifest.digest
    }

    /// Bytes a registry stores for the image.
    pub fn size(&self) -> u64 {
        (self.layer.bytes.len() + self.config.bytes.len() + self.manifest.bytes.len()) as u64
    }

    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`),
    /// readable by skopeo, umoci and crane.
    pub fn write_layout(&self, dir: &Path) -> anyhow::Result<()> {
        let blobs = dir.join("blobs/sha256");
        let _ = std::fs::remove_dir_all(&blobs);
        std::fs::create_dir_all(&blobs)
            .with_context(|| format!("cannot create {}", blobs.display()))?;
        for blob in [&self.layer, &self.config, &self.manifest] {
            let name = blob.digest.trim_start_matches("sha256:");
            std::fs::write(blobs.join(name), &blob.bytes)?;
        }
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": MANIFEST_TYPE,
                "digest": self.manifest.digest,
                "size": self.manifest.bytes.len(),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }],
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
        Ok(())
    }
}

impl Image {
    /// Reads back what [`Image::write_layout`] wrote, checking every digest.
    pub fn read_layout(dir: &Path) -> anyhow::Result<Self> {
        let read = |digest: &str| -> anyhow::Result<Blob> {
            let path = dir
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:"));
            let blob = Blob::new(
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
            );
            anyhow::ensure!(
                blob.digest == digest,
                "{} does not match its digest",
                path.display()
            );
            Ok(blob)
        };
        let index_path = dir.join("index.json");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&index_path).with_context(|| {
                format!(
                    "cannot read {}: run `cargo xtask package` first",
                    index_path.display()
                )
            })?)?;
        let digest_of = |v: &serde_json::Value| v["digest"].as_str().map(str::to_owned);
        let manifest =
            read(&digest_of(&index["manifests"][0]).context("index.json names no manifest")?)?;
        let parsed: serde_json::Value = serde_json::from_slice(&manifest.bytes)?;
        Ok(Image {
            config: read(&digest_of(&parsed["config"]).context("the manifest names no config")?)?,
            layer: read(&digest_of(&parsed["layers"][0]).context("the manifest names no layer")?)?,
            manifest,
        })
    }
}

/// Pushes the image's blobs (skipping those the registry has) and its
/// manifest under `reference`; returns the manifest's digest. Loopback
/// registries are spoken to over plain HTTP.
pub async fn push(
    image: &Image,
    reference: &str,
    credentials: Option<(String, String)>,
) -> anyhow::Result<String> {
    let parsed: Reference = reference.parse().with_context(|| {
        format!("{reference:?} is not an image reference (registry/repository:tag)")
    })?;
    let registry = parsed.resolve_registry().to_owned();
    let loopback = ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|host| registry == *host || registry.starts_with(&format!("{host}:")));
    let client = Client::new(ClientConfig {
        protocol: if loopback {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    });
    let auth = match credentials {
        Some((user, password)) => RegistryAuth::Basic(user, password),
        None => RegistryAuth::Anonymous,
    };
    client
        .auth(&parsed, &auth, RegistryOperation::Push)
        .await
        .with_context(|| format!("cannot authenticate to {registry}"))?;
    for blob in [&image.layer, &image.config] {
        let present = client
            .blob_exists(&parsed, &blob.digest)
            .await
            .unwrap_or(false);
        if present {
            eprintln!("package: {} is already in {registry}", blob.digest);
            continue;
        }
        client
            .push_blob(&parsed, blob.bytes.clone(), &blob.digest)
            .await
            .with_context(|| format!("cannot push blob {}", blob.digest))?;
    }
    // An immutable tag (ECR) refuses a second push, even of the same image.
    if client
        .fetch_manifest_digest(&parsed, &auth)
        .await
        .is_ok_and(|digest| digest == image.manifest.digest)
    {
        eprintln!("package: {reference} is already {}", image.manifest.digest);
        return Ok(image.manifest.digest.clone());
    }
    client
        .push_manifest_raw(
            &parsed,
            image.manifest.bytes.clone(),
            MANIFEST_TYPE.parse()?,
        )
        .await
        .with_context(|| format!("cannot push the manifest to {reference}"))?;
    Ok(image.manifest.digest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_reproducible_and_its_layer_lists_parents_first() {
        let a = Image::train(b"\x7fELF binary", b"certs", Some("abc")).expect("builds");
        let b = Image::train(b"\x7fELF binary", b"certs", Some("abc")).expect("builds");
        assert_eq!(a.manifest_digest(), b.manifest_digest());
        let dir = tempfile::tempdir().expect("temp dir");
        a.write_layout(dir.path()).expect("writes");
        let read = Image::read_layout(dir.path()).expect("reads");
        assert_eq!(read.manifest_digest(), a.manifest_digest());
        assert_eq!(read.layer.bytes, a.layer.bytes);
        let tar =
            layer_tar(&[(CA_BUNDLE, b"certs", 0o644), (ENTRYPOINT, b"x", 0o755)]).expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let paths: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/ssl/",
                "etc/ssl/certs/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "etc/ssl/certs/ca-certificates.crt",
                "usr/local/bin/stockcast-train"
            ]
        );
    }
}
