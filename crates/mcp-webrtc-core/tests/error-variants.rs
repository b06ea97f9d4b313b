//! Every error variant, produced through the public API, and the session
//! going on afterwards.
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

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use common::{deliver_all, negotiated};
use mcp_webrtc_core::wire::{DataHeader, FrameError, Limits};
use mcp_webrtc_core::{ChannelInfo, Config, Error, Framer, PROTOCOL, Role, Scheduler, codec};

fn data(id: u32, offset: u64, total: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = DataHeader { id, offset, total }.encode().to_vec();
    v.extend_from_slice(payload);
    v
}

fn hello(config: &Config) -> Vec<u8> {
    config.limits().encode().to_vec()
}

/// A receiver in chunked mode, and proof that it still works afterwards.
fn receiver(config: Config) -> (Framer, Framer) {
    let (offerer, answerer) = negotiated(config);
    (offerer, answerer)
}

fn still_works(tx: &mut Framer, rx: &mut Framer) {
    // Three frames' worth, or as much as the receiver accepts.
    let size = (3 * tx.config().frame_size as u64).min(tx.max_send_size().unwrap()) as usize;
    let msg = Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":9,"result":"{}"}}"#,
        "y".repeat(size - 40)
    ));
    tx.send(msg.clone()).unwrap();
    assert_eq!(deliver_all(tx, rx).unwrap(), vec![msg]);
}

#[test]
fn codec_invalid_json() {
    let e = codec::validate(b"{\"jsonrpc\": ").unwrap_err();
    assert!(matches!(e, Error::InvalidJson { line: 1, .. }), "{e}");
    let e = codec::validate(b"{\"jsonrpc\":\"2.0\"} trailing").unwrap_err();
    assert!(matches!(e, Error::InvalidJson { .. }), "{e}");
    let e = codec::validate(&[b'"', 0xff, b'"']).unwrap_err();
    assert!(matches!(e, Error::InvalidJson { .. }), "{e}");
}

