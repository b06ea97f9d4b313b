//! The MCP interop matrix: our greeter examples against the Python reference
//! (`xtask/interop/mcp_peer.py`), as real processes.
//!
//! aiortc never offers a `127.0.0.1` candidate, so two peers on loopback
//! alone cannot meet. Every process therefore runs inside a network
//! namespace made for the run (`ip netns`, so root), whose only interfaces
//! are its own loopback and a veth pair (198.18.99.1 on one end): traffic never
//! leaves the namespace, and no ICE server is used.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{wait_bounded, workspace_root};

/// How soon our side must notice a killed peer: the dead-peer timeout (5 s)
/// plus slack for a loaded machine.
const DEAD_PEER_BOUND: Duration = Duration::from_millis(6500);

/// A network namespace for the run, deleted on drop.
pub(crate) struct Lab {
    name: String,
}

impl Lab {
    pub(crate) fn new() -> Result<Lab, String> {
        let name = format!("mcpw-interop-{}", std::process::id());
        let ip = |args: &[&str]| -> Result<(), String> {
            let status = Command::new("ip")
                .args(args)
                .status()
                .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {} failed ({status}); the MCP interop cells need root (ip netns)",
                    args.join(" ")
                ))
            }
        };
        ip(&["netns", "add", &name])?;
        let lab = Lab { name };
        let n = lab.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        // A veth pair with both ends inside (the dummy driver is not always
        // available in containers).
        ip(&[
            "-n", n, "link", "add", "lab0", "type", "veth", "peer", "name", "lab1",
        ])?;
        ip(&["-n", n, "addr", "add", "198.18.99.1/24", "dev", "lab0"])?;
        ip(&["-n", n, "link", "set", "lab0", "up"])?;
        ip(&["-n", n, "link", "set", "lab1", "up"])?;
        Ok(lab)
    }

    /// A command that runs inside the namespace.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// A running process whose stdout lines are collected (and echoed).
