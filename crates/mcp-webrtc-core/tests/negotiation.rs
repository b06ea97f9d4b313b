//! Wire-mode negotiation: chunked mode only between peers that both showed
//! they speak it; plain mode, unchanged, toward the reference packages.
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

use bytes::Bytes;
use common::deliver_all;
use mcp_webrtc_core::wire::{Frame, FrameKind};
use mcp_webrtc_core::{
    ChannelInfo, Config, Error, Framer, PROTOCOL, Role, Transmit, WireMode, codec,
};

fn json(size: usize) -> Bytes {
    let pad = size.saturating_sub(31);
    let s = format!(r#"{{"jsonrpc":"2.0","id":1,"r":"{}"}}"#, "z".repeat(pad));
    assert_eq!(s.len(), size);
    Bytes::from(s)
}

#[test]
fn answerer_on_our_protocol_sends_hello_first_and_is_chunked_at_once() {
    let channel = ChannelInfo::new(PROTOCOL, Some(262_144));
    let mut a = Framer::new(Role::Answerer, Config::default(), &channel).unwrap();
    assert_eq!(a.mode(), WireMode::Chunked);
    // Even with a message queued first, the HELLO goes out first.
    a.send(json(100)).unwrap();
    match a.poll_transmit() {
        Some(Transmit::Binary(frame)) => {
            assert_eq!(frame.kind(), FrameKind::Hello);
            assert_eq!(
                Frame::parse(&frame.to_bytes()).unwrap(),
                Frame::Hello(Config::default().limits())
            );
        }
        other => panic!("expected HELLO, got {other:?}"),
    }
    assert!(matches!(a.poll_transmit(), Some(Transmit::Text(_))));
    assert!(a.poll_transmit().is_none());
}

#[test]
fn offerer_stays_plain_until_the_hello_then_answers_with_its_own() {
    let channel = ChannelInfo::new(PROTOCOL, Some(262_144));
    let mut o = Framer::new(Role::Offerer, Config::default(), &channel).unwrap();
    let mut a = Framer::new(Role::Answerer, Config::default(), &channel).unwrap();
    assert_eq!(o.mode(), WireMode::Plain);
    assert!(o.is_idle(), "the offerer speaks first only in plain text");
    // Before the HELLO, plain rules: a message over the channel limit is refused.
    assert!(matches!(
        o.send(json(300_000)),
        Err(Error::MessageTooLarge { limit: 262_144, .. })
    ));
    deliver_all(&mut a, &mut o).unwrap();
    assert_eq!(o.mode(), WireMode::Chunked);
    assert_eq!(o.peer_limits(), Some(Config::default().limits()));
    // Its own HELLO is queued.
    assert!(matches!(o.poll_transmit(), Some(Transmit::Binary(f)) if f.kind() == FrameKind::Hello));
}

#[test]
fn foreign_or_empty_protocol_stays_plain_both_ways() {
    for protocol in ["", "mcp", "mcp-webrtc/2", "MCP-WEBRTC/1"] {
        let channel = ChannelInfo::new(protocol, Some(262_144));
        let mut o = Framer::new(Role::Offerer, Config::default(), &channel).unwrap();
        let mut a = Framer::new(Role::Answerer, Config::default(), &channel).unwrap();
        assert!(a.is_idle(), "{protocol:?}: no HELLO on a foreign channel");
        for f in [&mut o, &mut a] {
            assert_eq!(f.mode(), WireMode::Plain, "{protocol:?}");
            // 200 KiB goes as a single text message, exactly as the references send it.
            f.send(json(200 * 1024)).unwrap();
            match f.poll_transmit() {
                Some(Transmit::Text(t)) => {
                    assert_eq!(t.len(), 200 * 1024);
                    codec::validate(&t).unwrap();
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                f.send(json(262_145)),
                Err(Error::MessageTooLarge {
                    size: 262_145,
                    limit: 262_144
                })
            );
        }
    }
}

#[test]
fn unlimited_channel_in_plain_mode_sends_anything_as_text() {
    // RFC 8841: max-message-size 0 means no limit (the transport passes None).
    let mut o = Framer::new(
        Role::Offerer,
        Config::default(),
        &ChannelInfo::new("", None),
    )
    .unwrap();
    o.send(json(1 << 20)).unwrap();
    assert!(matches!(o.poll_transmit(), Some(Transmit::Text(t)) if t.len() == 1 << 20));
}

#[test]
fn answerer_holds_chunked_messages_until_the_offerers_limits_are_known() {
    let channel = ChannelInfo::new(PROTOCOL, None);
    let small_limits = Config::default()
        .with_max_message_size(50_000)
        .with_max_buffered_bytes(50_000);
    let mut o = Framer::new(Role::Offerer, small_limits, &channel).unwrap();
    let mut a = Framer::new(Role::Answerer, Config::default(), &channel).unwrap();
    let fits = json(40_000);
    let too_big = json(60_000);
    let text = json(100);
    a.send(fits.clone()).unwrap();
    a.send(too_big.clone()).unwrap();
    a.send(text.clone()).unwrap();
    // HELLO, then the small text message; the chunked ones wait.
    let first = deliver_all(&mut a, &mut o).unwrap();
    assert_eq!(first, vec![text]);
    assert_eq!(a.max_send_size(), None);
    // The offerer's HELLO tells the answerer the limits.
    deliver_all(&mut o, &mut a).unwrap();
    assert_eq!(a.max_send_size(), Some(50_000));
    let rejected = a.poll_rejected().expect("the 60 KB message is handed back");
    assert_eq!(rejected.message, too_big);
    assert_eq!(
        rejected.error,
        Error::MessageTooLarge {
            size: 60_000,
            limit: 50_000
        }
    );
    assert!(a.poll_rejected().is_none());
    assert_eq!(deliver_all(&mut a, &mut o).unwrap(), vec![fits]);
}

#[test]
fn frame_size_is_capped_by_the_channel_limit() {
    let channel = ChannelInfo::new(PROTOCOL, Some(65_536));
    let config = Config::default().with_frame_size(1 << 20);
    let mut o = Framer::new(Role::Offerer, config, &channel).unwrap();
    let mut a = Framer::new(Role::Answerer, config, &channel).unwrap();
    deliver_all(&mut a, &mut o).unwrap();
    deliver_all(&mut o, &mut a).unwrap();
    let msg = json(1 << 20);
    o.send(msg.clone()).unwrap();
    let mut got = Vec::new();
    while let Some(t) = o.poll_transmit() {
        assert!(t.len() <= 65_536, "a frame of {} bytes", t.len());
        got.extend(common::deliver(t, &mut a).unwrap());
    }
    assert_eq!(got, vec![msg]);
}

#[test]
fn both_directions_carry_large_messages_once_negotiated() {
    let (mut o, mut a) = common::negotiated(Config::default());
    let up = json(3 << 20);
    let down = json(5 << 20);
    a.send(up.clone()).unwrap();
    o.send(down.clone()).unwrap();
    assert_eq!(deliver_all(&mut a, &mut o).unwrap(), vec![up]);
    assert_eq!(deliver_all(&mut o, &mut a).unwrap(), vec![down]);
}
