//! The transport's counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one transport. Read them through
/// [`TransportHandle::stats`](crate::TransportHandle::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// Messages accepted for sending.
    pub messages_sent: u64,
    /// Messages received and handed to rmcp.
    pub messages_received: u64,
    /// Inbound messages or frames dropped as malformed (not JSON, not
    /// JSON-RPC, not MCP, a bad frame, over our size limit).
    pub malformed_received: u64,
    /// Malformed requests answered with a JSON-RPC "Invalid Request" error.
    pub invalid_requests_answered: u64,
    /// Replies to malformed requests dropped because
    /// [`Builder::max_pending_replies`](crate::Builder::max_pending_replies)
    /// of them already waited to go out.
    pub replies_dropped: u64,
    /// Responses too large for the peer, replaced by a JSON-RPC error
    /// ("result too large for this peer").
    pub oversize_results_answered: u64,
    /// Incomplete inbound messages dropped after
    /// [`Builder::partial_timeout`](crate::Builder::partial_timeout) without
    /// a frame.
    pub partial_messages_expired: u64,
    /// Bytes put on the data channel (frame headers included).
    pub bytes_sent: u64,
    /// Bytes taken from the data channel.
    pub bytes_received: u64,
    /// Now, not a total: outbound message bytes queued and not yet handed
    /// to the data channel (the framer's queue, messages waiting for room in
    /// it, and pending replies).
    pub queued_bytes: u64,
    /// Now, not a total: replies we made up (to malformed requests) that
    /// wait to go out. At most
    /// [`Builder::max_pending_replies`](crate::Builder::max_pending_replies);
    /// while that many wait, nothing more is read from the channel.
    pub pending_replies: u64,
    /// Now, not a total: bytes reserved for incomplete inbound messages.
    pub buffered_bytes: u64,
    /// Now, not a total: requests we sent that the peer has not answered
    /// (nor we cancelled), at most 65,536.
    pub unanswered_requests: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_sent: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) malformed_received: AtomicU64,
    pub(crate) invalid_requests_answered: AtomicU64,
    pub(crate) replies_dropped: AtomicU64,
    pub(crate) oversize_results_answered: AtomicU64,
    pub(crate) partial_messages_expired: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
}

/// Add `by`; the new value.
pub(crate) fn bump(counter: &AtomicU64, by: u64) -> u64 {
    counter.fetch_add(by, Ordering::Relaxed).saturating_add(by)
}

impl Counters {
    /// The cumulative counters (the gauges are filled in by the caller).
    pub(crate) fn snapshot(&self) -> TransportStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransportStats {
            messages_sent: get(&self.messages_sent),
            messages_received: get(&self.messages_received),
            malformed_received: get(&self.malformed_received),
            invalid_requests_answered: get(&self.invalid_requests_answered),
            replies_dropped: get(&self.replies_dropped),
            oversize_results_answered: get(&self.oversize_results_answered),
            partial_messages_expired: get(&self.partial_messages_expired),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            queued_bytes: 0,
            pending_replies: 0,
            buffered_bytes: 0,
            unanswered_requests: 0,
        }
    }
}
