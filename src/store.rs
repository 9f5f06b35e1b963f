//! The object store every step reads and writes: a local folder (the
//! embedded default) or S3, through `object_store`, with the same keys and
//! the same guarantees.
//!
//! Two write modes matter to the pipeline: create-only (raw vendor
//! responses, model versions: a re-run never overwrites) and
//! compare-and-swap (curated data, aliases: two concurrent writers never
//! lose each other's work). S3 gives both natively (`If-None-Match`,
//! `If-Match`). `object_store`'s local backend has create-only but not
//! compare-and-swap, so the library provides it: the check and the write
//! happen under an exclusive lock file per key, and the write itself is an
//! atomic rename, so readers never see a partial object.
//!
//! A failure is transient or permanent (`StoreError::is_transient`).
//! Throttling, 5xx answers, timeouts and lost connections are retried here
//! first, with exponential backoff (`S3_RETRY`), and reach a step as
//! `Storage.Unavailable`, which the workflow retries again; access denied, a
//! missing bucket, an invalid key or bad settings cannot pass by themselves
//! and reach it as `Storage.Refused`, which it does not retry.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion,
};

/// How S3 requests are retried: throttling (429, `SlowDown`), 5xx answers,
/// timeouts and lost connections, up to 5 times over at most 30 s, waiting
/// 100 ms, 200 ms, 400 ms … (with jitter, at most 5 s), each request given
/// 10 s (object_store's default is 30 s) and 2 s to connect. object_store's
/// default retries for up to 3 minutes, longer than the ingest function's
/// whole 120 s timeout: a step must fail with its own error name, not be
/// killed. (The budget is per request: a step making many requests against
/// a degraded S3 can still reach its own timeout.)
pub const S3_RETRY: RetryPolicy = RetryPolicy {
    max_retries: 5,
    retry_timeout: Duration::from_secs(30),
    init_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(5),
};

/// The predict function answers within its 10 s timeout: two retries
/// within 3 s, then the API's 503 with Retry-After, never a gateway 5xx.
pub const S3_RETRY_SERVING: RetryPolicy = RetryPolicy {
    max_retries: 2,
    retry_timeout: Duration::from_secs(3),
    init_backoff: Duration::from_millis(50),
    max_backoff: Duration::from_secs(1),
};

/// How long one S3 request may take, and to connect.
const S3_REQUEST_TIMEOUT: &str = "10s";
const S3_CONNECT_TIMEOUT: &str = "2s";

/// The retry settings of S3 requests (`S3_RETRY`; tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub retry_timeout: Duration,
    pub init_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    fn to_config(self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: self.init_backoff,
                max_backoff: self.max_backoff,
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }
}

/// The version of an object as read, which a compare-and-swap must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    e_tag: Option<String>,
    version: Option<String>,
}

impl Version {
    fn to_update(&self) -> UpdateVersion {
        UpdateVersion {
            e_tag: self.e_tag.clone(),
            version: self.version.clone(),
        }
    }
}

/// An object's bytes and the version they were read at.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub version: Version,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{key} already exists and is never overwritten")]
    AlreadyExists { key: String },
    #[error(
        "{key} changed since it was read (another writer won the race); read it again and retry"
    )]
    Conflict { key: String },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("storage {store} failed on {key}: {source}")]
    Backend {
        store: String,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("storage {store}: {message}")]
    Setup { store: String, message: String },
    #[error("failed to lock {path} for a conditional write: {source}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether retrying after re-reading can succeed (the `Storage.Conflict` error).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether the same request can succeed later without anyone acting
    /// (`Storage.Unavailable`): a 5xx, throttling or a timeout that
    /// outlasted `S3_RETRY`, a lost connection, a local I/O error, a lock
    /// not taken, or a create that lost a race (a retry re-reads).
    /// Permanent (`Storage.Refused`): access denied or unauthenticated, a
    /// bucket that does not exist, an invalid key, bad settings.
    /// object_store hides the status of other 4xx answers inside `Generic`,
    /// so those count as transient and are retried a bounded number of times.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::AlreadyExists { .. }
            | StoreError::Conflict { .. }
            | StoreError::Lock { .. } => true,
            StoreError::InvalidKey { .. } | StoreError::Setup { .. } => false,
            StoreError::Backend { source, .. } => !matches!(
                source,
                object_store::Error::NotFound { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            ),
        }
    }
}

