//! What the framing layer does, shown end to end in one process.
//!
//! Two framers (an MCP server that offers, a client that answers) talk over
//! an in-memory "data channel" that, like a real one, refuses any message over
//! 256 KiB. The demo:
//!
//! 1. negotiates chunked mode with the HELLO exchange;
//! 2. sends a 100 MiB JSON-RPC result (400 times the data-channel limit) and,
//!    while it streams, 20 small responses, which arrive after a few frames
//!    each instead of after the whole 100 MiB;
//! 3. checks the large result byte for byte;
//! 4. shows that toward a reference peer (no protocol string: plain mode) the
//!    same result is refused with a typed `MessageTooLarge` error.
//!
//! Run it with `cargo run --release --example chunking_demo`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::time::Instant;

use bytes::Bytes;
use mcp_webrtc::core::{
    ChannelInfo, Config, Error, Framer, PROTOCOL, Role, Transmit, WireMode, codec,
};

/// The data channel's message-size limit, as Chrome and aiortc advertise it.
const CHANNEL_LIMIT: u64 = 262_144;

/// Move every queued transmit from `from` to `to`, one at a time, and return
/// the messages that completed, tagged with the transmit count at which they
/// completed.
fn pump(from: &mut Framer, to: &mut Framer, limit: Option<usize>) -> Vec<(usize, Bytes)> {
    let mut out = Vec::new();
    let mut n = 0usize;
    while let Some(t) = from.poll_transmit() {
        n += 1;
        assert!(
            t.len() as u64 <= CHANNEL_LIMIT,
            "the channel would refuse this"
        );
        let done = match t {
            Transmit::Text(text) => Some(to.receive_text(text).unwrap()),
            Transmit::Binary(frame) => to
                .receive_binary(&frame.to_bytes(), Instant::now())
                .unwrap(),
        };
        if let Some(message) = done {
            out.push((n, message));
        }
        if limit.is_some_and(|l| n >= l) {
            break;
        }
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn main() -> Result<(), Error> {
    let channel = ChannelInfo::new(PROTOCOL, Some(CHANNEL_LIMIT));
    let mut server = Framer::new(Role::Offerer, Config::default(), &channel)?;
    let mut client = Framer::new(Role::Answerer, Config::default(), &channel)?;

    pump(&mut client, &mut server, None);
    pump(&mut server, &mut client, None);
    println!(
        "negotiated: server {:?}, client {:?}, frames of {} bytes",
        server.mode(),
        client.mode(),
        server.config().frame_size
    );
    assert_eq!(server.mode(), WireMode::Chunked);

    // A 100 MiB tool result.
    let text = "0123456789abcdef".repeat(100 * 1024 * 1024 / 16);
    let result = serde_json::json!({
        "jsonrpc": "2.0", "id": 1,
        "result": { "content": [{ "type": "text", "text": text }] }
    });
    let big = codec::encode(&result)?;
    let want = fnv1a(&big);
    let start = Instant::now();
    server.send(big.clone())?;

    // Let a few MiB stream, then queue 20 small responses behind it.
    let early = pump(&mut server, &mut client, Some(200));
    assert!(early.is_empty());
    for id in 2..22 {
        let small = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"ok": true}});
        server.send(codec::encode(&small)?)?;
    }
    let delivered = pump(&mut server, &mut client, None);
    let elapsed = start.elapsed();

    let (small, large): (Vec<_>, Vec<_>) = delivered.iter().partition(|(_, m)| m.len() < 1024);
    let last_small = small.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let (big_at, got) = large.first().expect("the large result arrived");
    println!("20 small responses queued behind 100 MiB: all delivered within {last_small} frames");
    println!(
        "100 MiB result: {} frames, {:.0} MiB/s through chunk + reassemble, intact: {}",
        big_at,
        big.len() as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64(),
        fnv1a(got) == want
    );
    assert_eq!(fnv1a(got), want);
    assert!(
        last_small <= 40,
        "small responses must not wait for the large one"
    );
    codec::validate(got)?;

    // Toward a reference peer (no protocol string) the same result is refused,
    // never dropped silently.
    let plain = ChannelInfo::new("", Some(CHANNEL_LIMIT));
    let mut to_python = Framer::new(Role::Offerer, Config::default(), &plain)?;
    match to_python.send(big) {
        Err(e @ Error::MessageTooLarge { .. }) => println!("plain mode (reference peer): {e}"),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    Ok(())
}
