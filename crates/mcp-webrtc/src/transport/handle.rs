//! [`TransportHandle`]: watching a session after rmcp has the transport.

use std::sync::Arc;
use std::time::Duration;

use mcp_webrtc_core::Limits;
use mcp_webrtc_core::WireMode;
use mcp_webrtc_rtc::{ChannelInfo, HandshakeTimings};

use super::end::EndReason;
use super::shared::Shared;
use super::stats::TransportStats;

/// Watches a transport after it has been handed to rmcp. Cheap to clone.
#[derive(Clone)]
pub struct TransportHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for TransportHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportHandle")
            .field("stats", &self.stats())
            .field("end", &self.end_reason())
            .finish()
    }
}

impl TransportHandle {
    /// The transport's counters, and how much waits to go out now.
    #[must_use]
    pub fn stats(&self) -> TransportStats {
        let mut stats = self.shared.counters.snapshot();
        let out = self.shared.out();
        stats.queued_bytes = out.queued_bytes();
        stats.pending_replies = out.replies.len() as u64;
        stats.buffered_bytes = out.framer.buffered_bytes();
        stats.unanswered_requests = out.unanswered.len() as u64;
        stats
    }

    /// Why the session ended, once it has.
    #[must_use]
    pub fn end_reason(&self) -> Option<EndReason> {
        self.shared.end_reason()
    }

    /// Wait until the session ends, at most `timeout`; the reason, or
    /// `None` if it is still running.
    pub async fn ended(&self, timeout: Duration) -> Option<EndReason> {
        let _ = tokio::time::timeout(timeout, self.shared.cancel.cancelled()).await;
        self.end_reason()
    }

    /// Plain (one text message per JSON-RPC message, as the reference
    /// packages) or chunked (negotiated with a peer of our own).
    #[must_use]
    pub fn wire_mode(&self) -> WireMode {
        self.shared.out().framer.mode()
    }

    /// The peer's receive limits, once its HELLO arrived (chunked mode).
    #[must_use]
    pub fn peer_limits(&self) -> Option<Limits> {
        self.shared.out().framer.peer_limits()
    }

    /// The largest message we can send right now, if known.
    #[must_use]
    pub fn max_send_size(&self) -> Option<u64> {
        self.shared.out().framer.max_send_size()
    }

    /// The data channel: label, protocol, SDP size limits.
    #[must_use]
    pub fn channel(&self) -> ChannelInfo {
        self.shared.conn.info().clone()
    }

    /// How long set-up took, by phase.
    #[must_use]
    pub fn timings(&self) -> HandshakeTimings {
        self.shared.conn.timings()
    }

    /// The session's id, as it appears in the `session` field of its logs.
    #[must_use]
    pub fn session_id(&self) -> String {
        self.shared.session_id.clone()
    }

    /// Traffic counters of the peer connection and its selected candidate
    /// pair.
    pub async fn connection_stats(&self) -> mcp_webrtc_rtc::Stats {
        self.shared.conn.stats().await
    }
}
