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

/// The parts of a message needed to answer it when rmcp cannot parse it.
#[derive(serde::Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub(crate) id: Option<Value>,
    #[serde(default)]
    pub(crate) method: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub(crate) result: Option<serde::de::IgnoredAny>,
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
