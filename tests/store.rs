//! Storage guarantees through the real backends: create-only raw objects
//! and compare-and-swap under concurrency, for the local folder and S3.

use std::sync::Arc;

use stockcast::ids::{RunId, Symbol, VersionId};
use stockcast::ingest::{IngestContext, ingest};
use stockcast::layout::{self, VersionFile};
use stockcast::registry::Registry;
use stockcast::series::PriceSeries;
use stockcast::steps::{IngestInput, Source};
use stockcast::store::{Store, StoreError};

use test_support::{runtime, sample_dir, temp_root};

/// Two writers holding the same version: exactly one wins, the other is told.
pub async fn one_of_two_racing_writers_wins(store: &Store) {
    store
        .create("aliases/race.json", "v0")
        .await
        .expect("creates");
    let read = store
        .get("aliases/race.json")
        .await
        .expect("reads")
        .expect("exists");
    let (a, b) = tokio::join!(
        store.update("aliases/race.json", "va", Some(&read.version)),
        store.update("aliases/race.json", "vb", Some(&read.version)),
    );
    let (winner, loser) = match (&a, &b) {
        (Ok(_), Err(e)) => ("va", e),
        (Err(e), Ok(_)) => ("vb", e),
        other => panic!("exactly one writer must win: {other:?}"),
    };
    assert!(loser.is_conflict(), "the loser gets a conflict: {loser}");
    let now = store
        .get("aliases/race.json")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(now.bytes.as_ref(), winner.as_bytes());
}

/// Many writers appending to one object through read-modify-CAS: nothing lost.
pub async fn concurrent_read_modify_writes_lose_nothing(store: &Store) {
    let writers = 4;
    let per_writer = 10;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                store
                    .update_with(
                        "curated/counter.txt",
                        |current| -> Result<Option<Vec<u8>>, StoreError> {
                            let mut text = current
                                .map(|b| String::from_utf8_lossy(b).to_string())
                                .unwrap_or_default();
                            text.push_str(&format!("{w}-{i}\n"));
                            Ok(Some(text.into_bytes()))
                        },
                    )
                    .await
                    .expect("eventually writes");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let text = store
        .get("curated/counter.txt")
        .await
        .expect("reads")
        .expect("exists");
    let lines: std::collections::BTreeSet<String> = String::from_utf8_lossy(&text.bytes)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), writers * per_writer, "every write landed once");
}

/// Two ingests of one symbol at once, with different days: the union lands.
pub async fn concurrent_ingests_keep_the_union(store: &Store) {
    let full = PriceSeries::from_csv_path(&sample_dir().join("IBM.csv")).expect("sample");
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| temp_root()).collect();
    // Writer one has the first 2000 days, writer two days 1500..3000.
    for (dir, range) in dirs.iter().zip([0..2000, 1500..3000]) {
        let part = PriceSeries::new("IBM", full.bars[range].to_vec()).expect("valid");
        std::fs::write(dir.path().join("IBM.csv"), part.to_csv()).expect("writes");
    }
    let contexts: Vec<IngestContext> = dirs
        .iter()
        .map(|d| IngestContext {
            store: store.clone(),
            sample_dir: d.path().to_path_buf(),
            vendors: None,
        })
        .collect();
    let input = IngestInput {
        run_id: RunId::from_static("race"),
        symbol: Symbol::from_static("IBM"),
        source: Source::Sample,
        sentiment: None,
    };
    let (a, b) = tokio::join!(ingest(&contexts[0], &input), ingest(&contexts[1], &input));
    let (a, b) = (a.expect("ingests"), b.expect("ingests"));
    assert_eq!(a.rows_added + b.rows_added, 3000, "{a:?} {b:?}");
    let curated = store
        .get(&layout::curated(&Symbol::from_static("IBM")))
        .await
        .expect("reads")
        .expect("curated");
    let merged = PriceSeries::from_csv_bytes("IBM", "curated", &curated.bytes).expect("valid");
    assert_eq!(merged.bars, full.bars[..3000].to_vec());
}

