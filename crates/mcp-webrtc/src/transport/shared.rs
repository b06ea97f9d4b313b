//! What the writer task, `receive` and the handle share: the connection, the
//! outbound queue with the framer, the made-up errors, and how the session
//! ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use mcp_webrtc_rtc::{Connection, Incoming};
use rmcp::model::ErrorCode;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::end::{EndReason, end_of};
use super::jsonrpc::{Malformed, PEER_GONE, error_response};
use super::outbound::Outbound;
use super::stats::{Counters, bump};

/// Malformed inbound messages logged at `warn` before switching to `debug`.
const LOUD_MALFORMED: u64 = 10;

/// Settings of a running transport (from the builder).
pub(crate) struct Settings {
    pub(crate) close_timeout: Duration,
    /// Replies to malformed requests that may wait to go out.
    pub(crate) max_pending_replies: usize,
    /// Inbound messages at least this large are parsed off the async
    /// worker.
    pub(crate) parse_off_thread: usize,
}

pub(crate) struct Shared {
    pub(crate) conn: Connection,
    out: Mutex<Outbound>,
    pub(crate) writer_wake: Notify,
    /// A pending reply went out: `receive` may read again.
    pub(crate) reply_room: Notify,
    /// The writer is handing a frame to the channel.
    pub(crate) writing: AtomicBool,
    /// Errors we make up for requests the peer can no longer answer.
    synthetic: Mutex<VecDeque<Value>>,
    pub(crate) synthetic_wake: Notify,
    end: Mutex<Option<EndReason>>,
    pub(crate) counters: Counters,
    pub(crate) cancel: CancellationToken,
    pub(crate) settings: Settings,
    /// The session's span: everything it logs is inside it.
    pub(crate) span: tracing::Span,
    /// The short id in that span.
    pub(crate) session_id: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one inbound data-channel message amounted to, before parsing.
pub(crate) enum Framed {
    /// A whole message, to parse.
    Message(Bytes),
    /// Nothing to hand over (a frame of a larger message, a HELLO, or a
    /// malformed frame already dealt with).
    Nothing,
    /// The channel ended.
    End(EndReason),
}

impl Shared {
    pub(crate) fn new(
        conn: Connection,
        out: Outbound,
        settings: Settings,
        span: tracing::Span,
        session_id: String,
    ) -> Shared {
        Shared {
            conn,
            out: Mutex::new(out),
            writer_wake: Notify::new(),
            reply_room: Notify::new(),
            writing: AtomicBool::new(false),
            synthetic: Mutex::new(VecDeque::new()),
            synthetic_wake: Notify::new(),
            end: Mutex::new(None),
            counters: Counters::default(),
            cancel: CancellationToken::new(),
            settings,
            span,
            session_id,
        }
    }

    pub(crate) fn out(&self) -> MutexGuard<'_, Outbound> {
        lock(&self.out)
    }

    pub(crate) fn end_reason(&self) -> Option<EndReason> {
        lock(&self.end).clone()
    }

    /// Hand a made-up message to rmcp through `receive`.
    pub(crate) fn push_synthetic(&self, message: Value) {
        lock(&self.synthetic).push_back(message);
        self.synthetic_wake.notify_one();
    }

    pub(crate) fn pop_synthetic(&self) -> Option<Value> {
        lock(&self.synthetic).pop_front()
    }

    /// A malformed inbound frame (nothing to answer): log and count.
    pub(crate) fn bad_frame(&self, why: &str) {
        self.malformed(
            0,
            &Malformed {
                why: why.to_owned(),
                answer_to: None,
            },
        );
    }

    /// A malformed inbound message of `size` bytes: log, count, and answer
    /// it if it is a request whose id could be read.
    pub(crate) fn malformed(&self, size: usize, bad: &Malformed) {
        let why = &bad.why;
        let n = bump(&self.counters.malformed_received, 1);
        if n <= LOUD_MALFORMED {
            tracing::warn!(size, count = n, "dropped a malformed message: {why}");
        } else {
            tracing::debug!(size, count = n, "dropped a malformed message: {why}");
        }
        let Some(id) = &bad.answer_to else {
            return;
        };
        let id = id.clone();
        let reply = error_response(
            &id,
            ErrorCode::INVALID_REQUEST,
            format!("invalid request: {why}"),
            None,
        );
        let dropped_before = self.counters.replies_dropped.load(Ordering::Relaxed);
        self.push_reply(&mut self.out(), &reply, false);
        if self.counters.replies_dropped.load(Ordering::Relaxed) == dropped_before {
            bump(&self.counters.invalid_requests_answered, 1);
        }
    }

