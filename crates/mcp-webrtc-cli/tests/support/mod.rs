//! Real processes for the CLI's tests: the `mcp-webrtc` binary as relay,
//! `serve` and `connect`, the third-party servers they bridge (installed on
//! first use from the committed lockfiles), and checks that no process is
//! left behind.
#![allow(
    dead_code, // each test binary uses a different part
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

pub mod deps;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest any one wait in these tests may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The token every test relay accepts.
pub const TOKEN: &str = "cli-test-token";

/// The `mcp-webrtc` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-webrtc"))
}

/// Cargo's target directory (the binary is in `<target>/<profile>/`).
pub fn target_dir() -> PathBuf {
    bin()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("the binary sits in <target>/<profile>/")
}

/// Our own rmcp stdio server (`examples/stdio_server.rs`), built with the
/// tests by `cargo test`.
pub fn stdio_server() -> PathBuf {
    let path = bin()
        .parent()
        .expect("profile dir")
        .join("examples")
        .join("stdio_server");
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p mcp-webrtc-cli` builds it (or `cargo build -p mcp-webrtc-cli --example stdio_server`)",
        path.display()
    );
    path
}

/// Lines a process wrote on one of its streams, as they come.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(stream: impl Read + Send + 'static, echo: &'static str) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                eprintln!("{echo} {line}");
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// The first line matching `pick`, waiting for it up to `within`.
    pub fn wait_for<T>(
        &self,
        within: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(found) = self.all().iter().find_map(|l| pick(l)) {
                return Some(found);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Wait for a line containing `needle`; panic with what was seen if
    /// none comes.
    pub fn expect(&self, needle: &str, within: Duration) {
        if self
            .wait_for(within, |l| l.contains(needle).then_some(()))
            .is_none()
        {
            panic!(
                "no line with {needle:?} within {within:?}; saw:\n{}",
                self.text()
            );
        }
    }
}

/// A process that is ended (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
    pub name: &'static str,
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = Lines::collect(child.stdout.take().unwrap(), "");
        let stderr = Lines::collect(child.stderr.take().unwrap(), "");
        Proc {
            child,
            stdout,
            stderr,
            name,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the exit, up to `within`.
    pub fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Send `signal` to the process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).unwrap());
        let _ = nix::sys::signal::kill(pid, signal);
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait(Duration::from_secs(30))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(nix::sys::signal::Signal::SIGTERM);
            if self.wait(Duration::from_secs(20)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start())
            .is_some_and(|rest| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Wait until every pid in `pids` is gone; panic naming those left.
pub fn expect_gone(pids: &[u32], within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if pids.iter().all(|p| !alive(*p)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
    panic!("processes left behind after {within:?}: {left:?}");
}

/// A relay on a free loopback port that accepts [`TOKEN`].
pub struct Relay {
    pub proc: Proc,
    pub url: String,
    _tokens: tempfile_path::TempPath,
}

mod tempfile_path {
    /// A file removed when dropped.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A name no other test of this run uses.
pub fn unique(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

impl Relay {
    pub fn start() -> Relay {
        let tokens = std::env::temp_dir().join(format!("{}.tokens", unique("mcpw-relay")));
        std::fs::write(&tokens, format!("# test tokens\n{TOKEN}\n")).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["relay", "--listen", "127.0.0.1:0", "--token-file"])
            .arg(&tokens);
        let proc = Proc::spawn("relay", cmd);
        let url = proc
            .stderr
            .wait_for(LIMIT, |l| {
                l.split("relay listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("the relay did not start: {}", proc.stderr.text()));
        Relay {
            proc,
            url,
            _tokens: tempfile_path::TempPath(tokens),
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("ws://").to_owned()
    }
}

/// `mcp-webrtc serve` at `relay`, in front of `command`.
pub struct Serve {
    pub proc: Proc,
    /// The `mcpw://` URL it printed.
    pub url: String,
    /// What it printed after the URL (`--code …`, `--no-pairing`).
    pub extra: Vec<String>,
}

impl Serve {
    pub fn start(relay: &Relay, extra: &[&str], command: &[&str]) -> Serve {
        Serve::start_at(&relay.url, extra, command)
    }

    pub fn start_at(signal: &str, extra: &[&str], command: &[&str]) -> Serve {
        let mut cmd = Command::new(bin());
        cmd.args([
            "serve",
            "--signal",
            signal,
            "--bind",
            "127.0.0.1:0",
            "--timeout",
            "20",
        ])
        .args(extra)
        .arg("--")
        .args(command)
        .env("MCP_WEBRTC_TOKEN", TOKEN);
        let proc = Proc::spawn("serve", cmd);
        let (url, extra) = proc
            .stdout
            .wait_for(LIMIT, |l| {
                let rest = l.strip_prefix("mcp-webrtc connect '")?;
                let (url, extra) = rest.split_once('\'')?;
                Some((
                    url.to_owned(),
                    extra
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                ))
            })
            .unwrap_or_else(|| panic!("serve printed no URL: {}", proc.stderr.text()));
        Serve { proc, url, extra }
    }

    /// The pids of the children it started, from its status lines.
    pub fn child_pids(&self) -> Vec<u32> {
        self.proc
            .stderr
            .all()
            .iter()
            .filter_map(|l| {
                let rest = l.split("(pid ").nth(1)?;
                rest.strip_suffix(')')?.parse().ok()
            })
            .collect()
    }

    /// Wait for the `n`th child to start, and return its pid.
    pub fn wait_child(&self, n: usize) -> u32 {
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if let Some(pid) = self.child_pids().get(n - 1) {
                return *pid;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("child {n} never started: {}", self.proc.stderr.text());
    }
}

/// The arguments of `mcp-webrtc connect` to `url` on loopback.
pub fn connect_args(url: &str) -> Vec<String> {
    ["connect", url, "--bind", "127.0.0.1:0"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// `mcp-webrtc connect` as a plain process (nothing on its stdin).
pub fn connect(url: &str, token: &str) -> Proc {
    let mut cmd = Command::new(bin());
    cmd.args(connect_args(url)).env("MCP_WEBRTC_TOKEN", token);
    Proc::spawn("connect", cmd)
}

/// The lines a minimal host writes: initialize, initialized, tools/list.
pub const LIST_TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}
{"jsonrpc":"2.0","method":"notifications/initialized"}
{"jsonrpc":"2.0","id":2,"method":"tools/list"}
"#;

/// `mcp-webrtc ARGS` with a host on its stdin that writes [`LIST_TOOLS`]
/// and closes stdin `linger_s` seconds later; its stdout shows the tool
/// list if the session works.
pub fn cli_with_host(args: &[&str], linger_s: u32) -> Proc {
    let quoted: Vec<String> = std::iter::once(bin().display().to_string())
        .chain(args.iter().map(|a| (*a).to_owned()))
        .map(|a| format!("'{a}'"))
        .collect();
    let mut shell = Command::new("sh");
    shell
        .args([
            "-c",
            &format!(
                "(printf '%s' \"$SCRIPT\"; sleep {linger_s}) | exec {}",
                quoted.join(" ")
            ),
        ])
        .env("SCRIPT", LIST_TOOLS)
        .env("MCP_WEBRTC_TOKEN", TOKEN);
    Proc::spawn("connect", shell)
}
