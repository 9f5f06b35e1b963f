//! The gate Lambda, invoked by the training workflow and by the operator
//! tool. Actions (`{"action": …}`, see docs/STEPS.md):
//! - `evaluate`: decide on the candidates of `runs/<run_id>/train.json`
//!   against naive and production, with reasons; records `decisions/` and
//!   stages the candidates that wait for approval.
//! - `promote`: move the production aliases (compare-and-swap).
//! - `withdraw`: clear the staging of a rejected or timed-out run.
//! - `request_approval`: keep the `.waitForTaskToken` state's token.
//! - `answer`: a person's approve/reject, sent to Step Functions as
//!   `SendTaskSuccess` / `SendTaskFailure(Gate.ApprovalRejected)`.
//! - `mirror`: the store into the environment's MLflow server, with the
//!   credentials of a Secrets Manager secret read through the Parameters
//!   and Secrets extension layer.
//!
//! Configuration: `STOCKCAST_BUCKET`, the policy `STOCKCAST_GATE_*` and
//! `STOCKCAST_MLFLOW_*`.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use stockcast::functions::{ApprovalSender, StepEnv, StepFunctions, gate_event};
use stockcast::secrets::{SecretSource, SecretsExtension};
use stockcast::steps::{ApprovalResult, StepError};

/// The AWS services the gate calls besides S3: Step Functions (answers)
/// and, through the secrets extension layer, Secrets Manager.
struct GateAws {
    sfn: StepFunctions,
    /// Only the mirror reads a secret, and only where the environment names
    /// one: the gate must not fail to start for want of the extension.
    secrets: Result<SecretsExtension, StepError>,
}

impl ApprovalSender for GateAws {
    async fn send(&self, task_token: &str, result: &ApprovalResult) -> Result<(), StepError> {
        self.sfn.send(task_token, result).await
    }
}