    /// End the session (once): fail waiting sends, make up errors for
    /// unanswered requests if the peer went away, stop both tasks.
    pub(crate) fn finish(&self, reason: EndReason) {
        {
            let mut end = lock(&self.end);
            if end.is_some() {
                drop(end);
                self.cancel.cancel();
                return;
            }
            *end = Some(reason.clone());
        }
        match &reason {
            EndReason::Closed | EndReason::PeerClosed => tracing::debug!(%reason, "session ended"),
            _ => tracing::warn!(%reason, "session ended"),
        }
        let (waiting, unanswered) = self.out().drain();
        for pending in waiting {
            pending.fail(reason.to_error());
        }
        if reason.is_abnormal() {
            let mut synthetic = lock(&self.synthetic);
            for id in &unanswered {
                synthetic.push_back(error_response(id, PEER_GONE, reason.to_string(), None));
            }
        }
        // Cancel first: `receive` and the writer check the token before
        // each wait, so it must be set before either wake-up.
        self.cancel.cancel();
        self.synthetic_wake.notify_one();
        self.writer_wake.notify_one();
    }

    /// Nothing left to put on the channel.
    pub(crate) fn flushed(&self) -> bool {
        self.out().is_empty() && !self.writing.load(Ordering::Acquire)
    }

    /// Take one inbound data-channel message through the framer.
    /// Synchronous, so `receive` stays cancel-safe.
    pub(crate) fn frame(&self, incoming: mcp_webrtc_rtc::Result<Option<Incoming>>) -> Framed {
        let message = match incoming {
            Ok(Some(Incoming::Text(bytes))) => {
                bump(&self.counters.bytes_received, bytes.len() as u64);
                self.out().framer.receive_text(bytes).map(Some)
            }
            Ok(Some(Incoming::Binary(bytes))) => {
                bump(&self.counters.bytes_received, bytes.len() as u64);
                let (result, hello) = {
                    let mut out = self.out();
                    let before = out.framer.peer_limits().is_none();
                    let result = out.framer.receive_binary(&bytes, std::time::Instant::now());
                    (result, before && out.framer.peer_limits().is_some())
                };
                // The peer's HELLO may have queued ours, released waiting
                // messages or refused some: the writer has work. Any other
                // frame gives it none, so a large inbound message does not
                // wake it once per frame.
                if hello {
                    self.writer_wake.notify_one();
                }
                result
            }
            Ok(None) => return Framed::End(EndReason::PeerClosed),
            Err(e) => return Framed::End(end_of(e)),
        };
        match message {
            Ok(Some(bytes)) => Framed::Message(bytes),
            Ok(None) => Framed::Nothing,
            Err(e) => {
                self.bad_frame(&format!("bad frame: {e}"));
                Framed::Nothing
            }
        }
    }

    /// Fire the framer's due timers: expired partial messages are counted
    /// and logged, messages that waited for a HELLO go back to their senders.
    pub(crate) fn handle_timeout(&self) {
        let (expired, gave_up) = {
            let mut out = self.out();
            let awaiting = out.framer.awaiting_hello();
            let expired = out.framer.handle_timeout(std::time::Instant::now());
            (expired, awaiting && !out.framer.awaiting_hello())
        };
        if gave_up {
            tracing::warn!(
                after = ?self.out().framer.config().hello_timeout,
                "the peer announced chunked framing but sent no HELLO; large messages will be refused"
            );
        }
        for error in expired {
            bump(&self.counters.partial_messages_expired, 1);
            self.bad_frame(&error.to_string());
        }
        self.writer_wake.notify_one();
    }
}
