//! The outbound queue: messages in call order, replies we make up, and
//! requests the peer has not answered yet. Every part is bounded.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use mcp_webrtc_core::Framer;
use rmcp::model::ErrorCode;
use serde_json::Value;
use tokio::sync::oneshot;

use super::jsonrpc::{Envelope, error_response, id_key};
use super::shared::Shared;
use super::stats::bump;
use crate::error::{Error, Result};

/// Requests remembered as unanswered, at most. Beyond it the oldest is
/// forgotten (it would get no made-up "peer gone" error).
pub(crate) const MAX_UNANSWERED: usize = 65_536;

/// Pending replies are handed to the framer only while it holds less than
/// this: they wait in their own bounded queue rather than in the framer's
/// (which takes up to `Config::max_queued_bytes`).
const REPLY_ROOM: u64 = 64 * 1024;

/// What an outbound message is, as far as error handling cares.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Request(Value),
    Response(Value),
    /// A notification; `Some(id)` for one that cancels request `id`.
    Notification(Option<Value>),
    Error,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Request(_) => "request",
            Kind::Response(_) => "result",
            Kind::Notification(_) => "notification",
            Kind::Error => "error response",
        }
    }
}

/// A message waiting for room in the framer's queue.
pub(crate) struct Pending {
    bytes: Bytes,
    kind: Kind,
    done: oneshot::Sender<Result<()>>,
}

/// Everything on the way out, behind one lock with the framer.
pub(crate) struct Outbound {
    pub(crate) framer: Framer,
    /// Messages the framer's queue had no room for yet, in call order.
    pub(crate) waiting: VecDeque<Pending>,
    /// Bytes in `waiting`.
    waiting_bytes: u64,
    /// Replies we made up, not yet in the framer. Those to malformed
    /// requests are capped ([`Outbound::max_replies`]); those that replace
    /// a response of ours are not (one per request rmcp answered).
    pub(crate) replies: VecDeque<Bytes>,
    /// Bytes in `replies`.
    replies_bytes: u64,
    max_replies: usize,
    /// Requests we sent and the peer has not answered, by JSON id, with
    /// the number they were sent as.
    pub(crate) unanswered: HashMap<String, (Value, u64)>,
    /// The same requests in the order they were sent (some may have been
    /// answered since: their entries no longer match the map's).
    sent_order: VecDeque<(u64, String)>,
    sent_requests: u64,
}

impl Outbound {
    pub(crate) fn new(framer: Framer, max_replies: usize) -> Outbound {
        Outbound {
            framer,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            replies: VecDeque::new(),
            replies_bytes: 0,
            max_replies,
            unanswered: HashMap::new(),
            sent_order: VecDeque::new(),
            sent_requests: 0,
        }
    }

    /// Outbound message bytes not yet handed to the channel.
    pub(crate) fn queued_bytes(&self) -> u64 {
        self.framer
            .queued_bytes()
            .saturating_add(self.waiting_bytes)
            .saturating_add(self.replies_bytes)
    }

    /// As many replies to malformed requests wait as are allowed: stop
    /// reading until some have gone out.
    pub(crate) fn replies_full(&self) -> bool {
        self.replies.len() >= self.max_replies
    }

    /// Nothing left to put on the channel (the writer may still hold one
    /// frame).
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.replies.is_empty() && self.framer.is_idle()
    }

    /// Remember a request we sent, forgetting the oldest beyond
    /// [`MAX_UNANSWERED`].
    fn remember(&mut self, id: &Value) {
        // Bounded: each pass pops one entry of `sent_order`.
        while self.unanswered.len() >= MAX_UNANSWERED {
            let Some((seq, key)) = self.sent_order.pop_front() else {
                break;
            };
            if self.unanswered.get(&key).is_some_and(|(_, s)| *s == seq) {
                self.unanswered.remove(&key);
            }
        }
        // Drop the order's stale entries now and then, so it stays within
        // twice the map.
        if self.sent_order.len() > self.unanswered.len().saturating_mul(2).saturating_add(64) {
            let live = &self.unanswered;
            self.sent_order
                .retain(|(seq, key)| live.get(key).is_some_and(|(_, s)| s == seq));
        }
        self.sent_requests = self.sent_requests.saturating_add(1);
        let key = id_key(id);
        self.sent_order.push_back((self.sent_requests, key.clone()));
        self.unanswered
            .insert(key, (id.clone(), self.sent_requests));
    }

    /// The peer answered (or can no longer answer) request `id`.
    pub(crate) fn answered(&mut self, id: &Value) {
        self.unanswered.remove(&id_key(id));
    }

    /// Take the messages that wait and the unanswered requests, when the
    /// session ends.
    pub(crate) fn drain(&mut self) -> (VecDeque<Pending>, Vec<Value>) {
        self.waiting_bytes = 0;
        self.replies_bytes = 0;
        self.replies.clear();
        self.sent_order.clear();
        let unanswered = std::mem::take(&mut self.unanswered)
            .into_values()
            .map(|(id, _)| id)
            .collect();
        (std::mem::take(&mut self.waiting), unanswered)
    }
}

