//! The child MCP server of one session: started in a process group of its
//! own, its stderr passed through with the session's prefix, and ended with
//! SIGTERM, then SIGKILL after a grace period.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use crate::bridge::{Line, LineReader};
use crate::error::CliError;

/// How long a child has to exit once its stdin is closed, before SIGTERM.
const EOF_WAIT: Duration = Duration::from_millis(500);

/// Longest stderr line passed through whole.
const MAX_STDERR_LINE: usize = 64 * 1024;

/// A running child and its pipes.
pub(crate) struct ChildServer {
    pub(crate) child: Child,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) pid: Option<u32>,
}

/// Start `command` with piped stdio, in a new process group (so that a
/// signal for it reaches what it starts, such as `npx`'s node).
pub(crate) fn spawn(command: &[String], prefix: String) -> Result<ChildServer, CliError> {
    let Some((program, args)) = command.split_first() else {
        return Err(CliError::Usage("no command to serve".into()));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|source| CliError::Spawn {
        command: command.join(" "),
        source,
    })?;
    let pid = child.id();
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(pass_stderr(stderr, prefix));
    }
    Ok(ChildServer {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        child,
        pid,
    })
}

/// Each stderr line of the child, with the session's prefix.
async fn pass_stderr(stderr: ChildStderr, prefix: String) {
    let mut lines = LineReader::new(stderr, MAX_STDERR_LINE);
    // Bounded by the child's stderr.
    while let Ok(Some(line)) = lines.next().await {
        #[allow(clippy::print_stderr)]
        match line {
            Line::Text(text) => eprintln!("{prefix} {}", String::from_utf8_lossy(&text)),
            Line::TooLong => eprintln!("{prefix} (a line of more than {MAX_STDERR_LINE} bytes)"),
        }
    }
}

#[cfg(unix)]
fn signal_group(pid: u32, signal: nix::sys::signal::Signal) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
}

impl ChildServer {
    /// End the child as the MCP stdio transport asks: close its stdin and
    /// give it a moment to exit, then SIGTERM its process group, wait up to
    /// `grace`, then SIGKILL the group. Returns how it exited.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        drop(self.stdin.take());
        let on_eof = grace.min(EOF_WAIT);
        if let Ok(Ok(status)) = tokio::time::timeout(on_eof, self.child.wait()).await {
            self.kill_group();
            return Some(status);
        }
        #[cfg(unix)]
        if let Some(pid) = self.pid {
            signal_group(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                tracing::warn!(pid = self.pid, "the MCP server ignored SIGTERM; killing it");
                let _ = self.child.start_kill();
                tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        self.kill_group();
        status
    }

    /// SIGKILL whatever is left in the child's process group.
    pub(crate) fn kill_group(&self) {
        #[cfg(unix)]
        if let Some(pid) = self.pid {
            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// "exited with code 0", "was killed by signal 9".
pub(crate) fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        None => "did not exit".into(),
        Some(status) => match status.code() {
            Some(code) => format!("exited with code {code}"),
            None => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    if let Some(signal) = status.signal() {
                        return format!("was killed by signal {signal}");
                    }
                }
                "exited".into()
            }
        },
    }
}
