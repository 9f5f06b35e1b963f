//! Batch's and Step Functions' answers built with the SDK's builders, in
//! the shape the services give them: an array child's id is
//! `<parent id>:<index>`, a Spot reclaim ends an attempt with "Host EC2
//! (instance …) terminated." and no exit code, a failure with the
//! container's exit code and "Essential container in task exited".

use std::collections::HashMap;

use aws_sdk_batch::types::{
    ArrayPropertiesDetail, AttemptContainerDetail, AttemptDetail, JobDetail, JobStatus,
};
use aws_sdk_sfn::types::{
    HistoryEvent, HistoryEventType, TaskSubmittedEventDetails, TaskSucceededEventDetails,
};
use aws_smithy_types::DateTime;

use super::*;

const PARENT: &str = "6b7a1f3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b";
const RUN: &str = "2026-01-02T03-04-05Z-training";

fn ended(status_reason: &str, exit_code: Option<i32>) -> AttemptDetail {
    AttemptDetail::builder()
        .container(
            AttemptContainerDetail::builder()
                .container_instance_arn(
                    "arn:aws:ecs:eu-west-1:123456789012:container-instance/stockcast-dev/0f1e",
                )
                .task_arn("arn:aws:ecs:eu-west-1:123456789012:task/stockcast-dev/9a8b")
                .set_exit_code(exit_code)
                .log_stream_name("stockcast-train/default/9a8b7c6d")
                .build(),
        )
        .started_at(1_767_323_045_000)
        .stopped_at(1_767_326_645_000)
        .status_reason(status_reason)
        .build()
}

fn spot_reclaim() -> AttemptDetail {
    AttemptDetail::builder()
        .container(
            AttemptContainerDetail::builder()
                .log_stream_name("stockcast-train/default/1d2c3b4a")
                .build(),
        )
        .started_at(1_767_323_045_000)
        .stopped_at(1_767_324_045_000)
        .status_reason("Host EC2 (instance i-0f1e2d3c4b5a69788) terminated.")
        .build()
}

fn exited(code: i32) -> AttemptDetail {
    ended("Essential container in task exited", Some(code))
}

fn child(index: i32, status: JobStatus, attempts: Vec<AttemptDetail>) -> JobDetail {
    let reason = match status {
        JobStatus::Succeeded | JobStatus::Failed => Some("Essential container in task exited"),
        _ => None,
    };
    JobDetail::builder()
        .job_arn(format!(
            "arn:aws:batch:eu-west-1:123456789012:job/{PARENT}:{index}"
        ))
        .job_id(format!("{PARENT}:{index}"))
        .job_name(RUN)
        .status(status)
        .set_status_reason(reason.map(str::to_owned))
        .set_attempts(Some(attempts))
        .array_properties(ArrayPropertiesDetail::builder().index(index).build())
        .build()
}

fn parent(size: i32, summary: &[(&str, i32)]) -> JobDetail {
    let summary: HashMap<String, i32> =
        summary.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect();
    JobDetail::builder()
        .job_id(PARENT)
        .job_name(RUN)
        .status(JobStatus::Pending)
        .array_properties(
            ArrayPropertiesDetail::builder()
                .size(size)
                .set_status_summary(Some(summary))
                .build(),
        )
        .build()
}

/// Shard 1 reclaimed by Spot once and then succeeded, shard 2 failed,
/// shard 3 still running, shard 0 done at the first attempt.
fn array_job() -> TrainingJob {
    let children = [
        child(2, JobStatus::Failed, vec![exited(1)]),
        child(0, JobStatus::Succeeded, vec![exited(0)]),
        child(3, JobStatus::Running, vec![]),
        child(1, JobStatus::Succeeded, vec![spot_reclaim(), exited(0)]),
    ];
    let summary = [
        ("SUCCEEDED", 2),
        ("FAILED", 1),
        ("RUNNING", 1),
        ("PENDING", 0),
    ];
    summarise(&parent(4, &summary), &children)
}

