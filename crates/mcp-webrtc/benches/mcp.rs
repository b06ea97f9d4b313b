//! MCP over our transport on loopback, next to rmcp over an in-memory pipe
//! (the floor): `call_tool` round trip, transport start until `initialize`
//! is done, and results of 1, 10 and 100 MiB.
//!
//! Latency percentiles (which criterion does not give) are measured here from
//! individual calls and written to `target/criterion/mcp-latency.json`:
//! small-call median and p99 for both transports, and the p99 of small calls
//! while 100 MiB results stream. While they stream, small calls are also
//! sent open loop (one every 2 ms, each timed from its intended send time,
//! so a stall shows in full), over our transport, rmcp in memory, and our
//! transport with a FIFO scheduler (the negative control: what the metric
//! shows without interleaving).
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
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use greeter::Greeter;
use mcp_webrtc::WebRtcTransport;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::rmcp::service::RunningService;
use mcp_webrtc::rmcp::{RoleClient, ServiceExt};
use mcp_webrtc::signaling::MemorySignaling;
use tokio::runtime::Runtime;

type Client = RunningService<RoleClient, ()>;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// rmcp over an in-memory pipe: the floor.
async fn memory_session() -> Client {
    greeter::in_memory_client().await.unwrap()
}

/// rmcp over our transport, both peers in this process, on loopback; with
/// `fifo`, the server sends each message whole before the next.
async fn webrtc_session(fifo: bool) -> Client {
    let loopback = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let (s, c) = MemorySignaling::pair();
    let server = WebRtcTransport::builder()
        .bind(loopback.clone())
        .framing(mcp_webrtc::core::Config::default().with_fifo_scheduling(fifo));
    tokio::spawn(async move {
        let transport = server.server(s).await.unwrap();
        if let Ok(running) = Greeter::default().serve(transport).await {
            let _ = running.waiting().await;
        }
    });
    let transport = WebRtcTransport::builder()
        .bind(loopback)
        .client(c)
        .await
        .unwrap();
    ().serve(transport).await.unwrap()
}

async fn session(kind: &str) -> Client {
    match kind {
        "memory" => memory_session().await,
        "webrtc-fifo" => webrtc_session(true).await,
        _ => webrtc_session(false).await,
    }
}

fn args(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

async fn echo(client: &Client) {
    let params = CallToolRequestParams::new("echo")
        .with_arguments(args(serde_json::json!({"text": "ping"})));
    let result = bounded(client.call_tool(params)).await.unwrap();
    assert_eq!(result.content.len(), 1);
}

async fn blob(client: &Client, bytes: u64) {
    let params = CallToolRequestParams::new("blob")
        .with_arguments(args(serde_json::json!({"bytes": bytes, "hash": false})));
    let result = bounded(client.call_tool(params)).await.unwrap();
    let len = result.content[0].as_text().unwrap().text.len() as u64;
    assert_eq!(len, bytes);
}

/// Every call has a deadline: a stuck transport fails the benchmark.
async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call was answered within 60 s")
}

const KINDS: &[&str] = &["memory", "webrtc"];

fn round_trip(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("mcp_round_trip");
    for kind in KINDS {
        let client = rt.block_on(session(kind));
        g.bench_function(*kind, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        echo(&client).await;
                    }
                    start.elapsed()
                })
            });
        });
        rt.block_on(async { client.cancel().await.unwrap() });
    }
    g.finish();
}

fn start(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("mcp_start");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    for kind in KINDS {
        g.bench_function(*kind, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let client = session(kind).await;
                        total += start.elapsed();
                        client.cancel().await.unwrap();
                    }
                    total
                })
            });
        });
    }
    g.finish();
}

fn results(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("mcp_result");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for kind in KINDS {
        let client = rt.block_on(session(kind));
        for (name, bytes) in [
            ("1MiB", 1u64 << 20),
            ("10MiB", 10 << 20),
            ("100MiB", 100 << 20),
        ] {
            g.throughput(Throughput::Bytes(bytes));
            g.bench_with_input(BenchmarkId::new(*kind, name), &bytes, |b, &bytes| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            blob(&client, bytes).await;
                        }
                        start.elapsed()
                    })
                });
            });
        }
        rt.block_on(async { client.cancel().await.unwrap() });
    }
    g.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// The open-loop interval between small calls.
