//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: everything CI checks: formatting, clippy with warnings denied, the
//!   whole test suite, the docs with warnings denied, and the examples as
//!   smoke tests.
//! - `interop`: the interop matrix against the pinned Python packages;
//!   `--browser` and `--node`: the TypeScript package in headless Chromium
//!   and in Node, against Rust peers (and the TypeScript reference's stack).
//! - `demo`: the browser demo, with a relay and a Rust server, on loopback.
//! - `netlab`: NATs, firewalls and TURN (also over TCP) in network namespaces.
//! - `bench`: the criterion benchmarks; writes their medians into
//!   `docs/performance.md`.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci      fmt check, clippy -D warnings, tests, docs -D warnings, example smoke runs
  interop [--browser | --node | --all]
          the interop matrix against the pinned Python reference (makes a
          venv under target/ on first use); --browser: the demo page in
          headless Chromium against Rust peers (installs Debian's chromium
          and playwright-core); --node: simple-peer on @roamhq/wrtc (the
          TypeScript reference's stack) and mcp-webrtc-channel in Node
  netlab  MCP through NATs, firewalls and TURN (also over TCP) in network
          namespaces it creates, with coturn (root; installs iptables,
          coturn, iputils-ping)
  demo [PORT]
          the relay, a Rust MCP server behind `mcp-webrtc serve`, and the
          browser demo page on http://127.0.0.1:PORT (8080); until Ctrl-C
  fuzz [SECONDS]
          run every cargo-fuzz target for SECONDS (default 30) each; needs
          `cargo install cargo-fuzz`, and uses RUSTC_BOOTSTRAP=1 on stable
  bench [references | scale | hotpath]
          run the benchmarks and write their figures into docs/performance.md;
          `references` runs only the comparison with the Python package
          (needs root: the peers run in a network namespace); `scale` only
          the hot path by layer (with callgrind) and the sessions benchmark;
          `hotpath` only the hot path by layer
";

mod bench;
mod bench_cli;
mod bench_scale;
mod interop;
mod js_interop;
mod mcp_interop;
mod netlab;

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("ci") => ci(),
        Some("bench") => match args.next().as_deref() {
            None => bench::run(),
            Some("references") => bench::run_references(),
            Some("scale") => bench::run_scale(),
            Some("hotpath") => bench::run_hotpath(),
            Some(other) => Err(format!("unknown bench `{other}`\n\n{USAGE}")),
        },
        Some("interop") => match args.next().as_deref() {
            None => interop::run(),
            Some("--browser") => js_interop::browser(),
            Some("--node") => js_interop::node(),
            Some("--all") => interop::run()
                .and_then(|()| js_interop::node())
                .and_then(|()| js_interop::browser()),
            Some(other) => Err(format!("unknown interop option `{other}`\n\n{USAGE}")),
        },
        Some("demo") => js_interop::demo(args.next().as_deref()),
        Some("netlab") => netlab::run(),
        Some("fuzz") => fuzz(args.next().as_deref()),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Run one step, printing its name and duration; fail with the step's name.
pub(crate) fn step(name: &str, cmd: Command) -> Result<(), String> {
    run_step(name, cmd, None)
}

/// Run one step as [`step`] does, but kill it (and every process it
/// started) after `limit`.
pub(crate) fn step_bounded(
    name: &str,
    cmd: Command,
    limit: std::time::Duration,
) -> Result<(), String> {
    run_step(name, cmd, Some(limit))
}

fn run_step(
    name: &str,
    mut cmd: Command,
    limit: Option<std::time::Duration>,
) -> Result<(), String> {
    println!("==> {name}");
    let start = Instant::now();
    let status = match limit {
        None => cmd.status(),
        Some(limit) => cmd
            .spawn()
            .and_then(|mut child| wait_bounded(&mut child, limit).map_err(std::io::Error::other)),
    }
    .map_err(|e| format!("{name}: could not start or finish: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    if status.success() {
        println!("==> {name}: ok ({secs:.1} s)");
        Ok(())
    } else {
        Err(format!("{name}: failed ({status}) after {secs:.1} s"))
    }
}

/// Optional features the test suite covers (everything but the interop
/// tests, which `cargo xtask interop` runs with the Python venv).
const TEST_FEATURES: &str = "mcp-webrtc-signaling/websocket,mcp-webrtc-signaling/relay";

/// Examples run as smoke tests.
const EXAMPLES: &[&str] = &[
    "quickstart",
    "chunking_demo",
    "custom_signaling",
    "peer_channel",
];

/// Whether this runs as root (CI does).
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// Make sure a program the tests need is on the machine: install its Debian
/// package when running as root (as CI does), or say how.
pub(crate) fn require_program(program: &str, package: &str) -> Result<(), String> {
    let present = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "the tests need `{program}`: install it with `apt-get install {package}`"
        ));
    }
    let mut update = Command::new("apt-get");
    update.arg("update");
    step("apt-get update", update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive");
    step(&format!("apt-get install {package}"), install)
}

