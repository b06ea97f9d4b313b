//! What sessions cost, measured on a server process of its own.
//!
//! **Many sessions.** The benchmark process runs a signaling relay and the
//! clients; a child process (this binary again, `SCALE_SERVE=<relay url>`)
//! registers as a relay host and serves the greeter to every client, as
//! `mcp-webrtc serve --relay` does. For each N (100, 250, 500) a fresh
//! server child is started, N clients connect at once, and the benchmark
//! reads the server's `/proc`:
//! - set-up: each client's time from its first signaling step until rmcp's
//!   `initialize` is done; the slowest, and N over the time until all are
//!   done (sessions per second); failures are counted, not hidden;
//! - RSS per session at idle: (RSS with N idle sessions − RSS of the
//!   registered server with none) / N;
//! - CPU of the whole server process while all sessions are idle for 30 s,
//!   in percent of one core (utime + stime from `/proc/<pid>/stat`);
//! - `call_tool` round trips while every session makes 10 calls a second
//!   for 10 s (each call timed from its intended start): p50 and p99.
//!
//! **A large result.** Two children of their own, a server and a client
//! (`SCALE_CLIENT=<relay url>`), carry one 100 MiB `blob` result; the
//! peak RSS of each (`VmHWM`) over its RSS before the call, as a multiple of
//! the message size.
//!
//! Results go to `target/criterion/scale.json` for `cargo xtask bench`.
//! `SCALE_SESSIONS=100,250` picks the sizes; `SCALE_IDLE_S` the idle time;
//! `SCALE_DEAD_PEER_S` the dead-peer timeout (default 5 s); `SCALE_OUT` the
//! file name under `target/criterion`.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::print_stdout,
    clippy::print_stderr
)]

#[path = "../../../examples/common/greeter.rs"]
mod greeter;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greeter::Greeter;
use mcp_webrtc::WebRtcTransport;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::rmcp::service::RunningService;
use mcp_webrtc::rmcp::{RoleClient, ServiceExt};
use mcp_webrtc::signaling::relay::{RelayConfig, RelayServer};
use mcp_webrtc::signaling::{RelayHost, WebSocketOptions, WebSocketSignaling};

type Client = RunningService<RoleClient, ()>;

const TOKEN: &str = "scale-bench-token";
const HOST: &str = "scale-bench";
const LARGE: usize = 100 << 20;
const CALLS_PER_SECOND: u64 = 10;
const LOAD: Duration = Duration::from_secs(10);

fn loopback() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 0))]
}

/// The transport's builder; `SCALE_DEAD_PEER_S` sets the dead-peer timeout
/// on both sides (the ICE keepalive runs at a tenth of it), to show what the
/// idle CPU is made of.
fn builder() -> mcp_webrtc::Builder {
    let builder = WebRtcTransport::builder().bind(loopback());
    match std::env::var("SCALE_DEAD_PEER_S")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(secs) => builder.dead_peer_timeout(Duration::from_secs(secs)),
        None => builder,
    }
}

fn options() -> WebSocketOptions {
    WebSocketOptions::default().with_token(TOKEN)
}

/// Every wait has a deadline: a stuck session fails the benchmark.
async fn bounded<T>(what: &str, limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {limit:?}"))
}

fn args(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

// ---- the server child ------------------------------------------------------

/// Register at the relay and serve the greeter to every client.
async fn serve(relay: String) {
    let mut host = RelayHost::register(&relay, HOST, options()).await.unwrap();
    println!("READY");
    // Bounded by the parent, which kills this process.
    loop {
        let pending = match host.next_session().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                return;
            }
        };
        // Joined on the session's task, as `serve` does, so that a burst of
        // clients does not outrun the relay's queue of announcements.
        tokio::spawn(async move {
            let signaling = match pending.join().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("join: {e}");
                    return;
                }
            };
            let transport = builder().server(signaling);
            match transport.await {
                Ok(transport) => {
                    if let Ok(running) = Greeter::default().serve(transport).await {
                        let _ = running.waiting().await;
                    }
                }
                Err(e) => eprintln!("session: {e}"),
            }
        });
    }
}

// ---- clients ----------------------------------------------------------------

async fn connect(relay: &str) -> Result<Client, String> {
    let url = RelayHost::client_url(relay, HOST);
    let signaling = WebSocketSignaling::connect(&url, options())
        .await
        .map_err(|e| format!("signaling: {e}"))?;
    let transport = builder()
        .client(signaling)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    ().serve(transport)
        .await
        .map_err(|e| format!("initialize: {e}"))
}

