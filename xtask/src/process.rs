//! The one way xtask runs another program (cargo, the validators, pip,
//! npm, apt-get, the servers it measures): started, waited for and judged
//! here, so that every failure names what the command was for, the program,
//! its exit status and, where it was captured, what it printed between
//! rulers. A red CI log then says which tool failed and why without a re-run.

use std::fmt;
use std::process::{Child, Command, ExitStatus, Output};

/// A program that could not be started, or that ran and failed.
#[derive(Debug)]
pub struct CommandError {
    /// What the command was for: "installing cfn-lint==1.58.0".
    what: String,
    /// The program as given to `Command::new`.
    program: String,
    failure: Failure,
}

#[derive(Debug)]
enum Failure {
    /// It could not be started (or waited for).
    Start(std::io::Error),
    /// It exited unsuccessfully; `printed` is its captured stdout and
    /// stderr (empty when they went to the terminal).
    Exit { status: ExitStatus, printed: String },
}

impl CommandError {
    fn start(what: &str, command: &Command, error: std::io::Error) -> CommandError {
        CommandError {
            what: what.to_owned(),
            program: program(command),
            failure: Failure::Start(error),
        }
    }

    fn exit(what: &str, command: &Command, status: ExitStatus, output: Option<&Output>) -> Self {
        let printed = output.map_or_else(String::new, |output| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
            .trim_end()
            .to_owned()
        });
        CommandError {
            what: what.to_owned(),
            program: program(command),
            failure: Failure::Exit { status, printed },
        }
    }

    /// Whether the program ran and said no (a finding), rather than not
    /// running at all (a broken installation).
    pub fn exited(&self) -> bool {
        matches!(self.failure, Failure::Exit { .. })
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = std::path::Path::new(&self.program)
            .file_name()
            .map_or(self.program.clone(), |n| n.to_string_lossy().into_owned());
        match &self.failure {
            Failure::Start(e) => write!(f, "{}: failed to start {}: {e}", self.what, self.program),
            Failure::Exit { status, printed } if printed.is_empty() => {
                write!(f, "{} failed ({name}, {status})", self.what)
            }
            Failure::Exit { status, printed } => {
                let ruler = format!("---- {name} ----");
                write!(
                    f,
                    "{} failed ({name}, {status})\n{ruler}\n{printed}\n{}",
                    self.what,
                    "-".repeat(ruler.chars().count())
                )
            }
        }
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            Failure::Start(e) => Some(e),
            Failure::Exit { .. } => None,
        }
    }
}

fn program(command: &Command) -> String {
    command.get_program().to_string_lossy().into_owned()
}

/// Runs `command` on the terminal (its output is the user's to watch) and
/// returns how it exited, whatever that was.
pub fn status(what: &str, command: &mut Command) -> Result<ExitStatus, CommandError> {
    command
        .status()
        .map_err(|e| CommandError::start(what, command, e))
}

/// Runs `command` on the terminal; fails unless it succeeds.
pub fn run(what: &str, command: &mut Command) -> Result<(), CommandError> {
    let status = status(what, command)?;
    if !status.success() {
        return Err(CommandError::exit(what, command, status, None));
    }
    Ok(())
}

/// Runs `command` with its output captured (stdout and stderr, unless the
/// command sends them elsewhere); fails unless it succeeds, with what it
/// printed.
pub fn output(what: &str, command: &mut Command) -> Result<Output, CommandError> {
    let output = command
        .output()
        .map_err(|e| CommandError::start(what, command, e))?;
    if !output.status.success() {
        return Err(CommandError::exit(
            what,
            command,
            output.status,
            Some(&output),
        ));
    }
    Ok(output)
}

/// Starts `command` (a server, or a program whose output is read as it
/// comes) and leaves it running.
pub fn spawn(what: &str, command: &mut Command) -> Result<Child, CommandError> {
    command
        .spawn()
        .map_err(|e| CommandError::start(what, command, e))
}

/// Waits for a program [`spawn`] started; fails unless it succeeds.
pub fn wait(what: &str, command: &Command, child: &mut Child) -> Result<(), CommandError> {
    let status = child
        .wait()
        .map_err(|e| CommandError::start(what, command, e))?;
    if !status.success() {
        return Err(CommandError::exit(what, command, status, None));
    }
    Ok(())
}

/// The commit this checkout is at, for lineage (the local pipeline's
/// versions, the training image's label); `None` outside git.
pub fn git_commit() -> Option<String> {
    let output = output(
        "reading the commit",
        Command::new("git").args(["rev-parse", "HEAD"]),
    )
    .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_purpose_the_program_its_status_and_its_output() {
        let error = output(
            "checking the weather",
            Command::new("sh").args(["-c", "echo cloudy; echo rain >&2; exit 3"]),
        )
        .expect_err("exits 3");
        assert!(error.exited());
        assert_eq!(
            error.to_string(),
            "checking the weather failed (sh, exit status: 3)\n---- sh ----\ncloudy\nrain\n------------"
        );
    }

    #[test]
    fn a_program_that_is_not_there_is_named() {
        let error = run(
            "checking the weather",
            &mut Command::new("/no/such/barometer"),
        )
        .expect_err("cannot start");
        assert!(!error.exited());
        assert!(
            error
                .to_string()
                .starts_with("checking the weather: failed to start /no/such/barometer: "),
            "{error}"
        );
    }

    #[test]
    fn a_failure_on_the_terminal_names_the_status() {
        let error =
            run("checking the weather", Command::new("false").arg("x")).expect_err("false fails");
        assert_eq!(
            error.to_string(),
            "checking the weather failed (false, exit status: 1)"
        );
    }
}