#[test]
fn the_table_names_the_failed_and_retried_children_and_why() {
    let expected = "\
training job 2026-01-02T03-04-05Z-training (6b7a1f3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b): array of 4, PENDING
  children: 2 succeeded, 1 running, 0 waiting, 1 failed
  shard  status     attempt  ended
  -----  ---------  -------  -----------------------------------------------------------------
  1      SUCCEEDED  1 of 2   Spot reclaim: Host EC2 (instance i-0f1e2d3c4b5a69788) terminated.
                    2 of 2   succeeded, exit 0: Essential container in task exited
  2      FAILED     1 of 1   failed, exit 1: Essential container in task exited
";
    assert_eq!(array_job().text(false), expected);
}

#[test]
fn verbose_lists_every_child_by_index() {
    let text = array_job().text(true);
    // A child's first row starts with its shard; its later attempts' rows
    // leave the shard and status empty.
    let shards: Vec<&str> = text
        .lines()
        .skip(4)
        .filter_map(|line| line.strip_prefix("  "))
        .filter(|row| !row.starts_with(' '))
        .filter_map(|row| row.split_whitespace().next())
        .collect();
    assert_eq!(shards, ["0", "1", "2", "3"]);
    assert!(text.contains("  3      RUNNING    1 of 1   -\n"), "{text}");
}

#[test]
fn the_json_keeps_every_child_and_attempt() {
    let json = serde_json::to_value(array_job()).expect("serialises");
    assert_eq!(json["array_size"], 4);
    assert_eq!(json["counts"]["failed"], 1);
    assert_eq!(json["children"].as_array().map(Vec::len), Some(4));
    let reclaimed = &json["children"][1];
    assert_eq!(reclaimed["job_id"], format!("{PARENT}:1"));
    assert_eq!(reclaimed["attempts"][0]["end"], "spot_reclaim");
    assert_eq!(
        reclaimed["attempts"][0]["exit_code"],
        serde_json::Value::Null
    );
    assert_eq!(reclaimed["attempts"][1]["end"], "succeeded");
    assert_eq!(
        reclaimed["attempts"][1]["log_stream"],
        "stockcast-train/default/9a8b7c6d"
    );
}

#[test]
fn a_single_job_is_its_own_child_zero() {
    let single = JobDetail::builder()
        .job_id(PARENT)
        .job_name(RUN)
        .status(JobStatus::Runnable)
        .attempts(exited(143))
        .build();
    let job = summarise(&single, &[]);
    assert_eq!(job.array_size, None);
    assert_eq!(
        job.counts,
        ChildCounts {
            waiting: 1,
            ..ChildCounts::default()
        }
    );
    assert_eq!(
        job.text(false),
        "\
training job 2026-01-02T03-04-05Z-training (6b7a1f3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b): single job, RUNNABLE
  children: 0 succeeded, 0 running, 1 waiting, 0 failed
  shard  status    attempt  ended
  -----  --------  -------  ---------------------------------------------------------
  0      RUNNABLE  1 of 2   interrupted, exit 143: Essential container in task exited
                   2 of 2   -
"
    );
}

#[test]
fn children_not_yet_listed_are_said_to_be_missing() {
    let job = summarise(
        &parent(3, &[("SUBMITTED", 3)]),
        &[child(0, JobStatus::Submitted, vec![])],
    );
    assert!(
        job.text(false)
            .contains("children: 0 succeeded, 0 running, 1 waiting, 0 failed (1 of 3 listed)\n"),
        "{}",
        job.text(false)
    );
}

#[test]
fn a_child_that_ended_without_an_attempt_shows_batchs_reason() {
    let mut cancelled = child(1, JobStatus::Failed, vec![]);
    cancelled.status_reason = Some("Cancelled by stockcast-dev operator".into());
    let job = summarise(&parent(2, &[]), &[cancelled]);
    assert!(
        job.text(false)
            .ends_with("  1      FAILED  -        Cancelled by stockcast-dev operator\n"),
        "{}",
        job.text(false)
    );
}

