//! The two JSON dialects, as pure codecs.

pub(crate) mod aiortc;
pub(crate) mod w3c;

use serde_json::{Map, Value};

use crate::{Dialect, Error, Result};

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parse a JSON object.
pub(crate) fn parse_object(dialect: Dialect, input: &[u8]) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_slice(input).map_err(|e| Error::InvalidJson {
        dialect,
        reason: e.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::WrongFieldType {
            dialect,
            field: "(message)",
            expected: "an object",
            found: json_type(&other),
        }),
    }
}

/// The `type` member, a string.
pub(crate) fn message_type(dialect: Dialect, map: &Map<String, Value>) -> Result<&str> {
    match map.get("type") {
        None => Err(Error::MissingField {
            dialect,
            message_type: "a",
            field: "type",
        }),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Error::WrongFieldType {
            dialect,
            field: "type",
            expected: "a string",
            found: json_type(other),
        }),
    }
}

/// A required string member.
pub(crate) fn string_field(
    dialect: Dialect,
    map: &Map<String, Value>,
    message_type: &'static str,
    field: &'static str,
) -> Result<String> {
    match map.get(field) {
        None => Err(Error::MissingField {
            dialect,
            message_type,
            field,
        }),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(Error::WrongFieldType {
            dialect,
            field,
            expected: "a string",
            found: json_type(other),
        }),
    }
}

/// An optional (absent or null) string member.
pub(crate) fn opt_string(
    dialect: Dialect,
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::WrongFieldType {
            dialect,
            field,
            expected: "a string or null",
            found: json_type(other),
        }),
    }
}

/// An optional (absent or null) media-section index.
pub(crate) fn opt_index(
    dialect: Dialect,
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<u16>> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .map(Some)
            .ok_or(Error::WrongFieldType {
                dialect,
                field,
                expected: "an integer from 0 to 65535",
                found: "another number",
            }),
        Some(other) => Err(Error::WrongFieldType {
            dialect,
            field,
            expected: "an integer or null",
            found: json_type(other),
        }),
    }
}

/// A `type` value for an error message, truncated.
pub(crate) fn quoted(s: &str) -> String {
    let mut q = format!("{s:?}");
    if q.len() > 64 {
        let mut end = 64;
        while !q.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        q.truncate(end);
        q.push('…');
    }
    q
}
