//! `cargo xtask bench`: run the benchmarks, then write their medians into
//! `docs/performance.md` between generated-section markers.
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

    let table = core_table()?;
    println!("\n{table}");
    let doc = workspace_root().join("docs/performance.md");
    replace_section(&doc, &table)?;
    println!("wrote {}", doc.display());
    Ok(())
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

fn machine() -> String {
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

fn replace_section(doc: &Path, table: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(doc).map_err(|e| format!("read {}: {e}", doc.display()))?;
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!(
            "{} lacks the markers {BEGIN} … {END}",
            doc.display()
        ));
    };
    if e < b {
        return Err(format!("{}: markers out of order", doc.display()));
    }
    let before = text
        .get(..b.saturating_add(BEGIN.len()))
        .unwrap_or_default();
    let after = text.get(e..).unwrap_or_default();
    let new = format!("{before}\n{table}{after}");
    std::fs::write(doc, new).map_err(|e| format!("write {}: {e}", doc.display()))
}