enum Offer {
    Done(Result<()>),
    Full(Bytes, Kind),
}

/// What [`Shared::enqueue`] made of a message.
pub(crate) enum SendOutcome {
    /// Accepted, or refused, at once.
    Ready(Result<()>),
    /// Waiting for room in the framer; the result comes when it has.
    Wait(oneshot::Receiver<Result<()>>),
}

impl Pending {
    /// Fail the send that waits (the session ended).
    pub(crate) fn fail(self, error: Error) {
        let _ = self.done.send(Err(error));
    }
}

fn wait_in(out: &mut Outbound, bytes: Bytes, kind: Kind) -> oneshot::Receiver<Result<()>> {
    let (tx, rx) = oneshot::channel();
    out.waiting_bytes = out.waiting_bytes.saturating_add(bytes.len() as u64);
    out.waiting.push_back(Pending {
        bytes,
        kind,
        done: tx,
    });
    rx
}

impl Shared {
    /// Queue one encoded message, in call order.
    pub(crate) fn enqueue(&self, bytes: Bytes, kind: Kind) -> SendOutcome {
        let mut out = self.out();
        // Checked under the queue's lock: `finish` records the end, then
        // drains this queue under the same lock, so a message is either
        // refused here or drained (and failed) there, never queued after
        // the drain and left behind.
        if let Some(end) = self.end_reason() {
            return SendOutcome::Ready(Err(end.to_error()));
        }
        match &kind {
            Kind::Request(id) => out.remember(id),
            Kind::Notification(Some(cancelled)) => out.answered(cancelled),
            _ => {}
        }
        let outcome = if out.waiting.is_empty() {
            match self.offer(&mut out, bytes, kind) {
                Offer::Done(result) => SendOutcome::Ready(result),
                Offer::Full(bytes, kind) => SendOutcome::Wait(wait_in(&mut out, bytes, kind)),
            }
        } else {
            SendOutcome::Wait(wait_in(&mut out, bytes, kind))
        };
        drop(out);
        self.writer_wake.notify_one();
        outcome
    }

    /// Hand one message to the framer.
    fn offer(&self, out: &mut Outbound, bytes: Bytes, kind: Kind) -> Offer {
        match out.framer.send(bytes.clone()) {
            Ok(()) => {
                bump(&self.counters.messages_sent, 1);
                Offer::Done(Ok(()))
            }
            Err(mcp_webrtc_core::Error::QueueFull { .. }) => Offer::Full(bytes, kind),
            Err(mcp_webrtc_core::Error::MessageTooLarge { size, limit }) => {
                Offer::Done(self.too_large(out, &kind, size, limit))
            }
            Err(e) => {
                if let Kind::Request(id) = &kind {
                    out.answered(id);
                }
                Offer::Done(Err(Error::Framing(e)))
            }
        }
    }

    /// A message over the peer's limit: a response becomes a JSON-RPC error
    /// to its request; anything else fails its send.
    fn too_large(&self, out: &mut Outbound, kind: &Kind, size: u64, limit: u64) -> Result<()> {
        match kind {
            Kind::Response(id) => {
                let message =
                    format!("result too large for this peer: {size} bytes > limit {limit}");
                tracing::warn!(%id, size, limit, "{message}; answering with an error");
                let reply = error_response(
                    id,
                    ErrorCode::INTERNAL_ERROR,
                    message,
                    Some(serde_json::json!({ "size": size, "limit": limit })),
                );
                self.push_reply(out, &reply, true);
                bump(&self.counters.oversize_results_answered, 1);
                Ok(())
            }
            other => {
                if let Kind::Request(id) = other {
                    out.answered(id);
                }
                Err(Error::MessageTooLarge {
                    what: other.name(),
                    size,
                    limit,
                })
            }
        }
    }

