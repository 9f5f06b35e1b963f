//! Shared helpers of the system tests.

use std::path::PathBuf;

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