#[test]
fn attempts_end_as_the_job_definition_tells_them_apart() {
    let check = |reason: &str, exit: Option<i32>, expected: AttemptEnd| {
        assert_eq!(
            AttemptEnd::of(Some(reason), exit),
            expected,
            "{reason} {exit:?}"
        );
    };
    let exited = "Essential container in task exited";
    check(
        "Host EC2 (instance i-0f1e2d3c4b5a69788) terminated.",
        None,
        AttemptEnd::SpotReclaim,
    );
    check(
        "Host EC2 (instance i-0f1e2d3c4b5a69788) terminated.",
        Some(143),
        AttemptEnd::SpotReclaim,
    );
    check(
        "Your Spot Task was interrupted.",
        None,
        AttemptEnd::SpotReclaim,
    );
    check(exited, Some(143), AttemptEnd::Interrupted);
    check(exited, Some(75), AttemptEnd::StorageUnavailable);
    check(exited, Some(0), AttemptEnd::Succeeded);
    check(exited, Some(1), AttemptEnd::Failed);
    check(
        "Job attempt duration exceeded timeout",
        None,
        AttemptEnd::Failed,
    );
}

#[test]
fn the_parents_summary_counts_the_children_in_one_call() {
    let counts = ChildCounts::of_parent(&parent(
        6,
        &[
            ("SUBMITTED", 0),
            ("PENDING", 1),
            ("RUNNABLE", 1),
            ("STARTING", 1),
            ("RUNNING", 1),
            ("SUCCEEDED", 1),
            ("FAILED", 1),
        ],
    ));
    let expected = ChildCounts {
        waiting: 2,
        running: 2,
        succeeded: 1,
        failed: 1,
        unknown: 0,
    };
    assert_eq!(counts, expected);
    let single = JobDetail::builder().status(JobStatus::Succeeded).build();
    assert_eq!(ChildCounts::of_parent(&single).succeeded, 1);
}

fn event(id: i64, kind: HistoryEventType) -> aws_sdk_sfn::types::builders::HistoryEventBuilder {
    HistoryEvent::builder()
        .id(id)
        .previous_event_id(id - 1)
        .timestamp(DateTime::from_secs(1_767_323_045 + id))
        .r#type(kind)
}

fn submitted(id: i64, resource_type: &str, output: &str) -> HistoryEvent {
    event(id, HistoryEventType::TaskSubmitted)
        .task_submitted_event_details(
            TaskSubmittedEventDetails::builder()
                .resource_type(resource_type)
                .resource("submitJob.sync")
                .output(output)
                .build()
                .expect("complete details"),
        )
        .build()
        .expect("complete event")
}

fn submit_answer(job_id: &str) -> String {
    serde_json::json!({
        "JobArn": format!("arn:aws:batch:eu-west-1:123456789012:job/{job_id}"),
        "JobId": job_id,
        "JobName": RUN,
        "SdkHttpMetadata": {"HttpStatusCode": 200},
        "SdkResponseMetadata": {"RequestId": "1f2e3d4c"}
    })
    .to_string()
}

#[test]
fn the_history_names_the_last_batch_job_submitted() {
    let started_training = serde_json::json!({
        "ExecutionArn": "arn:aws:states:eu-west-1:123456789012:execution:stockcast-dev-training:x",
        "StartDate": 1_767_323_045
    })
    .to_string();
    let mut events = vec![
        event(1, HistoryEventType::ExecutionStarted)
            .build()
            .expect("event"),
        submitted(2, "states", &started_training),
    ];
    assert_eq!(training_job_id(&events), None);
    events.push(submitted(3, "batch", &submit_answer("first-submit")));
    events.push(submitted(4, "batch", &submit_answer(PARENT)));
    let succeeded = event(5, HistoryEventType::TaskSucceeded)
        .task_succeeded_event_details(
            TaskSucceededEventDetails::builder()
                .resource_type("batch")
                .resource("submitJob.sync")
                .output(r#"{"JobId":"ignored","Status":"SUCCEEDED"}"#)
                .build()
                .expect("details"),
        )
        .build()
        .expect("event");
    assert_eq!(batch_task_event(&succeeded), Some(BatchTaskEvent::Ended));
    events.push(succeeded);
    assert_eq!(training_job_id(&events).as_deref(), Some(PARENT));
    assert_eq!(
        batch_task_event(&events[3]),
        Some(BatchTaskEvent::Submitted(PARENT.to_owned()))
    );
    assert_eq!(batch_task_event(&events[1]), None);
}
