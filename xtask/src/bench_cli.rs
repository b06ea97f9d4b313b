//! The CLI's benchmark: `call_tool` round trips through the whole bridge
//! (host → `connect` → WebRTC → `serve` → child) against the same child
//! over plain stdio, in the same run (`crates/mcp-webrtc-cli/benches/bridge.rs`).

use std::fmt::Write as _;

use crate::{cargo, step};

pub(crate) const BEGIN: &str = "<!-- xtask-bench:cli:begin -->";
pub(crate) const END: &str = "<!-- xtask-bench:cli:end -->";

/// Build the child server, run the benchmark, and format its table.
pub(crate) fn table() -> Result<String, String> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--locked",
        "-p",
        "mcp-webrtc-cli",
        "--example",
        "stdio_server",
    ]);
    step("build the stdio_server example (release)", build)?;
    println!("==> CLI benchmark (bridge vs plain stdio)");
    let out = cargo()
        .args([
            "bench",
            "--locked",
            "-p",
            "mcp-webrtc-cli",
            "--bench",
            "bridge",
        ])
        .output()
        .map_err(|e| format!("cargo bench: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "CLI benchmark failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .ok_or_else(|| format!("CLI benchmark printed no BENCH line:\n{stdout}"))?;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let f = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("CLI benchmark: no {k}"))
    };
    let (s50, s99, b50, b99) = (
        f("stdio_p50_us")?,
        f("stdio_p99_us")?,
        f("bridge_p50_us")?,
        f("bridge_p99_us")?,
    );
    let mut t = String::new();
    let w = |e: std::fmt::Error| e.to_string();
    writeln!(
        t,
        "`greet` round trips from an rmcp client, {} timed one by one after a warm-up, release builds, same run:",
        v.get("rounds").cloned().unwrap_or_default()
    )
    .map_err(w)?;
    writeln!(t).map_err(w)?;
    writeln!(t, "| path | median | p99 |").map_err(w)?;
    writeln!(t, "|---|---:|---:|").map_err(w)?;
    writeln!(
        t,
        "| host → child over plain stdio | {s50:.0} µs | {s99:.0} µs |"
    )
    .map_err(w)?;
    writeln!(
        t,
        "| host → `connect` → WebRTC → `serve` → child | {b50:.0} µs | {b99:.0} µs |"
    )
    .map_err(w)?;
    writeln!(t).map_err(w)?;
    write!(
        t,
        "The bridge adds {:.0} µs to the median ({:.1}× plain stdio).",
        b50 - s50,
        b50 / s50
    )
    .map_err(w)?;
    Ok(t)
}
