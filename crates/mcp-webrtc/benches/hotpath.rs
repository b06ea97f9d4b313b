//! The hot path, split into its layers and measured in one run, as medians
//! of individual round trips (not criterion means):
//!
//! - (a) the `webrtc` crate's data channel used directly (its own `send_text`
//!   and `poll`), on a peer connection made with the facade's settings;
//! - (b) our rtc layer (`Connection::send_text` / `recv`) on the same kind of
//!   connection;
//! - (c) rmcp in memory: a `call_tool` of `echo` over a duplex pipe;
//! - (d) the same `call_tool` over `WebRtcTransport` on loopback;
//! - (e) the same `call_tool` over [`Minimal`], the least an rmcp transport
//!   on our rtc layer can do (encode and send inline, receive and decode
//!   inline; no framing, limits, bookkeeping or writer task): a reference,
//!   not a product. (d) − (e) is what our transport's own machinery costs.
//!
//! Our own cost is (d) − (a) − (c), and the rtc layer's (b) − (a). The five
//! are measured in interleaved rounds, so drift on the shared machine
//! touches all of them alike. Each round also counts the process's context
//! switches and CPU time per round trip.
//!
//! Bulk: 100 MiB over the bare channel in 16 KiB binary messages, against
//! 100 MiB `call_tool` results over our transport (16 KiB frames), in the
//! same run, with the CPU time of each. The tool hands over a result made
//! before the timer starts, so the figure is the transport's and not the
//! time a tool takes to make 100 MiB of text.
//!
//! Results go to `target/criterion/hotpath.json` (or `HOTPATH_OUT`) for
//! `cargo xtask bench`. `HOTPATH_WORKERS=1` runs everything on tokio's
//! current-thread runtime (no hand-off between threads); the default is two
//! workers. `HOTPATH_LATENCY_ONLY` and `HOTPATH_BULK_ONLY` run one half;
//! `HOTPATH_PATHS` (a comma-separated list) picks the paths of the first.
//! Besides the five, `minimal_writer` is `Minimal` handing each message to
//! a writer task: it measures the hand-off alone.
//!
//! `HOTPATH_CALLS=N` instead makes N round trips on one path
//! (`HOTPATH_PATH`: one of the paths' names; by default `webrtc`) after
//! set-up and a warm-up, and nothing else: `cargo xtask bench` runs it
//! under callgrind twice per path, with two values of N, and the difference
//! of the instruction counts over the difference of N is the instruction
//! count of one round trip (both peers, both stacks).
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::print_stdout
)]

#[path = "../../../examples/common/greeter.rs"]
mod greeter;
#[path = "hotpath_support/process.rs"]
mod process;
#[path = "hotpath_support/reference.rs"]
mod reference;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use greeter::Greeter;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::rmcp::service::RunningService;
use mcp_webrtc::rmcp::{RoleClient, ServerHandler, ServiceExt};
use mcp_webrtc::rtc::{Connection, Incoming, PeerConfig};
use mcp_webrtc::signaling::MemorySignaling;
use mcp_webrtc::{DEFAULT_SEND_BUFFER, WebRtcTransport};
use process::{context_switches, cpu_ticks};
use reference::{Prebuilt, minimal};
use webrtc::data_channel::DataChannelEvent;

type Client = RunningService<RoleClient, ()>;

const WARM_UP: usize = 300;
const ROUNDS: usize = 5;
const PER_ROUND: usize = 1000;
const MESSAGE: usize = 64;
const BULK: usize = 100 << 20;
const FRAME: usize = 16 * 1024;

fn loopback() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 0))]
}

/// Two connected peers with the facade's peer-connection settings.
async fn rtc_pair() -> (Connection, Connection) {
    let config = |c: PeerConfig| {
        c.with_bind(loopback())
            .with_send_buffer_limit(DEFAULT_SEND_BUFFER)
    };
    let (a, b) = MemorySignaling::pair();
    let (x, y) = tokio::join!(
        mcp_webrtc::rtc::connect(config(PeerConfig::offerer()), a),
        mcp_webrtc::rtc::connect(config(PeerConfig::answerer()), b)
    );
    (x.unwrap(), y.unwrap())
}

