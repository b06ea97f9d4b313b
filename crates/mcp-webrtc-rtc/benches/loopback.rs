//! Peer connections on loopback: set-up time (with the in-band DCEP channel
//! the reference packages need) and its phases, message round trip, and
//! throughput of 16 KiB and 64 KiB messages.
//!
//! The per-phase medians go to `target/criterion/rtc-setup-phases.json` for
//! `cargo xtask bench` to put in `docs/performance.md`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_webrtc_rtc::{Connection, HandshakeTimings, Incoming, PeerConfig, connect};
use mcp_webrtc_signaling::MemorySignaling;
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn loopback(config: PeerConfig) -> PeerConfig {
    config.with_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

async fn pair() -> (Connection, Connection) {
    let (a, b) = MemorySignaling::pair();
    let (x, y) = tokio::join!(
        connect(loopback(PeerConfig::offerer()), a),
        connect(loopback(PeerConfig::answerer()), b)
    );
    (x.unwrap(), y.unwrap())
}

static PHASES: Mutex<Vec<HandshakeTimings>> = Mutex::new(Vec::new());

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn setup(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("rtc_setup");
    g.sample_size(30).measurement_time(Duration::from_secs(6));
    g.bench_function("dcep_channel_open", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let (x, y) = pair().await;
                    total += start.elapsed();
                    PHASES.lock().unwrap().push(x.timings());
                    x.close().await;
                    y.close().await;
                }
                total
            })
        });
    });
    g.finish();
    let phases = PHASES.lock().unwrap().clone();
    let out = serde_json::json!({
        "samples": phases.len(),
        "signaling_ms": median(phases.iter().map(|t| t.signaling).collect()),
        "ice_ms": median(phases.iter().map(|t| t.ice).collect()),
        "dtls_ms": median(phases.iter().map(|t| t.dtls).collect()),
        "sctp_dcep_ms": median(phases.iter().map(|t| t.sctp).collect()),
        "total_ms": median(phases.iter().map(|t| t.total).collect()),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("rtc-setup-phases.json"), out.to_string());
}

fn round_trip(c: &mut Criterion) {
    let rt = runtime();
    let (x, y) = rt.block_on(pair());
    let echo = rt.spawn(async move {
        while let Ok(Some(Incoming::Text(t))) = y.recv().await {
            if y.send_text(std::str::from_utf8(&t).unwrap()).await.is_err() {
                break;
            }
        }
    });
    let mut g = c.benchmark_group("rtc_round_trip");
    g.sample_size(50).measurement_time(Duration::from_secs(4));
    g.bench_function("64B", |b| {
        let msg = "x".repeat(64);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    x.send_text(&msg).await.unwrap();
                    x.recv().await.unwrap().unwrap();
                }
                start.elapsed()
            })
        });
    });
    g.finish();
    rt.block_on(x.close());
    echo.abort();
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let (x, y) = rt.block_on(pair());
    let mut g = c.benchmark_group("rtc_throughput");
    g.sample_size(20).measurement_time(Duration::from_secs(6));
    const BATCH: usize = 8 * 1024 * 1024;
    for size in [16 * 1024, 64 * 1024] {
        let count = BATCH / size;
        g.throughput(Throughput::Bytes((count * size) as u64));
        let payload = vec![3u8; size];
        g.bench_function(
            BenchmarkId::from_parameter(format!("{}KiB", size / 1024)),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let recv = async {
                                for _ in 0..count {
                                    y.recv().await.unwrap().unwrap();
                                }
                            };
                            let send = async {
                                for _ in 0..count {
                                    x.send_binary(BytesMut::from(&payload[..])).await.unwrap();
                                }
                            };
                            tokio::join!(send, recv);
                        }
                        start.elapsed()
                    })
                });
            },
        );
    }
    g.finish();
    rt.block_on(async {
        x.close().await;
        y.close().await;
    });
}

criterion_group!(benches, setup, round_trip, throughput);
criterion_main!(benches);
