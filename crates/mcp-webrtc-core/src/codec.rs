//! One JSON-RPC message ↔ bytes.
//!
//! The codec knows nothing of MCP's or rmcp's types: it works with any
//! `serde` type, and checks the one thing every JSON-RPC 2.0 message shares,
//! that it is a JSON object whose `"jsonrpc"` member is `"2.0"`.
//!
//! Validation is a single streaming pass that allocates nothing for the
//! members it skips, so it costs far less than deserializing the message.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

/// Check that `bytes` is one JSON object with `"jsonrpc": "2.0"`.
///
/// # Errors
/// [`Error::InvalidJson`], [`Error::NotAnObject`], [`Error::MissingVersion`]
/// or [`Error::WrongVersion`], naming what was wrong.
pub fn validate(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Err(Error::EmptyMessage);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let envelope = Envelope::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(json_error)?;
    match envelope {
        Envelope::NotAnObject(found) => Err(Error::NotAnObject { found }),
        Envelope::Object { version: None } => Err(Error::MissingVersion),
        Envelope::Object {
            version: Some(Version::Ok),
        } => Ok(()),
        Envelope::Object {
            version: Some(Version::Wrong(found)),
        } => Err(Error::WrongVersion { found }),
    }
}

/// Serialize a message and check that it is a JSON-RPC 2.0 message.
///
/// The result is UTF-8 JSON, ready to be sent as a data-channel text message
/// or handed to the framer.
///
/// # Errors
/// [`Error::Serialize`] if serde fails, or any error of [`validate`].
pub fn encode<T: Serialize + ?Sized>(message: &T) -> Result<Bytes> {
    let bytes = serde_json::to_vec(message).map_err(|e| Error::Serialize {
        reason: e.to_string(),
    })?;
    validate(&bytes)?;
    Ok(Bytes::from(bytes))
}

/// Check that `bytes` is a JSON-RPC 2.0 message, then deserialize it.
///
/// # Errors
/// Any error of [`validate`], or [`Error::InvalidJson`] if the message does
/// not match `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    validate(bytes)?;
    serde_json::from_slice(bytes).map_err(json_error)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::InvalidJson {
        reason: e.to_string(),
        line: e.line(),
        column: e.column(),
    }
}

/// What validation learns about a message.
enum Envelope {
    NotAnObject(&'static str),
    Object { version: Option<Version> },
}

enum Version {
    Ok,
    Wrong(String),
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut version = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::JsonRpc => {
                    if version.is_some() {
                        return Err(de::Error::duplicate_field("jsonrpc"));
                    }
                    version = Some(map.next_value::<Version>()?);
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Envelope::Object { version })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Envelope, A::Error> {
        // Drain the array so the parser can check the rest of the input.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Envelope::NotAnObject("array"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Envelope, E> {
        Ok(Envelope::NotAnObject("boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Envelope, E> {
        Ok(Envelope::NotAnObject("number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Envelope, E> {
        Ok(Envelope::NotAnObject("number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Envelope, E> {
        Ok(Envelope::NotAnObject("number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Envelope, E> {
        Ok(Envelope::NotAnObject("string"))
    }
    fn visit_unit<E>(self) -> Result<Envelope, E> {
        Ok(Envelope::NotAnObject("null"))
    }
}

/// A member name: `jsonrpc`, or anything else (not allocated).
enum Key {
    JsonRpc,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(if v == "jsonrpc" {
                    Key::JsonRpc
                } else {
                    Key::Other
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl<'de> Visitor<'de> for VersionVisitor {
            type Value = Version;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"2.0\"")
            }
            fn visit_str<E>(self, v: &str) -> Result<Version, E> {
                Ok(if v == "2.0" {
                    Version::Ok
                } else {
                    Version::Wrong(truncate(&format!("{v:?}")))
                })
            }
            fn visit_bool<E>(self, v: bool) -> Result<Version, E> {
                Ok(Version::Wrong(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Version, E> {
                Ok(Version::Wrong(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Version, E> {
                Ok(Version::Wrong(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Version, E> {
                Ok(Version::Wrong(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Version, E> {
                Ok(Version::Wrong("null".into()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Version, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Version::Wrong("an array".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Version, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Version::Wrong("an object".into()))
            }
        }
        d.deserialize_any(VersionVisitor)
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    format!("{}…", s.get(..end).unwrap_or_default())
}
