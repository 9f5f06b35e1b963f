//! CloudFormation through change sets: preview before change, follow the
//! events while it happens, name the failing resource when it fails.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    Capability, Change, ChangeSetStatus, ChangeSetType, Parameter, StackStatus, Tag,
};

use super::poll::{Poll, Wait, poll_until};
use super::{Ctx, confirm};

/// How long CloudFormation may take to compute a change set (seconds, as a rule).
const CHANGE_SET_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// How long a stack may take to settle. CloudFormation has no limit of its
/// own; ours take minutes, the slowest being a deletion that waits for a
/// Batch compute environment or a VPC's network interfaces to go.
const STACK_DEADLINE: Duration = Duration::from_secs(60 * 60);

/// CloudFormation's limit for an inline template body.
pub const MAX_TEMPLATE_BODY: usize = 51_200;

/// How a stack's template reaches CloudFormation.
#[derive(Debug, Clone)]
pub enum TemplateSource {
    Body(String),
    /// An S3 URL (templates over 51,200 bytes).
    Url(String),
}

/// One stack to create or update.
#[derive(Debug, Clone)]
pub struct StackChange {
    pub stack_name: String,
    pub template: TemplateSource,
    pub parameters: BTreeMap<String, String>,
    pub env: String,
}

/// What happened to a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    NoChanges,
    Declined,
    Done,
}

pub fn client(ctx: &Ctx) -> Client {
    Client::new(&ctx.sdk)
}

/// The stack as DescribeStacks tells it, or `None` if it does not exist
/// (or was deleted).
async fn describe(
    client: &Client,
    name: &str,
) -> anyhow::Result<Option<aws_sdk_cloudformation::types::Stack>> {
    match client.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out
            .stacks()
            .first()
            .filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete))
            .cloned()),
        Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => Ok(None),
        Err(e) => Err(anyhow::Error::new(e.into_service_error()))
            .with_context(|| format!("cannot describe stack {name}")),
    }
}

/// The stack's status, or `None` if it does not exist (or was deleted).
pub async fn stack_status(client: &Client, name: &str) -> anyhow::Result<Option<StackStatus>> {
    Ok(describe(client, name)
        .await?
        .and_then(|s| s.stack_status().cloned()))
}

/// A stack's id (its ARN), which still names it once it is deleted: a
/// deleted stack's events and status can be read only by id.
pub async fn stack_id(client: &Client, name: &str) -> anyhow::Result<Option<String>> {
    Ok(describe(client, name)
        .await?
        .and_then(|s| s.stack_id().map(str::to_owned)))
}