pub(crate) struct Proc {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub(crate) fn spawn(name: &str, mut cmd: Command) -> Result<Proc, String> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{name}: {e}"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let lines = Arc::clone(&lines);
            let tag = name.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    println!("    [{tag}] {line}");
                    if let Ok(mut v) = lines.lock() {
                        v.push(line);
                    }
                }
            });
        }
        Ok(Proc {
            name: name.to_owned(),
            child,
            lines,
        })
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Wait for a line starting with `prefix`, at most `limit`.
    pub(crate) fn wait_line(&mut self, prefix: &str, limit: Duration) -> Result<String, String> {
        let start = Instant::now();
        // Bounded by `limit`.
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                return Ok(line);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the reader thread a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(100));
                if let Some(line) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                    return Ok(line);
                }
                return Err(format!("{} exited ({status}) before `{prefix}`", self.name));
            }
            if start.elapsed() > limit {
                return Err(format!("{}: no `{prefix}` within {limit:?}", self.name));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let status =
            wait_bounded(&mut self.child, limit).map_err(|e| format!("{}: {e}", self.name));
        // Let the reader thread collect the last lines.
        std::thread::sleep(Duration::from_millis(100));
        status
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self) -> Result<(), String> {
        self.child
            .kill()
            .map_err(|e| format!("kill {}: {e}", self.name))?;
        let _ = self.child.wait();
        Ok(())
    }

    /// Exactly the `expected` checks ran, in that order, and every one
    /// passed: a cell cut off early, or one whose peer skipped a check,
    /// fails.
    fn checks_exactly(&self, expected: &[&str]) -> Result<usize, String> {
        let checks: Vec<String> = self
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("CHECK "))
            .collect();
        if let Some(bad) = checks
            .iter()
            .find(|l| l.split(' ').nth(2).is_none_or(|r| r != "ok"))
        {
            return Err(format!("{}: {bad}", self.name));
        }
        let ran: Vec<&str> = checks.iter().filter_map(|l| l.split(' ').nth(1)).collect();
        if ran != expected {
            return Err(format!(
                "{}: checks {ran:?} ran, expected exactly {expected:?}",
                self.name
            ));
        }
        Ok(checks.len())
    }

    /// Every line in `expected` was printed (each as a prefix), in order.
    fn printed_in_order(&self, expected: &[&str]) -> Result<(), String> {
        let lines = self.lines();
        let mut rest = lines.iter();
        for want in expected {
            if !rest.any(|l| l.starts_with(want)) {
                return Err(format!(
                    "{}: no `{want}` line (in order) among {lines:?}",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

/// The checks the Python client makes in full, and up to where it holds.
const PY_CLIENT_CHECKS: &[&str] = &[
    "initialize",
    "list_tools",
    "call_tool",
    "result_200KiB",
    "oversize_error",
    "after_oversize",
];
const PY_CLIENT_CHECKS_HOLD: &[&str] = &["initialize", "list_tools", "call_tool", "result_200KiB"];

/// What our greeter client prints for a session that did everything.
const RUST_CLIENT_LINES: &[&str] = &[
    "initialized in ",
    "tools: ",
    "greet -> Hello, world!",
    "blob -> 204800 bytes, sha256 matches",
];
const RUST_CLIENT_LINES_HOLD: &[&str] = &["initialized in ", "tools: ", "greet -> Hello, world!"];

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn expect_exit(p: &mut Proc, limit: Duration, code: i32, end: &str) -> Result<(), String> {
    let status = p.wait(limit)?;
    if status.code() != Some(code) {
        return Err(format!(
            "{} exited with {status}, expected code {code}",
            p.name
        ));
    }
    if !end.is_empty()
        && !p
            .lines()
            .iter()
            .any(|l| l.starts_with("END ") && l.contains(end))
    {
        return Err(format!("{}: no `END {end}` line", p.name));
    }
    Ok(())
}

struct Setup {
    lab: Lab,
    python: PathBuf,
    script: PathBuf,
    examples: PathBuf,
    sock: PathBuf,
}

impl Setup {
    fn rust(&self, example: &str, args: &[&str]) -> Command {
        let mut cmd = self.lab.command(&self.examples.join(example));
        cmd.args(args);
        cmd
    }

    fn python(&self, args: &[&str]) -> Command {
        let mut cmd = self.lab.command(&self.python);
        cmd.arg(&self.script).args(args);
        cmd
    }

    /// `--signal ADDR` or `--unix PATH` for ours, `--tcp`/`--unix` for Python.
    fn places(&self, unix: bool) -> (Vec<String>, Vec<String>) {
        let _ = std::fs::remove_file(&self.sock);
        if unix {
            let path = self.sock.display().to_string();
            (
                vec!["--unix".into(), path.clone()],
                vec!["--unix".into(), path],
            )
        } else {
            (
                vec!["--signal".into(), "127.0.0.1:9999".into()],
                vec!["--tcp".into(), "127.0.0.1:9999".into()],
            )
        }
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Rust server, Python client: initialize, list, call, 200 KiB, the
/// oversize error and a call after it; the client leaves normally and our
/// server ends cleanly.
fn rust_server_python_client(s: &Setup, unix: bool) -> Result<String, String> {
    let (ours, theirs) = s.places(unix);
    let mut server = Proc::spawn("rust-server", s.rust("greeter_server", &strs(&ours)))?;
    server.wait_line("signaling: listening", Duration::from_secs(20))?;
    let mut args = vec!["client", "--expect-oversize"];
    args.extend(strs(&theirs));
    let mut client = Proc::spawn("py-client", s.python(&args))?;
    let status = client.wait(Duration::from_secs(90))?;
    let checks = client.checks_exactly(PY_CLIENT_CHECKS)?;
    if !status.success() {
        return Err(format!("py-client exited with {status}"));
    }
    expect_exit(
        &mut server,
        Duration::from_secs(15),
        0,
        "closed by the peer",
    )?;
    Ok(format!("{checks} checks; server ended cleanly"))
}

/// Rust server, Python client killed: our server reports peer-gone in time.
fn rust_server_python_client_killed(s: &Setup) -> Result<String, String> {
    let (ours, theirs) = s.places(false);
    let mut server = Proc::spawn("rust-server", s.rust("greeter_server", &strs(&ours)))?;
    server.wait_line("signaling: listening", Duration::from_secs(20))?;
    let mut args = vec!["client", "--hold"];
    args.extend(strs(&theirs));
    let mut client = Proc::spawn("py-client", s.python(&args))?;
    client.wait_line("HOLDING", Duration::from_secs(90))?;
    client.checks_exactly(PY_CLIENT_CHECKS_HOLD)?;
    client.kill()?;
    let killed = Instant::now();
    expect_exit(&mut server, DEAD_PEER_BOUND, 3, "peer gone")?;
    Ok(format!(
        "peer gone after {:.1} s",
        killed.elapsed().as_secs_f64()
    ))
}

/// Python server, Rust client: initialize, list, call, 200 KiB checked by
/// SHA-256; the Python server then leaves normally and our client ends
/// cleanly.
fn python_server_rust_client(s: &Setup, unix: bool) -> Result<String, String> {
    let (ours, theirs) = s.places(unix);
    let mut args = vec!["server", "--exit-after", "1"];
    args.extend(strs(&theirs));
    let mut server = Proc::spawn("py-server", s.python(&args))?;
    let mut args = vec!["--blob", "204800", "--hold"];
    args.extend(strs(&ours));
    let mut client = Proc::spawn("rust-client", s.rust("greeter_client", &args))?;
    client.wait_line(
        "blob -> 204800 bytes, sha256 matches",
        Duration::from_secs(60),
    )?;
    expect_exit(
        &mut client,
        Duration::from_secs(20),
        0,
        "closed by the peer",
    )?;
    client.printed_in_order(RUST_CLIENT_LINES)?;
    let status = server.wait(Duration::from_secs(15))?;
    if !status.success() {
        return Err(format!("py-server exited with {status}"));
    }
    Ok("200 KiB intact; client ended cleanly".into())
}

/// Python server killed: our client reports peer-gone in time.
fn python_server_killed_rust_client(s: &Setup) -> Result<String, String> {
    let (ours, theirs) = s.places(false);
    let mut args = vec!["server"];
    args.extend(strs(&theirs));
    let mut server = Proc::spawn("py-server", s.python(&args))?;
    let mut args = vec!["--hold"];
    args.extend(strs(&ours));
    let mut client = Proc::spawn("rust-client", s.rust("greeter_client", &args))?;
    client.wait_line("HOLDING", Duration::from_secs(60))?;
    client.printed_in_order(RUST_CLIENT_LINES_HOLD)?;
    server.kill()?;
    let killed = Instant::now();
    expect_exit(&mut client, DEAD_PEER_BOUND, 3, "peer gone")?;
    Ok(format!(
        "peer gone after {:.1} s",
        killed.elapsed().as_secs_f64()
    ))
}

/// Roles swapped: our client offers, the Python server answers
/// (`initiator=False`).
fn rust_client_offers(s: &Setup) -> Result<String, String> {
    let (ours, theirs) = s.places(false);
    let mut args = vec!["--offer", "--blob", "204800"];
    args.extend(strs(&ours));
    let mut client = Proc::spawn("rust-client", s.rust("greeter_client", &args))?;
    client.wait_line("signaling: listening", Duration::from_secs(20))?;
    let mut args = vec!["server", "--answer"];
    args.extend(strs(&theirs));
    let mut server = Proc::spawn("py-server", s.python(&args))?;
    expect_exit(&mut client, Duration::from_secs(60), 0, "")?;
    client.printed_in_order(RUST_CLIENT_LINES)?;
    let status = server.wait(Duration::from_secs(20))?;
    if !status.success() {
        return Err(format!("py-server exited with {status}"));
    }
    Ok("offered; 200 KiB intact; client ended cleanly".into())
}

/// Build the example peers, run every cell, and return (cell, result).
/// One cell's name and outcome (a detail on success, the failure otherwise).
pub(crate) type CellResult = (String, Result<String, String>);

pub(crate) fn run(python: &Path) -> Result<Vec<CellResult>, String> {
    crate::build_greeter_examples()?;
    let setup = Setup {
        lab: Lab::new()?,
        python: python.to_path_buf(),
        script: workspace_root().join("xtask/interop/mcp_peer.py"),
        examples: workspace_root().join("target/release/examples"),
        sock: workspace_root().join(format!("target/mcpw-interop-{}.sock", std::process::id())),
    };
    type Cell<'a> = (&'a str, Box<dyn Fn(&Setup) -> Result<String, String> + 'a>);
    let cells: Vec<Cell<'_>> = vec![
        (
            "mcp: rust server ⇄ python client, tcp",
            Box::new(|s| rust_server_python_client(s, false)),
        ),
        (
            "mcp: rust server ⇄ python client, unix",
            Box::new(|s| rust_server_python_client(s, true)),
        ),
        (
            "mcp: rust server, python client killed",
            Box::new(rust_server_python_client_killed),
        ),
        (
            "mcp: python server ⇄ rust client, tcp",
            Box::new(|s| python_server_rust_client(s, false)),
        ),
        (
            "mcp: python server ⇄ rust client, unix",
            Box::new(|s| python_server_rust_client(s, true)),
        ),
        (
            "mcp: python server killed, rust client",
            Box::new(python_server_killed_rust_client),
        ),
        (
            "mcp: rust client offers, python server answers",
            Box::new(rust_client_offers),
        ),
    ];
    let mut results = Vec::new();
    for (name, cell) in cells {
        println!("==> {name}");
        let result = cell(&setup);
        match &result {
            Ok(detail) => println!("==> {name}: pass ({detail})"),
            Err(e) => println!("==> {name}: FAIL ({e})"),
        }
        results.push((name.to_owned(), result));
    }
    let _ = std::fs::remove_file(&setup.sock);
    Ok(results)
}
