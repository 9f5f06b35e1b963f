//! The interpreter's side of a scenario: the runner process
//! (tests/simulate/runner.mjs on Node), the JSON lines exchanged with it,
//! the answers to its `.waitForTaskToken` tasks, and the deadline that
//! stops an execution that would not end.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value as Json, json};
use stockcast::steps::{ApprovalAnswer, ApprovalResult, ErrorName, RunInput, StepError};
use stockcast::store::Store;

use super::Simulation;
use super::check::RunnerResult;
use super::scenarios::Answer;
use crate::process;

/// A scenario that runs longer than this is stopped and fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

impl Simulation {
    /// Runs the runner on `job`, answering its task tokens, and returns its
    /// result.
    pub(super) fn interpret(
        &self,
        job: &Path,
        dir: &Path,
        store: &Store,
        input: &RunInput,
        answer: Option<Answer>,
    ) -> anyhow::Result<RunnerResult> {
        let log = std::fs::File::create(dir.join("runner.log"))?;
        let mut child = process::spawn(
            "running the interpreter",
            Command::new(&self.node)
                .arg(&self.runner)
                .arg(job)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log),
        )?;
        let mut channel = Channel::open(&mut child)?;
        let watchdog = Watchdog::start(child, SCENARIO_TIMEOUT);
        // On an error the watchdog is left to stop the runner at the deadline.
        let result = self.converse(&mut channel, store, input, answer)?;
        let (timed_out, status) = watchdog.stop()?;
        if timed_out {
            bail!(
                "the execution did not end within {} s; see {}",
                SCENARIO_TIMEOUT.as_secs(),
                dir.display()
            );
        }
        result.with_context(|| {
            format!(
                "the runner ended ({status}) without a result; see {}",
                dir.join("runner.log").display()
            )
        })
    }

    /// Reads the runner's messages until it ends: answers each task token
    /// and returns the result it reported, if it did.
    fn converse(
        &self,
        channel: &mut Channel,
        store: &Store,
        input: &RunInput,
        answer: Option<Answer>,
    ) -> anyhow::Result<Option<RunnerResult>> {
        let mut result = None;
        while let Some(message) = channel.next()? {
            match message["event"].as_str() {
                Some("task_token") => {
                    let token = message["token"].as_str().unwrap_or("").to_owned();
                    self.answer(channel, store, input, &token, answer)?;
                }
                Some("result") => {
                    result = Some(
                        serde_json::from_value(message)
                            .context("the runner's result is malformed")?,
                    );
                }
                _ => bail!("the runner said something unexpected: {message}"),
            }
        }
        Ok(result)
    }

    /// Answers a `.waitForTaskToken` task as the scenario says: through the
    /// library's approval code (which claims the answer and sends the kept
    /// token), or by letting the state time out.
    fn answer(
        &self,
        channel: &mut Channel,
        store: &Store,
        input: &RunInput,
        token: &str,
        answer: Option<Answer>,
    ) -> anyhow::Result<()> {
        let answer =
            answer.context("the execution waits for an approval the scenario does not give")?;
        let approve = match answer {
            Answer::Approve => true,
            Answer::Reject => false,
            Answer::Timeout => {
                let pending = self
                    .runtime
                    .block_on(stockcast::approval::pending(store, &input.run_id))?
                    .context("the gate kept no task token")?;
                if pending.task_token != token {
                    bail!(
                        "the gate kept token {:?}, the execution issued {token:?}",
                        pending.task_token
                    );
                }
                return channel.deliver(json!({"token": token, "timeout": true}));
            }
        };
        let request = ApprovalAnswer {
            run_id: input.run_id.clone(),
            approve,
            reason: Some(
                if approve {
                    "plots look right"
                } else {
                    "plots look wrong"
                }
                .into(),
            ),
            by: Some("cargo xtask simulate".into()),
        };
        self.runtime
            .block_on(stockcast::approval::answer(
                store,
                &request,
                async |token: &str, result: &ApprovalResult| {
                    channel.send_task_result(token, result)
                },
            ))
            .map_err(|e| anyhow::anyhow!("answering the approval failed: {e}"))?;
        Ok(())
    }
}

/// Kills the runner if the execution outlives its deadline.
struct Watchdog {
    child: Arc<Mutex<Child>>,
    done: Arc<AtomicBool>,
    thread: JoinHandle<bool>,
}

impl Watchdog {
    fn start(child: Child, timeout: Duration) -> Watchdog {
        let child = Arc::new(Mutex::new(child));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (child, done) = (child.clone(), done.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + timeout;
                while !done.load(Ordering::Relaxed) {
                    if Instant::now() > deadline {
                        if let Ok(mut child) = child.lock() {
                            let _ = child.kill();
                        }
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                false
            })
        };
        Watchdog {
            child,
            done,
            thread,
        }
    }

    /// Stops watching and waits for the runner: whether the deadline
    /// killed it, and how it ended.
    fn stop(self) -> anyhow::Result<(bool, ExitStatus)> {
        self.done.store(true, Ordering::Relaxed);
        let timed_out = self.thread.join().unwrap_or(false);
        let status = self
            .child
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned lock"))?
            .wait()?;
        Ok((timed_out, status))
    }
}

/// The runner's stdin and stdout: JSON lines both ways.
struct Channel {
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Channel {
    /// The pipes of a runner just started.
    fn open(child: &mut Child) -> anyhow::Result<Channel> {
        let stdin = child.stdin.take().context("the runner has no stdin")?;
        let stdout = child.stdout.take().context("the runner has no stdout")?;
        Ok(Channel {
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    fn next(&mut self) -> anyhow::Result<Option<Json>> {
        match self.lines.next() {
            None => Ok(None),
            Some(line) => {
                let line = line.context("failed to read the runner's output")?;
                Ok(Some(
                    serde_json::from_str(&line)
                        .with_context(|| format!("the runner printed {line:?}"))?,
                ))
            }
        }
    }

    /// Sends an answer for a waiting task and reads whether it was taken.
    fn deliver(&mut self, answer: Json) -> anyhow::Result<()> {
        writeln!(self.stdin, "{answer}").context("failed to write to the runner")?;
        let reply = self
            .next()?
            .context("the runner ended while a task waited")?;
        if reply["event"] != "task_answered" || reply["ok"] != true {
            bail!("the runner refused the answer: {reply}");
        }
        Ok(())
    }

    /// SendTaskSuccess / SendTaskFailure, as `stockcast::functions::StepFunctions`
    /// sends them.
    fn send_task_result(&mut self, token: &str, result: &ApprovalResult) -> Result<(), StepError> {
        let answer = if result.approved {
            json!({"token": token, "output": result})
        } else {
            let cause = result.rejection_cause();
            json!({"token": token, "error": ErrorName::GateApprovalRejected.as_str(), "cause": cause})
        };
        self.deliver(answer)
            .map_err(|e| StepError::new(ErrorName::ServiceUnavailable, format!("{e:#}")))
    }
}
