//! `cargo xtask destroy`: delete the environment's stacks, newest first.
//! The data stack's bucket and key are retained by their DeletionPolicy;
//! `--purge-data` then empties and deletes the buckets (every object
//! version) and schedules the key's deletion (KMS waits 7 days at least).

use std::time::Duration;

use anyhow::Context;
use stockcast::infra::render::STACKS;

use super::poll::{Poll, Wait, poll_until};
use super::{Ctx, cfn, confirm};
use crate::flags;

impl flags::Destroy {
    pub fn run(self) -> anyhow::Result<()> {
        let ctx = self.aws.context()?;
        let client = cfn::client(&ctx);
        let stacks: Vec<String> = STACKS
            .iter()
            .rev()
            .filter(|s| **s != "bootstrap" || self.purge_data)
            .map(|s| ctx.stack_name(s))
            .collect();
        let question = format!(
            "delete {}{}?",
            stacks.join(", "),
            if self.purge_data {
                " and ALL DATA (raw prices, models, runs)"
            } else {
                " (the data bucket and key are kept)"
            }
        );
        if !confirm(&question, self.yes)? {
            println!("nothing deleted");
            return Ok(());
        }
        ctx.runtime.block_on(async {
            // Retained resources are only known while the stacks exist.
            let retained = if self.purge_data {
                retained(&ctx).await?
            } else {
                Vec::new()
            };
            for stack in &stacks {
                let Some(id) = cfn::stack_id(&client, stack).await? else {
                    println!("{stack}: not deployed");
                    continue;
                };
                let since = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
                if self.purge_data
                    && stack.ends_with("-bootstrap")
                    && let Some(bucket) = cfn::outputs(&client, stack)
                        .await?
                        .get("ArtifactBucketName")
                {
                    empty_bucket(&ctx, bucket).await?;
                }
                client
                    .delete_stack()
                    .stack_name(stack)
                    .send()
                    .await
                    .map_err(|e| anyhow::Error::new(e.into_service_error()))
                    .with_context(|| format!("cannot delete {stack}"))?;
                // By id: once deleted, the stack has no name any more.
                cfn::follow(&client, &id, since).await?;
            }
            for resource in retained {
                purge(&ctx, &resource).await?;
            }
            Ok(())
        })
    }
}

/// A resource the data stack leaves behind.
#[derive(Debug)]
enum Retained {
    Bucket(String),
    Key(String),
}

async fn retained(ctx: &Ctx) -> anyhow::Result<Vec<Retained>> {
    let client = cfn::client(ctx);
    let name = ctx.stack_name("data");
    if cfn::stack_status(&client, &name).await?.is_none() {
        return Ok(Vec::new());
    }
    let resources = client
        .describe_stack_resources()
        .stack_name(&name)
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .context("cannot list the data stack's resources")?;
    Ok(resources
        .stack_resources()
        .iter()
        .filter_map(|r| {
            let id = r.physical_resource_id()?.to_owned();
            match r.resource_type()? {
                "AWS::S3::Bucket" => Some(Retained::Bucket(id)),
                "AWS::KMS::Key" => Some(Retained::Key(id)),
                _ => None,
            }
        })
        .collect())
}

/// How long emptying a bucket may take: a pass deletes up to 1,000
/// versions, so this is hours of objects; a bucket that never empties has
/// something still writing to it.
const EMPTY_BUCKET_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Deletes every version and delete marker in a bucket.
async fn empty_bucket(ctx: &Ctx, bucket: &str) -> anyhow::Result<()> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let s3 = aws_sdk_s3::Client::new(&ctx.sdk);
    let wait = Wait {
        what: "bucket".into(),
        id: format!("s3://{bucket}"),
        deadline: EMPTY_BUCKET_DEADLINE,
        interval: Duration::from_millis(100),
        next_step: format!(
            "stop whatever still writes to it and run `cargo xtask destroy --env {} --purge-data` again",
            ctx.env()
        ),
    };
    poll_until(&wait, async || {
        let listed = s3
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.into_service_error()))
            .with_context(|| format!("cannot list s3://{bucket}"))?;
        let objects: Vec<ObjectIdentifier> = listed
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                listed
                    .delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key?)
                    .set_version_id(version.map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if objects.is_empty() {
            return Ok(Poll::Done(()));
        }
        let count = objects.len();
        println!("  s3://{bucket}: deleting {count} object version(s)");
        s3.delete_objects()
            .bucket(bucket)
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.into_service_error()))
            .with_context(|| format!("cannot empty s3://{bucket}"))?;
        Ok(Poll::Pending(format!(
            "{count} object version(s) deleted in the last pass, more remain"
        )))
    })
    .await
}

async fn purge(ctx: &Ctx, resource: &Retained) -> anyhow::Result<()> {
    match resource {
        Retained::Bucket(bucket) => {
            empty_bucket(ctx, bucket).await?;
            aws_sdk_s3::Client::new(&ctx.sdk)
                .delete_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| anyhow::Error::new(e.into_service_error()))
                .with_context(|| format!("cannot delete s3://{bucket}"))?;
            println!("deleted s3://{bucket}");
        }
        Retained::Key(key) => {
            aws_sdk_kms::Client::new(&ctx.sdk)
                .schedule_key_deletion()
                .key_id(key)
                .pending_window_in_days(7)
                .send()
                .await
                .map_err(|e| anyhow::Error::new(e.into_service_error()))
                .with_context(|| format!("cannot schedule the deletion of key {key}"))?;
            println!(
                "key {key}: deletion scheduled in 7 days (cancel with aws kms cancel-key-deletion)"
            );
        }
    }
    Ok(())
}