/// Racing promotions of one alias both land, one after the other.
pub async fn racing_promotions_are_serialised(store: &Store) {
    let registry = Arc::new(Registry::new(store.clone()));
    // Two complete versions (lineage marks completeness).
    for v in ["v1", "v2"] {
        let key = layout::version_file(
            &Symbol::from_static("X"),
            stockcast::models::ModelKind::Naive,
            &VersionId::from_static(v),
            VersionFile::Lineage,
        );
        store.create(&key, "{}").await.expect("creates");
    }
    let (r1, r2) = (registry.clone(), registry.clone());
    let naive = stockcast::models::ModelKind::Naive;
    let (a, b) = tokio::join!(
        async move {
            r1.promote(
                &Symbol::from_static("X"),
                naive,
                &VersionId::from_static("v1"),
                &RunId::from_static("run-a"),
                "test",
            )
            .await
        },
        async move {
            r2.promote(
                &Symbol::from_static("X"),
                naive,
                &VersionId::from_static("v2"),
                &RunId::from_static("run-b"),
                "test",
            )
            .await
        },
    );
    let (a, b) = (a.expect("promotes"), b.expect("promotes"));
    let alias = registry
        .production(&Symbol::from_static("X"), naive)
        .await
        .expect("reads")
        .expect("alias");
    // Whichever went second names the other as previous: neither was lost.
    let (first, second) = if alias.version == "v2" {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(second.previous.as_deref(), Some(first.version.as_str()));
    assert_eq!(alias.previous.as_deref(), Some(first.version.as_str()));
}

#[test]
fn local_backend_guarantees() {
    let dir = temp_root();
    let store = Store::local(dir.path()).expect("store");
    runtime().block_on(async {
        one_of_two_racing_writers_wins(&store).await;
        concurrent_read_modify_writes_lose_nothing(&store).await;
        concurrent_ingests_keep_the_union(&store).await;
        racing_promotions_are_serialised(&store).await;
    });
}

#[test]
fn two_processes_share_the_local_lock() {
    // The lock is a file lock, so it also serialises separate stores
    // (separate processes) on one folder.
    let dir = temp_root();
    let a = Store::local(dir.path()).expect("store");
    let b = Store::local(dir.path()).expect("store");
    runtime().block_on(async {
        a.create("k", "0").await.expect("creates");
        let read = a.get("k").await.expect("reads").expect("exists");
        let (x, y) = tokio::join!(
            a.update("k", "a", Some(&read.version)),
            b.update("k", "b", Some(&read.version))
        );
        assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
    });
}

#[test]
fn s3_backend_guarantees() {
    let Some(moto) = test_support::Moto::start() else {
        return;
    };
    let store = moto.s3_store("stockcast-test");
    runtime().block_on(async {
        store.create("raw/a.json", "one").await.expect("creates");
        let err = store
            .create("raw/a.json", "two")
            .await
            .expect_err("create-only");
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
        one_of_two_racing_writers_wins(&store).await;
        concurrent_read_modify_writes_lose_nothing(&store).await;
        concurrent_ingests_keep_the_union(&store).await;
        racing_promotions_are_serialised(&store).await;
        assert!(
            store
                .list("raw/")
                .await
                .expect("lists")
                .contains(&"raw/a.json".to_owned())
        );
    });
}

/// A stand-in for S3 on 127.0.0.1 that answers each request with the next
/// status of `script` (then its last one again) and counts the requests.
/// It speaks just enough S3 for a GET: an object's body, ETag and date.
fn scripted_s3(script: &'static [u16]) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clones"));
            let mut line = String::new();
            // The request line and headers; a GET has no body.
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let status = script[n.min(script.len() - 1)];
            let (reason, body) = match status {
                200 => ("OK", "hello".to_owned()),
                403 => (
                    "Forbidden",
                    "<Error><Code>AccessDenied</Code></Error>".to_owned(),
                ),
                _ => (
                    "Service Unavailable",
                    "<Error><Code>SlowDown</Code></Error>".to_owned(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nETag: \"e1\"\r\n\
                 Last-Modified: Tue, 01 Dec 2026 00:00:00 GMT\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (endpoint, requests)
}

fn scripted_store(endpoint: String, retry: Option<stockcast::store::RetryPolicy>) -> Store {
    Store::s3_with(
        "bucket",
        stockcast::store::S3Options {
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            credentials: Some(("testing".into(), "testing".into())),
            credential_provider: None,
            retry,
        },
    )
    .expect("s3 store")
}

/// Reads `key` through a store on `script` and returns the step error name
/// (or `None` for success) and the number of requests the server saw.
fn read_through(
    script: &'static [u16],
    retry: Option<stockcast::store::RetryPolicy>,
) -> (Option<stockcast::steps::ErrorName>, usize) {
    let (endpoint, requests) = scripted_s3(script);
    let store = scripted_store(endpoint, retry);
    let result = runtime().block_on(store.get("curated/IBM.csv"));
    let name = match result {
        Ok(object) => {
            assert_eq!(object.expect("found").bytes.as_ref(), b"hello");
            None
        }
        Err(e) => Some(stockcast::steps::StepError::from(e).name),
    };
    (name, requests.load(std::sync::atomic::Ordering::SeqCst))
}

#[test]
fn transient_storage_errors_are_retried_and_permanent_ones_are_not() {
    use stockcast::steps::ErrorName;
    // Issue 20, item 6. The production retry settings (`S3_RETRY`): two
    // 503s (S3's SlowDown) and then the object.
    assert_eq!(read_through(&[503, 503, 200], None), (None, 3));
    // An outage that outlasts the retries is Storage.Unavailable, which
    // the workflow retries again (shortened settings: 2 retries, 10 ms).
    let short = stockcast::store::RetryPolicy {
        max_retries: 2,
        retry_timeout: std::time::Duration::from_secs(5),
        init_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_millis(20),
    };
    assert_eq!(
        read_through(&[503], Some(short)),
        (Some(ErrorName::StorageUnavailable), 3)
    );
    // Access denied is asked once and is Storage.Refused: not retried.
    assert_eq!(
        read_through(&[403], None),
        (Some(ErrorName::StorageRefused), 1)
    );
    assert!(ErrorName::StorageUnavailable.is_retryable());
    assert!(!ErrorName::StorageRefused.is_retryable());
}
