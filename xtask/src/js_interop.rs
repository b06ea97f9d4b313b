//! `cargo xtask interop --browser | --node` and `cargo xtask demo`: the
//! TypeScript package against the Rust peers.
//!
//! - `--browser`: the demo page in headless Chromium (Debian's `chromium`,
//!   installed with apt-get if absent, driven by `playwright-core` from npm:
//!   never a downloaded browser build). The page lists a Rust server's
//!   tools, calls one from its form, takes a 5 MiB result checked by
//!   SHA-256, and serves a tool that a Rust rmcp client calls. Screenshots
//!   go to `target/browser-interop/`.
//! - `--node`: simple-peer on `@roamhq/wrtc` (the TypeScript reference's
//!   stack) in both roles, and this project's package on `@roamhq/wrtc` with
//!   20 MiB results in both roles.
//! - `demo`: the relay, `mcp-webrtc serve` in front of the greeter, and the
//!   page, on 127.0.0.1; prints the page's address and runs until Ctrl-C.
//!
//! The scripts live in `interop/js` (npm packages from its committed
//! lockfile); the relay, servers and file server are started by them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{cargo, require_program, step, workspace_root};

/// The Rust binaries the scripts run, built once in release mode.
pub(crate) struct Binaries {
    pub(crate) cli: PathBuf,
    pub(crate) stdio_server: PathBuf,
    pub(crate) relay_client: PathBuf,
}

pub(crate) fn build_binaries() -> Result<Binaries, String> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--locked",
        "-p",
        "mcp-webrtc-cli",
        "--bin",
        "mcp-webrtc",
        "--example",
        "stdio_server",
        "-p",
        "mcp-webrtc",
        "--features",
        "mcp-webrtc/signaling-websocket",
        "--example",
        "relay_client",
    ]);
    step(
        "build mcp-webrtc, stdio_server, relay_client (release)",
        build,
    )?;
    let release = workspace_root().join("target/release");
    Ok(Binaries {
        cli: release.join("mcp-webrtc"),
        stdio_server: release.join("examples/stdio_server"),
        relay_client: release.join("examples/relay_client"),
    })
}

fn npm(dir: &Path, name: &str, args: &[&str]) -> Result<(), String> {
    let mut npm = Command::new("npm");
    npm.args(args).current_dir(dir);
    crate::step_bounded(name, npm, Duration::from_secs(600))
}

/// `clients/js` built (library and page), and `interop/js` installed.
fn prepare_js() -> Result<(), String> {
    require_program("node", "nodejs")?;
    require_program("npm", "npm")?;
    let root = workspace_root();
    let client = root.join("clients/js");
    if !client.join("node_modules").exists() {
        npm(
            &client,
            "clients/js: npm ci",
            &["ci", "--no-audit", "--no-fund"],
        )?;
    }
    npm(&client, "clients/js: build", &["run", "build"])?;
    npm(
        &root.join("interop/js"),
        "interop/js: npm ci",
        &["ci", "--no-audit", "--no-fund"],
    )
}

fn script(name: &str, bins: &Binaries) -> Command {
    let root = workspace_root();
    let mut node = Command::new("node");
    node.arg(root.join("interop/js").join(name))
        .current_dir(root.join("interop/js"))
        .env("MCP_WEBRTC", &bins.cli)
        .env("STDIO_SERVER", &bins.stdio_server)
        .env("RELAY_CLIENT", &bins.relay_client)
        .env("DEMO_DIR", root.join("clients/js/dist/demo"));
    node
}

/// Run one script (at most ten minutes) and print its `CELL` lines as a table.
fn cells(title: &str, mut cmd: Command) -> Result<(), String> {
    println!("==> {title}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{title}: could not run node: {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut text);
        text
    });
    let status = crate::wait_bounded(&mut child, Duration::from_secs(600))
        .map_err(|e| format!("{title}: {e}"))?;
    let output = std::process::Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr: Vec::new(),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut table = Vec::new();
    for line in stdout.lines() {
        match line.strip_prefix("CELL ") {
            Some(cell) => table.push(cell.to_owned()),
            None => println!("{line}"),
        }
    }
    println!("\n{title}");
    let mut failed = !output.status.success() || table.is_empty();
    for cell in &table {
        // `<name>\t<ok|FAIL>\t<detail>`
        let mut parts = cell.splitn(3, '\t');
        let name = parts.next().unwrap_or_default();
        let mark = if parts.next() == Some("ok") {
            "pass"
        } else {
            "FAIL"
        };
        let detail = parts.next().unwrap_or_default();
        failed |= mark == "FAIL";
        println!("  {name:<72}  {mark}  {detail}");
    }
    if failed {
        Err(format!(
            "{title}: some cells failed (see above; exit {:?})",
            output.status.code()
        ))
    } else {
        println!("==> {title}: all {} cells passed", table.len());
        Ok(())
    }
}

/// `cargo xtask interop --browser`.
pub(crate) fn browser() -> Result<(), String> {
    require_program("chromium", "chromium")?;
    let bins = build_binaries()?;
    prepare_js()?;
    let shots = workspace_root().join("target/browser-interop");
    std::fs::create_dir_all(&shots).map_err(|e| format!("{}: {e}", shots.display()))?;
    let mut cmd = script("browser.mjs", &bins);
    cmd.env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", "/usr/bin/chromium");
    cells("browser interop (headless Chromium)", cmd)?;
    println!("==> screenshots in {}", shots.display());
    Ok(())
}

/// `cargo xtask interop --node`.
pub(crate) fn node() -> Result<(), String> {
    let bins = build_binaries()?;
    prepare_js()?;
    cells(
        "node interop (simple-peer + @roamhq/wrtc, mcp-webrtc-channel)",
        script("node-matrix.mjs", &bins),
    )
}

/// `cargo xtask demo`: runs until Ctrl-C.
pub(crate) fn demo(port: Option<&str>) -> Result<(), String> {
    let bins = build_binaries()?;
    prepare_js()?;
    let mut cmd = script("demo.mjs", &bins);
    if let Some(port) = port {
        cmd.env("DEMO_PORT", port);
    }
    step("demo (Ctrl-C to stop)", cmd)
}