impl SecretSource for GateAws {
    async fn secret(&self, id: &str) -> Result<String, StepError> {
        self.secrets
            .as_ref()
            .map_err(Clone::clone)?
            .secret(id)
            .await
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stockcast::logging::init_json();
    let env = Arc::new(StepEnv::from_env().map_err(lambda_runtime::Error::from)?);
    let config = aws_config::load_from_env().await;
    let aws = Arc::new(GateAws {
        sfn: StepFunctions::new(aws_sdk_sfn::Client::new(&config)),
        secrets: SecretsExtension::from_env(),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (env, aws) = (env.clone(), aws.clone());
        async move {
            gate_event(&env, event.payload, aws.as_ref())
                .await
                .map_err(Diagnostic::from)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    //! The approval callback against a local stand-in for the Step Functions
    //! API on 127.0.0.1: the real SDK client, pointed at it with
    //! `AWS_ENDPOINT_URL`-style configuration, sends real requests.

    use std::sync::Mutex;

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use stockcast::steps::{ApprovalAnswer, ApprovalRequest};
    use stockcast::store::Store;

    use super::*;

    type Calls = Arc<Mutex<Vec<(String, Value)>>>;

    /// Step Functions speaks JSON 1.0: POST / with `X-Amz-Target:
    /// AWSStepFunctions.<Operation>`. The secrets extension's
    /// `GET /secretsmanager/get?secretId=…` answers with a username and
    /// password.
    async fn step_functions_stub() -> (String, Calls) {
        let calls: Calls = Arc::default();
        let app = Router::new()
            .route(
                "/",
                post(
                    |State(calls): State<Calls>, headers: HeaderMap, body: Bytes| async move {
                        let target = headers
                            .get("x-amz-target")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
                        calls.lock().expect("lock").push((target, body));
                        ([("content-type", "application/x-amz-json-1.0")], "{}")
                    },
                ),
            )
            .route(
                "/secretsmanager/get",
                axum::routing::get(
                    |State(calls): State<Calls>,
                     axum::extract::Query(query): axum::extract::Query<Value>| async move {
                        calls
                            .lock()
                            .expect("lock")
                            .push(("secretsmanager/get".to_owned(), query));
                        serde_json::json!({
                            "Name": "stockcast/dev/mlflow",
                            "SecretString": "{\"username\":\"ci\",\"password\":\"pw\"}"
                        })
                        .to_string()
                    },
                ),
            )
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    async fn client(endpoint: &str) -> GateAws {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sfn::config::Credentials::for_tests())
            .load()
            .await;
        GateAws {
            sfn: StepFunctions::new(aws_sdk_sfn::Client::new(&config)),
            secrets: Ok(SecretsExtension::new(endpoint, "session")),
        }
    }

    fn env(dir: &std::path::Path) -> StepEnv {
        StepEnv {
            store: Store::local(dir).expect("store"),
            config: Default::default(),
            monitor: Default::default(),
            sample_dir: dir.into(),
            vendors: None,
            mlflow: None,
            run_defaults: None,
        }
    }

    #[tokio::test]
    async fn approve_and_reject_reach_step_functions_with_the_kept_token() {
        let (url, calls) = step_functions_stub().await;
        let sfn = client(&url).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let env = env(dir.path());
        for (run, token) in [("run-a", "token-a"), ("run-b", "token-b")] {
            let request = serde_json::to_value(stockcast::steps::GateRequest::RequestApproval(
                ApprovalRequest {
                    run_id: stockcast::ids::RunId::new(run).expect("valid run id"),
                    task_token: token.into(),
                    decisions: vec![],
                },
            ))
            .expect("serialises");
            gate_event(&env, request, &sfn).await.expect("kept");
        }
        let answer = |run: &str, approve: bool| {
            serde_json::to_value(stockcast::steps::GateRequest::Answer(ApprovalAnswer {
                run_id: stockcast::ids::RunId::new(run).expect("valid run id"),
                approve,
                reason: Some("plots look wrong".into()),
                by: Some("bob".into()),
            }))
            .expect("serialises")
        };
        let approved = gate_event(&env, answer("run-a", true), &sfn)
            .await
            .expect("approved");
        assert_eq!(approved["approved"], true);
        gate_event(&env, answer("run-b", false), &sfn)
            .await
            .expect("rejected");
        let again = gate_event(&env, answer("run-b", true), &sfn)
            .await
            .expect_err("answered already");
        assert_eq!(Diagnostic::from(again).error_type, "Step.InvalidInput");

        let calls = calls.lock().expect("lock").clone();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[0].0, "AWSStepFunctions.SendTaskSuccess");
        assert_eq!(calls[0].1["taskToken"], "token-a");
        let output: Value =
            serde_json::from_str(calls[0].1["output"].as_str().unwrap_or("")).expect("json output");
        assert_eq!(output["approved"], true);
        assert_eq!(calls[1].0, "AWSStepFunctions.SendTaskFailure");
        assert_eq!(calls[1].1["taskToken"], "token-b");
        assert_eq!(calls[1].1["error"], "Gate.ApprovalRejected");
        assert_eq!(calls[1].1["cause"], "rejected by bob: plots look wrong");
    }

    #[tokio::test]
    async fn an_unreachable_step_functions_keeps_the_approval_pending() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = env(dir.path());
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let sfn = client(&format!("http://127.0.0.1:{port}")).await;
        let request = serde_json::json!({"action": "request_approval", "run_id": "r", "task_token": "t", "decisions": []});
        gate_event(&env, request, &sfn).await.expect("kept");
        let answer = serde_json::json!({"action": "answer", "run_id": "r", "approve": true});
        let failed = gate_event(&env, answer, &sfn)
            .await
            .expect_err("unreachable");
        assert_eq!(Diagnostic::from(failed).error_type, "Service.Unavailable");
        assert!(
            stockcast::approval::pending(&env.store, &stockcast::ids::RunId::from_static("r"))
                .await
                .expect("reads")
                .is_some()
        );
    }

    #[tokio::test]
    async fn the_mirror_reads_its_credentials_from_the_secret_and_reports_an_unreachable_server() {
        let (url, calls) = step_functions_stub().await;
        let aws = client(&url).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env = env(dir.path());
        let mirror = serde_json::json!({"action": "mirror", "run_id": "r"});
        let skipped = gate_event(&env, mirror.clone(), &aws)
            .await
            .expect("nothing to do");
        assert_eq!(skipped["mirrored"], false);
        assert!(calls.lock().expect("lock").is_empty());

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        env.mlflow = Some(stockcast::mlflow::MirrorTarget {
            tracking_uri: format!("http://127.0.0.1:{port}"),
            experiment: "stockcast-dev".into(),
            credentials_secret: Some("stockcast/dev/mlflow".into()),
        });
        let failed = gate_event(&env, mirror, &aws)
            .await
            .expect_err("nothing listens there");
        assert!(
            failed.message.contains("cannot reach the MLflow server"),
            "{}",
            failed.message
        );
        assert!(!failed.message.contains("pw"), "{}", failed.message);
        assert_eq!(Diagnostic::from(failed).error_type, "Service.Unavailable");
        let calls = calls.lock().expect("lock").clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].0, "secretsmanager/get");
        assert_eq!(calls[0].1["secretId"], "stockcast/dev/mlflow");
    }
}
