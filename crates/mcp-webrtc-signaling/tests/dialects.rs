//! The two dialects as pure codecs: aiortc byte for byte, W3C shapes, typed
//! errors naming the dialect and the field, and no panic on any input.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_webrtc_signaling::{Dialect, Error, SignalMessage};
use proptest::prelude::*;

const LIMIT: usize = 1 << 20;

const SDP: &str = "v=0\r\no=- 3950000000 3950000000 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";
const CANDIDATE: &str =
    "candidate:842163049 1 udp 1677729535 192.0.2.7 50000 typ srflx raddr 10.0.0.2 rport 50000";

/// Lines printed by aiortc 1.16.0's own `object_to_string` (Python 3.11) for
/// the same objects.
const AIORTC_GOLDEN: &[&str] = &[
    r#"{"sdp": "v=0\r\no=- 3950000000 3950000000 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n", "type": "offer"}"#,
    r#"{"sdp": "caf\u00e9 \u2603 \ud83d\ude00 \"q\" \\ \t\u0001\u007f/", "type": "answer"}"#,
    r#"{"candidate": "candidate:842163049 1 udp 1677729535 192.0.2.7 50000 typ srflx raddr 10.0.0.2 rport 50000", "id": "0", "label": 0, "type": "candidate"}"#,
    r#"{"candidate": "candidate:842163049 1 udp 1677729535 192.0.2.7 50000 typ srflx raddr 10.0.0.2 rport 50000", "id": null, "label": null, "type": "candidate"}"#,
    r#"{"type": "bye"}"#,
];

fn golden_messages() -> Vec<SignalMessage> {
    vec![
        SignalMessage::Offer(SDP.into()),
        SignalMessage::Answer("caf\u{e9} \u{2603} \u{1F600} \"q\" \\ \t\u{1}\u{7f}/".into()),
        SignalMessage::Candidate {
            candidate: CANDIDATE.into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        },
        SignalMessage::Candidate {
            candidate: CANDIDATE.into(),
            sdp_mid: None,
            sdp_mline_index: None,
        },
        SignalMessage::Bye,
    ]
}

#[test]
fn aiortc_encoding_is_byte_for_byte_what_aiortc_writes() {
    for (message, golden) in golden_messages().iter().zip(AIORTC_GOLDEN) {
        assert_eq!(&Dialect::Aiortc.encode(message).unwrap(), golden);
        assert_eq!(
            &Dialect::Aiortc.decode(golden.as_bytes(), LIMIT).unwrap(),
            message
        );
    }
}

