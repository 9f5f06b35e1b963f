//! `cargo xtask local` then `cargo xtask mlflow`, against a real MLflow
//! tracking server (the pinned slim install of `cargo xtask tools`) started
//! on 127.0.0.1 with a temporary SQLite store and basic authentication, so
//! the credentials path is the one a shared server uses. What the mirror
//! wrote is read back through MLflow's REST API (issue 16).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockcast::layout::{self, ModelKey};
use stockcast::mlflow::{Client, Credentials, registered_model_name};
use stockcast::registry::Registry;
use stockcast::store::Store;

/// The models the test trains.
const MODELS: &str = "naive,drift,arima,prophet";

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");
const ADMIN: &str = "admin";
const PASSWORD: &str = "stockcast-test-password";

/// `mlflow server --app-name basic-auth` on a free loopback port, stopped
/// (with its workers: SIGTERM to the CLI stops the tree) when dropped.
struct MlflowServer {
    child: Child,
    uri: String,
    _dir: tempfile::TempDir,
}

impl MlflowServer {
    fn start(mlflow: &Path) -> MlflowServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = test_support::free_port();
        let auth_ini = dir.path().join("basic_auth.ini");
        // The credential cache skips a PBKDF2 check per request: without it a
        // sync on a loaded 2-core machine took 170 s instead of 13.
        std::fs::write(
            &auth_ini,
            format!(
                "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{}\nadmin_username = {ADMIN}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\nauth_cache_ttl_seconds = 600\n",
                dir.path().join("auth.db").display()
            ),
        )
        .expect("writes the auth config");
        let child = Command::new(mlflow)
            .args(["server", "--app-name", "basic-auth", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!(
                "sqlite:///{}",
                dir.path().join("mlflow.db").display()
            ))
            .arg("--artifacts-destination")
            .arg(dir.path().join("artifacts"))
            .current_dir(dir.path())
            // Measured: the default job runner alone starts a dozen processes.
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .env("MLFLOW_AUTH_CONFIG_PATH", &auth_ini)
            .env("MLFLOW_AUTH_ADMIN_PASSWORD", PASSWORD)
            .env("MLFLOW_FLASK_SERVER_SECRET_KEY", "stockcast-test-only")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", mlflow.display()));
        let server = MlflowServer {
            child,
            uri: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while health(port) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "mlflow server did not answer /health within 120 s: {}",
                std::fs::read_to_string(server._dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        server
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of `GET /health`, `None` while nothing listens.
fn health(port: u16) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

fn xtask(args: &[&str], password: &str) -> Output {
    let output = Command::new(XTASK)
        .args(args)
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .env("MLFLOW_TRACKING_USERNAME", ADMIN)
        .env("MLFLOW_TRACKING_PASSWORD", password)
        .stdin(Stdio::null())
        .output()
        .expect("runs xtask");
    eprintln!(
        "$ xtask {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn ok(args: &[&str]) -> String {
    let output = xtask(args, PASSWORD);
    assert!(output.status.success(), "xtask {} failed", args.join(" "));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The store's versions by registered model name, and its aliases.
struct Expected {
    versions: BTreeMap<String, Vec<String>>,
    aliases: BTreeMap<String, BTreeMap<String, String>>,
}

fn expected(runtime: &tokio::runtime::Runtime, root: &Path) -> Expected {
    let registry = Registry::new(Store::local(root).expect("store"));
    runtime.block_on(async {
        let mut versions = BTreeMap::new();
        let mut aliases = BTreeMap::new();
        let keys = registry.store().list(layout::MODELS).await.expect("lists");
        for (symbol, model, version) in keys.iter().filter_map(|k| ModelKey::complete_version(k)) {
            versions
                .entry(registered_model_name(&symbol, model))
                .or_insert_with(Vec::new)
                .push(version.to_string());
        }
        // What `cargo xtask models` lists: production with its previous,
        // and staging.
        for entry in registry.production_models().await.expect("reads") {
            let mut map =
                BTreeMap::from([("production".to_owned(), entry.alias.version.to_string())]);
            if let Some(previous) = entry.alias.previous {
                map.insert("previous".to_owned(), previous.to_string());
            }
            aliases.insert(registered_model_name(&entry.symbol, entry.model), map);
        }
        for (symbol, model, staging) in registry.staged_models().await.expect("reads") {
            if let Some(version) = staging.version {
                aliases
                    .entry(registered_model_name(&symbol, model))
                    .or_insert_with(BTreeMap::new)
                    .insert("staging".to_owned(), version.to_string());
            }
        }
        Expected { versions, aliases }
    })
}

/// MLflow's aliases of a model, as store versions (read from the version's tag).
async fn mlflow_aliases(client: &Client, name: &str) -> BTreeMap<String, String> {
    let model = client
        .get("registered-models/get", &[("name", name)])
        .await
        .expect("registered model");
    let mut out = BTreeMap::new();
    for alias in model["registered_model"]["aliases"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let number = alias["version"].as_str().expect("version");
        let version = client
            .get("model-versions/get", &[("name", name), ("version", number)])
            .await
            .expect("version");
        let tag = version["model_version"]["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["key"] == "stockcast.version")
            .and_then(|t| t["value"].as_str())
            .expect("a stockcast.version tag");
        out.insert(
            alias["alias"].as_str().expect("alias").to_owned(),
            tag.to_owned(),
        );
    }
    out
}

async fn check_mirror(client: &Client, expected: &Expected) {
    let experiment = client
        .get(
            "experiments/get-by-name",
            &[("experiment_name", "stockcast-local")],
        )
        .await
        .expect("the experiment exists");
    let experiment_id = experiment["experiment"]["experiment_id"]
        .as_str()
        .expect("id");
    let runs = client
        .post(
            "runs/search",
            &json!({"experiment_ids": [experiment_id], "max_results": 1000}),
        )
        .await
        .expect("searches");
    let runs = runs["runs"].as_array().cloned().unwrap_or_default();
    let tag = |run: &Value, key: &str| {
        run["data"]["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["key"] == key)
            .and_then(|t| t["value"].as_str().map(str::to_owned))
    };
    let children: Vec<&Value> = runs
        .iter()
        .filter(|r| tag(r, "mlflow.parentRunId").is_some())
        .collect();
    let n_versions: usize = expected.versions.values().map(Vec::len).sum();
    assert_eq!(children.len(), n_versions, "one child run per version");
    for run in &children {
        let metrics: Vec<&str> = run["data"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["key"].as_str())
            .collect();
        for metric in ["mase_h1", "mae_h5", "rmse_h21", "r2_h5", "naive_mase_h5"] {
            assert!(metrics.contains(&metric), "{metric} in {metrics:?}");
        }
        assert!(tag(run, "stockcast.gate.decision").is_some(), "{run}");
        assert_eq!(run["info"]["status"], "FINISHED");
        let run_id = run["info"]["run_id"].as_str().expect("run id");
        let listed = client
            .get("artifacts/list", &[("run_id", run_id)])
            .await
            .expect("lists artifacts");
        let files: Vec<&str> = listed["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["path"].as_str())
            .collect();
        for file in [
            "backtest.csv",
            "lineage.json",
            "metrics.json",
            "model",
            "plot.png",
        ] {
            assert!(files.contains(&file), "{file} in {files:?}");
        }
    }
    for (name, versions) in &expected.versions {
        let found = client
            .get(
                "model-versions/search",
                &[("filter", &format!("name='{name}'"))],
            )
            .await
            .expect("searches versions");
        let count = found["model_versions"].as_array().map_or(0, Vec::len);
        assert_eq!(
            count,
            versions.len(),
            "{name}: one MLflow version per version"
        );
        let wanted = expected.aliases.get(name).cloned().unwrap_or_default();
        assert_eq!(mlflow_aliases(client, name).await, wanted, "{name}");
    }
}

#[test]
fn local_runs_mirror_into_a_real_mlflow_server() {
    let Some(mlflow) = test_support::tool("STOCKCAST_MLFLOW_SERVER") else {
        return;
    };
    let server = MlflowServer::start(&mlflow);
    let uri = server.uri.as_str();
    let store = tempfile::tempdir().expect("temp dir");
    let root = store.path().to_str().expect("utf-8 path");
    let runtime = test_support::runtime();
    let client = Client::new(
        uri,
        Credentials::Basic {
            username: ADMIN.into(),
            password: PASSWORD.into(),
        },
    )
    .expect("client");

    // Four models keep the test quick (the ensemble and the calibrated
    // models refit at inner origins); the mirror treats every model alike.
    ok(&["local", "--root", root, "--models", MODELS]);
    let first = Instant::now();
    let synced = ok(&["mlflow", "--tracking-uri", uri, "--root", root]);
    let first = first.elapsed();
    let wanted = expected(&runtime, store.path());
    let n_versions: usize = wanted.versions.values().map(Vec::len).sum();
    assert!(
        synced.contains(&format!(
            "created 1 experiment(s), {} run(s) (0 resumed), {} registered model(s), {n_versions} version(s)",
            n_versions + 1,
            wanted.versions.len()
        )),
        "{synced}"
    );
    assert!(synced.contains("#/models/stockcast."), "{synced}");
    runtime.block_on(check_mirror(&client, &wanted));

    let second = Instant::now();
    let again = ok(&["mlflow", "--tracking-uri", uri, "--root", root]);
    let second = second.elapsed();
    assert!(again.contains("wrote nothing"), "{again}");
    eprintln!(
        "sync of {n_versions} versions: first {:.1} s, second {:.1} s",
        first.as_secs_f64(),
        second.as_secs_f64()
    );

    // A sync that stopped half-way left a run RUNNING: the next one completes
    // that run and duplicates nothing.
    runtime.block_on(async {
        let any_child = client
            .post(
                "runs/search",
                &json!({"experiment_ids": ["1"], "filter": "tags.`stockcast.key` LIKE 'version/%'", "max_results": 1}),
            )
            .await
            .expect("searches");
        let run_id = any_child["runs"][0]["info"]["run_id"].as_str().expect("a run").to_owned();
        client
            .post("runs/update", &json!({"run_id": run_id, "status": "RUNNING"}))
            .await
            .expect("marks it unfinished");
    });
    let resumed = ok(&["mlflow", "--tracking-uri", uri, "--root", root]);
    assert!(resumed.contains("0 run(s) (1 resumed)"), "{resumed}");
    runtime.block_on(check_mirror(&client, &wanted));

    // A second local run mirrors at its end, and gives production a previous.
    let local = ok(&["local", "--root", root, "--models", MODELS, "--mlflow", uri]);
    assert!(local.contains("mlflow sync took"), "{local}");
    let wanted = expected(&runtime, store.path());
    runtime.block_on(check_mirror(&client, &wanted));

    // A rollback in the store moves the aliases in MLflow at the next sync.
    let (name, aliases) = wanted
        .aliases
        .iter()
        .find(|(_, a)| a.contains_key("previous"))
        .expect("a model with a previous version");
    let parts: Vec<&str> = name.splitn(3, '.').collect();
    ok(&[
        "rollback", "--root", root, "--symbol", parts[1], "--model", parts[2],
    ]);
    let moved = ok(&["mlflow", "--tracking-uri", uri, "--root", root]);
    assert!(moved.contains("set 2 alias(es), removed 0"), "{moved}");
    let after = runtime.block_on(mlflow_aliases(&client, name));
    assert_eq!(after.get("production"), aliases.get("previous"), "{name}");
    assert_eq!(after.get("previous"), aliases.get("production"), "{name}");
    runtime.block_on(check_mirror(&client, &expected(&runtime, store.path())));

    // Manual approval: the candidates that pass wait as `staging`, in the
    // store and in MLflow, until a rejection clears them.
    ok(&[
        "local",
        "--root",
        root,
        "--models",
        "naive,arima",
        "--approval",
        "manual",
    ]);
    let staged = runtime.block_on(async {
        Registry::new(Store::local(store.path()).expect("store"))
            .staged_models()
            .await
            .expect("reads")
    });
    let (_, _, record) = staged
        .first()
        .expect("an arima candidate beats naive on the sample");
    let models = ok(&["models", "--root", root]);
    assert!(
        models.contains(record.version.as_deref().unwrap_or("?"))
            && models.contains("waits for approval"),
        "{models}"
    );
    ok(&["mlflow", "--tracking-uri", uri, "--root", root]);
    let wanted = expected(&runtime, store.path());
    assert!(wanted.aliases.values().any(|a| a.contains_key("staging")));
    runtime.block_on(check_mirror(&client, &wanted));
    let run_id = record.run_id.clone();
    let rejected = ok(&["reject", "--root", root, &run_id, "--reason", "not yet"]);
    assert!(
        rejected.contains(&format!("staging cleared for {} version(s)", staged.len())),
        "{rejected}"
    );
    let unstaged = ok(&["mlflow", "--tracking-uri", uri, "--root", root]);
    assert!(
        unstaged.contains(&format!("removed {}", staged.len())),
        "{unstaged}"
    );
    let wanted = expected(&runtime, store.path());
    assert!(!wanted.aliases.values().any(|a| a.contains_key("staging")));
    runtime.block_on(check_mirror(&client, &wanted));

    // A wrong password is a clear error that names the variables to set.
    let refused = xtask(&["mlflow", "--tracking-uri", uri, "--root", root], "wrong");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("MLFLOW_TRACKING_USERNAME"),
        "{stderr}"
    );

    // MLflow being down never fails a pipeline run: it is reported.
    let down = format!("http://127.0.0.1:{}", test_support::free_port());
    let other = tempfile::tempdir().expect("temp dir");
    let other_root = other.path().to_str().expect("utf-8 path");
    let output = xtask(
        &[
            "local",
            "--root",
            other_root,
            "--symbols",
            "AAPL",
            "--models",
            "drift",
            "--mlflow",
            &down,
        ],
        PASSWORD,
    );
    assert!(output.status.success(), "the run must not fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("cannot reach the MLflow server"),
        "{stderr}"
    );
}
