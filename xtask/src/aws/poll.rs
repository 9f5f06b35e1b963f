//! The one poll loop of the AWS commands (issue 20, item 7): a change set
//! being computed, a stack settling, an execution running, a bucket being
//! emptied. Each waits at most its deadline (named where it is used) and,
//! when it gives up, says what it waited for, its id, the last status seen,
//! how long it waited and where to look next. Giving up stops the waiting,
//! never the operation: CloudFormation and Step Functions carry on.

use std::time::Duration;

use anyhow::bail;

/// What one poll saw: the result, or the status it is still in.
#[derive(Debug)]
pub enum Poll<T> {
    Done(T),
    Pending(String),
}

/// What a loop waits for, for its message when it gives up.
#[derive(Debug)]
pub struct Wait {
    /// "the change set", "stack", "execution".
    pub what: String,
    /// Its name, ARN or id.
    pub id: String,
    pub deadline: Duration,
    pub interval: Duration,
    /// Where to look next, for a person ("see it with `aws …`").
    pub next_step: String,
}

/// Calls `poll` every `interval` until it is done, it fails, or
/// `deadline` has passed since the first call.
pub async fn poll_until<T>(
    wait: &Wait,
    mut poll: impl AsyncFnMut() -> anyhow::Result<Poll<T>>,
) -> anyhow::Result<T> {
    let started = tokio::time::Instant::now();
    loop {
        let last = match poll().await? {
            Poll::Done(value) => return Ok(value),
            Poll::Pending(status) => status,
        };
        let waited = started.elapsed();
        if waited >= wait.deadline {
            bail!(
                "gave up waiting for {} {} after {}: its last status was {}; {}",
                wait.what,
                wait.id,
                human(waited),
                last,
                wait.next_step
            );
        }
        tokio::time::sleep(wait.interval.min(wait.deadline - waited)).await;
    }
}

/// `42 ms`, `3.5 s`, `12 min 5 s`.
fn human(d: Duration) -> String {
    match d.as_secs() {
        0 => format!("{} ms", d.as_millis()),
        s if s < 60 => format!("{:.1} s", d.as_secs_f64()),
        s => format!("{} min {} s", s / 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(deadline_ms: u64) -> Wait {
        Wait {
            what: "the change set".into(),
            id: "arn:aws:cloudformation:eu-west-1:1:changeSet/x".into(),
            deadline: Duration::from_millis(deadline_ms),
            interval: Duration::from_millis(10),
            next_step: "see it with `aws cloudformation describe-change-set`".into(),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_wait_that_never_ends_gives_up_at_its_deadline_and_says_on_what() {
        let mut polls = 0;
        let started = std::time::Instant::now();
        let error = runtime()
            .block_on(poll_until(&wait(50), async || {
                polls += 1;
                Ok(Poll::<()>::Pending(format!("CREATE_PENDING ({polls})")))
            }))
            .expect_err("never finishes");
        let took = started.elapsed();
        assert!(
            (Duration::from_millis(50)..Duration::from_secs(2)).contains(&took),
            "{took:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(
                "gave up waiting for the change set arn:aws:cloudformation:eu-west-1:1:changeSet/x after "
            ),
            "{message}"
        );
        assert!(
            message.contains(&format!("its last status was CREATE_PENDING ({polls});")),
            "{message}"
        );
        assert!(
            message.ends_with("see it with `aws cloudformation describe-change-set`"),
            "{message}"
        );
        assert!(polls >= 3, "polled every 10 ms: {polls}");
    }

    #[test]
    fn a_wait_returns_what_its_poll_finds_and_fails_with_its_error() {
        let mut polls = 0;
        let found = runtime().block_on(poll_until(&wait(5_000), async || {
            polls += 1;
            Ok(if polls < 3 {
                Poll::Pending("RUNNING".into())
            } else {
                Poll::Done(polls)
            })
        }));
        assert_eq!(found.expect("done"), 3);
        let failed = runtime().block_on(poll_until(&wait(5_000), async || {
            Err::<Poll<()>, _>(anyhow::anyhow!("cannot describe the execution"))
        }));
        assert_eq!(
            failed.expect_err("fails").to_string(),
            "cannot describe the execution"
        );
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(human(Duration::from_millis(42)), "42 ms");
        assert_eq!(human(Duration::from_millis(3_500)), "3.5 s");
        assert_eq!(human(Duration::from_secs(725)), "12 min 5 s");
    }
}