#[test]
fn aiortc_never_emits_end_of_candidates() {
    assert!(matches!(
        Dialect::Aiortc.encode(&SignalMessage::EndOfCandidates),
        Err(Error::Unrepresentable {
            dialect: Dialect::Aiortc,
            ..
        })
    ));
    // ...but reads an empty candidate as one.
    assert_eq!(
        Dialect::Aiortc
            .decode(br#"{"candidate": "", "type": "candidate"}"#, LIMIT)
            .unwrap(),
        SignalMessage::EndOfCandidates
    );
}

#[test]
fn w3c_shapes() {
    let cases = [
        (
            SignalMessage::Offer("v=0\r\n".into()),
            r#"{"sdp":"v=0\r\n","type":"offer"}"#,
        ),
        (
            SignalMessage::Answer("v=0\r\n".into()),
            r#"{"sdp":"v=0\r\n","type":"answer"}"#,
        ),
        (
            SignalMessage::Candidate {
                candidate: CANDIDATE.into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            },
            r#"{"candidate":{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.7 50000 typ srflx raddr 10.0.0.2 rport 50000","sdpMLineIndex":0,"sdpMid":"0"},"type":"candidate"}"#,
        ),
        (
            SignalMessage::EndOfCandidates,
            r#"{"candidate":{"candidate":""},"type":"candidate"}"#,
        ),
        (SignalMessage::Bye, r#"{"type":"bye"}"#),
    ];
    for (message, json) in cases {
        let encoded = Dialect::W3c.encode(&message).unwrap();
        let a: serde_json::Value = serde_json::from_str(&encoded).unwrap();
        let b: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(a, b, "{message:?}");
        assert_eq!(
            Dialect::W3c.decode(json.as_bytes(), LIMIT).unwrap(),
            message
        );
    }
}

#[test]
fn w3c_reads_simple_peer_and_browser_variants() {
    // simple-peer's candidate signal
    let sp = br#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMLineIndex":0,"sdpMid":"0"}}"#;
    assert!(matches!(
        Dialect::W3c.decode(sp, LIMIT).unwrap(),
        SignalMessage::Candidate {
            sdp_mline_index: Some(0),
            ..
        }
    ));
    // a browser's end-of-candidates as null
    assert_eq!(
        Dialect::W3c
            .decode(br#"{"type":"candidate","candidate":null}"#, LIMIT)
            .unwrap(),
        SignalMessage::EndOfCandidates
    );
    // unknown keys are ignored
    assert_eq!(
        Dialect::W3c
            .decode(br#"{"type":"offer","sdp":"x","extra":[1,2]}"#, LIMIT)
            .unwrap(),
        SignalMessage::Offer("x".into())
    );
}

#[test]
fn errors_name_the_dialect_and_the_field() {
    for dialect in [Dialect::Aiortc, Dialect::W3c] {
        let e = dialect.decode(b"{not json", LIMIT).unwrap_err();
        assert!(
            matches!(e, Error::InvalidJson { dialect: d, .. } if d == dialect),
            "{e}"
        );
        assert!(e.to_string().contains(&dialect.to_string()), "{e}");

        let e = dialect
            .decode(br#"{"type":"renegotiate"}"#, LIMIT)
            .unwrap_err();
        assert!(
            matches!(&e, Error::UnknownType { found, .. } if found == "\"renegotiate\""),
            "{e}"
        );

        let e = dialect.decode(br#"{"sdp":"x"}"#, LIMIT).unwrap_err();
        assert!(
            matches!(e, Error::MissingField { field: "type", .. }),
            "{e}"
        );

        let e = dialect.decode(br#"{"type":"offer"}"#, LIMIT).unwrap_err();
        assert!(
            matches!(
                e,
                Error::MissingField {
                    message_type: "offer",
                    field: "sdp",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            format!("{dialect} signaling: offer message has no `sdp`")
        );

        let e = dialect
            .decode(br#"{"type":"offer","sdp":42}"#, LIMIT)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::WrongFieldType {
                    field: "sdp",
                    found: "a number",
                    ..
                }
            ),
            "{e}"
        );

        let e = dialect.decode(br#"{"type":7}"#, LIMIT).unwrap_err();
        assert!(
            matches!(e, Error::WrongFieldType { field: "type", .. }),
            "{e}"
        );

        let e = dialect.decode(b"[1]", LIMIT).unwrap_err();
        assert!(
            matches!(
                e,
                Error::WrongFieldType {
                    found: "an array",
                    ..
                }
            ),
            "{e}"
        );

        let e = dialect.decode(&[b' '; 100], 10).unwrap_err();
        assert!(
            matches!(
                e,
                Error::MessageTooLarge {
                    size: 100,
                    limit: 10
                }
            ),
            "{e}"
        );
        assert!(e.is_per_message());
    }
    let e = Dialect::Aiortc
        .decode(
            br#"{"type":"candidate","candidate":"candidate:x","label":70000}"#,
            LIMIT,
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::WrongFieldType { field: "label", .. }),
        "{e}"
    );
    let e = Dialect::W3c
        .decode(
            br#"{"type":"candidate","candidate":{"candidate":"candidate:x","sdpMid":5}}"#,
            LIMIT,
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongFieldType {
                field: "sdpMid",
                ..
            }
        ),
        "{e}"
    );
    let e = Dialect::W3c
        .decode(br#"{"type":"candidate","candidate":"candidate:x"}"#, LIMIT)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongFieldType {
                field: "candidate",
                ..
            }
        ),
        "{e}"
    );
    // The relay's notices surface as such.
    let e = Dialect::W3c
        .decode(br#"{"type":"error","reason":"message too large"}"#, LIMIT)
        .unwrap_err();
    assert!(
        matches!(&e, Error::RelayNotice { reason } if reason == "message too large"),
        "{e}"
    );
}

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,40}", any::<String>(), Just(SDP.to_owned()),]
}

fn arb_message() -> impl Strategy<Value = SignalMessage> {
    prop_oneof![
        arb_text().prop_map(SignalMessage::Offer),
        arb_text().prop_map(SignalMessage::Answer),
        (
            "candidate:[ -~]{1,60}",
            proptest::option::of(arb_text()),
            proptest::option::of(any::<u16>())
        )
            .prop_map(
                |(candidate, sdp_mid, sdp_mline_index)| SignalMessage::Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index
                }
            ),
        Just(SignalMessage::EndOfCandidates),
        Just(SignalMessage::Bye),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512)))]

    #[test]
    fn both_dialects_round_trip(message in arb_message()) {
        for dialect in [Dialect::Aiortc, Dialect::W3c] {
            match dialect.encode(&message) {
                Ok(text) => {
                    prop_assert!(!text.contains('\n'), "one line");
                    if dialect == Dialect::Aiortc {
                        prop_assert!(text.is_ascii(), "ensure_ascii");
                    }
                    prop_assert_eq!(dialect.decode(text.as_bytes(), LIMIT).unwrap(), message.clone());
                }
                Err(Error::Unrepresentable { .. }) => {
                    prop_assert_eq!(dialect, Dialect::Aiortc);
                    prop_assert_eq!(&message, &SignalMessage::EndOfCandidates);
                }
                Err(e) => prop_assert!(false, "{}", e),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for dialect in [Dialect::Aiortc, Dialect::W3c] {
            if let Err(e) = dialect.decode(&bytes, LIMIT) {
                prop_assert!(e.is_per_message(), "{}", e);
            }
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        message in arb_message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        for dialect in [Dialect::Aiortc, Dialect::W3c] {
            let Ok(text) = dialect.encode(&message) else { continue };
            let mut bytes = text.into_bytes();
            for (at, byte, op) in &edits {
                if bytes.is_empty() { break; }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = *byte,
                    1 => { bytes.remove(i); }
                    _ => bytes.insert(i, *byte),
                }
            }
            if let Err(e) = dialect.decode(&bytes, LIMIT) {
                prop_assert!(e.is_per_message(), "{}", e);
            }
        }
    }
}

#[test]
fn aiortc_never_writes_a_line_aiortc_would_choke_on() {
    let empty = SignalMessage::Candidate {
        candidate: String::new(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };
    assert!(matches!(
        Dialect::Aiortc.encode(&empty),
        Err(Error::Unrepresentable { .. })
    ));
    // aiortc splits on "candidate:"; a bare candidate gets the prefix.
    let bare = SignalMessage::Candidate {
        candidate: "1 1 udp 1 127.0.0.1 9 typ host".into(),
        sdp_mid: None,
        sdp_mline_index: None,
    };
    let line = Dialect::Aiortc.encode(&bare).unwrap();
    assert!(
        line.starts_with(r#"{"candidate": "candidate:1 1 udp"#),
        "{line}"
    );
}