/// Injected write failures, for crash tests: a crash (`crash_at`) fails
/// one write and every later one, as if the process had died there; a
/// blip (`fail_once_at`) fails one write only, as a storage error would.
/// Reads still work, as they would for the process that restarts. Every
/// attempted write is recorded, so a counting run lists the write points
/// a crash test must cover.
#[derive(Debug, Default)]
pub struct Faults {
    /// The first failing write (counting from 0), and whether later ones fail too.
    fail_at: Option<(usize, bool)>,
    writes: Mutex<Vec<String>>,
}

impl Faults {
    /// Records writes and fails none.
    pub fn counting() -> Arc<Faults> {
        Arc::new(Faults::default())
    }

    /// Fails write `n` and every write after it.
    pub fn crash_at(n: usize) -> Arc<Faults> {
        Arc::new(Faults {
            fail_at: Some((n, true)),
            writes: Mutex::default(),
        })
    }

    /// Fails write `n` alone.
    pub fn fail_once_at(n: usize) -> Arc<Faults> {
        Arc::new(Faults {
            fail_at: Some((n, false)),
            writes: Mutex::default(),
        })
    }

    /// The keys of the writes attempted so far, in order.
    pub fn writes(&self) -> Vec<String> {
        self.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Records a write to `key`; an error if it is one that fails.
    fn write(&self, store: &str, key: &str) -> Result<(), StoreError> {
        let mut writes = self
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = writes.len();
        writes.push(key.to_owned());
        match self.fail_at {
            Some((at, later)) if n == at || (later && n > at) => Err(StoreError::Backend {
                store: store.to_owned(),
                key: key.to_owned(),
                source: object_store::Error::Generic {
                    store: "faults",
                    source: format!("injected failure of write {n}").into(),
                },
            }),
            _ => Ok(()),
        }
    }
}

/// Explicit S3 settings, for emulators and tests.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Access key id and secret.
    pub credentials: Option<(String, String)>,
    /// Credentials from elsewhere (the AWS SDK's default chain: profiles,
    /// SSO, the container role), when static ones will not do.
    pub credential_provider: Option<object_store::aws::AwsCredentialProvider>,
    /// How requests are retried; `None` is `S3_RETRY`.
    pub retry: Option<RetryPolicy>,
}

/// A handle to the pipeline's storage. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// Set for the local backend: where per-key lock files live.
    local_root: Option<PathBuf>,
    description: String,
    /// Injected failures (crash tests only).
    faults: Option<Arc<Faults>>,
}

