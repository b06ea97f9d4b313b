//! Chunk + reassemble throughput, next to a memcpy baseline measured in the
//! same run.
//!
//! - `chunk_reassemble/<size>`: one message through a negotiated sender
//!   framer and a receiver framer. Each binary frame is written into a reused
//!   scratch buffer first, the one copy a real data channel makes when it
//!   takes a contiguous message, and the receiver parses it from there.
//!   Messages that fit in one frame (1 KiB) go as text, with no copy at all.
//! - `memcpy_fresh/<size>`: a copy into a freshly allocated buffer, which is
//!   what reassembly must do at least once to hand out an owned message.
//! - `memcpy_hot/<size>`: a copy into a buffer reused across iterations, the
//!   best case for the hardware.
//! - `frame_size/<bytes>`: a 16 MiB message with different frame sizes, for
//!   the choice of the default frame size (`docs/performance.md`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_webrtc_core::{BinaryFrame, ChannelInfo, Config, Framer, PROTOCOL, Role, Transmit};

const SIZES: &[(&str, usize)] = &[
    ("1KiB", 1024),
    ("64KiB", 64 * 1024),
    ("1MiB", 1024 * 1024),
    ("64MiB", 64 * 1024 * 1024),
];

/// A negotiated pair: (sender, receiver).
fn pair(frame_size: usize) -> (Framer, Framer) {
    let channel = ChannelInfo::new(PROTOCOL, None);
    let config = Config::default().with_frame_size(frame_size);
    let mut offerer = Framer::new(Role::Offerer, config, &channel).unwrap();
    let mut answerer = Framer::new(Role::Answerer, config, &channel).unwrap();
    let mut scratch = Vec::new();
    transfer(&mut answerer, &mut offerer, &mut scratch);
    transfer(&mut offerer, &mut answerer, &mut scratch);
    (offerer, answerer)
}

fn wire(frame: &BinaryFrame, scratch: &mut Vec<u8>) {
    scratch.clear();
    frame.write_to(scratch);
}

/// Move everything queued in `from` to `to`; return the completed messages.
fn transfer(from: &mut Framer, to: &mut Framer, scratch: &mut Vec<u8>) -> usize {
    let mut done = 0;
    while let Some(t) = from.poll_transmit() {
        let message = match t {
            Transmit::Text(text) => Some(to.receive_text(text).unwrap()),
            Transmit::Binary(frame) => {
                wire(&frame, scratch);
                to.receive_binary(scratch, Instant::now()).unwrap()
            }
        };
        if let Some(m) = message {
            black_box(m);
            done += 1;
        }
    }
    done
}

fn message(size: usize) -> Bytes {
    // JSON-shaped filler; the framer does not look inside.
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn configure(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, size: usize) {
    if size >= 16 * 1024 * 1024 {
        g.sample_size(10)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
    } else {
        g.sample_size(50)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
    }
}

fn chunk_reassemble(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_reassemble");
    for &(name, size) in SIZES {
        configure(&mut g, size);
        g.throughput(Throughput::Bytes(size as u64));
        let msg = message(size);
        let (mut tx, mut rx) = pair(mcp_webrtc_core::DEFAULT_FRAME_SIZE);
        let mut scratch = Vec::with_capacity(mcp_webrtc_core::DEFAULT_FRAME_SIZE);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                tx.send(msg.clone()).unwrap();
                assert_eq!(transfer(&mut tx, &mut rx, &mut scratch), 1);
            });
        });
    }
    g.finish();
}

fn memcpy(c: &mut Criterion) {
    let mut g = c.benchmark_group("memcpy_fresh");
    for &(name, size) in SIZES {
        configure(&mut g, size);
        g.throughput(Throughput::Bytes(size as u64));
        let src = message(size);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut v = Vec::with_capacity(size);
                v.extend_from_slice(black_box(&src));
                black_box(Bytes::from(v))
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("memcpy_hot");
    for &(name, size) in SIZES {
        configure(&mut g, size);
        g.throughput(Throughput::Bytes(size as u64));
        let src = message(size);
        let mut dst = vec![0u8; size];
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            });
        });
    }
    g.finish();
}

fn frame_size(c: &mut Criterion) {
    let size = 16 * 1024 * 1024;
    let mut g = c.benchmark_group("frame_size");
    configure(&mut g, size);
    g.throughput(Throughput::Bytes(size as u64));
    let msg = message(size);
    for frame in [4 * 1024, 16 * 1024, 64 * 1024, 256 * 1024] {
        let (mut tx, mut rx) = pair(frame);
        let mut scratch = Vec::with_capacity(frame);
        g.bench_function(BenchmarkId::from_parameter(frame), |b| {
            b.iter(|| {
                tx.send(msg.clone()).unwrap();
                assert_eq!(transfer(&mut tx, &mut rx, &mut scratch), 1);
            });
        });
    }
    g.finish();
}

criterion_group!(benches, chunk_reassemble, memcpy, frame_size);
criterion_main!(benches);
