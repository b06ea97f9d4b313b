//! `cargo xtask bench`: run the benchmarks, then write their medians into
//! `docs/performance.md` between generated-section markers: the core framer
//! (against memcpy) and peer connections on loopback.
//!
//! The core benchmark runs twice in the same invocation:
//! - `xtask-default`: the process's normal allocator behaviour;
//! - `xtask-reuse`: the 64 MiB cases again with glibc told to serve large
//!   allocations from the heap (`MALLOC_MMAP_THRESHOLD_`), so that a freed
//!   64 MiB buffer is reused instead of returned to the kernel and faulted
//!   in, zeroed, on the next iteration.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use std::time::Duration;

use crate::mcp_interop::{Lab, Proc};
use crate::{cargo, step, workspace_root};

const DEFAULT: &str = "xtask-default";
const REUSE: &str = "xtask-reuse";
const BEGIN: &str = "<!-- xtask-bench:core:begin -->";
const END: &str = "<!-- xtask-bench:core:end -->";

const SIZES: &[(&str, u64)] = &[
    ("1KiB", 1024),
    ("64KiB", 64 * 1024),
    ("1MiB", 1024 * 1024),
    ("64MiB", 64 * 1024 * 1024),
];
const FRAME_SIZES: &[u64] = &[4096, 16384, 65536, 262_144];
const FRAME_BENCH_BYTES: u64 = 16 * 1024 * 1024;

/// Only the hot path and the sessions (`cargo xtask bench scale`).
pub(crate) fn run_scale() -> Result<(), String> {
    let doc = workspace_root().join("docs/performance.md");
    crate::bench_scale::write_sections(&doc)?;
    println!("wrote {}", doc.display());
    Ok(())
}

/// Only the hot path (`cargo xtask bench hotpath`): minutes, not the
/// sessions benchmark's quarter hour.
pub(crate) fn run_hotpath() -> Result<(), String> {
    let doc = workspace_root().join("docs/performance.md");
    crate::bench_scale::write_hotpath(&doc)?;
    println!("wrote {}", doc.display());
    Ok(())
}

/// Only the comparison with the Python reference (`cargo xtask bench references`).
pub(crate) fn run_references() -> Result<(), String> {
    let doc = workspace_root().join("docs/performance.md");
    let table = references()?;
    println!("\n{table}");
    replace_section(&doc, REF_BEGIN, REF_END, &table)?;
    println!("wrote {}", doc.display());
    Ok(())
}

pub(crate) fn run() -> Result<(), String> {
    let mut default = cargo();
    default.args([
        "bench",
        "--locked",
        "-p",
        "mcp-webrtc-core",
        "--bench",
        "throughput",
        "--",
        "--save-baseline",
        DEFAULT,
    ]);
    step("core benchmark (default allocator)", default)?;

    let mut reuse = cargo();
    reuse
        .args([
            "bench",
            "--locked",
            "-p",
            "mcp-webrtc-core",
            "--bench",
            "throughput",
            "--",
            "--save-baseline",
            REUSE,
            "64MiB",
        ])
        .env("MALLOC_MMAP_THRESHOLD_", "536870912")
        .env("MALLOC_TRIM_THRESHOLD_", "1073741824");
    step("core benchmark (64 MiB, allocator reuse)", reuse)?;

    let mut rtc = cargo();
    rtc.args([
        "bench",
        "--locked",
        "-p",
        "mcp-webrtc-rtc",
        "--bench",
        "loopback",
        "--",
        "--save-baseline",
        DEFAULT,
    ]);
    step("peer-connection benchmark (loopback)", rtc)?;

    let mut mcp = cargo();
    mcp.args([
        "bench",
        "--locked",
        "-p",
        "mcp-webrtc",
        "--bench",
        "mcp",
        "--",
        "--save-baseline",
        DEFAULT,
    ]);
    step("MCP benchmark (our transport vs rmcp in memory)", mcp)?;

    let doc = workspace_root().join("docs/performance.md");
    let table = core_table()?;
    println!("\n{table}");
    replace_section(&doc, BEGIN, END, &table)?;
    let table = rtc_table()?;
    println!("\n{table}");
    replace_section(&doc, RTC_BEGIN, RTC_END, &table)?;
    let table = mcp_table()?;
    println!("\n{table}");
    replace_section(&doc, MCP_BEGIN, MCP_END, &table)?;
    crate::bench_scale::write_sections(&doc)?;
    let table = crate::bench_cli::table()?;
    println!("\n{table}");
    replace_section(&doc, crate::bench_cli::BEGIN, crate::bench_cli::END, &table)?;
    let table = references()?;
    println!("\n{table}");
    replace_section(&doc, REF_BEGIN, REF_END, &table)?;
    println!("wrote {}", doc.display());
    Ok(())
}