    /// Queue a reply we made up. One that replaces a response of ours
    /// (`replaces_response`) always goes; one to a malformed request is
    /// dropped and counted when the queue of such replies is full.
    pub(crate) fn push_reply(&self, out: &mut Outbound, message: &Value, replaces_response: bool) {
        if !replaces_response && out.replies_full() {
            let n = bump(&self.counters.replies_dropped, 1);
            tracing::debug!(dropped = n, "reply queue full: a reply was dropped");
            return;
        }
        let bytes = match serde_json::to_vec(message) {
            Ok(v) => Bytes::from(v),
            Err(e) => {
                tracing::error!(error = %e, "could not encode an error response");
                return;
            }
        };
        out.replies_bytes = out.replies_bytes.saturating_add(bytes.len() as u64);
        out.replies.push_back(bytes);
        self.writer_wake.notify_one();
    }

    /// Move replies, then waiting messages, into the framer while it has
    /// room, and deal with what it handed back.
    pub(crate) fn refill(&self, out: &mut Outbound) {
        let mut freed = false;
        // Bounded: each pass takes one reply off the queue or stops.
        while out.framer.queued_bytes() < REPLY_ROOM {
            let Some(reply) = out.replies.pop_front() else {
                break;
            };
            let len = reply.len() as u64;
            match out.framer.send(reply.clone()) {
                Ok(()) => {}
                Err(mcp_webrtc_core::Error::QueueFull { .. }) => {
                    out.replies.push_front(reply);
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "could not queue an error response"),
            }
            out.replies_bytes = out.replies_bytes.saturating_sub(len);
            freed = true;
        }
        if freed {
            self.reply_room.notify_one();
        }
        // Bounded: each pass takes one message off `waiting` or stops.
        while let Some(pending) = out.waiting.pop_front() {
            let Pending { bytes, kind, done } = pending;
            let len = bytes.len() as u64;
            match self.offer(out, bytes, kind) {
                Offer::Done(result) => {
                    out.waiting_bytes = out.waiting_bytes.saturating_sub(len);
                    let _ = done.send(result);
                }
                Offer::Full(bytes, kind) => {
                    out.waiting.push_front(Pending { bytes, kind, done });
                    break;
                }
            }
        }
        // Bounded by the framer's queue.
        while let Some(rejected) = out.framer.poll_rejected() {
            self.rejected(out, &rejected.message, &rejected.error);
        }
    }

    /// A message the framer accepted, then could not send (the peer's
    /// limits, learnt later, are lower; or its HELLO never came).
    fn rejected(&self, out: &mut Outbound, message: &[u8], error: &mcp_webrtc_core::Error) {
        let envelope = Envelope::of(message);
        let id = envelope.as_ref().and_then(|e| e.id.clone());
        let size = message.len() as u64;
        let limit = match error {
            mcp_webrtc_core::Error::MessageTooLarge { limit, .. } => Some(*limit),
            _ => None,
        };
        let is_request = envelope.as_ref().is_some_and(|e| e.method.is_some());
        let is_result = envelope.as_ref().is_some_and(|e| e.result.is_some());
        match (id, limit) {
            (Some(id), Some(limit)) if is_result => {
                self.too_large(out, &Kind::Response(id), size, limit).ok();
            }
            (Some(id), _) if is_request => {
                // Fail the caller's request with the reason.
                out.answered(&id);
                let text = format!("request not sent: {error}");
                tracing::warn!(%id, "{text}");
                self.push_synthetic(error_response(&id, ErrorCode::INTERNAL_ERROR, text, None));
            }
            (Some(id), _) if is_result => {
                let reply = error_response(
                    &id,
                    ErrorCode::INTERNAL_ERROR,
                    format!("result not sent: {error}"),
                    None,
                );
                self.push_reply(out, &reply, true);
            }
            _ => tracing::warn!(size, %error, "dropped an outbound message the peer cannot take"),
        }
    }
}