/// A stack's outputs by key.
pub async fn outputs(client: &Client, name: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let out = client
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .with_context(|| format!("cannot read the outputs of {name}"))?;
    Ok(out
        .stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

fn replacement(change: &Change) -> &'static str {
    use aws_sdk_cloudformation::types::Replacement;
    match change.resource_change().and_then(|r| r.replacement()) {
        Some(Replacement::True) => "REPLACE",
        Some(Replacement::Conditional) => "maybe replace",
        _ => "",
    }
}

/// Prints a change set as a table: action, resource, type, replacement.
fn print_preview(stack: &str, changes: &[Change]) {
    println!("{stack}: {} change(s)", changes.len());
    println!(
        "  {:<8} {:<36} {:<36} replacement",
        "action", "resource", "type"
    );
    for change in changes {
        let Some(rc) = change.resource_change() else {
            continue;
        };
        let action = rc.action().map(|a| a.as_str()).unwrap_or("?");
        let symbol = match action {
            "Add" => "+",
            "Remove" => "-",
            _ => "~",
        };
        let replace = replacement(change);
        println!(
            "  {symbol} {:<6} {:<36} {:<36} {}",
            action,
            rc.logical_resource_id().unwrap_or("?"),
            rc.resource_type().unwrap_or("?"),
            if replace.is_empty() {
                String::new()
            } else {
                format!("!! {replace}")
            }
        );
    }
}

/// Creates a change set, previews it, asks, executes it and follows the
/// stack's events until it settles.
pub async fn apply(client: &Client, change: &StackChange, yes: bool) -> anyhow::Result<Outcome> {
    let exists = stack_status(client, &change.stack_name).await?;
    if let Some(status) = &exists
        && status.as_str().ends_with("_IN_PROGRESS")
    {
        bail!(
            "{} is {}: wait for it to finish (cargo xtask status) and deploy again",
            change.stack_name,
            status.as_str()
        );
    }
    let change_set_type = match &exists {
        Some(StackStatus::ReviewInProgress) | None => ChangeSetType::Create,
        Some(_) => ChangeSetType::Update,
    };
    let name = format!(
        "stockcast-{}",
        chrono_like_stamp(std::time::SystemTime::now())
    );
    let mut request = client
        .create_change_set()
        .stack_name(&change.stack_name)
        .change_set_name(&name)
        .change_set_type(change_set_type.clone())
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .tags(Tag::builder().key("project").value("stockcast").build())
        .tags(Tag::builder().key("environment").value(&change.env).build())
        .set_parameters(Some(
            change
                .parameters
                .iter()
                .map(|(k, v)| {
                    Parameter::builder()
                        .parameter_key(k)
                        .parameter_value(v)
                        .build()
                })
                .collect(),
        ));
    request = match &change.template {
        TemplateSource::Body(body) => request.template_body(body),
        TemplateSource::Url(url) => request.template_url(url),
    };
    let created = match request.send().await {
        Ok(created) => created,
        Err(e) => {
            let e = e.into_service_error();
            // UpdateStack's answer to an unchanged stack. AWS computes a
            // change set and fails it ("didn't contain changes", below);
            // moto refuses to create it with this message instead.
            if e.meta().message() == Some("No updates are to be performed.") {
                println!("{}: no changes", change.stack_name);
                return Ok(Outcome::NoChanges);
            }
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("cannot create a change set for {}", change.stack_name));
        }
    };
    // From here on the change set is named by its ARN: unambiguous, where a
    // name is only unique within its stack.
    let name = created.id().map(str::to_owned).unwrap_or(name);

    // Wait for the change set to be computed.
    let wait = Wait {
        what: format!("the change set of {}", change.stack_name),
        id: name.clone(),
        deadline: CHANGE_SET_DEADLINE,
        interval: Duration::from_millis(500),
        next_step: format!(
            "see why with `aws cloudformation describe-change-set --change-set-name {name}`, then deploy again (the next change set replaces it)"
        ),
    };
    let described = poll_until(&wait, async || {
        let out = client
            .describe_change_set()
            .stack_name(&change.stack_name)
            .change_set_name(&name)
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.into_service_error()))
            .context("cannot describe the change set")?;
        match out.status() {
            Some(ChangeSetStatus::CreateComplete) => Ok(Poll::Done(Some(out))),
            Some(ChangeSetStatus::Failed) => {
                let reason = out.status_reason().unwrap_or_default().to_owned();
                discard(client, &change.stack_name, &name).await;
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    return Ok(Poll::Done(None));
                }
                bail!("the change set of {} failed: {reason}", change.stack_name);
            }
            status => Ok(Poll::Pending(
                status.map_or("unknown", |s| s.as_str()).to_owned(),
            )),
        }
    })
    .await?;
    let Some(described) = described else {
        println!("{}: no changes", change.stack_name);
        return Ok(Outcome::NoChanges);
    };
    let changes = described.changes();
    if changes.is_empty() && change_set_type == ChangeSetType::Update {
        discard(client, &change.stack_name, &name).await;
        println!("{}: no changes", change.stack_name);
        return Ok(Outcome::NoChanges);
    }
    print_preview(&change.stack_name, changes);
    let answer = confirm(
        &format!("apply these changes to {}?", change.stack_name),
        yes,
    );
    if !matches!(answer, Ok(true)) {
        discard(client, &change.stack_name, &name).await;
        answer?;
        println!("{}: left unchanged", change.stack_name);
        return Ok(Outcome::Declined);
    }
    let started = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    client
        .execute_change_set()
        .stack_name(&change.stack_name)
        .change_set_name(&name)
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .with_context(|| format!("cannot execute the change set of {}", change.stack_name))?;
    follow(client, &change.stack_name, started).await?;
    Ok(Outcome::Done)
}