fn ci() -> Result<(), String> {
    require_program("turnserver", "coturn")?;

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    step("cargo fmt --check", fmt)?;

    vectors_match()?;
    js_client()?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    step("cargo clippy -D warnings", clippy)?;

    let mut test = cargo();
    test.args([
        "test",
        "--workspace",
        "--locked",
        "--features",
        TEST_FEATURES,
    ]);
    step("cargo test --workspace", test)?;

    let mut doc = cargo();
    doc.args([
        "doc",
        "--workspace",
        "--no-deps",
        "--locked",
        "--all-features",
    ])
    .env("RUSTDOCFLAGS", "-D warnings");
    step("cargo doc -D warnings", doc)?;

    for example in EXAMPLES {
        let mut demo = cargo();
        demo.args(["run", "--release", "--locked", "--example", example]);
        step(&format!("example {example}"), demo)?;
    }
    greeter_two_processes()?;
    cli_installs()?;

    let mut benches = cargo();
    benches.args([
        "bench",
        "--workspace",
        "--locked",
        "--all-features",
        "--no-run",
    ]);
    step("benchmarks build", benches)?;

    let mut fuzz = cargo();
    fuzz.args(["check", "--locked", "--manifest-path", "fuzz/Cargo.toml"]);
    step("fuzz targets build", fuzz)?;

    interop::run()?;
    js_interop::node()?;
    js_interop::browser()?;
    netlab::run()?;

    println!("==> all CI steps passed");
    Ok(())
}

/// The TypeScript package (`clients/js`): installed from its lockfile,
/// type-checked, built, and tested against the same wire vectors as the
/// Rust core.
fn js_client() -> Result<(), String> {
    let dir = workspace_root().join("clients/js");
    let steps: [(&str, &[&str]); 4] = [
        ("clients/js: npm ci", &["ci", "--no-audit", "--no-fund"]),
        ("clients/js: typecheck", &["run", "typecheck"]),
        ("clients/js: build", &["run", "build"]),
        ("clients/js: node tests", &["test"]),
    ];
    for (name, args) in steps {
        let mut npm = Command::new("npm");
        npm.args(args).current_dir(&dir);
        // The tests open real peer connections; one that never ends must not hang CI.
        step_bounded(name, npm, std::time::Duration::from_secs(600))?;
    }
    Ok(())
}

