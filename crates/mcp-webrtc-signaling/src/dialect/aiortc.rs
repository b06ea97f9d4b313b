//! `aiortc.contrib.signaling`'s wire format, byte for byte.
//!
//! aiortc writes `json.dumps(message, sort_keys=True)`: keys sorted, `", "`
//! and `": "` separators, and every character outside printable ASCII
//! escaped as `\uXXXX` (`ensure_ascii`). It reads offers and answers with
//! `RTCSessionDescription(**message)`, so an extra key crashes it, and it
//! asserts on an empty candidate, so end-of-candidates is never sent.

use serde_json::Value;

use super::{opt_index, opt_string, parse_object, quoted, string_field};
use crate::{Dialect, Error, Result, SignalMessage};

const D: Dialect = Dialect::Aiortc;

/// Encode exactly as aiortc's `object_to_string` does.
pub(crate) fn encode(message: &SignalMessage) -> Result<String> {
    let mut out = String::with_capacity(64);
    match message {
        SignalMessage::Offer(sdp) | SignalMessage::Answer(sdp) => {
            out.push_str("{\"sdp\": ");
            py_string(&mut out, sdp);
            out.push_str(", \"type\": ");
            py_string(&mut out, message.type_name());
            out.push('}');
        }
        SignalMessage::Candidate {
            candidate,
            sdp_mid,
            sdp_mline_index,
        } => {
            if candidate.is_empty() {
                // aiortc reads an empty candidate as end-of-candidates.
                return Err(Error::Unrepresentable {
                    dialect: D,
                    what: "an empty candidate (aiortc reads it as end-of-candidates)",
                });
            }
            out.push_str("{\"candidate\": ");
            // aiortc splits on the first ':' and fails without the prefix.
            if candidate.starts_with("candidate:") {
                py_string(&mut out, candidate);
            } else {
                py_string(&mut out, &format!("candidate:{candidate}"));
            }
            out.push_str(", \"id\": ");
            match sdp_mid {
                Some(mid) => py_string(&mut out, mid),
                None => out.push_str("null"),
            }
            out.push_str(", \"label\": ");
            match sdp_mline_index {
                Some(i) => out.push_str(&i.to_string()),
                None => out.push_str("null"),
            }
            out.push_str(", \"type\": \"candidate\"}");
        }
        SignalMessage::EndOfCandidates => {
            return Err(Error::Unrepresentable {
                dialect: D,
                what: "end-of-candidates (aiortc asserts on an empty candidate)",
            });
        }
        SignalMessage::Pairing(_) => {
            return Err(Error::Unrepresentable {
                dialect: D,
                what: "a pairing-code message (pair with a secret over aiortc signaling)",
            });
        }
        SignalMessage::Bye => out.push_str("{\"type\": \"bye\"}"),
    }
    Ok(out)
}

/// A JSON string as Python's `json.dumps` writes it with `ensure_ascii`.
fn py_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Decode what aiortc's `object_to_string` writes (and what its
/// `object_from_string` accepts). Unknown keys are ignored.
pub(crate) fn decode(input: &[u8]) -> Result<SignalMessage> {
    let map = parse_object(D, input)?;
    let kind = super::message_type(D, &map)?;
    match kind {
        "offer" => Ok(SignalMessage::Offer(string_field(D, &map, "offer", "sdp")?)),
        "answer" => Ok(SignalMessage::Answer(string_field(
            D, &map, "answer", "sdp",
        )?)),
        "candidate" => {
            let candidate = match map.get("candidate") {
                None => {
                    return Err(Error::MissingField {
                        dialect: D,
                        message_type: "candidate",
                        field: "candidate",
                    });
                }
                Some(Value::Null) => String::new(),
                Some(_) => string_field(D, &map, "candidate", "candidate")?,
            };
            if candidate.is_empty() {
                return Ok(SignalMessage::EndOfCandidates);
            }
            Ok(SignalMessage::Candidate {
                candidate,
                sdp_mid: opt_string(D, &map, "id")?,
                sdp_mline_index: opt_index(D, &map, "label")?,
            })
        }
        "bye" => Ok(SignalMessage::Bye),
        other => Err(Error::UnknownType {
            dialect: D,
            found: quoted(other),
        }),
    }
}
