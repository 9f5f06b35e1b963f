//! What the workspace's tests share, in one crate instead of a file each
//! test crate included by `#[path]`: the workspace's folders, the external
//! tools and the servers the tests start (moto, an OCI registry), and the
//! stores they start from (`seed`).
//!
//! Tests use no network: every server listens on 127.0.0.1 on a free port.
//! A tool comes from the environment variable `cargo xtask ci` sets; without
//! it a test skips with a note, unless the tools are required.

pub mod seed;

use std::path::{Path, PathBuf};

/// The workspace root: this crate lives at tests/support/.
pub fn project_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

pub fn sample_dir() -> PathBuf {
    project_root().join("data/sample")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime starts")
}

/// A fresh temporary folder that lives as long as the returned guard.
pub fn temp_root() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Copies a folder tree: a project's stacks to break, a seeded store to
/// start a scenario from.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Replaces the first `from` in a file with `to` (a deliberate mistake);
/// panics if the file does not contain it, so an edit cannot silently miss.
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("reads");
    assert!(
        text.contains(from),
        "{} should contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).expect("writes");
}

/// Whether a missing external tool must fail the test (set by `cargo xtask ci`).
fn tools_required() -> bool {
    std::env::var_os("STOCKCAST_REQUIRE_TOOLS").is_some() || std::env::var_os("CI").is_some()
}

/// The path of an external tool from its environment variable; `None` (and a
/// note) when it is not installed and not required.
pub fn tool(variable: &str) -> Option<PathBuf> {
    match std::env::var_os(variable) {
        Some(path) => Some(PathBuf::from(path)),
        None if tools_required() => panic!(
            "{variable} is not set: run the tests through `cargo xtask ci`, which installs the tool"
        ),
        None => {
            eprintln!(
                "skipped: {variable} is not set (`cargo xtask ci` installs the tool and sets it)"
            );
            None
        }
    }
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A process a test started (a server), killed when the test ends.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` (a server that listens on the loopback `port`) and
/// waits until it does, for at most 30 s.
pub fn spawn_listening(mut command: std::process::Command, port: u16) -> KillOnDrop {
    let server = KillOnDrop(
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starts the server"),
    );
    wait_listening(&format!("127.0.0.1:{port}"), "the server");
    server
}

/// Waits until something listens on `address`, for at most 30 s; panics
/// naming `what` did not start.
fn wait_listening(address: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {address} within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The moto AWS emulator on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Option<Moto> {
        Self::launch(false)
    }

    /// moto with the fixes of tests/moto_patches.py loaded: its
    /// CloudFormation change sets and deletions differ from AWS in ways our
    /// (correct) templates hit; each fix says which.
    pub fn start_patched() -> Option<Moto> {
        Self::launch(true)
    }

    fn launch(patched: bool) -> Option<Moto> {
        let server = tool("STOCKCAST_MOTO_SERVER")?;
        let port = free_port();
        let mut command = if patched {
            let patches = project_root().join("tests/moto_patches.py");
            let mut c = std::process::Command::new(server.with_file_name("python"));
            c.arg("-c").arg(format!(
                "exec(open({:?}).read()); from moto.server import main; main(['-H', '127.0.0.1', '-p', '{port}'])",
                patches.display().to_string()
            ));
            c
        } else {
            let mut c = std::process::Command::new(&server);
            c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            c
        };
        let child = command
            // Its Step Functions engine calls back into the server it runs in.
            .env("MOTO_PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        wait_listening(&format!("127.0.0.1:{port}"), "moto");
        Some(moto)
    }

    /// Sends one plain HTTP request and returns the status code.
    pub fn request(&self, method: &str, path: &str) -> u16 {
        use std::io::{Read, Write};
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("connects");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("writes");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reads");
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "creating bucket {bucket} in moto");
    }

    pub fn s3_store(&self, bucket: &str) -> stockcast::store::Store {
        self.create_bucket(bucket);
        stockcast::store::Store::s3_with(
            bucket,
            stockcast::store::S3Options {
                endpoint: Some(self.endpoint.clone()),
                region: Some("us-east-1".into()),
                credentials: Some(("testing".into(), "testing".into())),
                credential_provider: None,
                retry: None,
            },
        )
        .expect("s3 store")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's docker-registry (a real OCI registry) on 127.0.0.1, stopped
/// when dropped.
#[derive(Debug)]
pub struct OciRegistry {
    child: std::process::Child,
    pub address: String,
    _storage: tempfile::TempDir,
}

impl OciRegistry {
    pub fn start() -> Option<OciRegistry> {
        let server = tool("STOCKCAST_DOCKER_REGISTRY")?;
        let storage = tempfile::tempdir().expect("temp dir");
        let address = format!("127.0.0.1:{}", free_port());
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .expect("writes the registry config");
        let child = std::process::Command::new(&server)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        wait_listening(&address, "the registry");
        Some(OciRegistry {
            child,
            address,
            _storage: storage,
        })
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
