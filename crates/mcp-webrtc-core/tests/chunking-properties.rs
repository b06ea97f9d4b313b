//! Properties of the scheduler and reassembler, over arbitrary inputs.
//!
//! - Any sequence of messages (1 byte to 4 MiB), framed with any frame size
//!   and any receive limits, arrives intact, none lost or duplicated; single
//!   frame messages keep their order, and the receiver never exceeds its
//!   bounds.
//! - A small message queued behind large ones goes out within one frame per
//!   large message.
//! - Random, corrupted, truncated, duplicated or dropped frames give typed
//!   errors, never a panic, never memory past the bounds, and the session
//!   goes on. A damaged message ends in an error (at the latest when its
//!   partial expires), never in a different message.
//! - Well-formed frames of several interleaved messages, in any order and
//!   with repeats (totals within the limits, so the partial and in-flight
//!   paths run), deliver only the originals.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{deliver, negotiated};
use mcp_webrtc_core::wire::{DATA_HEADER_LEN, DataHeader};
use mcp_webrtc_core::{ChannelInfo, Config, Framer, PROTOCOL, Role, Transmit};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A message of `size` bytes (or the length of its tag, if longer) that
/// names its index.
fn message(index: usize, size: usize) -> Bytes {
    let tag = format!("<{index}>");
    let mut v = tag.into_bytes();
    // Never shorter than the tag, so every message can be told apart.
    v.resize(size.max(v.len()), b'a' + (index % 26) as u8);
    Bytes::from(v)
}

fn index_of(m: &Bytes) -> Option<usize> {
    let end = m.iter().position(|&b| b == b'>')?;
    std::str::from_utf8(m.get(1..end)?).ok()?.parse().ok()
}

/// Frame size, then message sizes small enough that the frame count stays
/// reasonable for that frame size.
fn sizes_and_frame() -> impl Strategy<Value = (usize, Vec<usize>)> {
    (22usize..=262_144).prop_flat_map(|frame| {
        let max = (frame * 400).clamp(64, 4 << 20);
        let size = prop_oneof![
            4 => 1usize..=64,
            3 => 1usize..=frame.min(max) + 64,
            2 => 1usize..=max,
        ];
        (Just(frame), prop::collection::vec(size, 1..16))
    })
}