impl Store {
    /// A store in a local folder, created if missing.
    pub fn local(root: &Path) -> Result<Self, StoreError> {
        let setup = |message: String| StoreError::Setup {
            store: root.display().to_string(),
            message,
        };
        std::fs::create_dir_all(root)
            .map_err(|e| setup(format!("cannot create the folder: {e}")))?;
        let root = root
            .canonicalize()
            .map_err(|e| setup(format!("cannot resolve the folder: {e}")))?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| setup(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(fs),
            description: root.display().to_string(),
            local_root: Some(root),
            faults: None,
        })
    }

    /// A store in an S3 bucket, configured from the environment (region,
    /// credentials; `AWS_ENDPOINT_URL` for an emulator). Conditional writes
    /// use S3's native `If-None-Match`/`If-Match`.
    pub fn s3(bucket: &str) -> Result<Self, StoreError> {
        Self::s3_with(
            bucket,
            S3Options {
                endpoint: std::env::var("AWS_ENDPOINT_URL").ok(),
                ..S3Options::default()
            },
        )
    }

    /// A store in an S3 bucket with explicit settings; unset ones come from the environment.
    pub fn s3_with(bucket: &str, options: S3Options) -> Result<Self, StoreError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(options.retry.unwrap_or(S3_RETRY).to_config())
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                S3_REQUEST_TIMEOUT,
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                S3_CONNECT_TIMEOUT,
            );
        if let Some(endpoint) = options.endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        if let Some(region) = options.region {
            builder = builder.with_region(region);
        }
        if let Some((key, secret)) = options.credentials {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
        }
        if let Some(provider) = options.credential_provider {
            builder = builder.with_credentials(provider);
        }
        let s3 = builder.build().map_err(|e| StoreError::Setup {
            store: format!("s3://{bucket}"),
            message: e.to_string(),
        })?;
        Ok(Store {
            inner: Arc::new(s3),
            local_root: None,
            description: format!("s3://{bucket}"),
            faults: None,
        })
    }

    /// `s3://bucket` or a local path.
    pub fn open(location: &str) -> Result<Self, StoreError> {
        match location.strip_prefix("s3://") {
            Some(bucket) => Self::s3(bucket.trim_end_matches('/')),
            None => Self::local(Path::new(location)),
        }
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The same store, with its writes going through `faults` (crash tests).
    pub fn with_faults(&self, faults: Arc<Faults>) -> Store {
        Store {
            faults: Some(faults),
            ..self.clone()
        }
    }

    /// The one place every write passes, just before it is sent.
    fn before_write(&self, key: &str) -> Result<(), StoreError> {
        match &self.faults {
            Some(faults) => faults.write(&self.description, key),
            None => Ok(()),
        }
    }

    fn path(key: &str) -> Result<ObjectPath, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidKey {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(invalid(
                "keys are relative, with non-empty parts and no . or ..",
            ));
        }
        ObjectPath::parse(key).map_err(|e| invalid(&e.to_string()))
    }

    /// The one write to the backend, behind the fault hook.
    async fn put(
        &self,
        key: &str,
        path: &ObjectPath,
        payload: PutPayload,
        mode: PutMode,
    ) -> Result<Version, StoreError> {
        self.before_write(key)?;
        let result = self
            .inner
            .put_opts(path, payload, PutOptions::from(mode))
            .await
            .map_err(|e| self.backend(key, e))?;
        Ok(Version {
            e_tag: result.e_tag,
            version: result.version,
        })
    }

    fn backend(&self, key: &str, source: object_store::Error) -> StoreError {
        match source {
            object_store::Error::AlreadyExists { .. } => StoreError::AlreadyExists {
                key: key.to_owned(),
            },
            object_store::Error::Precondition { .. } => StoreError::Conflict {
                key: key.to_owned(),
            },
            source => StoreError::Backend {
                store: self.description.clone(),
                key: key.to_owned(),
                source,
            },
        }
    }

    /// An object's current version without its bytes; `None` if it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<Version>, StoreError> {
        let path = Self::path(key)?;
        match self.inner.head(&path).await {
            Ok(meta) => Ok(Some(Version {
                e_tag: meta.e_tag,
                version: meta.version,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend(key, e)),
        }
    }

    /// Reads an object; `None` if it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let path = Self::path(key)?;
        match self.inner.get(&path).await {
            Ok(result) => {
                let version = Version {
                    e_tag: result.meta.e_tag.clone(),
                    version: result.meta.version.clone(),
                };
                let bytes = result.bytes().await.map_err(|e| self.backend(key, e))?;
                Ok(Some(Object { bytes, version }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend(key, e)),
        }
    }

    /// Writes an object that must not exist yet.
    pub async fn create(&self, key: &str, bytes: impl Into<Bytes>) -> Result<(), StoreError> {
        self.update(key, bytes, None).await.map(|_| ())
    }

    /// Compare-and-swap: writes if the object is still at `expected`
    /// (`None`: if it does not exist), else fails with `Conflict` (or
    /// `AlreadyExists`). Returns the new version.
    pub async fn update(
        &self,
        key: &str,
        bytes: impl Into<Bytes>,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let path = Self::path(key)?;
        let payload = PutPayload::from_bytes(bytes.into());
        let Some(root) = &self.local_root else {
            let mode = match expected {
                Some(v) => PutMode::Update(v.to_update()),
                None => PutMode::Create,
            };
            return self.put(key, &path, payload, mode).await;
        };
        let _lock = lock_key(root, key).await?;
        let current = self.head(key).await?;
        match (expected, &current) {
            (None, Some(_)) => {
                return Err(StoreError::AlreadyExists {
                    key: key.to_owned(),
                });
            }
            (Some(_), None) => {
                return Err(StoreError::Conflict {
                    key: key.to_owned(),
                });
            }
            (Some(e), Some(c)) if e != c => {
                return Err(StoreError::Conflict {
                    key: key.to_owned(),
                });
            }
            _ => {}
        }
        let mode = if current.is_some() {
            PutMode::Overwrite
        } else {
            PutMode::Create
        };
        self.put(key, &path, payload, mode).await
    }

    /// Reads, transforms and writes back with compare-and-swap, retrying on
    /// conflict: `change` sees the current bytes (or `None`) and returns the
    /// new bytes, or `None` to leave the object as it is.
    pub async fn update_with<E>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<bool, E>
    where
        E: From<StoreError>,
    {
        const ATTEMPTS: usize = 16;
        let mut last_conflict = None;
        for attempt in 0..ATTEMPTS {
            let current = self.get(key).await?;
            let Some(next) = change(current.as_ref().map(|o| o.bytes.as_ref()))? else {
                return Ok(false);
            };
            match self
                .update(key, next, current.as_ref().map(|o| &o.version))
                .await
            {
                Ok(_) => return Ok(true),
                Err(e @ (StoreError::Conflict { .. } | StoreError::AlreadyExists { .. })) => {
                    last_conflict = Some(e);
                    // Back off a little so racing writers interleave.
                    tokio::time::sleep(std::time::Duration::from_millis(1 + attempt as u64 * 3))
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last_conflict
            .unwrap_or(StoreError::Conflict {
                key: key.to_owned(),
            })
            .into())
    }

    /// Writes `bytes` unless the object already holds exactly them: what a
    /// step that a retry repeats writes (a report, a list derived from its
    /// input). Compare-and-swap underneath, so a concurrent writer is never
    /// overwritten unseen. Returns whether it wrote.
    pub async fn put_derived(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        self.update_with(key, |current| -> Result<Option<Vec<u8>>, StoreError> {
            Ok((current != Some(bytes.as_slice())).then(|| bytes.clone()))
        })
        .await
    }

    /// Keys under a prefix (`"models/AAPL/"`), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let trimmed = prefix.trim_end_matches('/');
        let path = if trimmed.is_empty() {
            None
        } else {
            Some(Self::path(trimmed)?)
        };
        let metas: Vec<_> = self
            .inner
            .list(path.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.backend(prefix, e))?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|m| m.location.to_string())
            .filter(|k| !k.starts_with(".locks/"))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// An exclusive lock on one key of a local store, held until dropped.
async fn lock_key(root: &Path, key: &str) -> Result<std::fs::File, StoreError> {
    let path = root.join(".locks").join(format!("{key}.lock"));
    let display = path.display().to_string();
    let lock_error = |source| StoreError::Lock {
        path: display.clone(),
        source,
    };
    tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(|e| lock_error(std::io::Error::other(e)))?
    .map_err(lock_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_is_create_only_and_update_is_compare_and_swap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::local(dir.path()).expect("opens");
        store.create("raw/a.json", "one").await.expect("creates");
        let err = store.create("raw/a.json", "two").await.expect_err("exists");
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
        let first = store
            .get("raw/a.json")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(first.bytes.as_ref(), b"one");
        store
            .update("raw/a.json", "two", Some(&first.version))
            .await
            .expect("swaps");
        let err = store
            .update("raw/a.json", "three", Some(&first.version))
            .await
            .expect_err("stale");
        assert!(err.is_conflict(), "{err}");
        let now = store
            .get("raw/a.json")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(now.bytes.as_ref(), b"two");
        assert!(store.get("missing").await.expect("reads").is_none());
        assert_eq!(store.list("raw/").await.expect("lists"), vec!["raw/a.json"]);
    }

    #[tokio::test]
    async fn keys_are_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::local(dir.path()).expect("opens");
        for key in ["", "/abs", "a/../b", "a//b"] {
            assert!(
                matches!(store.get(key).await, Err(StoreError::InvalidKey { .. })),
                "{key}"
            );
        }
    }
}