/// `cargo install --path crates/mcp-webrtc-cli` works (into `target/`, with
/// the release build the examples already made), and the installed
/// command runs.
fn cli_installs() -> Result<(), String> {
    let root = workspace_root().join("target/cli-install");
    let mut install = cargo();
    install
        .args([
            "install",
            "--locked",
            "--path",
            "crates/mcp-webrtc-cli",
            "--root",
        ])
        .arg(&root)
        .arg("--target-dir")
        .arg(workspace_root().join("target"));
    step("cargo install --path crates/mcp-webrtc-cli", install)?;
    let out = Command::new(root.join("bin/mcp-webrtc"))
        .arg("--version")
        .output()
        .map_err(|e| format!("the installed mcp-webrtc does not run: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !version.starts_with("mcp-webrtc ") {
        return Err(format!(
            "the installed mcp-webrtc --version printed {version:?}"
        ));
    }
    println!("==> installed {}", version.trim());
    Ok(())
}

/// The wire vectors are generated from the spec by an independent Python
/// implementation; the committed file must be exactly what it prints.
fn vectors_match() -> Result<(), String> {
    println!("==> wire vectors regenerate identically");
    let dir = workspace_root().join("crates/mcp-webrtc-core/tests/vectors");
    let out = Command::new("python3")
        .arg(dir.join("generate.py"))
        .output()
        .map_err(|e| format!("wire vectors: could not run python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "wire vectors: generate.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let committed = std::fs::read(dir.join("wire-v1.json"))
        .map_err(|e| format!("wire vectors: cannot read wire-v1.json: {e}"))?;
    if out.stdout != committed {
        return Err(
            "wire vectors: wire-v1.json differs from what generate.py prints; \
             run `python3 crates/mcp-webrtc-core/tests/vectors/generate.py > \
             crates/mcp-webrtc-core/tests/vectors/wire-v1.json` and review the diff"
                .into(),
        );
    }
    println!("==> wire vectors regenerate identically: ok");
    Ok(())
}

/// Every process descended from `pid` (read from `/proc`), children first
/// in the list's order of discovery. Bounded by the processes on the machine.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces, so read after the last `)`.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((id, ppid));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while let Some(&parent) = found.get(i) {
        for &(id, ppid) in &parents {
            if ppid == parent && !found.contains(&id) {
                found.push(id);
            }
        }
        i = i.saturating_add(1);
    }
    found.split_off(1)
}

/// Wait for a child process, at most `limit`; kill it after that, with
/// every process it started (npm's node, a script's relay and servers).
pub(crate) fn wait_bounded(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Result<std::process::ExitStatus, String> {
    let start = Instant::now();
    // Bounded by `limit`.
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if start.elapsed() > limit {
            // Stop the child first, so that it starts nothing new, then what it started.
            let _ = Command::new("kill")
                .args(["-STOP", &child.id().to_string()])
                .status();
            for pid in descendants(child.id()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {limit:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The README's two-process scenario: `greeter_server` and
/// `greeter_client` over TCP signaling on loopback.
/// Build the greeter examples (release), the Rust peers of the smoke run,
/// the interop matrix and the reference benchmark.
pub(crate) fn build_greeter_examples() -> Result<(), String> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--locked",
        "--example",
        "greeter_server",
        "--example",
        "greeter_client",
    ]);
    step("build the greeter examples", build)
}

fn greeter_two_processes() -> Result<(), String> {
    build_greeter_examples()?;
    println!("==> example greeter_server + greeter_client (two processes)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let signal = format!("127.0.0.1:{port}");
    let examples = workspace_root().join("target/release/examples");
    let loopback = ["--bind", "127.0.0.1:0"];
    let mut server = Command::new(examples.join("greeter_server"))
        .args(["--signal", &signal])
        .args(loopback)
        .spawn()
        .map_err(|e| format!("greeter_server: {e}"))?;
    let client = Command::new(examples.join("greeter_client"))
        .args(["--signal", &signal, "--name", "CI"])
        .args(loopback)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("greeter_client: {e}"));
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            let _ = server.kill();
            return Err(e);
        }
    };
    let limit = std::time::Duration::from_secs(60);
    let mut client = client;
    let client_status = wait_bounded(&mut client, limit);
    let mut out = String::new();
    if let Some(mut stdout) = client.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
    }
    print!("{out}");
    let server_status = wait_bounded(&mut server, std::time::Duration::from_secs(20));
    let client_status = client_status.map_err(|e| format!("greeter_client: {e}"))?;
    let server_status = server_status.map_err(|e| format!("greeter_server: {e}"))?;
    if !client_status.success() || !out.contains("greet -> Hello, CI!") {
        return Err(format!("greeter_client failed ({client_status})"));
    }
    if !server_status.success() {
        return Err(format!("greeter_server failed ({server_status})"));
    }
    Ok(())
}

const FUZZ_TARGETS: &[&str] = &[
    "signaling_aiortc",
    "signaling_w3c",
    "core_frames",
    "core_codec",
];

fn fuzz(seconds: Option<&str>) -> Result<(), String> {
    let seconds: u32 = seconds
        .unwrap_or("30")
        .parse()
        .map_err(|_| "fuzz: SECONDS must be a whole number".to_owned())?;
    for target in FUZZ_TARGETS {
        let mut cmd = cargo();
        cmd.current_dir(workspace_root().join("fuzz"))
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=2048");
        step(&format!("fuzz {target} for {seconds} s"), cmd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::BufRead;

    /// The state letter of a process, or `None` once it is gone.
    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .next()?
            .chars()
            .next()
    }

    #[test]
    fn a_child_past_its_limit_is_killed_with_what_it_started() {
        // The shell starts a grandchild, says its pid, and waits on it.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 300 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        assert_eq!(descendants(child.id()), vec![grandchild]);

        let outcome = wait_bounded(&mut child, std::time::Duration::from_millis(300));
        assert!(outcome.unwrap_err().contains("timed out"));
        // Gone, or dead and waiting for init to reap it; bounded at 10 s.
        let mut alive = true;
        for _ in 0..500 {
            if !matches!(state(grandchild), Some(s) if s != 'Z' && s != 'X') {
                alive = false;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!alive, "the grandchild {grandchild} outlived the kill");
    }
}