const OPEN_LOOP_EVERY: Duration = Duration::from_millis(2);

/// Small calls every [`OPEN_LOOP_EVERY`] while three 100 MiB results stream:
/// each is sent at its intended time, whether the ones before it returned
/// or not, and timed from that intended time (so a stall is not hidden by
/// the calls it delays). The latencies, unsorted.
async fn open_loop(client: &Arc<Client>) -> Vec<Duration> {
    let bulk = tokio::spawn({
        let client = Arc::clone(client);
        async move {
            for _ in 0..3 {
                blob(&client, 100 << 20).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = tokio::time::Instant::now();
    let mut calls = Vec::new();
    // Bounded: the bulk results finish (each call has a deadline), and at
    // most 100,000 calls are sent.
    for i in 0..100_000u32 {
        if bulk.is_finished() {
            break;
        }
        let due = start + OPEN_LOOP_EVERY * i;
        tokio::time::sleep_until(due).await;
        let client = Arc::clone(client);
        calls.push(tokio::spawn(async move {
            echo(&client).await;
            due.elapsed()
        }));
    }
    bulk.await.unwrap();
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

fn open_loop_stats(
    out: &mut serde_json::Map<String, serde_json::Value>,
    kind: &str,
    mut v: Vec<Duration>,
) {
    v.sort();
    let over = v.iter().filter(|d| **d > Duration::from_millis(5)).count();
    out.insert(format!("{kind}_open_calls"), v.len().into());
    out.insert(format!("{kind}_open_p50_us"), percentile(&v, 0.5).into());
    out.insert(format!("{kind}_open_p99_us"), percentile(&v, 0.99).into());
    out.insert(format!("{kind}_open_max_us"), percentile(&v, 1.0).into());
    out.insert(format!("{kind}_open_over_5ms"), over.into());
}

/// Individual small calls: median and p99, alone and during 100 MiB
/// transfers, closed and open loop.
fn latency(_c: &mut Criterion) {
    let rt = runtime();
    let mut out = serde_json::Map::new();
    for kind in KINDS {
        let client = rt.block_on(session(kind));
        let mut samples: Vec<Duration> = rt.block_on(async {
            for _ in 0..200 {
                echo(&client).await; // warm up
            }
            let mut v = Vec::with_capacity(5000);
            for _ in 0..5000 {
                let t = Instant::now();
                echo(&client).await;
                v.push(t.elapsed());
            }
            v
        });
        samples.sort();
        out.insert(
            format!("{kind}_median_us"),
            percentile(&samples, 0.5).into(),
        );
        out.insert(format!("{kind}_p99_us"), percentile(&samples, 0.99).into());

        // Small calls while 100 MiB results stream (three in a row).
        let client = Arc::new(client);
        let mut during: Vec<Duration> = rt.block_on(async {
            let bulk = tokio::spawn({
                let client = Arc::clone(&client);
                async move {
                    for _ in 0..3 {
                        blob(&client, 100 << 20).await;
                    }
                }
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut v = Vec::new();
            while !bulk.is_finished() {
                let t = Instant::now();
                echo(&client).await;
                v.push(t.elapsed());
            }
            bulk.await.unwrap();
            v
        });
        during.sort();
        out.insert(format!("{kind}_bulk_calls"), during.len().into());
        out.insert(
            format!("{kind}_bulk_median_us"),
            percentile(&during, 0.5).into(),
        );
        out.insert(
            format!("{kind}_bulk_p99_us"),
            percentile(&during, 0.99).into(),
        );
        let open = rt.block_on(open_loop(&client));
        open_loop_stats(&mut out, kind, open);
        let client = Arc::try_unwrap(client).expect("no other owner");
        rt.block_on(async { client.cancel().await.unwrap() });
    }
    // The negative control: the same open-loop calls without interleaving.
    let client = Arc::new(rt.block_on(session("webrtc-fifo")));
    let open = rt.block_on(open_loop(&client));
    open_loop_stats(&mut out, "fifo", open);
    let client = Arc::try_unwrap(client).expect("no other owner");
    rt.block_on(async { client.cancel().await.unwrap() });
    let text = serde_json::to_string_pretty(&out).unwrap();
    println!("latency: {text}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mcp-latency.json"), text).unwrap();
}

criterion_group!(benches, latency, round_trip, start, results);
criterion_main!(benches);