async fn minimal_client(with_writer: bool) -> Client {
    let (x, y) = rtc_pair().await;
    tokio::spawn(async move {
        if let Ok(running) = Greeter::default().serve(minimal(y, with_writer)).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(minimal(x, with_writer)).await.unwrap()
}

async fn webrtc_client() -> Client {
    client_of(Greeter::default()).await
}

async fn client_of<S: ServerHandler>(handler: S) -> Client {
    let (s, c) = MemorySignaling::pair();
    let server = WebRtcTransport::builder().bind(loopback());
    tokio::spawn(async move {
        let transport = server.server(s).await.unwrap();
        if let Ok(running) = handler.serve(transport).await {
            let _ = running.waiting().await;
        }
    });
    let transport = WebRtcTransport::builder()
        .bind(loopback())
        .client(c)
        .await
        .unwrap();
    ().serve(transport).await.unwrap()
}

fn args(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// Every wait has a deadline: a stuck path fails the benchmark.
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 120 s"))
}

async fn echo(client: &Client) {
    let params = CallToolRequestParams::new("echo")
        .with_arguments(args(serde_json::json!({"text": "ping"})));
    let result = bounded("echo", client.call_tool(params)).await.unwrap();
    assert_eq!(result.content.len(), 1);
}

async fn blob(client: &Client, bytes: usize) {
    let params = CallToolRequestParams::new("blob")
        .with_arguments(args(serde_json::json!({"bytes": bytes, "hash": false})));
    let result = bounded("blob", client.call_tool(params)).await.unwrap();
    assert_eq!(result.content[0].as_text().unwrap().text.len(), bytes);
}

/// One of the paths, ready to time one round trip at a time.
enum Path {
    Bare(Connection, tokio::task::JoinHandle<()>),
    Rtc(Connection, tokio::task::JoinHandle<()>),
    Mcp(Client),
}

impl Path {
    async fn bare() -> Path {
        let (x, y) = rtc_pair().await;
        // The echo side, on the stack's own channel.
        let echo = tokio::spawn(async move {
            let dc = y.data_channel().clone();
            while let Some(event) = dc.poll().await {
                if let DataChannelEvent::OnMessage(m) = event {
                    let text = std::str::from_utf8(&m.data).unwrap();
                    if dc.send_text(text).await.is_err() {
                        break;
                    }
                }
            }
            drop(y);
        });
        Path::Bare(x, echo)
    }

    async fn rtc() -> Path {
        let (x, y) = rtc_pair().await;
        let echo = tokio::spawn(async move {
            while let Ok(Some(Incoming::Text(t))) = y.recv().await {
                if y.send_text(std::str::from_utf8(&t).unwrap()).await.is_err() {
                    break;
                }
            }
        });
        Path::Rtc(x, echo)
    }

    async fn round_trip(&self, text: &str) {
        match self {
            Path::Bare(x, _) => {
                let dc = x.data_channel();
                dc.send_text(text).await.unwrap();
                // Bounded: the echo answers each message once.
                loop {
                    match bounded("bare echo", dc.poll()).await {
                        Some(DataChannelEvent::OnMessage(m)) => {
                            assert_eq!(m.data.len(), text.len());
                            return;
                        }
                        Some(_) => {}
                        None => panic!("the bare channel ended"),
                    }
                }
            }
            Path::Rtc(x, _) => {
                x.send_text(text).await.unwrap();
                match bounded("rtc echo", x.recv()).await {
                    Ok(Some(Incoming::Text(t))) => assert_eq!(t.len(), text.len()),
                    other => panic!("rtc echo: {other:?}"),
                }
            }
            Path::Mcp(client) => echo(client).await,
        }
    }

    async fn end(self) {
        match self {
            Path::Bare(x, echo) | Path::Rtc(x, echo) => {
                x.close().await;
                echo.abort();
            }
            Path::Mcp(client) => {
                let _ = client.cancel().await;
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// 100 MiB over the bare channel in 16 KiB binary messages; MB/s.
async fn bare_bulk(x: &Connection, y: &Connection) -> f64 {
    let count = BULK / FRAME;
    let payload = vec![7u8; FRAME];
    let start = Instant::now();
    let send = async {
        for _ in 0..count {
            x.data_channel()
                .send(BytesMut::from(&payload[..]))
                .await
                .unwrap();
        }
    };
    let recv = async {
        let mut got = 0;
        while got < BULK {
            match y.data_channel().poll().await {
                Some(DataChannelEvent::OnMessage(m)) => got += m.data.len(),
                Some(_) => {}
                None => panic!("the bare channel ended mid-transfer"),
            }
        }
    };
    bounded("bare bulk", async { tokio::join!(send, recv) }).await;
    BULK as f64 / start.elapsed().as_secs_f64() / 1e6
}

async fn path_named(name: &str) -> Path {
    match name {
        "bare" => Path::bare().await,
        "rtc" => Path::rtc().await,
        "memory" => Path::Mcp(greeter::in_memory_client().await.unwrap()),
        "minimal" => Path::Mcp(minimal_client(false).await),
        "minimal_writer" => Path::Mcp(minimal_client(true).await),
        "webrtc" => Path::Mcp(webrtc_client().await),
        other => panic!("no path named {other}"),
    }
}

/// `n` round trips on one path (`HOTPATH_PATH`, by default `webrtc`) after
/// set-up and a warm-up, and nothing else.
async fn calls_only(n: usize) {
    let text = "x".repeat(MESSAGE);
    let name = std::env::var("HOTPATH_PATH").unwrap_or_else(|_| "webrtc".into());
    let path = path_named(&name).await;
    for _ in 0..WARM_UP + n {
        path.round_trip(&text).await;
    }
    path.end().await;
}

async fn measure() -> serde_json::Map<String, serde_json::Value> {
    let text = "x".repeat(MESSAGE);
    let list =
        std::env::var("HOTPATH_PATHS").unwrap_or_else(|_| "bare,rtc,memory,webrtc,minimal".into());
    let names: Vec<&str> = list.split(',').collect();
    let mut paths = Vec::new();
    for name in &names {
        paths.push(path_named(name).await);
    }
    for path in &paths {
        for _ in 0..WARM_UP {
            path.round_trip(&text).await;
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let mut switches = vec![0u64; paths.len()];
    let mut cpu = vec![0u64; paths.len()];
    for _ in 0..ROUNDS {
        for ((path, out), (sw, cpu)) in paths
            .iter()
            .zip(samples.iter_mut())
            .zip(switches.iter_mut().zip(cpu.iter_mut()))
        {
            let (s, c) = (context_switches(), cpu_ticks());
            for _ in 0..PER_ROUND {
                let t = Instant::now();
                path.round_trip(&text).await;
                out.push(t.elapsed());
            }
            *sw += context_switches() - s;
            *cpu += cpu_ticks() - c;
        }
    }
    let mut out = serde_json::Map::new();
    let n = (ROUNDS * PER_ROUND) as f64;
    for (i, (name, v)) in names.iter().zip(samples.iter_mut()).enumerate() {
        v.sort();
        out.insert(format!("{name}_median_us"), percentile(v, 0.5).into());
        out.insert(format!("{name}_p99_us"), percentile(v, 0.99).into());
        out.insert(
            format!("{name}_switches_per_rt"),
            (switches[i] as f64 / n).into(),
        );
        // CPU time of the whole process per round trip, in µs.
        out.insert(
            format!("{name}_cpu_us_per_rt"),
            (cpu[i] as f64 * 1e4 / n).into(),
        );
    }
    out.insert("samples".into(), (ROUNDS * PER_ROUND).into());
    for path in paths {
        path.end().await;
    }
    out
}

/// Bulk: the bare channel and our transport, alternately, three each; MB/s
/// and CPU seconds per run (both peers are in this process).
async fn bulk(out: &mut serde_json::Map<String, serde_json::Value>) {
    let prebuilt = Prebuilt::default();
    let client = client_of(prebuilt.clone()).await;
    let (x, y) = rtc_pair().await;
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    let (mut bare_cpu, mut ours_cpu) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let c = cpu_ticks();
        bare.push(bare_bulk(&x, &y).await);
        bare_cpu.push((cpu_ticks() - c) as f64 / 100.0);
        // Made before the timer starts: the figure is the transport's.
        prebuilt
            .results
            .lock()
            .unwrap()
            .push(greeter::blob(BULK, round));
        let (t, c) = (Instant::now(), cpu_ticks());
        blob(&client, BULK).await;
        ours.push(BULK as f64 / t.elapsed().as_secs_f64() / 1e6);
        ours_cpu.push((cpu_ticks() - c) as f64 / 100.0);
    }
    x.close().await;
    y.close().await;
    let _ = client.cancel().await;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    out.insert("bare_bulk_mb_s".into(), median(bare).into());
    out.insert("webrtc_bulk_mb_s".into(), median(ours).into());
    out.insert("bare_bulk_cpu_s".into(), median(bare_cpu).into());
    out.insert("webrtc_bulk_cpu_s".into(), median(ours_cpu).into());
}

fn main() {
    // `HOTPATH_WORKERS=1` runs everything on one thread (tokio's
    // current-thread runtime): no hand-off between threads at all.
    let workers = std::env::var("HOTPATH_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(2);
    let rt = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap()
    };
    if let Some(n) = std::env::var("HOTPATH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        rt.block_on(calls_only(n));
        return;
    }
    // `cargo test --benches` runs this with `--bench` absent: stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        rt.block_on(calls_only(10));
        return;
    }
    let out = rt.block_on(async {
        let mut out = serde_json::Map::new();
        if std::env::var_os("HOTPATH_BULK_ONLY").is_none() {
            out = measure().await;
        }
        if std::env::var_os("HOTPATH_LATENCY_ONLY").is_none() {
            bulk(&mut out).await;
        }
        out.insert("workers".into(), workers.max(1).into());
        serde_json::Value::Object(out)
    });
    let text = serde_json::to_string_pretty(&out).unwrap();
    println!("hotpath: {text}");
    let name = std::env::var("HOTPATH_OUT").unwrap_or_else(|_| "hotpath.json".into());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}
