//! The JSON-RPC we read and make up ourselves: error responses, ids, and
//! the envelope of a message rmcp could not parse.

use rmcp::model::{ErrorCode, ErrorData, RequestId};
use serde_json::Value;

/// Implementation-defined: the peer went away before answering.
pub(crate) const PEER_GONE: ErrorCode = ErrorCode(-32000);

/// A JSON-RPC error response to `id`.
pub(crate) fn error_response(
    id: &Value,
    code: ErrorCode,
    message: String,
    data: Option<Value>,
) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": ErrorData::new(code, message, data),
    })
}

/// A request id as JSON.
pub(crate) fn id_value(id: &RequestId) -> Value {
    serde_json::to_value(id).unwrap_or(Value::Null)
}

/// A request id as a map key (`1` and `"1"` stay apart).
pub(crate) fn id_key(id: &Value) -> String {
    id.to_string()
}

/// The parts of a message needed to answer it when rmcp cannot parse it,
/// and to tell what it is. A member that is present is `Some`, even when
/// its value is `null` (`"result": null` is a result, `"id": null` an id).
#[derive(serde::Deserialize)]
pub(crate) struct Envelope {
    #[serde(default, deserialize_with = "present")]
    pub(crate) jsonrpc: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) id: Option<Value>,
    #[serde(default, deserialize_with = "present_any")]
    pub(crate) method: Option<serde::de::IgnoredAny>,
    #[serde(default, deserialize_with = "present_any")]
    pub(crate) result: Option<serde::de::IgnoredAny>,
    #[serde(default, deserialize_with = "present_any")]
    pub(crate) error: Option<serde::de::IgnoredAny>,
}

/// A member that is there, whatever its value (serde's `Option` would read
/// `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

fn present_any<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde::de::IgnoredAny>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

impl Envelope {
    /// Read the envelope of a JSON object (serde would also read a struct
    /// from an array, so anything else is refused first).
    pub(crate) fn of(bytes: &[u8]) -> Option<Envelope> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
        if *first != b'{' {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }
}

/// The id to answer a message rmcp could not parse with: a request (it has
/// a method) whose id is a string or a number.
pub(crate) fn answerable_id(bytes: &[u8]) -> Option<Value> {
    let envelope = Envelope::of(bytes)?;
    envelope.method.as_ref()?;
    envelope.id.filter(|id| id.is_string() || id.is_number())
}

/// Why a whole inbound message was dropped, worked out next to its parse
/// (on a blocking thread for a large one), so that a hostile peer's large
/// malformed messages are never parsed again on an async worker.
pub(crate) struct Malformed {
    pub(crate) why: String,
    /// The request to answer with "Invalid Request", if its id can be read.
    pub(crate) answer_to: Option<Value>,
}

/// Parse one whole inbound message as rmcp's type; if it is not one, say why
/// and whom to answer.
pub(crate) fn parse<M: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<M, Malformed> {
    serde_json::from_slice(bytes).map_err(|e| {
        let why = match mcp_webrtc_core::codec::validate(bytes) {
            Err(not_jsonrpc) => not_jsonrpc.to_string(),
            Ok(()) => format!("not an MCP message: {e}"),
        };
        Malformed {
            why,
            answer_to: answerable_id(bytes),
        }
    })
}

/// What a JSON-RPC message is, read from its bytes (for the untyped
/// channel, which never builds a typed model).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Class {
    /// A request, with its id.
    Request(Value),
    /// A notification.
    Notification,
    /// A result for the request with this id.
    Response(Value),
    /// An error response, for this id (none when the peer could not read
    /// the request's).
    Error(Option<Value>),
}

impl Class {
    /// The request this message answers, if it is a response.
    pub(crate) fn answered(&self) -> Option<Value> {
        match self {
            Class::Response(id) | Class::Error(Some(id)) => Some(id.clone()),
            _ => None,
        }
    }
}

fn is_id(id: &Value) -> bool {
    id.is_string() || id.is_number()
}

/// Read what one JSON-RPC 2.0 message is, in one pass over its bytes; if it
/// is not one, say why.
pub(crate) fn classify(bytes: &[u8]) -> Result<Class, String> {
    let why_not = |fallback: String| match mcp_webrtc_core::codec::validate(bytes) {
        Err(not_jsonrpc) => not_jsonrpc.to_string(),
        Ok(()) => fallback,
    };
    let Some(envelope) = Envelope::of(bytes) else {
        return Err(why_not("not a JSON-RPC message".into()));
    };
    if envelope.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        return Err(why_not("not a JSON-RPC 2.0 message".into()));
    }
    if envelope.method.is_some() {
        // MCP: a request id is a string or a number, never null.
        return match envelope.id {
            None => Ok(Class::Notification),
            Some(id) if is_id(&id) => Ok(Class::Request(id)),
            Some(_) => {
                Err("a request id must be a string or a number (MCP allows no null id)".into())
            }
        };
    }
    if envelope.result.is_some() {
        return match envelope.id {
            Some(id) if is_id(&id) => Ok(Class::Response(id)),
            _ => Err("a result without a string or number id".into()),
        };
    }
    if envelope.error.is_some() {
        return Ok(Class::Error(envelope.id.filter(is_id)));
    }
    Err("neither a request, a notification nor a response: no method, result or error".into())
}

/// The method that cancels a request.
const CANCELLED: &[u8] = b"notifications/cancelled";

/// The request an outbound `notifications/cancelled` cancels, if `bytes` is
/// one (the peer will not answer it, so it need not be remembered).
pub(crate) fn cancelled_request(bytes: &[u8]) -> Option<Value> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "requestId")]
        request_id: Value,
    }
    #[derive(serde::Deserialize)]
    struct Cancel {
        method: String,
        params: Params,
    }
    // Cheap test first: notifications are sent often, cancellations rarely.
    if bytes.len() > 4096 || !bytes.windows(CANCELLED.len()).any(|w| w == CANCELLED) {
        return None;
    }
    let cancel: Cancel = serde_json::from_slice(bytes).ok()?;
    (cancel.method.as_bytes() == CANCELLED).then_some(cancel.params.request_id)
}