fn check_bounds(rx: &Framer) {
    let limits = rx.config().limits();
    assert!(rx.in_flight() as u64 <= u64::from(limits.max_in_flight));
    assert!(rx.buffered_bytes() <= limits.max_buffered_bytes);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(48),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_messages_any_frame_size_arrive_intact(
        (frame, sizes) in sizes_and_frame(),
        in_flight in 1u32..6,
        push_every in 1usize..50,
    ) {
        let sent: Vec<Bytes> = sizes.iter().enumerate().map(|(i, &s)| message(i, s)).collect();
        let largest = sent.iter().map(Bytes::len).max().unwrap_or(1) as u64;
        // Receive limits tight enough to make the sender wait for room.
        let rx_config = Config::default()
            .with_max_in_flight(in_flight)
            .with_max_message_size(largest)
            .with_max_buffered_bytes(largest * 2);
        let channel = ChannelInfo::new(PROTOCOL, None);
        let mut tx = Framer::new(Role::Offerer, Config::default().with_frame_size(frame), &channel).unwrap();
        let mut rx = Framer::new(Role::Answerer, rx_config, &channel).unwrap();
        common::deliver_all(&mut rx, &mut tx).unwrap();
        common::deliver_all(&mut tx, &mut rx).unwrap();

        let mut pending = sent.iter();
        let mut delivered = Vec::new();
        let mut steps = 0usize;
        // Push messages while frames flow, so some join mid-transfer.
        loop {
            if steps.is_multiple_of(push_every)
                && let Some(m) = pending.next()
            {
                tx.send(m.clone()).unwrap();
            }
            steps += 1;
            match tx.poll_transmit() {
                Some(t) => {
                    prop_assert!(t.len() <= frame, "frame of {} > {frame}", t.len());
                    delivered.extend(deliver(t, &mut rx).unwrap());
                    check_bounds(&rx);
                }
                None if pending.len() == 0 => break,
                None => {}
            }
            prop_assert!(steps < 50_000_000, "did not drain");
        }
        prop_assert_eq!(delivered.len(), sent.len());
        let mut by_index: Vec<Option<&Bytes>> = vec![None; sent.len()];
        for m in &delivered {
            let i = index_of(m).expect("tagged");
            prop_assert!(by_index[i].is_none(), "message {i} delivered twice");
            by_index[i] = Some(m);
        }
        for (i, m) in sent.iter().enumerate() {
            prop_assert_eq!(by_index[i], Some(m), "message {} differs", i);
        }
        // Messages that fit in one frame keep their order.
        let singles: Vec<usize> = delivered
            .iter()
            .filter(|m| m.len() <= frame)
            .map(|m| index_of(m).unwrap())
            .collect();
        prop_assert!(singles.windows(2).all(|w| w[0] < w[1]), "{:?}", singles);
        prop_assert_eq!(rx.in_flight(), 0);
        prop_assert_eq!(rx.buffered_bytes(), 0);
        prop_assert_eq!(tx.queued_bytes(), 0);
    }

    #[test]
    fn sequential_messages_arrive_in_order((frame, sizes) in sizes_and_frame()) {
        let (mut tx, mut rx) = negotiated(Config::default().with_frame_size(frame));
        for (i, &size) in sizes.iter().enumerate() {
            let m = message(i, size);
            tx.send(m.clone()).unwrap();
            prop_assert_eq!(common::deliver_all(&mut tx, &mut rx).unwrap(), vec![m]);
        }
    }

    #[test]
    fn small_message_goes_out_within_a_frame_per_large_one(
        large in 1usize..8,
        frame in 64usize..=65_536,
        head_start in 0usize..100,
        small_size in 1usize..64,
    ) {
        let (mut tx, mut rx) = negotiated(Config::default().with_frame_size(frame).with_max_in_flight(8));
        for i in 0..large {
            tx.send(message(i, frame * 200)).unwrap();
        }
        for _ in 0..head_start {
            let t = tx.poll_transmit().unwrap();
            prop_assert!(deliver(t, &mut rx).unwrap().is_none());
        }
        let small = message(99, small_size);
        tx.send(small.clone()).unwrap();
        let mut frames = 0;
        loop {
            let t = tx.poll_transmit().expect("small message still queued");
            frames += 1;
            if deliver(t, &mut rx).unwrap().as_ref() == Some(&small) {
                break;
            }
        }
        prop_assert!(frames <= large + 1, "small message waited {frames} frames behind {large} large");
    }

    #[test]
    fn arbitrary_binary_input_never_panics_or_exceeds_bounds(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..200),
        in_flight in 1u32..4,
    ) {
        let config = Config::default()
            .with_max_in_flight(in_flight)
            .with_max_message_size(1 << 20)
            .with_max_buffered_bytes(2 << 20);
        let (mut tx, mut rx) = negotiated(config);
        for f in &frames {
            let _ = rx.receive_binary(f, Instant::now());
            check_bounds(&rx);
        }
        // Biased toward valid-looking headers: DATA type byte and small totals.
        for f in &frames {
            let mut g = f.clone();
            if let Some(b) = g.first_mut() { *b = 0x01; }
            let _ = rx.receive_binary(&g, Instant::now());
            check_bounds(&rx);
            let _ = rx.receive_text(Bytes::from(f.clone()));
        }
        // Another session on a plain channel refuses all binary input.
        let mut plain = Framer::new(Role::Answerer, Config::default(), &ChannelInfo::new("", None)).unwrap();
        for f in &frames {
            prop_assert!(plain.receive_binary(f, Instant::now()).is_err());
        }
        session_goes_on(&mut tx, &mut rx)?;
    }

    #[test]
    fn corrupted_truncated_duplicated_or_dropped_frames_give_errors_not_panics(
        size in 100usize..20_000,
        frame in 40usize..2_000,
        victim in any::<prop::sample::Index>(),
        mutation in 0u8..5,
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let config = Config::default().with_frame_size(frame).with_max_in_flight(4);
        let (mut tx, mut rx) = negotiated(config);
        let original = message(0, size);
        tx.send(original.clone()).unwrap();
        let mut wire: Vec<Vec<u8>> = Vec::new();
        while let Some(t) = tx.poll_transmit() {
            match t {
                Transmit::Binary(f) => wire.push(f.to_bytes().to_vec()),
                Transmit::Text(t) => wire.push(t.to_vec()),
            }
        }
        let text = size <= frame;
        let v = victim.index(wire.len());
        match mutation {
            // Framing has no checksum (SCTP has): damage the header, where
            // the framer must notice, or a text message's length.
            0 if text => { let p = position.index(wire[v].len()); wire[v].truncate(p); }
            0 => { let p = position.index(DATA_HEADER_LEN.min(wire[v].len())); wire[v][p] = wire[v][p].wrapping_add(value.max(1)); }
            1 => { let p = position.index(wire[v].len()); wire[v].truncate(p); }
            2 => { let dup = wire[v].clone(); wire.insert(v, dup); }
            3 => { wire.remove(v); }
            _ => { let p = position.index(wire.len()); wire.swap(v, p); }
        }
        let now = Instant::now();
        let mut errors = 0;
        let mut delivered = Vec::new();
        for f in &wire {
            let result = if text { rx.receive_text(Bytes::from(f.clone())).map(Some) } else { rx.receive_binary(f, now) };
            match result {
                Err(e) => { prop_assert!(!e.to_string().is_empty()); errors += 1; }
                Ok(Some(m)) => delivered.push(m),
                Ok(None) => {}
            }
            check_bounds(&rx);
        }
        // What is still incomplete expires, with an error naming it.
        let expired = rx.handle_timeout(now + Config::default().partial_timeout);
        errors += expired.len();
        prop_assert_eq!(rx.in_flight(), 0);
        if !text {
            prop_assert!(
                errors > 0 || delivered == vec![original.clone()],
                "mutation {} left no error, and delivered {:?}",
                mutation,
                delivered.iter().map(Bytes::len).collect::<Vec<_>>()
            );
            prop_assert!(delivered.iter().all(|m| *m == original), "a different message was delivered");
        }
        session_goes_on(&mut tx, &mut rx)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(256),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn well_formed_frames_in_any_order_deliver_only_the_originals(
        sizes in prop::collection::vec(2usize..3_000, 1..4),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), 1usize..700), 1..60),
        in_flight in 1u32..4,
    ) {
        let config = Config::default()
            .with_max_in_flight(in_flight)
            .with_max_message_size(4096)
            .with_max_buffered_bytes(8192);
        let (_tx, mut rx) = negotiated(config);
        let originals: Vec<Bytes> = sizes.iter().enumerate().map(|(i, &n)| message(i, n)).collect();
        // Each frame is a true slice of one original, at an offset that may
        // be early, late or repeated.
        let now = Instant::now();
        for (pick, len) in &cuts {
            let id = pick.index(originals.len());
            let original = &originals[id];
            let total = original.len();
            let offset = pick.index(total);
            let end = (offset + len).min(total);
            let mut frame = DataHeader { id: id as u32, offset: offset as u64, total: total as u64 }
                .encode()
                .to_vec();
            frame.extend_from_slice(&original[offset..end]);
            match rx.receive_binary(&frame, now) {
                Ok(Some(m)) => {
                    prop_assert_eq!(&m, original, "only the original can come out");
                }
                Ok(None) => {}
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            check_bounds(&rx);
        }
        // Everything left incomplete expires, and its memory is freed.
        let expired = rx.handle_timeout(now + Duration::from_secs(3600));
        prop_assert!(expired.len() <= in_flight as usize);
        prop_assert_eq!(rx.in_flight(), 0);
        prop_assert_eq!(rx.buffered_bytes(), 0);
    }
}

