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
    write_hotpath(doc)?;
    let table = scale_table()?;
    println!("\n{table}");
    crate::bench::replace_section(doc, SCALE_BEGIN, SCALE_END, &table)
}

/// Run the hot-path benchmark only and write its section of `doc`.
pub(crate) fn write_hotpath(doc: &std::path::Path) -> Result<(), String> {
    let table = hotpath_table()?;
    println!("\n{table}");
    crate::bench::replace_section(doc, HOT_BEGIN, HOT_END, &table)
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

/// Instructions of the whole process for `calls` round trips on `path`, on
/// one thread (callgrind).
fn instructions(exe: &std::path::Path, path: &str, calls: u64) -> Result<u64, String> {
    let dir = workspace_root().join("target/callgrind");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}/hotpath-{path}-{calls}.out",
            dir.display()
        ))
        .arg(exe)
        .env("HOTPATH_CALLS", calls.to_string())
        .env("HOTPATH_PATH", path)
        .env("HOTPATH_WORKERS", "1")
        .output()
        .map_err(|e| format!("valgrind (apt-get install valgrind): {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "callgrind run of {path} with {calls} calls failed:\n{}",
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

/// The paths of the hot-path benchmark: its key, and the table's words.
const PATHS: [(&str, &str); 5] = [
    (
        "bare",
        "(a) `webrtc` data channel used directly, 64-byte text",
    ),
    ("rtc", "(b) our rtc layer (`Connection`), 64-byte text"),
    ("memory", "(c) rmcp in memory, `call_tool` of `echo`"),
    ("webrtc", "(d) `call_tool` of `echo` over `WebRtcTransport`"),
    (
        "minimal",
        "(e) the same over `Minimal`, the least rmcp transport on our rtc layer (a reference)",
    ),
];

/// Paths counted under callgrind (the rtc layer's is not).
const COUNTED: [&str; 4] = ["bare", "memory", "webrtc", "minimal"];

/// Run the hot-path benchmark (on two workers with bulk, then on one
/// thread) and count instructions per path; its table.
fn hotpath_table() -> Result<String, String> {
    let bench = |env: &[(&str, &str)]| {
        let mut run = cargo();
        run.args([
            "bench",
            "--locked",
            "-p",
            "mcp-webrtc",
            "--bench",
            "hotpath",
        ]);
        run.envs(env.iter().copied());
        run
    };
    step(
        "hot-path benchmark (five paths, bulk; two workers)",
        bench(&[]),
    )?;
    step(
        "hot-path benchmark (five paths; one thread)",
        bench(&[
            ("HOTPATH_WORKERS", "1"),
            ("HOTPATH_LATENCY_ONLY", "1"),
            ("HOTPATH_OUT", "hotpath-1.json"),
        ]),
    )?;
    let two = read_json("hotpath.json")?;
    let one = read_json("hotpath-1.json")?;
    let exe = bench_executable("hotpath")?;
    let mut counted = std::collections::BTreeMap::new();
    for path in COUNTED {
        println!(
            "==> callgrind: {path}, {} and {} round trips",
            CALLS.0, CALLS.1
        );
        let (low, high) = (
            instructions(&exe, path, CALLS.0)?,
            instructions(&exe, path, CALLS.1)?,
        );
        let per_call = high
            .saturating_sub(low)
            .checked_div(CALLS.1.saturating_sub(CALLS.0))
            .unwrap_or(0);
        counted.insert(path, per_call);
    }
    format_hotpath(&two, &one, &counted).map_err(|e| e.to_string())
}

fn format_hotpath(
    two: &serde_json::Value,
    one: &serde_json::Value,
    counted: &std::collections::BTreeMap<&str, u64>,
) -> Result<String, std::fmt::Error> {
    let m = |v: &serde_json::Value, k: &str| num(v, &format!("{k}_median_us"));
    let instr = |k: &str| counted.get(k).map_or(f64::NAN, |&n| n as f64);
    let mut t = String::new();
    writeln!(
        t,
        "Measured by `cargo xtask bench` on {}.",
        crate::bench::machine()
    )?;
    writeln!(t)?;
    writeln!(
        t,
        "Individual round trips, {} of each path, in interleaved rounds; one run on two tokio \
         workers, then one on tokio's current-thread runtime (everything on one thread). \
         Instructions: callgrind, on one thread, both peers and both stacks.",
        num(two, "samples")
    )?;
    writeln!(t)?;
    writeln!(
        t,
        "| path | median, 2 workers | p99, 2 workers | context switches | median, 1 thread | CPU, 1 thread | instructions |"
    )?;
    writeln!(t, "|---|---:|---:|---:|---:|---:|---:|")?;
    for (key, name) in PATHS {
        let count = counted
            .get(key)
            .map_or_else(|| "not counted".to_owned(), u64::to_string);
        writeln!(
            t,
            "| {name} | {:.1} µs | {:.1} µs | {:.1} | {:.1} µs | {:.0} µs | {count} |",
            m(two, key),
            num(two, &format!("{key}_p99_us")),
            num(two, &format!("{key}_switches_per_rt")),
            m(one, key),
            num(one, &format!("{key}_cpu_us_per_rt")),
        )?;
    }
    writeln!(t)?;
    let added = |v: &serde_json::Value| m(v, "webrtc") - m(v, "bare") - m(v, "memory");
    let machinery = |v: &serde_json::Value| m(v, "webrtc") - m(v, "minimal");
    let any = |v: &serde_json::Value| m(v, "minimal") - m(v, "bare") - m(v, "memory");
    let rtc = |v: &serde_json::Value| m(v, "rtc") - m(v, "bare");
    writeln!(
        t,
        "| derived | 2 workers | 1 thread | instructions | target |"
    )?;
    writeln!(t, "|---|---:|---:|---:|---|")?;
    writeln!(
        t,
        "| our added cost, (d) − (a) − (c) | {:.1} µs | {:.1} µs | {:.0} | ≤ 20 µs |",
        added(two),
        added(one),
        instr("webrtc") - instr("bare") - instr("memory")
    )?;
    writeln!(
        t,
        "| of which our transport's machinery, (d) − (e) | {:.1} µs | {:.1} µs | {:.0} | |",
        machinery(two),
        machinery(one),
        instr("webrtc") - instr("minimal")
    )?;
    writeln!(
        t,
        "| and any rmcp transport on this stack, (e) − (a) − (c) | {:.1} µs | {:.1} µs | {:.0} | |",
        any(two),
        any(one),
        instr("minimal") - instr("bare") - instr("memory")
    )?;
    writeln!(
        t,
        "| the rtc layer's, (b) − (a) | {:.1} µs | {:.1} µs | | ≤ 10 µs |",
        rtc(two),
        rtc(one)
    )?;
    writeln!(
        t,
        "| (d) p99 | {:.1} µs | | | ≤ 300 µs |",
        num(two, "webrtc_p99_us")
    )?;
    writeln!(t)?;
    let (bare, bulk) = (num(two, "bare_bulk_mb_s"), num(two, "webrtc_bulk_mb_s"));
    writeln!(
        t,
        "100 MiB, three of each alternately (medians), two workers; CPU time of the process (both peers):"
    )?;
    writeln!(t)?;
    writeln!(t, "| 100 MiB | throughput | CPU time | target |")?;
    writeln!(t, "|---|---:|---:|---|")?;
    writeln!(
        t,
        "| bare channel, 16 KiB binary messages | {bare:.0} MB/s | {:.2} s | |",
        num(two, "bare_bulk_cpu_s")
    )?;
    writeln!(
        t,
        "| `call_tool` result over our transport, 16 KiB frames | {bulk:.0} MB/s ({:.0}%) | {:.2} s | ≥ 80% |",
        bulk / bare * 100.0,
        num(two, "webrtc_bulk_cpu_s")
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
