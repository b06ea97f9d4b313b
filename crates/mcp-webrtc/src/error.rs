//! The crate's single error type.

/// Everything that can go wrong with an MCP-over-WebRTC transport.
///
/// A variant that wraps a lower layer's error shows that error's message
/// (which names the phase or the limit) and its source, rather than
/// repeating it inside a message of its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Setting up the peer connection failed (signaling, SDP, ICE, DTLS,
    /// SCTP or the data channel; the inner error names the phase).
    #[error(transparent)]
    Connect(mcp_webrtc_rtc::Error),
    /// The transport's configuration is inconsistent.
    #[error("invalid transport configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// An outbound message could not be encoded as JSON.
    #[error("could not encode the outbound message")]
    Encode(#[source] serde_json::Error),
    /// An outbound request or notification is larger than the peer accepts.
    /// (An oversize *response* is answered with a JSON-RPC error instead.)
    #[error("{what} too large for this peer: {size} bytes > limit {limit}")]
    MessageTooLarge {
        /// "request" or "notification".
        what: &'static str,
        /// The encoded size.
        size: u64,
        /// The peer's limit.
        limit: u64,
    },
    /// Bytes handed to [`MessageChannel::send`](crate::MessageChannel::send)
    /// are not one JSON-RPC 2.0 message.
    #[error("not sent: {reason}")]
    InvalidMessage {
        /// What is wrong with the message.
        reason: String,
    },
    /// The framing layer refused an outbound message.
    #[error(transparent)]
    Framing(mcp_webrtc_core::Error),
    /// The peer went away: it stopped answering (dead-peer timeout) or its
    /// side of the channel failed.
    #[error("peer gone: {reason}")]
    PeerGone {
        /// What was observed.
        reason: String,
    },
    /// The session ended: closed by us or, cleanly, by the peer.
    #[error("the session is closed ({reason})")]
    Closed {
        /// Who closed it.
        reason: String,
    },
    /// Sending on the data channel failed.
    #[error(transparent)]
    Send(mcp_webrtc_rtc::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
