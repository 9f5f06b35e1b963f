//! A stand-in for Batch's REST-JSON API on 127.0.0.1, for tests: the real
//! SDK client sends its real requests to it and parses answers of Batch's
//! shape. A stand-in, because Batch itself cannot run here: moto's Batch
//! runs its jobs in Docker, which this machine lacks. It answers from a
//! fixed set of jobs and pages ListJobs by 60, so that the pagination and
//! DescribeJobs' 100-id limit both matter.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const PARENT: &str = "6b7a1f3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b";
pub const RUN: &str = "2026-01-02T03-04-05Z-training";
const LIST_PAGE: usize = 60;
/// A job id the stand-in refuses to describe, as Batch refuses a caller
/// without the permission.
pub const REFUSED: &str = "refused";

#[derive(Debug)]
pub struct StandIn {
    jobs: Vec<Value>,
    /// Each request: its path and body.
    calls: Mutex<Vec<(&'static str, Value)>>,
}

impl StandIn {
    fn record(&self, path: &'static str, body: &Value) {
        self.calls.lock().expect("lock").push((path, body.clone()));
    }

    pub fn calls(&self, path: &str) -> Vec<Value> {
        let calls = self.calls.lock().expect("lock");
        calls
            .iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

fn client_exception(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("x-amzn-errortype", "ClientException")],
        Json(json!({ "message": message })),
    )
        .into_response()
}

async fn describe_jobs(State(batch): State<Arc<StandIn>>, Json(body): Json<Value>) -> Response {
    batch.record("describejobs", &body);
    let ids: Vec<&str> = body["jobs"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if ids.len() > 100 {
        return client_exception("jobs: too many items, at most 100");
    }
    if ids.contains(&REFUSED) {
        return client_exception("User is not authorized to perform batch:DescribeJobs");
    }
    let jobs: Vec<&Value> = batch
        .jobs
        .iter()
        .filter(|job| ids.contains(&job["jobId"].as_str().unwrap_or_default()))
        .collect();
    Json(json!({ "jobs": jobs })).into_response()
}

async fn list_jobs(State(batch): State<Arc<StandIn>>, Json(body): Json<Value>) -> Response {
    batch.record("listjobs", &body);
    let Some(array) = body["arrayJobId"].as_str() else {
        return client_exception("expected arrayJobId");
    };
    let status = body["jobStatus"].as_str().unwrap_or("RUNNING");
    let start: usize = body["nextToken"]
        .as_str()
        .map_or(0, |t| t.parse().unwrap_or(0));
    let listed: Vec<Value> = batch
        .jobs
        .iter()
        .filter(|job| {
            job["jobId"]
                .as_str()
                .is_some_and(|id| id.starts_with(&format!("{array}:")))
                && job["status"] == status
        })
        .map(|job| {
            json!({
                "jobArn": job["jobArn"], "jobId": job["jobId"], "jobName": job["jobName"],
                "createdAt": job["createdAt"], "status": job["status"],
                "arrayProperties": job["arrayProperties"]
            })
        })
        .collect();
    let end = (start + LIST_PAGE).min(listed.len());
    let mut answer = json!({ "jobSummaryList": listed[start.min(end)..end] });
    if end < listed.len() {
        answer["nextToken"] = json!(end.to_string());
    }
    Json(answer).into_response()
}

pub async fn stand_in(jobs: Vec<Value>) -> (aws_sdk_batch::Client, Arc<StandIn>) {
    let batch = Arc::new(StandIn {
        jobs,
        calls: Mutex::default(),
    });
    let app = Router::new()
        .route("/v1/describejobs", post(describe_jobs))
        .route("/v1/listjobs", post(list_jobs))
        .with_state(batch.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = aws_sdk_batch::Config::builder()
        .behavior_version(aws_sdk_batch::config::BehaviorVersion::latest())
        .region(aws_sdk_batch::config::Region::new("eu-west-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_batch::config::Credentials::new(
            "AKIDSTANDIN",
            "secret",
            None,
            None,
            "stand-in",
        ))
        .build();
    (aws_sdk_batch::Client::from_conf(config), batch)
}

pub fn job(id: &str, status: &str) -> Value {
    json!({
        "jobArn": format!("arn:aws:batch:eu-west-1:123456789012:job/{id}"),
        "jobName": RUN,
        "jobId": id,
        "jobQueue": "arn:aws:batch:eu-west-1:123456789012:job-queue/stockcast-dev-train",
        "status": status,
        "attempts": [],
        "createdAt": 1_767_323_040_000_i64,
        "dependsOn": [],
        "jobDefinition": "arn:aws:batch:eu-west-1:123456789012:job-definition/stockcast-dev-train:3",
        "parameters": {},
        "tags": {},
        "platformCapabilities": ["EC2"]
    })
}

pub fn attempt(status_reason: &str, exit_code: Option<i32>) -> Value {
    let mut container = json!({
        "containerInstanceArn": "arn:aws:ecs:eu-west-1:123456789012:container-instance/stockcast-dev/0f1e",
        "taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/stockcast-dev/9a8b",
        "logStreamName": "stockcast-train/default/9a8b7c6d",
        "networkInterfaces": []
    });
    if let Some(code) = exit_code {
        container["exitCode"] = json!(code);
    }
    json!({
        "container": container,
        "startedAt": 1_767_323_045_000_i64,
        "stoppedAt": 1_767_326_645_000_i64,
        "statusReason": status_reason
    })
}

/// An array of 150: shard 1 reclaimed by Spot once then done, shard 2
/// failed, shard 149 running, the others done at the first attempt.
pub fn array_of_150() -> Vec<Value> {
    let exited = "Essential container in task exited";
    let mut parent = job(PARENT, "PENDING");
    parent["arrayProperties"] = json!({
        "statusSummary": {"SUBMITTED": 0, "PENDING": 0, "RUNNABLE": 0, "STARTING": 0,
                          "RUNNING": 1, "SUCCEEDED": 148, "FAILED": 1},
        "size": 150
    });
    let children = (0..150).map(|index| {
        let (status, attempts) = match index {
            1 => (
                "SUCCEEDED",
                vec![
                    attempt("Host EC2 (instance i-0f1e2d3c4b5a69788) terminated.", None),
                    attempt(exited, Some(0)),
                ],
            ),
            2 => ("FAILED", vec![attempt(exited, Some(1))]),
            149 => ("RUNNING", vec![]),
            _ => ("SUCCEEDED", vec![attempt(exited, Some(0))]),
        };
        let mut child = job(&format!("{PARENT}:{index}"), status);
        child["attempts"] = json!(attempts);
        child["arrayProperties"] = json!({ "index": index });
        if status != "RUNNING" {
            child["statusReason"] = json!(exited);
        }
        child
    });
    std::iter::once(parent).chain(children).collect()
}