#[test]
fn codec_not_an_object() {
    for (input, found) in [
        (&b"[1,2]"[..], "array"),
        (b"\"x\"", "string"),
        (b"42", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
    ] {
        assert_eq!(codec::validate(input), Err(Error::NotAnObject { found }));
    }
}

#[test]
fn codec_missing_version() {
    assert_eq!(
        codec::validate(br#"{"id":1,"method":"ping"}"#),
        Err(Error::MissingVersion)
    );
}

#[test]
fn codec_wrong_version() {
    for (input, found) in [
        (&br#"{"jsonrpc":"1.0"}"#[..], r#""1.0""#),
        (br#"{"jsonrpc":2.0}"#, "2"),
        (br#"{"jsonrpc":null}"#, "null"),
        (br#"{"jsonrpc":{"v":"2.0"}}"#, "an object"),
    ] {
        assert_eq!(
            codec::validate(input),
            Err(Error::WrongVersion {
                found: found.into()
            }),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    // Long values are truncated in the error.
    let long = format!(r#"{{"jsonrpc":"{}"}}"#, "9".repeat(1000));
    match codec::validate(long.as_bytes()) {
        Err(Error::WrongVersion { found }) => assert!(found.len() < 80, "{found}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn codec_duplicate_version_member_is_invalid() {
    let e = codec::validate(br#"{"jsonrpc":"2.0","jsonrpc":"2.0"}"#).unwrap_err();
    assert!(matches!(e, Error::InvalidJson { .. }), "{e}");
}

#[test]
fn codec_serialize() {
    let mut map = BTreeMap::new();
    map.insert(vec![1u8], 1u8); // a non-string key cannot be JSON
    assert!(matches!(codec::encode(&map), Err(Error::Serialize { .. })));
    // Serializable but not JSON-RPC.
    assert_eq!(
        codec::encode(&serde_json::json!({"id": 1})),
        Err(Error::MissingVersion)
    );
}

#[test]
fn codec_round_trip() {
    let v = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let bytes = codec::encode(&v).unwrap();
    assert_eq!(codec::decode::<serde_json::Value>(&bytes).unwrap(), v);
    // decode checks the shape against the target type too
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        id: u64,
    }
    let e = codec::decode::<Req>(br#"{"jsonrpc":"2.0","id":"x"}"#).unwrap_err();
    assert!(matches!(e, Error::InvalidJson { .. }), "{e}");
}

#[test]
fn invalid_utf8_text_is_refused_before_sending() {
    let mut f = Framer::new(
        Role::Offerer,
        Config::default(),
        &ChannelInfo::new("", None),
    )
    .unwrap();
    assert_eq!(
        f.send(Bytes::from_static(b"{\"a\":\"\xff\"}")),
        Err(Error::InvalidUtf8 { valid_up_to: 6 })
    );
    assert!(f.is_idle());
}

#[test]
fn empty_message() {
    let mut f = Framer::new(
        Role::Offerer,
        Config::default(),
        &ChannelInfo::new("", None),
    )
    .unwrap();
    assert_eq!(f.send(Bytes::new()), Err(Error::EmptyMessage));
    assert_eq!(f.receive_text(Bytes::new()), Err(Error::EmptyMessage));
    assert_eq!(codec::validate(b""), Err(Error::EmptyMessage));
}

#[test]
fn message_too_large_in_plain_mode() {
    let mut f = Framer::new(
        Role::Offerer,
        Config::default(),
        &ChannelInfo::new("", Some(262_144)),
    )
    .unwrap();
    let msg = Bytes::from(vec![b'x'; 262_145]);
    assert_eq!(
        f.send(msg),
        Err(Error::MessageTooLarge {
            size: 262_145,
            limit: 262_144
        })
    );
    assert!(f.is_idle(), "nothing was queued");
    // At the limit it goes, whole, as text.
    f.send(Bytes::from(vec![b'x'; 262_144])).unwrap();
    assert!(
        matches!(f.poll_transmit(), Some(mcp_webrtc_core::Transmit::Text(t)) if t.len() == 262_144)
    );
}

#[test]
fn message_too_large_for_the_peer_in_chunked_mode() {
    let small = Config::default()
        .with_max_message_size(1000)
        .with_max_buffered_bytes(1000);
    let channel = ChannelInfo::new(PROTOCOL, None);
    let mut offerer = Framer::new(Role::Offerer, Config::default(), &channel).unwrap();
    let mut answerer = Framer::new(Role::Answerer, small, &channel).unwrap();
    deliver_all(&mut answerer, &mut offerer).unwrap();
    assert_eq!(offerer.max_send_size(), Some(1000));
    assert_eq!(
        offerer.send(Bytes::from(vec![b'x'; 1001])),
        Err(Error::MessageTooLarge {
            size: 1001,
            limit: 1000
        })
    );
}

#[test]
fn message_too_large_inbound() {
    let config = Config::default()
        .with_max_message_size(100_000)
        .with_max_buffered_bytes(100_000);
    let (mut tx, mut rx) = receiver(config);
    assert_eq!(
        rx.receive_binary(&data(5, 0, 100_001, b"{"), Instant::now()),
        Err(Error::MessageTooLarge {
            size: 100_001,
            limit: 100_000
        })
    );
    // The rest of the refused message is skipped quietly, and reserves nothing.
    assert_eq!(
        rx.receive_binary(&data(5, 1, 100_001, b"x"), Instant::now()),
        Ok(None)
    );
    assert_eq!(rx.buffered_bytes(), 0);
    assert_eq!(
        rx.receive_text(Bytes::from(vec![b' '; 100_001])),
        Err(Error::MessageTooLarge {
            size: 100_001,
            limit: 100_000
        })
    );
    still_works(&mut tx, &mut rx);
}

#[test]
fn too_many_in_flight() {
    let (mut tx, mut rx) = receiver(Config::default().with_max_in_flight(2));
    assert_eq!(
        rx.receive_binary(&data(1, 0, 100, b"{"), Instant::now()),
        Ok(None)
    );
    assert_eq!(
        rx.receive_binary(&data(2, 0, 100, b"{"), Instant::now()),
        Ok(None)
    );
    assert_eq!(
        rx.receive_binary(&data(3, 0, 100, b"{"), Instant::now()),
        Err(Error::TooManyInFlight { id: 3, limit: 2 })
    );
    assert_eq!(rx.in_flight(), 2);
    // Finish message 1 to make room again.
    let rest = vec![b'x'; 99];
    assert_eq!(
        rx.receive_binary(&data(1, 1, 100, &rest), Instant::now())
            .unwrap()
            .map(|m| m.len()),
        Some(100)
    );
    assert_eq!(rx.in_flight(), 1);
    // Message 2 is abandoned by its sender: finish it so the sender's next
    // message (id 0 of this pair) has room.
    rx.receive_binary(&data(2, 1, 100, &rest), Instant::now())
        .unwrap();
    still_works(&mut tx, &mut rx);
}

#[test]
fn buffer_limit_exceeded() {
    let config = Config::default()
        .with_max_message_size(1000)
        .with_max_buffered_bytes(1500);
    let (mut tx, mut rx) = receiver(config);
    assert_eq!(
        rx.receive_binary(&data(1, 0, 1000, b"{"), Instant::now()),
        Ok(None)
    );
    assert_eq!(
        rx.receive_binary(&data(2, 0, 600, b"{"), Instant::now()),
        Err(Error::BufferLimitExceeded {
            id: 2,
            requested: 600,
            buffered: 1000,
            limit: 1500
        })
    );
    assert_eq!(rx.buffered_bytes(), 1000);
    rx.receive_binary(&data(1, 1, 1000, &[b'x'; 999]), Instant::now())
        .unwrap()
        .unwrap();
    assert_eq!(rx.buffered_bytes(), 0);
    still_works(&mut tx, &mut rx);
}

#[test]
fn queue_full() {
    let mut f = Framer::new(
        Role::Offerer,
        Config::default().with_max_queued_bytes(10),
        &ChannelInfo::new("", None),
    )
    .unwrap();
    // One message larger than the bound is accepted into an empty queue...
    f.send(Bytes::from(vec![b'x'; 20])).unwrap();
    // ...but nothing more until it drains.
    assert_eq!(
        f.send(Bytes::from_static(b"y")),
        Err(Error::QueueFull {
            queued: 20,
            size: 1,
            limit: 10
        })
    );
    f.poll_transmit().unwrap();
    f.send(Bytes::from_static(b"y")).unwrap();
}

#[test]
fn invalid_config() {
    let channel = ChannelInfo::new(PROTOCOL, None);
    for config in [
        Config::default().with_max_message_size(0),
        Config::default().with_max_in_flight(0),
        Config::default()
            .with_max_message_size(2000)
            .with_max_buffered_bytes(1000),
        Config::default().with_frame_size(21),
    ] {
        let e = Framer::new(Role::Answerer, config, &channel).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
    }
    assert!(matches!(
        Scheduler::new(0, 1),
        Err(Error::InvalidConfig { .. })
    ));
    // A channel limit smaller than a header is refused too.
    let tiny = ChannelInfo::new(PROTOCOL, Some(10));
    assert!(matches!(
        Framer::new(Role::Answerer, Config::default(), &tiny),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn frame_layout_errors_are_typed() {
    let (mut tx, mut rx) = receiver(Config::default());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "EmptyFrame"),
        (vec![0x7b, 0x7d], "UnknownFrameType"),
        (data(1, 0, 10, b"")[..20].to_vec(), "TruncatedHeader"),
        (data(1, 0, 10, b""), "EmptyPayload"),
        (data(1, 9, 10, b"ab"), "FrameOverrun"),
        (hello(&Config::default())[..21].to_vec(), "TruncatedHeader"),
        (
            {
                let mut h = hello(&Config::default());
                h[1] = 9;
                h
            },
            "UnsupportedVersion",
        ),
        (
            Limits {
                max_message_size: 1,
                max_in_flight: 0,
                max_buffered_bytes: 1,
            }
            .encode()
            .to_vec(),
            "InvalidHello",
        ),
    ];
    for (frame, want) in cases {
        let e = rx.receive_binary(&frame, Instant::now()).unwrap_err();
        assert_eq!(common::variant(&e), want, "{e}");
        assert!(!e.to_string().is_empty());
    }
    still_works(&mut tx, &mut rx);
}

#[test]
fn duplicate_frame_discards_the_message() {
    let (mut tx, mut rx) = receiver(Config::default());
    rx.receive_binary(&data(1, 0, 30, &[b'a'; 10]), Instant::now())
        .unwrap();
    assert_eq!(
        rx.receive_binary(&data(1, 0, 30, &[b'a'; 10]), Instant::now()),
        Err(Error::DuplicateFrame {
            id: 1,
            offset: 0,
            expected: 10
        })
    );
    assert_eq!(rx.in_flight(), 0);
    assert_eq!(rx.buffered_bytes(), 0);
    // The remaining frames of the discarded message are skipped quietly.
    assert_eq!(
        rx.receive_binary(&data(1, 10, 30, &[b'a'; 20]), Instant::now()),
        Ok(None)
    );
    still_works(&mut tx, &mut rx);
}

#[test]
fn out_of_order_frame_discards_the_message() {
    let (mut tx, mut rx) = receiver(Config::default());
    rx.receive_binary(&data(1, 0, 30, &[b'a'; 10]), Instant::now())
        .unwrap();
    assert_eq!(
        rx.receive_binary(&data(1, 20, 30, &[b'a'; 10]), Instant::now()),
        Err(Error::OutOfOrderFrame {
            id: 1,
            offset: 20,
            expected: 10
        })
    );
    assert_eq!(rx.in_flight(), 0);
    still_works(&mut tx, &mut rx);
}

#[test]
fn total_mismatch_discards_the_message() {
    let (mut tx, mut rx) = receiver(Config::default());
    rx.receive_binary(&data(1, 0, 30, &[b'a'; 10]), Instant::now())
        .unwrap();
    assert_eq!(
        rx.receive_binary(&data(1, 10, 31, &[b'a'; 10]), Instant::now()),
        Err(Error::TotalMismatch {
            id: 1,
            total: 31,
            expected: 30
        })
    );
    assert_eq!(rx.in_flight(), 0);
    still_works(&mut tx, &mut rx);
}

#[test]
fn unknown_message() {
    let (mut tx, mut rx) = receiver(Config::default());
    assert_eq!(
        rx.receive_binary(&data(42, 10, 30, &[b'a'; 10]), Instant::now()),
        Err(Error::UnknownMessage { id: 42, offset: 10 })
    );
    still_works(&mut tx, &mut rx);
}

#[test]
fn not_negotiated() {
    // A reference peer's channel: no protocol string. Binary is refused.
    let mut plain = Framer::new(
        Role::Answerer,
        Config::default(),
        &ChannelInfo::new("", None),
    )
    .unwrap();
    assert!(plain.is_idle(), "no HELLO toward a reference peer");
    assert!(matches!(
        plain.receive_binary(&hello(&Config::default()), Instant::now()),
        Err(Error::NotNegotiated { .. })
    ));
    assert!(matches!(
        plain.receive_binary(&data(1, 0, 2, b"{}"), Instant::now()),
        Err(Error::NotNegotiated { .. })
    ));
    // Our offerer before the answerer's HELLO: DATA is refused.
    let mut offerer = Framer::new(
        Role::Offerer,
        Config::default(),
        &ChannelInfo::new(PROTOCOL, None),
    )
    .unwrap();
    assert!(matches!(
        offerer.receive_binary(&data(1, 0, 2, b"{}"), Instant::now()),
        Err(Error::NotNegotiated { .. })
    ));
}

#[test]
fn unexpected_hello() {
    let (mut offerer, mut answerer) = negotiated(Config::default());
    assert!(matches!(
        offerer.receive_binary(&hello(&Config::default()), Instant::now()),
        Err(Error::UnexpectedHello { .. })
    ));
    assert!(matches!(
        answerer.receive_binary(&hello(&Config::default()), Instant::now()),
        Err(Error::UnexpectedHello { .. })
    ));
    still_works(&mut offerer, &mut answerer);
    still_works(&mut answerer, &mut offerer);
}

#[test]
fn every_error_displays_its_numbers() {
    let e = Error::MessageTooLarge {
        size: 300_000,
        limit: 262_144,
    };
    assert_eq!(
        e.to_string(),
        "message too large: 300000 bytes > limit 262144 bytes"
    );
    let e = Error::OutOfOrderFrame {
        id: 3,
        offset: 20,
        expected: 10,
    };
    assert_eq!(
        e.to_string(),
        "out-of-order frame for message 3: offset 20, expected 10"
    );
}

#[test]
fn plain_channels_refuse_any_binary_with_not_negotiated() {
    let mut plain = Framer::new(
        Role::Offerer,
        Config::default(),
        &ChannelInfo::new("", None),
    )
    .unwrap();
    for (input, first) in [
        (&b""[..], None),
        (b"\x7b\x7d", Some(0x7b)),
        (b"\x02\x09", Some(0x02)),
        (b"\x01\x00", Some(0x01)),
    ] {
        assert_eq!(
            plain.receive_binary(input, Instant::now()),
            Err(Error::NotNegotiated { first_byte: first })
        );
    }
}

#[test]
fn channel_limits_of_zero_or_tiny_size() {
    // RFC 8841: 0 means no limit.
    let mut f = Framer::new(
        Role::Offerer,
        Config::default(),
        &ChannelInfo::new("", Some(0)),
    )
    .unwrap();
    assert_eq!(f.max_send_size(), Some(u64::MAX));
    f.send(Bytes::from(vec![b'x'; 1 << 20])).unwrap();
    // A plain channel with a tiny limit works: it never carries frames.
    let mut f = Framer::new(
        Role::Offerer,
        Config::default(),
        &ChannelInfo::new("", Some(10)),
    )
    .unwrap();
    f.send(Bytes::from_static(b"{}")).unwrap();
    assert!(matches!(
        f.send(Bytes::from(vec![b'x'; 11])),
        Err(Error::MessageTooLarge {
            size: 11,
            limit: 10
        })
    ));
}

#[test]
fn no_peer_hello_hands_waiting_messages_back() {
    let channel = ChannelInfo::new(PROTOCOL, None);
    let mut a = Framer::new(Role::Answerer, Config::default(), &channel).unwrap();
    let big = Bytes::from(vec![b'x'; 100_000]);
    a.send(big.clone()).unwrap();
    a.send(Bytes::from_static(b"{}")).unwrap();
    // The offerer's HELLO never comes; the transport gives up.
    a.abandon_waiting();
    let rejected = a.poll_rejected().unwrap();
    assert_eq!(rejected.message, big);
    assert_eq!(rejected.error, Error::NoPeerHello { size: 100_000 });
    assert!(a.poll_rejected().is_none());
    assert_eq!(a.send(big), Err(Error::NoPeerHello { size: 100_000 }));
    // Small messages still flow as text.
    let mut out = Vec::new();
    while let Some(t) = a.poll_transmit() {
        out.push(t);
    }
    assert_eq!(out.len(), 2, "HELLO and the small text message");
    assert_eq!(a.queued_bytes(), 0);
}

#[test]
fn reassembler_checks_headers_it_did_not_parse() {
    use mcp_webrtc_core::Reassembler;
    let mut r = Reassembler::new(Config::default().limits());
    let header = |offset, total| DataHeader {
        id: 1,
        offset,
        total,
    };
    assert_eq!(
        r.receive(header(0, 10), &[b'x'; 20], Instant::now()),
        Err(Error::Frame(FrameError::FrameOverrun {
            id: 1,
            offset: 0,
            len: 20,
            total: 10
        }))
    );
    assert_eq!(
        r.receive(header(0, 10), &[], Instant::now()),
        Err(Error::Frame(FrameError::EmptyPayload { id: 1, offset: 0 }))
    );
    assert!(matches!(
        r.receive(header(u64::MAX, u64::MAX), b"ab", Instant::now()),
        Err(Error::Frame(FrameError::FrameOverrun { .. }))
    ));
    assert_eq!(r.buffered_bytes(), 0);
}
