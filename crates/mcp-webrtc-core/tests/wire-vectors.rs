//! The frame layout of `docs/protocol.md`, checked against the test vectors in
//! `tests/vectors/wire-v1.json` (generated from the spec by an independent
//! Python implementation, `tests/vectors/generate.py`).
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
use common::{negotiated, unhex, variant};
use mcp_webrtc_core::wire::{DataHeader, Frame, Limits};
use mcp_webrtc_core::{Config, PROTOCOL, Transmit};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/wire-v1.json");
    let text = std::fs::read_to_string(path).expect("read test vectors");
    serde_json::from_str(&text).expect("parse test vectors")
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn vectors_name_our_protocol() {
    assert_eq!(vectors()["protocol"], PROTOCOL);
}

#[test]
fn valid_frames_parse_and_encode_byte_for_byte() {
    let v = vectors();
    let frames = v["frames"].as_array().unwrap();
    assert!(frames.len() >= 5);
    for case in frames {
        let name = case["name"].as_str().unwrap();
        let wire = unhex(case["hex"].as_str().unwrap());
        let parsed = Frame::parse(&wire).unwrap_or_else(|e| panic!("{name}: {e}"));
        match case["type"].as_str().unwrap() {
            "data" => {
                let header = DataHeader {
                    id: u64_of(case, "id") as u32,
                    offset: u64_of(case, "offset"),
                    total: u64_of(case, "total"),
                };
                let payload = unhex(case["payload_hex"].as_str().unwrap());
                assert_eq!(
                    parsed,
                    Frame::Data {
                        header,
                        payload: &payload
                    },
                    "{name}"
                );
                let mut encoded = header.encode().to_vec();
                encoded.extend_from_slice(&payload);
                assert_eq!(encoded, wire, "{name}: encoding");
            }
            "hello" => {
                let hello = Limits {
                    max_message_size: u64_of(case, "max_message_size"),
                    max_in_flight: u64_of(case, "max_in_flight") as u32,
                    max_buffered_bytes: u64_of(case, "max_buffered_bytes"),
                };
                assert_eq!(parsed, Frame::Hello(hello), "{name}");
                // Encoding never writes the ignored extension bytes.
                assert_eq!(hello.encode()[..], wire[..22], "{name}: encoding");
            }
            other => panic!("{name}: unknown type {other}"),
        }
    }
}

#[test]
fn invalid_frames_give_the_named_error() {
    let v = vectors();
    let cases = v["invalid_frames"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let wire = unhex(case["hex"].as_str().unwrap());
        let err = Frame::parse(&wire).expect_err(name);
        assert_eq!(
            variant(&err.clone().into()),
            case["error"].as_str().unwrap(),
            "{name}: {err}"
        );
    }
}

#[test]
fn messages_are_chunked_exactly_as_specified() {
    let v = vectors();
    for case in v["messages"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let frame_size = u64_of(case, "frame_size") as usize;
        let message = Bytes::from(case["message"].as_str().unwrap().to_owned());
        let (mut tx, mut rx) = negotiated(Config::default().with_frame_size(frame_size));
        tx.send(message.clone()).unwrap();

        let mut produced = Vec::new();
        let mut received = Vec::new();
        while let Some(t) = tx.poll_transmit() {
            produced.push(match &t {
                Transmit::Text(text) => {
                    serde_json::json!({"text": std::str::from_utf8(text).unwrap()})
                }
                Transmit::Binary(frame) => serde_json::json!({
                    "binary_hex": frame.to_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>()
                }),
            });
            received.extend(common::deliver(t, &mut rx).unwrap());
        }
        assert_eq!(&Value::Array(produced), &case["frames"], "{name}");
        assert_eq!(received, vec![message], "{name}: reassembly");
    }
}
