//! CloudFormation through change sets: preview before change, follow the
//! events while it happens, name the failing resource when it fails.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::types::{
    Capability, Change, ChangeSetStatus, ChangeSetType, Parameter, StackEvent, StackStatus, Tag,
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
    let stack = &change.stack_name;
    let change_set_type = change_set_type(client, stack).await?;
    let Some(change_set) = create_change_set(client, change, &change_set_type).await? else {
        return Ok(no_changes(stack));
    };
    let Some(described) = computed_change_set(client, stack, &change_set).await? else {
        return Ok(no_changes(stack));
    };
    let changes = described.changes();
    if changes.is_empty() && change_set_type == ChangeSetType::Update {
        discard(client, stack, &change_set).await;
        return Ok(no_changes(stack));
    }
    print_preview(stack, changes);
    let answer = confirm(&format!("apply these changes to {stack}?"), yes);
    if !matches!(answer, Ok(true)) {
        discard(client, stack, &change_set).await;
        answer?;
        println!("{stack}: left unchanged");
        return Ok(Outcome::Declined);
    }
    execute(client, stack, &change_set).await?;
    Ok(Outcome::Done)
}

fn no_changes(stack: &str) -> Outcome {
    println!("{stack}: no changes");
    Outcome::NoChanges
}

/// Create for a stack that does not exist (or that only a change set
/// created), update otherwise; a stack still changing is refused.
async fn change_set_type(client: &Client, stack: &str) -> anyhow::Result<ChangeSetType> {
    let exists = stack_status(client, stack).await?;
    if let Some(status) = &exists
        && status.as_str().ends_with("_IN_PROGRESS")
    {
        bail!(
            "{stack} is {}: wait for it to finish (cargo xtask status) and deploy again",
            status.as_str()
        );
    }
    Ok(match &exists {
        Some(StackStatus::ReviewInProgress) | None => ChangeSetType::Create,
        Some(_) => ChangeSetType::Update,
    })
}

/// Asks CloudFormation for a change set and returns its ARN, or `None`
/// when the stack would not change.
async fn create_change_set(
    client: &Client,
    change: &StackChange,
    change_set_type: &ChangeSetType,
) -> anyhow::Result<Option<String>> {
    let name = format!(
        "stockcast-{}",
        chrono_like_stamp(std::time::SystemTime::now())
    );
    let parameters = change
        .parameters
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    let mut request = client
        .create_change_set()
        .stack_name(&change.stack_name)
        .change_set_name(&name)
        .change_set_type(change_set_type.clone())
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .tags(Tag::builder().key("project").value("stockcast").build())
        .tags(Tag::builder().key("environment").value(&change.env).build())
        .set_parameters(Some(parameters));
    request = match &change.template {
        TemplateSource::Body(body) => request.template_body(body),
        TemplateSource::Url(url) => request.template_url(url),
    };
    match request.send().await {
        // From here on the change set is named by its ARN: unambiguous,
        // where a name is only unique within its stack.
        Ok(created) => Ok(Some(created.id().map_or(name, str::to_owned))),
        Err(e) => {
            let e = e.into_service_error();
            // UpdateStack's answer to an unchanged stack. AWS computes a
            // change set and fails it ("didn't contain changes", below);
            // moto refuses to create it with this message instead.
            if e.meta().message() == Some("No updates are to be performed.") {
                return Ok(None);
            }
            Err(anyhow::Error::new(e))
                .with_context(|| format!("cannot create a change set for {}", change.stack_name))
        }
    }
}

/// Waits, for at most `CHANGE_SET_DEADLINE`, until the change set is
/// computed; `None` when it failed for want of changes.
async fn computed_change_set(
    client: &Client,
    stack: &str,
    change_set: &str,
) -> anyhow::Result<Option<DescribeChangeSetOutput>> {
    let wait = Wait {
        what: format!("the change set of {stack}"),
        id: change_set.to_owned(),
        deadline: CHANGE_SET_DEADLINE,
        interval: Duration::from_millis(500),
        next_step: format!(
            "see why with `aws cloudformation describe-change-set --change-set-name {change_set}`, then deploy again (the next change set replaces it)"
        ),
    };
    poll_until(&wait, async || {
        let out = client
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.into_service_error()))
            .context("cannot describe the change set")?;
        match out.status() {
            Some(ChangeSetStatus::CreateComplete) => Ok(Poll::Done(Some(out))),
            Some(ChangeSetStatus::Failed) => {
                let reason = out.status_reason().unwrap_or_default().to_owned();
                discard(client, stack, change_set).await;
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    return Ok(Poll::Done(None));
                }
                bail!("the change set of {stack} failed: {reason}");
            }
            status => Ok(Poll::Pending(
                status.map_or("unknown", |s| s.as_str()).to_owned(),
            )),
        }
    })
    .await
}

