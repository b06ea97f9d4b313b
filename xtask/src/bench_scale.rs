//! The hot path split by layer, its instruction count, and what sessions
//! cost (`crates/mcp-webrtc/benches/{hotpath,scale}.rs`): their tables for
//! `docs/performance.md`.

use std::fmt::Write as _;
use std::process::Command;

use crate::{cargo, step, workspace_root};

const HOT_BEGIN: &str = "<!-- xtask-bench:hotpath:begin -->";
const HOT_END: &str = "<!-- xtask-bench:hotpath:end -->";
const SCALE_BEGIN: &str = "<!-- xtask-bench:scale:begin -->";
const SCALE_END: &str = "<!-- xtask-bench:scale:end -->";

/// Run both benchmarks and write their sections of `doc`.
pub(crate) fn write_sections(doc: &std::path::Path) -> Result<(), String> {
    let table = hotpath_table()?;
    println!("\n{table}");
    crate::bench::replace_section(doc, HOT_BEGIN, HOT_END, &table)?;
    let table = scale_table()?;
    println!("\n{table}");
    crate::bench::replace_section(doc, SCALE_BEGIN, SCALE_END, &table)
}

/// Round trips counted under callgrind: the difference of two runs.
const CALLS: (u64, u64) = (200, 1200);

fn read_json(name: &str) -> Result<serde_json::Value, String> {
    let path = workspace_root().join("target/criterion").join(name);
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v.get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN)
}

/// The path of a benchmark's executable, built (release, bench profile).
fn bench_executable(bench: &str) -> Result<std::path::PathBuf, String> {
    let out = cargo()
        .args([
            "bench",
            "--locked",
            "-p",
            "mcp-webrtc",
            "--bench",
            bench,
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .map_err(|e| format!("cargo bench --no-run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the {bench} benchmark failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.pointer("/target/name").and_then(|n| n.as_str()) == Some(bench))
        .find_map(|v| v.get("executable")?.as_str().map(std::path::PathBuf::from))
        .ok_or_else(|| format!("cargo named no executable for the {bench} benchmark"))
}

/// Instructions of the whole process for `calls` round trips (callgrind).
fn instructions(exe: &std::path::Path, calls: u64) -> Result<u64, String> {
    let dir = workspace_root().join("target/callgrind");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}/hotpath-{calls}.out",
            dir.display()
        ))
        .arg(exe)
        .env("HOTPATH_CALLS", calls.to_string())
        .output()
        .map_err(|e| format!("valgrind (apt-get install valgrind): {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "callgrind run with {calls} calls failed:\n{}",
            stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        ));
    }
    stderr
        .lines()
        .find_map(|l| {
            let (_, n) = l.split_once("Collected :")?;
            n.trim().parse().ok()
        })
        .ok_or_else(|| "callgrind printed no `Collected` line".to_owned())
}

/// Run the hot-path benchmark and count instructions; its table.
fn hotpath_table() -> Result<String, String> {
    let mut run = cargo();
    run.args([
        "bench",
        "--locked",
        "-p",
        "mcp-webrtc",
        "--bench",
        "hotpath",
    ]);
    step("hot-path benchmark (four layers, bulk)", run)?;
    let v = read_json("hotpath.json")?;
    let exe = bench_executable("hotpath")?;
    println!("==> callgrind: {} and {} round trips", CALLS.0, CALLS.1);
    let (low, high) = (instructions(&exe, CALLS.0)?, instructions(&exe, CALLS.1)?);
    let per_call = high
        .saturating_sub(low)
        .checked_div(CALLS.1.saturating_sub(CALLS.0))
        .unwrap_or(0);
    format_hotpath(&v, per_call).map_err(|e| e.to_string())
}

