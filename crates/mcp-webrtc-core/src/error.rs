//! The crate's single error type.

use crate::wire::FrameError;

/// Everything that can go wrong in the codec, the framer, the scheduler or the
/// reassembler.
///
/// Every variant names what was wrong and carries the numbers needed to act on
/// it. None of them is fatal to a session: a caller that gets one of these for
/// an inbound frame or message drops that frame or message and keeps going.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- codec -------------------------------------------------------------
    /// The bytes are not valid JSON (or not UTF-8).
    #[error("message is not valid JSON: {reason} (line {line}, column {column})")]
    InvalidJson {
        /// What the JSON parser reported.
        reason: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The JSON value is valid but is not an object.
    #[error("JSON-RPC message must be a JSON object, found {found}")]
    NotAnObject {
        /// The kind of JSON value found instead (`array`, `string`, …).
        found: &'static str,
    },
    /// The object has no `"jsonrpc"` member.
    #[error("JSON-RPC message has no \"jsonrpc\" member")]
    MissingVersion,
    /// The `"jsonrpc"` member is not the string `"2.0"`.
    #[error("JSON-RPC message has \"jsonrpc\": {found}, expected \"2.0\"")]
    WrongVersion {
        /// The offending value, as JSON text (truncated to 64 bytes).
        found: String,
    },
    /// A message could not be serialized.
    #[error("message could not be serialized to JSON: {reason}")]
    Serialize {
        /// What serde_json reported.
        reason: String,
    },
    /// A message that must travel as a data-channel text message is not UTF-8.
    #[error("message to be sent as text is not valid UTF-8 (first bad byte at {valid_up_to})")]
    InvalidUtf8 {
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// An empty message (zero bytes) was sent or received.
    #[error("empty message")]
    EmptyMessage,

    // ----- sizes and limits ---------------------------------------------------
    /// A message is larger than the limit that applies to it: the peer's
    /// data-channel limit in plain mode, the peer's advertised maximum in
    /// chunked mode, or our own maximum for inbound messages.
    #[error("message too large: {size} bytes > limit {limit} bytes")]
    MessageTooLarge {
        /// The message size in bytes.
        size: u64,
        /// The limit that it exceeds.
        limit: u64,
    },
    /// Starting this inbound message would exceed the number of partially
    /// received messages we hold at once.
    #[error("too many messages in flight: message {id} would be number {limit} + 1")]
    TooManyInFlight {
        /// The id of the refused message.
        id: u32,
        /// The configured maximum.
        limit: u32,
    },
    /// Starting this inbound message would exceed the total number of bytes
    /// we buffer for partial messages.
    #[error(
        "reassembly buffer full: message {id} needs {requested} bytes, {buffered} of {limit} already buffered"
    )]
    BufferLimitExceeded {
        /// The id of the refused message.
        id: u32,
        /// The size of the refused message.
        requested: u64,
        /// Bytes already reserved by other partial messages.
        buffered: u64,
        /// The configured maximum.
        limit: u64,
    },
    /// An inbound chunked message made no progress for too long and was
    /// dropped, its buffer freed ([`Config::partial_timeout`](crate::Config::partial_timeout)).
    #[error("incomplete message {id} dropped: {received} of {total} bytes, no frame for {after:?}")]
    PartialTimeout {
        /// The id of the dropped message.
        id: u32,
        /// Bytes received before it expired.
        received: u64,
        /// Its announced total.
        total: u64,
        /// The timeout that passed without a frame.
        after: std::time::Duration,
    },
    /// The outbound queue is full; the caller must wait for frames to drain.
    #[error("send queue full: {queued} bytes queued, adding {size} would exceed {limit}")]
    QueueFull {
        /// Bytes already queued.
        queued: u64,
        /// Size of the refused message.
        size: u64,
        /// The configured maximum.
        limit: u64,
    },
    /// The peer announced chunked framing but its HELLO never came, so its
    /// limits are unknown and this message (which needs chunking) cannot be
    /// sent. See [`Framer::abandon_waiting`](crate::Framer::abandon_waiting).
    #[error("no HELLO from the peer: its limits are unknown, cannot chunk a {size}-byte message")]
    NoPeerHello {
        /// The message size.
        size: u64,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// Which value, and why.
        reason: String,
    },

    // ----- frames -------------------------------------------------------------
    /// A binary frame is malformed in itself ([`FrameError`]).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A DATA frame whose offset was already received. The partial message is
    /// discarded.
    #[error("duplicate frame for message {id}: offset {offset}, already have {expected} bytes")]
    DuplicateFrame {
        /// Message id.
        id: u32,
        /// Offset in the frame.
        offset: u64,
        /// Bytes received so far (the offset that was expected).
        expected: u64,
    },
    /// A DATA frame that leaves a gap. The partial message is discarded.
    #[error("out-of-order frame for message {id}: offset {offset}, expected {expected}")]
    OutOfOrderFrame {
        /// Message id.
        id: u32,
        /// Offset in the frame.
        offset: u64,
        /// The offset that was expected.
        expected: u64,
    },
    /// A DATA frame whose total length differs from the message's first frame.
    /// The partial message is discarded.
    #[error("frame for message {id} says total {total}, first frame said {expected}")]
    TotalMismatch {
        /// Message id.
        id: u32,
        /// Total in this frame.
        total: u64,
        /// Total in the first frame.
        expected: u64,
    },
    /// A continuation frame for a message that was never started.
    #[error("frame for unknown message {id} at offset {offset}")]
    UnknownMessage {
        /// Message id.
        id: u32,
        /// Offset in the frame.
        offset: u64,
    },
    /// A binary frame arrived although chunked framing was not negotiated on
    /// this channel.
    #[error(
        "binary message (first byte {}) received but chunked framing was not negotiated",
        first_byte.map_or_else(|| "none".to_owned(), |b| format!("0x{b:02x}"))
    )]
    NotNegotiated {
        /// The message's first byte, if it has one.
        first_byte: Option<u8>,
    },
    /// A HELLO frame arrived when none was expected (a second one).
    #[error("unexpected HELLO: {reason}")]
    UnexpectedHello {
        /// Why it was not expected.
        reason: &'static str,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
