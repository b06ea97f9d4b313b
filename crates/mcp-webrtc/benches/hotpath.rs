//! The hot path, split into its layers and measured in one run, as medians
//! of individual round trips (not criterion means):
//!
//! - (a) the `webrtc` crate's data channel used directly (its own `send_text`
//!   and `poll`), on a peer connection made with the facade's settings;
//! - (b) our rtc layer (`Connection::send_text` / `recv`) on the same kind of
//!   connection;
//! - (c) rmcp in memory: a `call_tool` of `echo` over a duplex pipe;
//! - (d) the same `call_tool` over `WebRtcTransport` on loopback.
//!
//! Our own cost is (d) − (a) − (c), and the rtc layer's (b) − (a). The four
//! are measured in interleaved rounds, so drift on the shared machine
//! touches all of them alike.
//!
//! Bulk: 100 MiB over the bare channel in 16 KiB binary messages, against
//! 100 MiB `call_tool` results over our transport (16 KiB frames), in the
//! same run.
//!
//! Results go to `target/criterion/hotpath.json` for `cargo xtask bench`.
//!
//! `HOTPATH_CALLS=N` instead makes N `call_tool` round trips over our
//! transport after set-up and a warm-up, and nothing else: `cargo xtask
//! bench` runs it under callgrind twice, with two values of N, and the
//! difference of the instruction counts over the difference of N is the
//! instruction count of one round trip (both peers, both stacks).
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

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use greeter::Greeter;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::rmcp::service::RunningService;
use mcp_webrtc::rmcp::{RoleClient, ServiceExt};
use mcp_webrtc::rtc::{Connection, Incoming, PeerConfig};
use mcp_webrtc::signaling::MemorySignaling;
use mcp_webrtc::{DEFAULT_SEND_BUFFER, WebRtcTransport};
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

async fn webrtc_client() -> Client {
    let (s, c) = MemorySignaling::pair();
    let server = WebRtcTransport::builder().bind(loopback());
    tokio::spawn(async move {
        let transport = server.server(s).await.unwrap();
        if let Ok(running) = Greeter::default().serve(transport).await {
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

/// One of the four paths, ready to time one round trip at a time.
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

async fn calls_only(n: usize) {
    let client = webrtc_client().await;
    for _ in 0..WARM_UP {
        echo(&client).await;
    }
    for _ in 0..n {
        echo(&client).await;
    }
    let _ = client.cancel().await;
}

async fn measure() -> serde_json::Value {
    let text = "x".repeat(MESSAGE);
    let names = ["bare", "rtc", "memory", "webrtc"];
    let paths = [
        Path::bare().await,
        Path::rtc().await,
        Path::Mcp(greeter::in_memory_client().await.unwrap()),
        Path::Mcp(webrtc_client().await),
    ];
    for path in &paths {
        for _ in 0..WARM_UP {
            path.round_trip(&text).await;
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    for _ in 0..ROUNDS {
        for (path, out) in paths.iter().zip(samples.iter_mut()) {
            for _ in 0..PER_ROUND {
                let t = Instant::now();
                path.round_trip(&text).await;
                out.push(t.elapsed());
            }
        }
    }
    let mut out = serde_json::Map::new();
    for (name, v) in names.iter().zip(samples.iter_mut()) {
        v.sort();
        out.insert(format!("{name}_median_us"), percentile(v, 0.5).into());
        out.insert(format!("{name}_p99_us"), percentile(v, 0.99).into());
    }
    out.insert("samples".into(), (ROUNDS * PER_ROUND).into());
    let [bare, rtc, memory, webrtc] = paths;
    for path in [bare, rtc, memory] {
        path.end().await;
    }
    let Path::Mcp(client) = webrtc else {
        panic!("the fourth path is MCP over our transport");
    };
    // Bulk: the bare channel and our transport, alternately, three each.
    let (x, y) = rtc_pair().await;
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        bare.push(bare_bulk(&x, &y).await);
        let t = Instant::now();
        blob(&client, BULK).await;
        ours.push(BULK as f64 / t.elapsed().as_secs_f64() / 1e6);
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
    serde_json::Value::Object(out)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
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
    let out = rt.block_on(measure());
    let text = serde_json::to_string_pretty(&out).unwrap();
    println!("hotpath: {text}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hotpath.json"), text).unwrap();
}
