//! The Batch calls behind the training job's view (`training_job.rs`):
//! DescribeJobs on the job, ListJobs for an array's children, DescribeJobs
//! on the children. Only the calls: what their answers mean is decided in
//! `training_job.rs`.

use std::collections::HashSet;

use anyhow::Context;
use aws_sdk_batch::types::{JobDetail, JobStatus};

use super::Ctx;
use super::training_job::{ChildCounts, TrainingJob, summarise};

/// DescribeJobs takes at most 100 job ids a call.
const DESCRIBE_CHUNK: usize = 100;

/// ListJobs lists one status a call (without one, only RUNNING; its
/// filters, which would list every status, do not apply to an array's
/// children), so the children are listed status by status. In lifecycle
/// order, so that a child moving on while we list is listed again under its
/// later status rather than missed (ids are deduplicated).
const LIFECYCLE: [JobStatus; 7] = [
    JobStatus::Submitted,
    JobStatus::Pending,
    JobStatus::Runnable,
    JobStatus::Starting,
    JobStatus::Running,
    JobStatus::Succeeded,
    JobStatus::Failed,
];

pub fn client(ctx: &Ctx) -> aws_sdk_batch::Client {
    aws_sdk_batch::Client::new(&ctx.sdk)
}

/// The job and all its children, described.
pub async fn training_job(
    batch: &aws_sdk_batch::Client,
    job_id: &str,
) -> anyhow::Result<TrainingJob> {
    let parent = parent(batch, job_id).await?;
    let children = match parent.array_properties().and_then(|a| a.size()) {
        Some(_) => describe(batch, &list_children(batch, job_id).await?).await?,
        None => Vec::new(),
    };
    Ok(summarise(&parent, &children))
}

/// The children's counts from one call (the array's status summary), for a
/// poll loop.
pub async fn child_counts(
    batch: &aws_sdk_batch::Client,
    job_id: &str,
) -> anyhow::Result<ChildCounts> {
    Ok(ChildCounts::of_parent(&parent(batch, job_id).await?))
}

async fn parent(batch: &aws_sdk_batch::Client, job_id: &str) -> anyhow::Result<JobDetail> {
    describe(batch, &[job_id.to_owned()])
        .await?
        .into_iter()
        .next()
        .with_context(|| {
            format!("Batch has no job {job_id}: it forgets a job some days after the job ends")
        })
}

/// The ids of an array job's children, in every status.
async fn list_children(
    batch: &aws_sdk_batch::Client,
    array_job_id: &str,
) -> anyhow::Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for status in LIFECYCLE {
        let mut pages = batch
            .list_jobs()
            .array_job_id(array_job_id)
            .job_status(status)
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| anyhow::Error::new(e.into_service_error()))
                .with_context(|| format!("cannot list the children of Batch job {array_job_id}"))?;
            for id in page.job_summary_list().iter().filter_map(|s| s.job_id()) {
                if seen.insert(id.to_owned()) {
                    ids.push(id.to_owned());
                }
            }
        }
    }
    Ok(ids)
}

/// The jobs Batch knows of `ids` (it leaves out those it does not).
async fn describe(batch: &aws_sdk_batch::Client, ids: &[String]) -> anyhow::Result<Vec<JobDetail>> {
    let mut jobs = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(DESCRIBE_CHUNK) {
        let answer = batch
            .describe_jobs()
            .set_jobs(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.into_service_error()))
            .with_context(|| match chunk {
                [one] => format!("cannot describe Batch job {one}"),
                [first, ..] => format!("cannot describe {} Batch jobs from {first}", chunk.len()),
                [] => "cannot describe Batch jobs".to_owned(),
            })?;
        jobs.extend_from_slice(answer.jobs());
    }
    Ok(jobs)
}

#[cfg(test)]
pub mod stand_in;
#[cfg(test)]
mod tests;
