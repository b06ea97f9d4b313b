//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::Instant;

use bytes::Bytes;
use mcp_webrtc_core::{ChannelInfo, Config, Error, Framer, PROTOCOL, Role, Transmit};

/// A negotiated (offerer, answerer) pair, both in chunked mode.
pub fn negotiated(config: Config) -> (Framer, Framer) {
    let channel = ChannelInfo::new(PROTOCOL, None);
    let mut offerer = Framer::new(Role::Offerer, config, &channel).unwrap();
    let mut answerer = Framer::new(Role::Answerer, config, &channel).unwrap();
    assert!(deliver_all(&mut answerer, &mut offerer).unwrap().is_empty());
    assert!(deliver_all(&mut offerer, &mut answerer).unwrap().is_empty());
    (offerer, answerer)
}

/// Put one transmit on the "wire" (contiguous, as a data channel delivers it)
/// and hand it to `to`.
pub fn deliver(t: Transmit, to: &mut Framer) -> Result<Option<Bytes>, Error> {
    match t {
        Transmit::Text(text) => to.receive_text(text).map(Some),
        Transmit::Binary(frame) => to.receive_binary(&frame.to_bytes(), Instant::now()),
    }
}

/// Move everything `from` has queued to `to`; the completed messages in order.
pub fn deliver_all(from: &mut Framer, to: &mut Framer) -> Result<Vec<Bytes>, Error> {
    let mut out = Vec::new();
    // Bounded: every transmit consumes queued bytes or a control frame.
    for _ in 0..10_000_000 {
        let Some(t) = from.poll_transmit() else {
            return Ok(out);
        };
        out.extend(deliver(t, to)?);
    }
    panic!("framer did not drain");
}

/// The variant name of an error, from its Debug form; for a frame error,
/// the name of the `FrameError` inside.
pub fn variant(e: &Error) -> String {
    let debug = format!("{e:?}");
    let debug = debug.strip_prefix("Frame(").unwrap_or(&debug);
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