/// Deletes a change set that will not be executed (best effort: an
/// unexecuted change set costs nothing and expires with the next one).
async fn discard(client: &Client, stack: &str, change_set: &str) {
    let _ = client
        .delete_change_set()
        .stack_name(stack)
        .change_set_name(change_set)
        .send()
        .await;
}

/// `20261127T093012` for change set names (letters, digits and hyphens).
fn chrono_like_stamp(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("{secs}")
}

/// Prints the stack's events as they come until it settles; fails with the
/// failing resources and their reasons. `stack` is a name or, to follow a
/// deletion to its end, an id (`arn:…:stack/<name>/<uuid>`).
pub async fn follow(
    client: &Client,
    stack: &str,
    since: aws_smithy_types::DateTime,
) -> anyhow::Result<()> {
    let id = stack;
    let stack = id
        .strip_prefix("arn:")
        .and_then(|arn| arn.split('/').nth(1))
        .unwrap_or(id);
    let progress = indicatif::ProgressBar::new_spinner();
    progress.enable_steady_tick(Duration::from_millis(120));
    let mut seen = std::collections::HashSet::new();
    let mut failures = Vec::new();
    let mut quiet_polls = 0;
    let wait = Wait {
        what: "stack".into(),
        id: id.to_owned(),
        deadline: STACK_DEADLINE,
        interval: Duration::from_secs(2),
        next_step: format!(
            "CloudFormation carries on: watch it with `aws cloudformation describe-stack-events --stack-name {id}`, or `cargo xtask status` once it settles"
        ),
    };
    let settled = poll_until(&wait, async || {
        let events = client
            .describe_stack_events()
            .stack_name(id)
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.into_service_error()))
            .with_context(|| format!("cannot read the events of {stack}"))?;
        let mut fresh: Vec<_> = events
            .stack_events()
            .iter()
            .filter(|e| e.timestamp().is_some_and(|t| t.secs() >= since.secs()))
            .filter(|e| seen.insert(e.event_id().unwrap_or_default().to_owned()))
            .cloned()
            .collect();
        fresh.reverse();
        quiet_polls = if fresh.is_empty() { quiet_polls + 1 } else { 0 };
        for event in fresh {
            let status = event.resource_status().map(|s| s.as_str()).unwrap_or("?");
            let reason = event.resource_status_reason().unwrap_or_default();
            let line = format!(
                "  {:<40} {:<28} {:<22} {reason}",
                event.logical_resource_id().unwrap_or("?"),
                event.resource_type().unwrap_or("?"),
                status
            );
            // A hidden bar (not a terminal: CI, the deploy workflow, a
            // pipe) prints nothing, and the events are the progress there.
            if progress.is_hidden() {
                println!("{line}");
            } else {
                progress.println(line);
            }
            if status.ends_with("_FAILED") && !reason.contains("cancelled") {
                failures.push(format!(
                    "{} ({}): {reason}",
                    event.logical_resource_id().unwrap_or("?"),
                    event.resource_type().unwrap_or("?")
                ));
            }
        }
        let status = stack_status(client, id).await?;
        let text = status
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or("DELETED".into());
        progress.set_message(format!("{stack}: {text}"));
        if !text.ends_with("_IN_PROGRESS") {
            return Ok(Poll::Done(text));
        }
        // CloudFormation always settles; an emulator may leave a failed
        // stack in progress forever, so a failure followed by a minute of
        // silence ends the wait.
        if !failures.is_empty() && quiet_polls >= 30 {
            bail!("{stack} is stuck {text}; failed: {}", failures.join("; "));
        }
        Ok(Poll::Pending(text))
    })
    .await;
    progress.finish_and_clear();
    let text = settled?;
    println!("{stack}: {text}");
    let ok = matches!(
        text.as_str(),
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" | "DELETED"
    );
    if !ok {
        bail!(
            "{stack} ended {text}{}",
            if failures.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", failures.join("; "))
            }
        );
    }
    Ok(())
}