fn format_hotpath(v: &serde_json::Value, per_call: u64) -> Result<String, std::fmt::Error> {
    let m = |k: &str| num(v, &format!("{k}_median_us"));
    let p = |k: &str| num(v, &format!("{k}_p99_us"));
    let mut t = String::new();
    writeln!(
        t,
        "Measured by `cargo xtask bench` on {}.",
        crate::bench::machine()
    )?;
    writeln!(t)?;
    writeln!(
        t,
        "Individual round trips, {} of each, in interleaved rounds:",
        num(v, "samples")
    )?;
    writeln!(t)?;
    writeln!(t, "| path | median | p99 |")?;
    writeln!(t, "|---|---:|---:|")?;
    for (name, key) in [
        (
            "(a) `webrtc` data channel used directly, 64-byte text",
            "bare",
        ),
        ("(b) our rtc layer (`Connection`), 64-byte text", "rtc"),
        ("(c) rmcp in memory, `call_tool` of `echo`", "memory"),
        ("(d) `call_tool` of `echo` over `WebRtcTransport`", "webrtc"),
    ] {
        writeln!(t, "| {name} | {:.1} µs | {:.1} µs |", m(key), p(key))?;
    }
    writeln!(t)?;
    let ours = m("webrtc") - m("bare") - m("memory");
    let rtc = m("rtc") - m("bare");
    writeln!(t, "| derived | value | target |")?;
    writeln!(t, "|---|---:|---|")?;
    writeln!(
        t,
        "| our added cost, (d) − (a) − (c) | {ours:.1} µs | ≤ 20 µs |"
    )?;
    writeln!(t, "| the rtc layer's, (b) − (a) | {rtc:.1} µs | ≤ 10 µs |")?;
    writeln!(t, "| (d) p99 | {:.1} µs | ≤ 300 µs |", p("webrtc"))?;
    writeln!(
        t,
        "| instructions per `call_tool` round trip (callgrind, both peers) | {per_call} | |"
    )?;
    let (bare, bulk) = (num(v, "bare_bulk_mb_s"), num(v, "webrtc_bulk_mb_s"));
    writeln!(
        t,
        "| 100 MiB: bare channel, 16 KiB messages | {bare:.0} MB/s | |"
    )?;
    writeln!(
        t,
        "| 100 MiB `call_tool` result over our transport | {bulk:.0} MB/s ({:.0}%) | ≥ 80% |",
        bulk / bare * 100.0
    )?;
    Ok(t)
}

/// Run the sessions benchmark (minutes): with the defaults, then 500
/// sessions with a 30 s dead-peer timeout (a keepalive every 3 s instead of
/// 500 ms), which shows what the idle CPU is made of; its table.
fn scale_table() -> Result<String, String> {
    for (name, env) in [
        ("sessions benchmark (100, 250, 500 sessions)", ""),
        (
            "sessions benchmark (500 sessions, 30 s dead-peer timeout)",
            "SCALE_SESSIONS=500 SCALE_DEAD_PEER_S=30 SCALE_OUT=scale-keepalive.json",
        ),
    ] {
        // About six open files per session on the two sides: raise the
        // limit (to the hard limit, which root may raise further).
        let mut run = Command::new("sh");
        run.arg("-c")
            .arg(format!(
                "ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; \
                 exec env {env} cargo bench --locked -p mcp-webrtc \
                 --features relay,signaling-websocket --bench scale"
            ))
            .current_dir(workspace_root());
        step(name, run)?;
    }
    let v = read_json("scale.json")?;
    let keepalive = read_json("scale-keepalive.json")?;
    format_scale(&v, &keepalive).map_err(|e| e.to_string())
}

fn format_scale(
    v: &serde_json::Value,
    keepalive: &serde_json::Value,
) -> Result<String, std::fmt::Error> {
    let mut t = String::new();
    writeln!(
        t,
        "Measured by `cargo xtask bench` on {}.",
        crate::bench::machine()
    )?;
    writeln!(t)?;
    writeln!(
        t,
        "| sessions | connected | set-up rate | slowest set-up | RSS per session | idle CPU (server) | `call_tool` p50 / p99 at 10/s each | calls (errors) |"
    )?;
    writeln!(t, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let runs = |v: &serde_json::Value| {
        v.get("sessions")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let labelled = runs(v).into_iter().map(|r| (String::new(), r)).chain(
        runs(keepalive)
            .into_iter()
            .map(|r| (", dead-peer timeout 30 s".to_owned(), r)),
    );
    for (label, run) in labelled {
        writeln!(
            t,
            "| {}{label} | {} | {:.0}/s | {:.0} ms | {:.0} KiB | {:.2}% | {:.2} / {:.2} ms | {} ({}) |",
            num(&run, "sessions"),
            num(&run, "connected"),
            num(&run, "setup_rate_per_s"),
            num(&run, "setup_max_ms"),
            num(&run, "rss_per_session_kib"),
            num(&run, "idle_cpu_percent"),
            num(&run, "call_p50_ms"),
            num(&run, "call_p99_ms"),
            num(&run, "calls"),
            num(&run, "call_errors"),
        )?;
    }
    writeln!(t)?;
    if let Some(l) = v.get("large") {
        writeln!(
            t,
            "| 100 MiB result | RSS before | peak RSS | (peak − before) / size | target |"
        )?;
        writeln!(t, "|---|---:|---:|---:|---|")?;
        for side in ["server", "client"] {
            writeln!(
                t,
                "| {side} | {:.0} MiB | {:.0} MiB | {:.2}× | ≤ 3× |",
                num(l, &format!("{side}_before_mib")),
                num(l, &format!("{side}_peak_mib")),
                num(l, &format!("{side}_multiple")),
            )?;
        }
    }
    Ok(t)
}
