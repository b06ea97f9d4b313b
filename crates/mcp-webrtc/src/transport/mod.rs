//! The rmcp transport: JSON-RPC messages over one data channel.
//!
//! A background writer task ([`writer`]) and `receive` share the
//! [`Connection`](mcp_webrtc_rtc::Connection) and one framer ([`shared`]):
//! - the **writer** moves messages that [`Transport::send`] queued
//!   ([`outbound`]) into the framer, in call order, and puts the framer's
//!   output on the channel, one frame at a time, under the channel's
//!   backpressure;
//! - [`Transport::receive`] reads the data channel itself, feeds each
//!   message to the framer and parses whole ones: when rmcp is busy nothing
//!   is read, and the peer's sends wait (so a slow consumer slows the peer,
//!   not our memory). It also drives the framer's timers.
//!
//! Bad input never ends the session: a message that is not JSON, not
//! JSON-RPC, not MCP, or a bad frame, is logged, counted, and (for a request
//! whose id we can read) answered with a JSON-RPC error. Those replies are
//! bounded: while [`Settings::max_pending_replies`] wait to go out, nothing
//! more is read.

mod end;
mod handle;
mod jsonrpc;
mod outbound;
mod shared;
mod stats;
mod writer;

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mcp_webrtc_core::Framer;
use mcp_webrtc_rtc::Connection;
use rmcp::model::JsonRpcMessage;
use rmcp::service::{RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

pub use end::EndReason;
pub use handle::TransportHandle;
pub(crate) use shared::Settings;
pub use stats::TransportStats;

use crate::error::{Error, Result};
use jsonrpc::{Malformed, cancelled_request, id_value, parse};
use outbound::{Kind, Outbound, SendOutcome};
use shared::{Framed, Shared};
use stats::bump;

/// Sessions started in this process, for their short ids.
static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// A short id for a new session, unique in this process: a counter and a
/// few random bits (so that two processes' logs rarely share one).
pub(crate) fn new_session_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let n = SESSIONS.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    format!("{n}-{:04x}", h.finish() & 0xffff)
}

/// A message parsed off the async worker: its size, and what it was.
type Parse<R> = JoinHandle<(usize, Result<RxJsonRpcMessage<R>, Malformed>)>;

/// An MCP transport over a WebRTC data channel, for rmcp.
///
/// Made by [`webrtc_server_transport`](crate::webrtc_server_transport),
/// [`webrtc_client_transport`](crate::webrtc_client_transport) or
/// [`WebRtcTransport::builder`]; hand it to rmcp's `serve`. `R` is
/// [`rmcp::RoleServer`] or [`rmcp::RoleClient`].
pub struct WebRtcTransport<R: ServiceRole> {
    shared: Arc<Shared>,
    /// The session has ended: hand over made-up errors, then `None`.
    done: bool,
    /// A large message being parsed on a blocking thread. Kept here, so
    /// that a cancelled `receive` finds it again.
    parsing: Option<Parse<R>>,
    _role: PhantomData<fn() -> R>,
}

impl<R: ServiceRole> std::fmt::Debug for WebRtcTransport<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcTransport")
            .field("session", &self.shared.session_id)
            .field("channel", self.shared.conn.info())
            .field("end", &self.shared.end_reason())
            .finish_non_exhaustive()
    }
}

impl<R: ServiceRole> WebRtcTransport<R> {
    pub(crate) fn start(
        conn: Connection,
        mut framer: Framer,
        settings: Settings,
        span: tracing::Span,
        session_id: String,
    ) -> Self {
        // Start the framer's clock: the HELLO timer runs from now.
        let _ = framer.handle_timeout(std::time::Instant::now());
        let out = Outbound::new(framer, settings.max_pending_replies);
        let shared = Arc::new(Shared::new(conn, out, settings, span, session_id));
        let span = shared.span.clone();
        tokio::spawn(writer::write_loop(Arc::clone(&shared)).instrument(span));
        WebRtcTransport {
            shared,
            done: false,
            parsing: None,
            _role: PhantomData,
        }
    }

    /// A handle for watching the session (stats, end reason, wire mode)
    /// after the transport has been handed to rmcp.
    #[must_use]
    pub fn handle(&self) -> TransportHandle {
        TransportHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    fn pop_synthetic(&self) -> Option<RxJsonRpcMessage<R>> {
        // Bounded by the queue's length; every entry is one we built.
        while let Some(value) = self.shared.pop_synthetic() {
            match serde_json::from_value(value) {
                Ok(message) => return Some(message),
                Err(e) => tracing::error!(error = %e, "a made-up error response did not parse"),
            }
        }
        None
    }

    /// A parsed message goes to rmcp; one that did not parse is dealt with
    /// as malformed (what it was was worked out with the parse).
    fn accept(
        &self,
        size: usize,
        parsed: Result<RxJsonRpcMessage<R>, Malformed>,
    ) -> Option<RxJsonRpcMessage<R>> {
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(bad) => {
                self.shared.malformed(size, &bad);
                return None;
            }
        };
        bump(&self.shared.counters.messages_received, 1);
        let answered = match &parsed {
            JsonRpcMessage::Response(r) => Some(&r.id),
            JsonRpcMessage::Error(e) => e.id.as_ref(),
            _ => None,
        };
        if let Some(id) = answered {
            self.shared.out().answered(&id_value(id));
        }
        Some(parsed)
    }

