//! The browser (W3C `RTCSessionDescriptionInit` / `RTCIceCandidateInit`) and
//! simple-peer shapes.
//!
//! - `{"type":"offer","sdp":"…"}`, `{"type":"answer","sdp":"…"}`
//! - `{"type":"candidate","candidate":{"candidate":"candidate:…","sdpMid":"0","sdpMLineIndex":0}}`
//! - end of candidates: `{"type":"candidate","candidate":{"candidate":""}}`
//!   (a `null` candidate is read the same way)
//! - `{"type":"bye"}`
//! - `{"type":"pairing","data":"<hex>"}`: a SPAKE2 message of two peers that
//!   pair with a short code
//!
//! The relay's own notices, `{"type":"error","reason":"…"}`, decode to
//! [`Error::RelayNotice`]. A peer that turns a session down before it
//! starts sends `{"type":"refused","reason":"…"}`, which decodes to
//! [`Error::PeerRefused`].

use serde_json::{Map, Value, json};

use super::{json_type, opt_index, opt_string, parse_object, quoted, string_field};
use crate::{Dialect, Error, Result, SignalMessage};

const D: Dialect = Dialect::W3c;

pub(crate) fn encode(message: &SignalMessage) -> String {
    let value = match message {
        SignalMessage::Offer(sdp) => json!({"type": "offer", "sdp": sdp}),
        SignalMessage::Answer(sdp) => json!({"type": "answer", "sdp": sdp}),
        SignalMessage::Candidate {
            candidate,
            sdp_mid,
            sdp_mline_index,
        } => json!({
            "type": "candidate",
            "candidate": {
                "candidate": candidate,
                "sdpMid": sdp_mid,
                "sdpMLineIndex": sdp_mline_index,
            }
        }),
        SignalMessage::EndOfCandidates => {
            json!({"type": "candidate", "candidate": {"candidate": ""}})
        }
        SignalMessage::Pairing(data) => json!({"type": "pairing", "data": data}),
        SignalMessage::Bye => json!({"type": "bye"}),
    };
    value.to_string()
}

pub(crate) fn decode(input: &[u8]) -> Result<SignalMessage> {
    let map = parse_object(D, input)?;
    let kind = super::message_type(D, &map)?;
    match kind {
        "offer" => Ok(SignalMessage::Offer(string_field(D, &map, "offer", "sdp")?)),
        "answer" => Ok(SignalMessage::Answer(string_field(
            D, &map, "answer", "sdp",
        )?)),
        "candidate" => candidate(&map),
        "bye" => Ok(SignalMessage::Bye),
        "pairing" => Ok(SignalMessage::Pairing(string_field(
            D, &map, "pairing", "data",
        )?)),
        "refused" => Err(Error::PeerRefused {
            reason: opt_string(D, &map, "reason")?.unwrap_or_else(|| "unspecified".into()),
        }),
        "error" => Err(Error::RelayNotice {
            reason: opt_string(D, &map, "reason")?.unwrap_or_else(|| "unspecified".into()),
        }),
        other => Err(Error::UnknownType {
            dialect: D,
            found: quoted(other),
        }),
    }
}

fn candidate(map: &Map<String, Value>) -> Result<SignalMessage> {
    let init = match map.get("candidate") {
        None => {
            return Err(Error::MissingField {
                dialect: D,
                message_type: "candidate",
                field: "candidate",
            });
        }
        Some(Value::Null) => return Ok(SignalMessage::EndOfCandidates),
        Some(Value::Object(init)) => init,
        Some(other) => {
            return Err(Error::WrongFieldType {
                dialect: D,
                field: "candidate",
                expected: "an RTCIceCandidateInit object or null",
                found: json_type(other),
            });
        }
    };
    let line = opt_string(D, init, "candidate")?.unwrap_or_default();
    if line.is_empty() {
        return Ok(SignalMessage::EndOfCandidates);
    }
    Ok(SignalMessage::Candidate {
        candidate: line,
        sdp_mid: opt_string(D, init, "sdpMid")?,
        sdp_mline_index: opt_index(D, init, "sdpMLineIndex")?,
    })
}
