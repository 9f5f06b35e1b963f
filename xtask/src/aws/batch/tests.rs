//! The Batch calls against the stand-in for Batch's API (`stand_in.rs`;
//! Batch itself cannot run here).

use serde_json::{Value, json};

use super::stand_in::{PARENT, REFUSED, array_of_150, attempt, job, stand_in};
use super::*;

#[tokio::test]
async fn an_array_job_is_described_with_every_child() {
    let (client, batch) = stand_in(array_of_150()).await;
    let job = training_job(&client, PARENT).await.expect("described");

    assert_eq!(job.array_size, Some(150));
    let expected = ChildCounts {
        succeeded: 148,
        running: 1,
        failed: 1,
        ..ChildCounts::default()
    };
    assert_eq!(job.counts, expected);
    let indexes: Vec<Option<u32>> = job.children.iter().map(|c| c.index).collect();
    assert_eq!(indexes, (0..150).map(Some).collect::<Vec<_>>());
    let notable: Vec<String> = job
        .children
        .iter()
        .filter(|c| c.notable())
        .flat_map(|c| c.attempts.iter().map(move |a| format!("{:?} {a}", c.index)))
        .collect();
    assert_eq!(
        notable,
        [
            "Some(1) Spot reclaim: Host EC2 (instance i-0f1e2d3c4b5a69788) terminated.",
            "Some(1) succeeded, exit 0: Essential container in task exited",
            "Some(2) failed, exit 1: Essential container in task exited",
        ]
    );

    // Every status listed, each of the array, SUCCEEDED over three pages.
    let lists = batch.calls("listjobs");
    let statuses: Vec<&str> = lists
        .iter()
        .filter_map(|b| b["jobStatus"].as_str())
        .collect();
    assert_eq!(
        statuses,
        [
            "SUBMITTED",
            "PENDING",
            "RUNNABLE",
            "STARTING",
            "RUNNING",
            "SUCCEEDED",
            "SUCCEEDED",
            "SUCCEEDED",
            "FAILED"
        ]
    );
    assert!(lists.iter().all(|b| b["arrayJobId"] == PARENT), "{lists:?}");
    let tokens: Vec<&Value> = lists.iter().map(|b| &b["nextToken"]).collect();
    assert_eq!(tokens[5..8], [&Value::Null, &json!("60"), &json!("120")]);
    // The parent, then the children in chunks of at most 100.
    let described: Vec<usize> = batch
        .calls("describejobs")
        .iter()
        .map(|b| b["jobs"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(described, [1, 100, 50]);
}

#[tokio::test]
async fn the_counts_come_from_the_parent_alone() {
    let (client, batch) = stand_in(array_of_150()).await;
    let counts = child_counts(&client, PARENT).await.expect("counted");
    assert_eq!(
        (counts.succeeded, counts.running, counts.failed),
        (148, 1, 1)
    );
    assert_eq!(batch.calls("describejobs").len(), 1);
    assert!(batch.calls("listjobs").is_empty());
}

#[tokio::test]
async fn a_single_job_lists_no_children() {
    let mut single = job(PARENT, "FAILED");
    single["attempts"] = json!([attempt("Essential container in task exited", Some(1))]);
    let (client, batch) = stand_in(vec![single]).await;
    let job = training_job(&client, PARENT).await.expect("described");
    assert_eq!(job.array_size, None);
    assert_eq!(job.children.len(), 1);
    assert_eq!(job.children[0].index, Some(0));
    assert_eq!(job.counts.failed, 1);
    assert!(batch.calls("listjobs").is_empty());
}

#[tokio::test]
async fn a_job_batch_has_forgotten_is_named() {
    let (client, _) = stand_in(Vec::new()).await;
    let error = training_job(&client, "gone").await.expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "Batch has no job gone: it forgets a job some days after the job ends"
    );
}

#[tokio::test]
async fn a_refused_call_names_what_was_asked_and_batchs_answer() {
    let (client, _) = stand_in(Vec::new()).await;
    let error = training_job(&client, REFUSED).await.expect_err("refused");
    let chain = format!("{error:#}");
    assert!(
        chain.starts_with("cannot describe Batch job refused: ")
            && chain.contains("User is not authorized to perform batch:DescribeJobs"),
        "{chain}"
    );
}