    /// The body of `receive`, inside the session's span.
    async fn next(&mut self) -> Option<RxJsonRpcMessage<R>> {
        // Bounded: each pass returns, marks the session done (once), or
        // waits for the channel, a timer or a wake-up.
        loop {
            if let Some(parse) = &mut self.parsing {
                // Cancel-safe: a dropped `receive` leaves the handle here.
                let joined = parse.await;
                self.parsing = None;
                match joined {
                    Ok((size, parsed)) => {
                        if let Some(message) = self.accept(size, parsed) {
                            return Some(message);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "parsing a message failed"),
                }
                continue;
            }
            if let Some(message) = self.pop_synthetic() {
                return Some(message);
            }
            if self.done {
                return None;
            }
            let shared = Arc::clone(&self.shared);
            // While replies back up, nothing is read, and the framer's timers
            // wait too (frames that would keep a message alive sit unread).
            let (backed_up, timer) = {
                let out = shared.out();
                let full = out.replies_full();
                let timer = if full {
                    None
                } else {
                    out.framer.poll_timeout()
                };
                (full, timer.map(Instant::from_std))
            };
            // A timer that is due fires before the next read, so a peer that
            // keeps sending cannot starve it.
            if timer.is_some_and(|t| t <= Instant::now()) {
                shared.handle_timeout();
                continue;
            }
            let incoming = tokio::select! {
                // Frames already waiting are read before a timer fires.
                biased;
                () = shared.cancel.cancelled() => {
                    // Ended elsewhere (a failed send, or closed).
                    shared.finish(EndReason::Closed);
                    self.done = true;
                    continue;
                }
                incoming = shared.conn.recv(), if !backed_up => incoming,
                () = shared.reply_room.notified(), if backed_up => continue,
                () = shared.synthetic_wake.notified() => continue,
                () = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    shared.handle_timeout();
                    continue;
                }
            };
            match shared.frame(incoming) {
                Framed::Message(bytes) if bytes.len() >= shared.settings.parse_off_thread => {
                    // A large message would hold this worker for
                    // milliseconds: parse it (and, if it is malformed, work
                    // out why) on a blocking thread.
                    self.parsing = Some(tokio::task::spawn_blocking(move || {
                        (bytes.len(), parse(&bytes))
                    }));
                }
                Framed::Message(bytes) => {
                    if let Some(message) = self.accept(bytes.len(), parse(&bytes)) {
                        return Some(message);
                    }
                }
                Framed::Nothing => {}
                Framed::End(reason) => {
                    shared.finish(reason);
                    self.done = true;
                }
            }
        }
    }
}

impl<R: ServiceRole> Transport<R> for WebRtcTransport<R> {
    type Error = Error;

    fn name() -> std::borrow::Cow<'static, str> {
        "WebRtcTransport".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<R>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let _entered = self.shared.span.enter();
        // Encoded and queued now, so messages go out in the order of the
        // calls, whatever order the futures are polled in.
        let outcome = match serde_json::to_vec(&item) {
            Ok(bytes) => {
                let kind = match &item {
                    JsonRpcMessage::Request(r) => Kind::Request(id_value(&r.id)),
                    JsonRpcMessage::Response(r) => Kind::Response(id_value(&r.id)),
                    JsonRpcMessage::Notification(_) => {
                        Kind::Notification(cancelled_request(&bytes))
                    }
                    JsonRpcMessage::Error(_) => Kind::Error,
                };
                self.shared.enqueue(Bytes::from(bytes), kind)
            }
            Err(e) => SendOutcome::Ready(Err(Error::Encode(e))),
        };
        async move {
            match outcome {
                SendOutcome::Ready(result) => result,
                SendOutcome::Wait(done) => done.await.unwrap_or_else(|_| {
                    Err(Error::Closed {
                        reason: "the transport was dropped".into(),
                    })
                }),
            }
        }
    }

    /// Cancel-safe: rmcp races it in `select!`. Reads the data channel
    /// itself (no reader task in between): its awaits are the channel's own
    /// cancel-safe `recv`, timers, notifications, and a parse whose handle
    /// it keeps; what follows each is synchronous.
    async fn receive(&mut self) -> Option<RxJsonRpcMessage<R>> {
        let span = self.shared.span.clone();
        self.next().instrument(span).await
    }

    /// Let queued messages go out (within the close timeout), then close the
    /// channel and say bye: the peer's session ends cleanly.
    async fn close(&mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let span = shared.span.clone();
        async move {
            let timeout = shared.settings.close_timeout;
            let deadline = Instant::now()
                .checked_add(timeout)
                .unwrap_or_else(Instant::now);
            // Bounded by the deadline.
            while shared.end_reason().is_none() && !shared.flushed() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            shared.finish(EndReason::Closed);
            // What is left of the close timeout bounds the channel's drain.
            let left = deadline.saturating_duration_since(Instant::now());
            shared.conn.close_within(left).await;
            Ok(())
        }
        .instrument(span)
        .await
    }
}

impl<R: ServiceRole> Drop for WebRtcTransport<R> {
    fn drop(&mut self) {
        if let Some(parse) = self.parsing.take() {
            parse.abort();
        }
        self.shared.finish(EndReason::Closed);
        // The handle may keep `Shared` (and so the connection) alive: close
        // the connection now rather than when the last handle goes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(&self.shared);
            let span = shared.span.clone();
            runtime.spawn(async move { shared.conn.close().await }.instrument(span));
        }
    }
}