/// Starting at offset 0 and sending the rest in order reaches the partial
/// and in-flight paths for every message, and delivers each original: the
/// deterministic floor under the random orders above.
#[test]
fn interleaved_partial_messages_complete_in_any_interleaving() {
    let config = Config::default()
        .with_max_in_flight(3)
        .with_max_message_size(4096);
    let (_tx, mut rx) = negotiated(config);
    let originals: Vec<Bytes> = (0..3).map(|i| message(i, 1000 + i * 300)).collect();
    let now = Instant::now();
    let mut offsets = [0usize; 3];
    let mut delivered = Vec::new();
    let mut max_in_flight = 0;
    // Round-robin 100-byte slices of the three messages.
    while delivered.len() < 3 {
        for (id, original) in originals.iter().enumerate() {
            let offset = offsets[id];
            if offset >= original.len() {
                continue;
            }
            let end = (offset + 100).min(original.len());
            let mut frame = DataHeader {
                id: id as u32,
                offset: offset as u64,
                total: original.len() as u64,
            }
            .encode()
            .to_vec();
            frame.extend_from_slice(&original[offset..end]);
            offsets[id] = end;
            if let Some(m) = rx.receive_binary(&frame, now).unwrap() {
                delivered.push(m);
            }
            max_in_flight = max_in_flight.max(rx.in_flight());
        }
    }
    assert_eq!(max_in_flight, 3, "all three were in flight at once");
    for original in &originals {
        assert!(delivered.contains(original));
    }
    assert_eq!(rx.buffered_bytes(), 0);
}

/// After bad input, a new message still gets through: within three messages
/// (a corrupted id can collide with the sender's next id once).
fn session_goes_on(tx: &mut Framer, rx: &mut Framer) -> Result<(), TestCaseError> {
    let frame = tx.config().frame_size;
    for attempt in 0..3 {
        let m = message(1000 + attempt, frame * 3);
        tx.send(m.clone()).unwrap();
        let mut got = Vec::new();
        while let Some(t) = tx.poll_transmit() {
            if let Ok(done) = deliver(t, rx) {
                got.extend(done);
            }
        }
        if got.contains(&m) {
            return Ok(());
        }
    }
    Err(TestCaseError::fail(
        "session did not recover within three messages",
    ))
}