/// Executes the change set and follows the stack until it settles.
async fn execute(client: &Client, stack: &str, change_set: &str) -> anyhow::Result<()> {
    let started = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    client
        .execute_change_set()
        .stack_name(stack)
        .change_set_name(change_set)
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e.into_service_error()))
        .with_context(|| format!("cannot execute the change set of {stack}"))?;
    follow(client, stack, started).await
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
    let mut events = EventLog::new(since);
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
        let described = client
            .describe_stack_events()
            .stack_name(id)
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.into_service_error()))
            .with_context(|| format!("cannot read the events of {stack}"))?;
        events.show(described.stack_events());
        let status = stack_status(client, id).await?;
        let text = status
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or("DELETED".into());
        events.progress.set_message(format!("{stack}: {text}"));
        if !text.ends_with("_IN_PROGRESS") {
            return Ok(Poll::Done(text));
        }
        // CloudFormation always settles; an emulator may leave a failed
        // stack in progress forever, so a failure followed by a minute of
        // silence ends the wait.
        if !events.failures.is_empty() && events.quiet_polls >= 30 {
            bail!(
                "{stack} is stuck {text}; failed: {}",
                events.failures.join("; ")
            );
        }
        Ok(Poll::Pending(text))
    })
    .await;
    events.progress.finish_and_clear();
    let text = settled?;
    println!("{stack}: {text}");
    let ok = matches!(
        text.as_str(),
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" | "DELETED"
    );
    if !ok {
        bail!(
            "{stack} ended {text}{}",
            if events.failures.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", events.failures.join("; "))
            }
        );
    }
    Ok(())
}

/// The events of a stack change seen so far, printed once each, and the
/// failures among them.
#[derive(Debug)]
struct EventLog {
    since: aws_smithy_types::DateTime,
    seen: HashSet<String>,
    failures: Vec<String>,
    /// Polls in a row that brought no new event.
    quiet_polls: u32,
    progress: indicatif::ProgressBar,
}

impl EventLog {
    fn new(since: aws_smithy_types::DateTime) -> EventLog {
        let progress = indicatif::ProgressBar::new_spinner();
        progress.enable_steady_tick(Duration::from_millis(120));
        EventLog {
            since,
            seen: HashSet::new(),
            failures: Vec::new(),
            quiet_polls: 0,
            progress,
        }
    }

    /// Prints the events (newest first, as CloudFormation lists them) not
    /// seen yet, oldest first, and notes the failures.
    fn show(&mut self, events: &[StackEvent]) {
        let mut fresh: Vec<&StackEvent> = events
            .iter()
            .filter(|e| e.timestamp().is_some_and(|t| t.secs() >= self.since.secs()))
            .filter(|e| {
                self.seen
                    .insert(e.event_id().unwrap_or_default().to_owned())
            })
            .collect();
        fresh.reverse();
        self.quiet_polls = if fresh.is_empty() {
            self.quiet_polls + 1
        } else {
            0
        };
        for event in fresh {
            let status = event.resource_status().map(|s| s.as_str()).unwrap_or("?");
            let reason = event.resource_status_reason().unwrap_or_default();
            let resource = event.logical_resource_id().unwrap_or("?");
            let kind = event.resource_type().unwrap_or("?");
            let line = format!("  {resource:<40} {kind:<28} {status:<22} {reason}");
            // A hidden bar (not a terminal: CI, the deploy workflow, a
            // pipe) prints nothing, and the events are the progress there.
            if self.progress.is_hidden() {
                println!("{line}");
            } else {
                self.progress.println(line);
            }
            if status.ends_with("_FAILED") && !reason.contains("cancelled") {
                self.failures.push(format!("{resource} ({kind}): {reason}"));
            }
        }
    }
}