const REF_BEGIN: &str = "<!-- xtask-bench:references:begin -->";
const REF_END: &str = "<!-- xtask-bench:references:end -->";

/// Small calls timed per configuration.
const REF_ROUNDS: &str = "1000";

/// One configuration of the comparison: its label and its `BENCH` figures.
type RefRun = (&'static str, serde_json::Value);

/// Run a client to completion and take its `BENCH {json}` line.
fn bench_line(client: &mut Proc) -> Result<serde_json::Value, String> {
    let status = client.wait(Duration::from_secs(300))?;
    let line = client
        .lines()
        .into_iter()
        .find_map(|l| l.strip_prefix("BENCH ").map(str::to_owned))
        .ok_or_else(|| format!("no BENCH line ({status})"))?;
    serde_json::from_str(&line).map_err(|e| format!("BENCH line: {e}"))
}

/// Ours and the Python reference, in every pairing, on the same machine in
/// the same run, with the same client-side measurements.
fn references() -> Result<String, String> {
    let python = crate::interop::python()?;
    crate::build_greeter_examples()?;
    let lab = Lab::new()?;
    let examples = workspace_root().join("target/release/examples");
    let script = workspace_root().join("xtask/interop/mcp_peer.py");
    let rust = |example: &str, args: &[&str]| {
        let mut cmd = lab.command(&examples.join(example));
        cmd.args(args);
        cmd
    };
    let py = |args: &[&str]| {
        let mut cmd = lab.command(&python);
        cmd.arg(&script).args(args);
        cmd
    };
    let signal = ["--signal", "127.0.0.1:9999"];
    let tcp = ["--tcp", "127.0.0.1:9999"];
    let mut runs: Vec<RefRun> = Vec::new();

    println!("==> reference comparison: rmcp in memory");
    let mut client = Proc::spawn(
        "rust-client",
        rust("greeter_client", &["--bench", REF_ROUNDS, "--memory"]),
    )?;
    runs.push(("rmcp in memory (floor)", bench_line(&mut client)?));

    let pairs: [(&'static str, bool, bool); 4] = [
        ("Rust ⇄ Rust", true, true),
        ("Rust server ⇄ Python client", true, false),
        ("Python server ⇄ Rust client", false, true),
        ("Python ⇄ Python (reference)", false, false),
    ];
    for (label, rust_server, rust_client) in pairs {
        println!("==> reference comparison: {label}");
        let mut server = if rust_server {
            let mut p = Proc::spawn("rust-server", rust("greeter_server", &signal))?;
            p.wait_line("signaling: listening", Duration::from_secs(20))?;
            p
        } else {
            let mut args = vec!["server"];
            args.extend(tcp);
            let mut p = Proc::spawn("py-server", py(&args))?;
            p.wait_line("LISTENING", Duration::from_secs(20))?;
            p
        };
        let mut client = if rust_client {
            let mut args = vec!["--bench", REF_ROUNDS];
            args.extend(signal);
            Proc::spawn("rust-client", rust("greeter_client", &args))?
        } else {
            let mut args = vec!["client", "--bench", REF_ROUNDS];
            args.extend(tcp);
            Proc::spawn("py-client", py(&args))?
        };
        let figures = bench_line(&mut client)?;
        if server.wait(Duration::from_secs(20)).is_err() {
            server.kill()?;
        }
        runs.push((label, figures));
    }
    references_table(&runs)
}

fn references_table(runs: &[RefRun]) -> Result<String, String> {
    let w = |e: std::fmt::Error| e.to_string();
    let reference = runs
        .iter()
        .find(|(l, _)| l.contains("(reference)"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut t = String::new();
    writeln!(
        t,
        "Measured by `cargo xtask bench` on {}; Python {} with {}; `webrtc` 0.21.1, \
         `rmcp` 3.11.0. Each pairing is two processes (one for the floor) in a \
         network namespace, over aiortc TCP signaling, timed by the client; \
         {REF_ROUNDS} small calls, results as the median of 5.",
        machine(),
        command_output(
            &crate::interop::python()?.display().to_string(),
            &["-c", "import platform; print(platform.python_version())"]
        ),
        crate::interop::PINS.join(" "),
    )
    .map_err(w)?;
    writeln!(t).map_err(w)?;
    write!(t, "| metric |").map_err(w)?;
    for (label, _) in runs {
        write!(t, " {label} |").map_err(w)?;
    }
    writeln!(t).map_err(w)?;
    write!(t, "|---|").map_err(w)?;
    for _ in runs {
        write!(t, "---:|").map_err(w)?;
    }
    writeln!(t).map_err(w)?;
    let metrics: [(&str, &str, f64); 7] = [
        ("transport start → `initialize` done", "init_ms", 1e6),
        ("`call_tool` round trip, median", "call_median_us", 1e3),
        ("`call_tool` round trip, p99", "call_p99_us", 1e3),
        ("10 KiB result", "result_10KiB_ms", 1e6),
        ("100 KiB result", "result_100KiB_ms", 1e6),
        ("256 000-byte result", "result_256KiB_ms", 1e6),
        ("10 MiB result", "result_10MiB_ms", 1e6),
    ];
    for (label, key, to_ns) in metrics {
        write!(t, "| {label} |").map_err(w)?;
        let base = reference.get(key).and_then(serde_json::Value::as_f64);
        for (_, figures) in runs {
            match figures.get(key).and_then(serde_json::Value::as_f64) {
                Some(v) => {
                    let ratio = base.map_or_else(String::new, |b| format!(" ({:.2}×)", v / b));
                    write!(t, " {}{ratio} |", fmt_time(v * to_ns)).map_err(w)?;
                }
                None => write!(t, " fails |").map_err(w)?,
            }
        }
        writeln!(t).map_err(w)?;
    }
    writeln!(t).map_err(w)?;
    writeln!(
        t,
        "In brackets: the ratio to Python ⇄ Python (below 1 is faster). \
         \"fails\": the call did not complete (the references' 262144-byte limit; \
         our server answers such a result to a Python client with the \
         \"result too large for this peer\" error instead)."
    )
    .map_err(w)?;
    Ok(t)
}

const MCP_BEGIN: &str = "<!-- xtask-bench:mcp:begin -->";
const MCP_END: &str = "<!-- xtask-bench:mcp:end -->";

/// Small calls sent open loop while 100 MiB results stream, for our
/// transport, rmcp in memory, and our transport with a FIFO scheduler (the
/// negative control), as a table after the main one.
fn open_loop_table(t: &mut String, us: &dyn Fn(&str) -> f64) -> std::fmt::Result {
    use std::fmt::Write as _;
    let mut rows = String::new();
    writeln!(rows)?;
    writeln!(
        rows,
        "Small calls every 2 ms while three 100 MiB results stream, open loop: each \
         call is sent at its intended time whether the ones before it returned or \
         not, and timed from that time, so a stall shows in full. The FIFO column \
         is our transport with its scheduler set to send each message whole (a \
         bench-only switch): the negative control, showing the metric tells \
         interleaving from none."
    )?;
    writeln!(rows)?;
    writeln!(
        rows,
        "| small calls during bulk (open loop) | rmcp in memory (floor) | mcp-webrtc | mcp-webrtc, FIFO scheduler | target |"
    )?;
    writeln!(rows, "|---|---:|---:|---:|---|")?;
    let cell = |kind: &str, key: &str| us(&format!("{kind}_open_{key}"));
    let count = |kind: &str, key: &str| {
        let v = cell(kind, key);
        if v.is_nan() {
            "–".to_owned()
        } else {
            format!("{v:.0}")
        }
    };
    writeln!(
        rows,
        "| calls | {} | {} | {} | |",
        count("memory", "calls"),
        count("webrtc", "calls"),
        count("fifo", "calls")
    )?;
    for (label, key, target) in [
        ("median", "p50_us", ""),
        ("p99", "p99_us", "≤ 5 ms"),
        ("max", "max_us", ""),
    ] {
        writeln!(
            rows,
            "| {label} | {} | {} | {} | {target} |",
            fmt_time(cell("memory", key) * 1e3),
            fmt_time(cell("webrtc", key) * 1e3),
            fmt_time(cell("fifo", key) * 1e3)
        )?;
    }
    writeln!(
        rows,
        "| calls over 5 ms | {} | {} | {} | |",
        count("memory", "over_5ms"),
        count("webrtc", "over_5ms"),
        count("fifo", "over_5ms")
    )?;
    t.push_str(&rows);
    Ok(())
}

/// MCP over our transport against rmcp over an in-memory pipe, same run.
fn mcp_table() -> Result<String, String> {
    let w = |e: std::fmt::Error| e.to_string();
    let path = workspace_root().join("target/criterion/mcp-latency.json");
    let lat: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| format!("read {}", path.display()))?;
    let us = |key: &str| {
        lat.get(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    let mut t = String::new();
    writeln!(t, "Measured by `cargo xtask bench` on {}.", machine()).map_err(w)?;
    writeln!(t).map_err(w)?;
    writeln!(
        t,
        "| metric | rmcp in memory (floor) | mcp-webrtc on loopback | ratio | target |"
    )
    .map_err(w)?;
    writeln!(t, "|---|---:|---:|---:|---|").map_err(w)?;
    let mem = median_ns("mcp_round_trip", "memory", DEFAULT)?;
    let ours = median_ns("mcp_round_trip", "webrtc", DEFAULT)?;
    writeln!(
        t,
        "| `call_tool` round trip, median (criterion) | {} | {} | {:.2}× | ≤ 2× the floor |",
        fmt_time(mem),
        fmt_time(ours),
        ours / mem
    )
    .map_err(w)?;
    for (label, key, target) in [
        (
            "`call_tool` round trip, median of 5000 calls",
            "median_us",
            "",
        ),
        (
            "`call_tool` round trip, p99 of 5000 calls",
            "p99_us",
            "≤ 300 µs",
        ),
        (
            "small-call median while 100 MiB results stream",
            "bulk_median_us",
            "",
        ),
        (
            "small-call p99 while 100 MiB results stream",
            "bulk_p99_us",
            "≤ 5 ms",
        ),
    ] {
        let m = us(&format!("memory_{key}"));
        let o = us(&format!("webrtc_{key}"));
        writeln!(
            t,
            "| {label} | {} | {} | {:.2}× | {target} |",
            fmt_time(m * 1e3),
            fmt_time(o * 1e3),
            o / m
        )
        .map_err(w)?;
    }
    let mem = median_ns("mcp_start", "memory", DEFAULT)?;
    let ours = median_ns("mcp_start", "webrtc", DEFAULT)?;
    writeln!(
        t,
        "| transport start → `initialize` done, median | {} | {} | {:.1}× | ≤ 30 ms (aiortc: 70 ms) |",
        fmt_time(mem),
        fmt_time(ours),
        ours / mem
    )
    .map_err(w)?;
    for (id, bytes) in [
        ("1MiB", 1u64 << 20),
        ("10MiB", 10 << 20),
        ("100MiB", 100 << 20),
    ] {
        let mem = median_ns("mcp_result", &format!("memory/{id}"), DEFAULT)?;
        let ours = median_ns("mcp_result", &format!("webrtc/{id}"), DEFAULT)?;
        let target = if id == "100MiB" { "≥ 100 MB/s" } else { "" };
        writeln!(
            t,
            "| {id} result, throughput | {:.0} MB/s | {:.0} MB/s | {:.2}× | {target} |",
            gbps(bytes, mem) * 1000.0,
            gbps(bytes, ours) * 1000.0,
            ours / mem
        )
        .map_err(w)?;
    }
    writeln!(t).map_err(w)?;
    writeln!(
        t,
        "Ratios are our time ÷ the floor's (above 1 means slower; for throughput, \
         the time per result). Small calls during the transfer: {} (floor) and {} (ours) \
         samples.",
        us("memory_bulk_calls"),
        us("webrtc_bulk_calls")
    )
    .map_err(w)?;
    open_loop_table(&mut t, &us).map_err(w)?;
    Ok(t)
}

const RTC_BEGIN: &str = "<!-- xtask-bench:rtc:begin -->";
const RTC_END: &str = "<!-- xtask-bench:rtc:end -->";

fn rtc_table() -> Result<String, String> {
    let w = |e: std::fmt::Error| e.to_string();
    let mut t = String::new();
    writeln!(t, "Measured by `cargo xtask bench` on {}.", machine()).map_err(w)?;
    writeln!(t).map_err(w)?;
    let setup = median_ns("rtc_setup", "dcep_channel_open", DEFAULT)?;
    let phases_path = workspace_root().join("target/criterion/rtc-setup-phases.json");
    let phases: serde_json::Value = std::fs::read_to_string(&phases_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| format!("read {}", phases_path.display()))?;
    let ms = |key: &str| {
        phases
            .get(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    writeln!(t, "| metric | median |").map_err(w)?;
    writeln!(t, "|---|---:|").map_err(w)?;
    writeln!(
        t,
        "| set-up, both peers, to an open DCEP channel (target ≤ 20 ms) | {} |",
        fmt_time(setup)
    )
    .map_err(w)?;
    for (label, key) in [
        (
            "· signaling (until the remote description is applied)",
            "signaling_ms",
        ),
        ("· ICE (until connected)", "ice_ms"),
        ("· DTLS (until the peer connection is connected)", "dtls_ms"),
        ("· SCTP + DCEP (until the channel is open)", "sctp_dcep_ms"),
    ] {
        writeln!(t, "| {label} | {:.2} ms |", ms(key)).map_err(w)?;
    }
    writeln!(
        t,
        "| round trip of a 64-byte text message | {} |",
        fmt_time(median_ns("rtc_round_trip", "64B", DEFAULT)?)
    )
    .map_err(w)?;
    const BATCH: u64 = 8 * 1024 * 1024;
    for (id, size) in [("16KiB", 16 * 1024u64), ("64KiB", 64 * 1024u64)] {
        let ns = median_ns("rtc_throughput", id, DEFAULT)?;
        let bytes = BATCH.checked_div(size).unwrap_or(0).saturating_mul(size);
        writeln!(
            t,
            "| throughput, {id} binary messages (8 MiB batches) | {:.1} MB/s |",
            gbps(bytes, ns) * 1000.0
        )
        .map_err(w)?;
    }
    Ok(t)
}

/// The median time, in nanoseconds, of one criterion benchmark.
fn median_ns(group: &str, id: &str, baseline: &str) -> Result<f64, String> {
    let path = workspace_root()
        .join("target/criterion")
        .join(group)
        .join(id)
        .join(baseline)
        .join("estimates.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))?;
    v.pointer("/median/point_estimate")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| format!("{}: no median", path.display()))
}

fn gbps(bytes: u64, ns: f64) -> f64 {
    bytes as f64 / ns
}

fn fmt_time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{} cores ({}), {}, {}",
        command_output("nproc", &[]),
        cpu,
        command_output("rustc", &["--version"]),
        command_output("date", &["-u", "+%Y-%m-%d"]),
    )
}

fn core_table() -> Result<String, String> {
    let mut t = String::new();
    let w = |e: std::fmt::Error| e.to_string();
    writeln!(t, "Measured by `cargo xtask bench` on {}.", machine()).map_err(w)?;
    writeln!(t).map_err(w)?;
    writeln!(
        t,
        "| message | chunk + reassemble | GB/s | memcpy_fresh | GB/s | ratio | memcpy_hot GB/s |"
    )
    .map_err(w)?;
    writeln!(t, "|---|---:|---:|---:|---:|---:|---:|").map_err(w)?;
    let mut rows: Vec<(String, u64, &str)> = SIZES
        .iter()
        .map(|&(name, bytes)| (name.to_owned(), bytes, DEFAULT))
        .collect();
    rows.push(("64MiB, allocator reuse".into(), 64 * 1024 * 1024, REUSE));
    for (label, bytes, baseline) in rows {
        let id = label.split(',').next().unwrap_or(&label);
        let ours = median_ns("chunk_reassemble", id, baseline)?;
        let fresh = median_ns("memcpy_fresh", id, baseline)?;
        let hot = median_ns("memcpy_hot", id, baseline)?;
        writeln!(
            t,
            "| {label} | {} | {:.2} | {} | {:.2} | {:.0}% | {:.2} |",
            fmt_time(ours),
            gbps(bytes, ours),
            fmt_time(fresh),
            gbps(bytes, fresh),
            100.0 * fresh / ours,
            gbps(bytes, hot),
        )
        .map_err(w)?;
    }
    writeln!(t).map_err(w)?;
    writeln!(
        t,
        "Frame size, one 16 MiB message (core cost only), and the time one frame \
         occupies a link at 100 MB/s, which is how long a small message may wait \
         behind each large message in the rotation:"
    )
    .map_err(w)?;
    writeln!(t).map_err(w)?;
    writeln!(
        t,
        "| frame size | chunk + reassemble | GB/s | frames | one frame at 100 MB/s |"
    )
    .map_err(w)?;
    writeln!(t, "|---:|---:|---:|---:|---:|").map_err(w)?;
    for &frame in FRAME_SIZES {
        let ns = median_ns("frame_size", &frame.to_string(), DEFAULT)?;
        let payload = frame.saturating_sub(21).max(1);
        writeln!(
            t,
            "| {} KiB | {} | {:.2} | {} | {:.0} µs |",
            frame / 1024,
            fmt_time(ns),
            gbps(FRAME_BENCH_BYTES, ns),
            FRAME_BENCH_BYTES.div_ceil(payload),
            frame as f64 / 100e6 * 1e6,
        )
        .map_err(w)?;
    }
    Ok(t)
}

pub(crate) fn replace_section(
    doc: &Path,
    begin: &str,
    end: &str,
    table: &str,
) -> Result<(), String> {
    let text = std::fs::read_to_string(doc).map_err(|e| format!("read {}: {e}", doc.display()))?;
    let (Some(b), Some(e)) = (text.find(begin), text.find(end)) else {
        return Err(format!(
            "{} lacks the markers {begin} … {end}",
            doc.display()
        ));
    };
    if e < b {
        return Err(format!("{}: markers out of order", doc.display()));
    }
    let before = text
        .get(..b.saturating_add(begin.len()))
        .unwrap_or_default();
    let after = text.get(e..).unwrap_or_default();
    let new = format!("{before}\n{table}{after}");
    std::fs::write(doc, new).map_err(|e| format!("write {}: {e}", doc.display()))
}
