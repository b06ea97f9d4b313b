//! `cargo xtask interop`: tests against the Python reference packages.
//!
//! Makes a venv under `target/interop-venv` with the pinned packages (once;
//! reused while the pins match), then runs each interop test binary with
//! `MCP_WEBRTC_PYTHON` pointing at it, and prints a pass/fail table per cell.

use std::path::PathBuf;
use std::process::Command;

use crate::{cargo, step, workspace_root};

/// The Python reference, pinned: `mcp` 2.x breaks `mcp-webrtc` 0.1.0.
pub(crate) const PINS: &[&str] = &["mcp-webrtc==0.1.0", "mcp==1.30.0", "aiortc==1.16.0"];

fn venv_dir() -> PathBuf {
    workspace_root().join("target/interop-venv")
}

/// The venv's Python, made and filled on first use.
pub(crate) fn python() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    let stamp = venv.join("mcp-webrtc-pins.txt");
    let want = PINS.join("\n");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(python);
    }
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut make = Command::new(&base);
    make.args(["-m", "venv", "--clear"]).arg(&venv);
    step("python venv (target/interop-venv)", make)?;
    let mut install = Command::new(&python);
    install
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(PINS);
    step(&format!("pip install {}", PINS.join(" ")), install)?;
    std::fs::write(&stamp, want).map_err(|e| format!("write {}: {e}", stamp.display()))?;
    Ok(python)
}

/// One interop test binary: (package, test target, features).
const SUITES: &[(&str, &str, &str)] =
    &[("mcp-webrtc-signaling", "aiortc-interop", "interop-tests")];

pub(crate) fn run() -> Result<(), String> {
    let python = python()?;
    let mut table = Vec::new();
    let mut failed = false;
    for &(package, test, features) in SUITES {
        let mut cmd = cargo();
        cmd.args([
            "test",
            "--locked",
            "-p",
            package,
            "--features",
            features,
            "--test",
            test,
            "--",
            "--test-threads",
            "1",
        ])
        .env("MCP_WEBRTC_PYTHON", &python);
        let output = cmd
            .output()
            .map_err(|e| format!("run {package} {test}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        for line in stdout.lines() {
            if let Some(rest) = line.strip_prefix("test ")
                && let Some((name, result)) = rest.rsplit_once(" ... ")
            {
                table.push((format!("{test}::{name}"), result.to_owned()));
                failed |= result != "ok";
            }
        }
        failed |= !output.status.success();
    }
    match crate::mcp_interop::run(&python) {
        Ok(cells) => {
            for (name, result) in cells {
                failed |= result.is_err();
                let shown = match result {
                    Ok(detail) => format!("ok: {detail}"),
                    Err(e) => e,
                };
                table.push((name, shown));
            }
        }
        Err(e) => {
            failed = true;
            table.push(("mcp: set-up".into(), e));
        }
    }
    println!("\ninterop matrix (Python: {})", PINS.join(" "));
    let width = table.iter().map(|(n, _)| n.len()).max().unwrap_or(10);
    for (name, result) in &table {
        let (mark, detail) = match result.strip_prefix("ok") {
            Some(rest) => ("pass", rest.trim_start_matches(": ")),
            None => ("FAIL", result.as_str()),
        };
        println!("  {name:width$}  {mark}  {detail}");
    }
    if failed || table.is_empty() {
        Err("interop: some cells failed (see above)".into())
    } else {
        println!("==> interop: all {} cells passed", table.len());
        Ok(())
    }
}