async fn echo(client: &Client) -> Result<(), String> {
    let params = CallToolRequestParams::new("echo")
        .with_arguments(args(serde_json::json!({"text": "ping"})));
    match tokio::time::timeout(Duration::from_secs(30), client.call_tool(params)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 30 s".into()),
    }
}

/// The client child: one session, one 100 MiB result; prints its RSS
/// before the call and its peak.
async fn large_client(relay: String) {
    let client = bounded("connect", Duration::from_secs(30), connect(&relay))
        .await
        .unwrap();
    let before = status_kib(std::process::id(), "VmRSS");
    let params = CallToolRequestParams::new("blob")
        .with_arguments(args(serde_json::json!({"bytes": LARGE, "hash": false})));
    let result = bounded("blob", Duration::from_secs(120), client.call_tool(params))
        .await
        .unwrap();
    assert_eq!(result.content[0].as_text().unwrap().text.len(), LARGE);
    drop(result);
    let peak = status_kib(std::process::id(), "VmHWM");
    println!("RSS {before} {peak}");
    let _ = client.cancel().await;
}

// ---- /proc ---------------------------------------------------------------

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks (100 a second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &text[text.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Open files this process may have: the benchmark asks for six per
/// session and 64 more (a UDP socket and a WebSocket on each side, and the
/// relay's two, with room to spare).
fn open_file_limit() -> u64 {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(0)
}

struct Proc {
    child: Child,
    pid: u32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This binary again, as a server (`SCALE_SERVE`) or a client
/// (`SCALE_CLIENT`) of the relay; waits for its first line.
fn spawn_self(var: &str, relay: &str, ready: &str) -> (Proc, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(var, relay)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let child = Proc { child, pid };
    // Bounded: the child says `ready` within 180 s, or the benchmark fails.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(ready) => return (child, line),
            Ok(_) => {}
            Err(_) => panic!("the {var} child said nothing like {ready:?}"),
        }
    }
}

// ---- the measurements ----------------------------------------------------

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn many(relay: &str, n: usize, idle: Duration) -> serde_json::Value {
    let (server, _) = spawn_self("SCALE_SERVE", relay, "READY");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base_kib = status_kib(server.pid, "VmRSS");

    // Set-up: N clients at once.
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let relay = relay.to_owned();
            tokio::spawn(async move {
                let t = Instant::now();
                let client = tokio::time::timeout(Duration::from_secs(120), connect(&relay))
                    .await
                    .unwrap_or_else(|_| Err("no session within 120 s".into()));
                (client, t.elapsed())
            })
        })
        .collect();
    let mut clients = Vec::new();
    let mut setups = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for task in tasks {
        let (client, took) = task.await.unwrap();
        match client {
            Ok(c) => {
                clients.push(Arc::new(c));
                setups.push(took);
            }
            Err(e) => failures.push(e),
        }
    }
    let all_done = start.elapsed();
    setups.sort();

    // Idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = status_kib(server.pid, "VmRSS");
    let (t0, c0) = (Instant::now(), cpu_ticks(server.pid));
    let own0 = cpu_ticks(std::process::id());
    tokio::time::sleep(idle).await;
    let secs = t0.elapsed().as_secs_f64();
    let idle_cpu = (cpu_ticks(server.pid) - c0) as f64 / 100.0 / secs * 100.0;
    let own_cpu = (cpu_ticks(std::process::id()) - own0) as f64 / 100.0 / secs * 100.0;

    // Load: every session 10 calls a second, open loop.
    let every = Duration::from_millis(1000 / CALLS_PER_SECOND);
    let calls = (LOAD.as_millis() / every.as_millis()) as u32;
    let begin = tokio::time::Instant::now() + Duration::from_millis(100);
    let load: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, client)| {
            let client = Arc::clone(client);
            // Spread the sessions' calls over the interval.
            let offset = every * (i as u32) / (n.max(1) as u32);
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut errors = 0u32;
                for k in 0..calls {
                    let due = begin + offset + every * k;
                    tokio::time::sleep_until(due).await;
                    match echo(&client).await {
                        Ok(()) => out.push(due.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (out, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut call_errors = 0;
    for task in load {
        let (v, e) = task.await.unwrap();
        latencies.extend(v);
        call_errors += e;
    }
    latencies.sort();
    let alive = status_kib(server.pid, "VmRSS") > 0;
    for client in clients {
        if let Ok(client) = Arc::try_unwrap(client) {
            let _ = bounded("cancel", Duration::from_secs(30), client.cancel()).await;
        }
    }
    drop(server);
    if let Some(e) = failures.first() {
        println!("{n} sessions: {} failed, the first: {e}", failures.len());
    }
    serde_json::json!({
        "sessions": n,
        "connected": setups.len(),
        "failed": failures.len(),
        "setup_rate_per_s": setups.len() as f64 / all_done.as_secs_f64(),
        "setup_median_ms": percentile(&setups, 0.5),
        "setup_max_ms": percentile(&setups, 1.0),
        "base_rss_mib": base_kib as f64 / 1024.0,
        "idle_rss_mib": idle_kib as f64 / 1024.0,
        "rss_per_session_kib": (idle_kib.saturating_sub(base_kib)) as f64 / n as f64,
        "idle_cpu_percent": idle_cpu,
        "idle_s": secs,
        "client_process_idle_cpu_percent": own_cpu,
        "calls": latencies.len(),
        "call_errors": call_errors,
        "call_p50_ms": percentile(&latencies, 0.5),
        "call_p99_ms": percentile(&latencies, 0.99),
        "server_alive": alive,
    })
}

async fn large(relay: &str) -> serde_json::Value {
    let (server, _) = spawn_self("SCALE_SERVE", relay, "READY");
    let server_before = status_kib(server.pid, "VmRSS");
    let (client, line) = spawn_self("SCALE_CLIENT", relay, "RSS ");
    let server_peak = status_kib(server.pid, "VmHWM");
    let mut it = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse::<u64>().unwrap());
    let (client_before, client_peak) = (it.next().unwrap(), it.next().unwrap());
    drop(client);
    drop(server);
    let size_kib = (LARGE / 1024) as f64;
    serde_json::json!({
        "size_mib": LARGE >> 20,
        "server_before_mib": server_before as f64 / 1024.0,
        "server_peak_mib": server_peak as f64 / 1024.0,
        "server_multiple": (server_peak.saturating_sub(server_before)) as f64 / size_kib,
        "client_before_mib": client_before as f64 / 1024.0,
        "client_peak_mib": client_peak as f64 / 1024.0,
        "client_multiple": (client_peak.saturating_sub(client_before)) as f64 / size_kib,
    })
}

async fn measure() -> serde_json::Value {
    let sizes: Vec<usize> = std::env::var("SCALE_SESSIONS")
        .unwrap_or_else(|_| "100,250,500".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let idle = Duration::from_secs(
        std::env::var("SCALE_IDLE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let biggest = sizes.iter().copied().max().unwrap_or(0) as u64;
    let limit = open_file_limit();
    assert!(
        limit >= biggest * 6 + 64,
        "{biggest} sessions need about {} open files, and this process may open {limit}: \
         raise it (`ulimit -n`; `cargo xtask bench` does)",
        biggest * 6 + 64
    );
    let config = RelayConfig::with_tokens([TOKEN])
        .with_max_connections_per_ip(100_000)
        .with_max_rooms_per_token(100_000)
        .with_host_connect_rate(100_000)
        .with_idle_timeout(Duration::from_secs(3600));
    let relay = RelayServer::bind("127.0.0.1:0", config).await.unwrap();
    let url = relay.url();
    let mut runs = Vec::new();
    for n in sizes {
        let run = many(&url, n, idle).await;
        println!("scale: {run}");
        runs.push(run);
    }
    let large = large(&url).await;
    println!("scale: {large}");
    relay.shutdown().await;
    serde_json::json!({ "sessions": runs, "large": large })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(relay) = std::env::var("SCALE_SERVE") {
        rt.block_on(serve(relay));
        return;
    }
    if let Ok(relay) = std::env::var("SCALE_CLIENT") {
        rt.block_on(large_client(relay));
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale: run with `cargo bench` (it takes minutes)");
        return;
    }
    let out = rt.block_on(measure());
    let text = serde_json::to_string_pretty(&out).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion");
    std::fs::create_dir_all(&dir).unwrap();
    let name = std::env::var("SCALE_OUT").unwrap_or_else(|_| "scale.json".into());
    std::fs::write(dir.join(name), text).unwrap();
}
