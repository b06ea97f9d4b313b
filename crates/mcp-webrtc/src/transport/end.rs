//! Why a session ended.

use crate::error::Error;

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// We closed it.
    Closed,
    /// The peer closed it cleanly (bye, or its side of the channel closed).
    PeerClosed,
    /// The peer stopped answering or its connection failed.
    PeerGone {
        /// What was observed.
        reason: String,
    },
    /// Sending failed (for example the peer stopped reading and a send
    /// timed out).
    SendFailed {
        /// The send error.
        reason: String,
    },
}

impl EndReason {
    /// The peer went away or a send failed (not a clean close).
    pub(crate) fn is_abnormal(&self) -> bool {
        matches!(
            self,
            EndReason::PeerGone { .. } | EndReason::SendFailed { .. }
        )
    }

    /// The error a send gets once the session has ended this way.
    pub(crate) fn to_error(&self) -> Error {
        match self {
            EndReason::Closed => Error::Closed {
                reason: "closed by us".into(),
            },
            EndReason::PeerClosed => Error::Closed {
                reason: "closed by the peer".into(),
            },
            EndReason::PeerGone { reason } | EndReason::SendFailed { reason } => Error::PeerGone {
                reason: reason.clone(),
            },
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::Closed => f.write_str("closed by us"),
            EndReason::PeerClosed => f.write_str("closed by the peer"),
            EndReason::PeerGone { reason } => write!(f, "peer gone: {reason}"),
            EndReason::SendFailed { reason } => write!(f, "send failed: {reason}"),
        }
    }
}

/// How an error of the rtc layer ends the session.
pub(crate) fn end_of(error: mcp_webrtc_rtc::Error) -> EndReason {
    match error {
        mcp_webrtc_rtc::Error::Closed => EndReason::Closed,
        mcp_webrtc_rtc::Error::PeerGone { reason } => EndReason::PeerGone { reason },
        other => EndReason::PeerGone {
            reason: other.to_string(),
        },
    }
}
