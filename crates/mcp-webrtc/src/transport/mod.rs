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

mod channel;
mod end;
mod handle;
mod jsonrpc;
mod outbound;
mod receiver;
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
use tokio::time::Instant;
use tracing::Instrument;

pub use channel::{MessageChannel, MessageSender};
pub use end::EndReason;
pub use handle::TransportHandle;
pub(crate) use shared::Settings;
pub use stats::TransportStats;

use crate::error::{Error, Result};
use jsonrpc::{Malformed, cancelled_request, id_value, parse};
use outbound::{Kind, Outbound, SendOutcome};
use receiver::{Decode, Receiver};
pub(crate) use shared::Shared;

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

/// rmcp's typed messages, decoded from each whole message.
pub(crate) struct Typed<R>(PhantomData<fn() -> R>);

impl<R: ServiceRole> Decode for Typed<R> {
    type Item = RxJsonRpcMessage<R>;

    fn decode(bytes: Bytes) -> Result<(Self::Item, Option<serde_json::Value>), Malformed> {
        let message: RxJsonRpcMessage<R> = parse(&bytes)?;
        let answered = match &message {
            JsonRpcMessage::Response(r) => Some(id_value(&r.id)),
            JsonRpcMessage::Error(e) => e.id.as_ref().map(id_value),
            _ => None,
        };
        Ok((message, answered))
    }

    fn synthetic(value: serde_json::Value) -> Option<Self::Item> {
        serde_json::from_value(value).ok()
    }
}

/// Start a session on an open connection: its shared state and writer task.
pub(crate) fn start_shared(
    conn: Connection,
    mut framer: Framer,
    settings: Settings,
    span: tracing::Span,
    session_id: String,
) -> Arc<Shared> {
    // Start the framer's clock: the HELLO timer runs from now.
    let _ = framer.handle_timeout(std::time::Instant::now());
    let out = Outbound::new(framer, settings.max_pending_replies);
    let shared = Arc::new(Shared::new(conn, out, settings, span, session_id));
    let span = shared.span.clone();
    tokio::spawn(writer::write_loop(Arc::clone(&shared)).instrument(span));
    shared
}

/// An MCP transport over a WebRTC data channel, for rmcp.
///
/// Made by [`webrtc_server_transport`](crate::webrtc_server_transport),
/// [`webrtc_client_transport`](crate::webrtc_client_transport) or
/// [`WebRtcTransport::builder`]; hand it to rmcp's `serve`. `R` is
/// [`rmcp::RoleServer`] or [`rmcp::RoleClient`].
///
/// It is a thin typed layer over the same session as [`MessageChannel`]:
/// framing, negotiation, limits and bad-input handling are the channel's;
/// this layer only encodes and decodes rmcp's message types.
pub struct WebRtcTransport<R: ServiceRole> {
    receiver: Receiver<Typed<R>>,
}

impl<R: ServiceRole> std::fmt::Debug for WebRtcTransport<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = &self.receiver.shared;
        f.debug_struct("WebRtcTransport")
            .field("session", &shared.session_id)
            .field("channel", shared.conn.info())
            .field("end", &shared.end_reason())
            .finish_non_exhaustive()
    }
}

impl<R: ServiceRole> WebRtcTransport<R> {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        WebRtcTransport {
            receiver: Receiver::new(shared),
        }
    }

    /// A handle for watching the session (stats, end reason, wire mode)
    /// after the transport has been handed to rmcp.
    #[must_use]
    pub fn handle(&self) -> TransportHandle {
        TransportHandle {
            shared: Arc::clone(&self.receiver.shared),
        }
    }
}

/// Queue one encoded message of `kind`, in call order; the future waits for
/// room in the framer's queue (never for the network).
pub(crate) fn send_encoded(
    shared: &Shared,
    bytes: Bytes,
    kind: Kind,
) -> impl Future<Output = Result<()>> + Send + 'static {
    let outcome = shared.enqueue(bytes, kind);
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

/// Let queued messages go out (within the close timeout), then close the
/// channel and say bye.
pub(crate) async fn close_shared(shared: Arc<Shared>) {
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
    }
    .instrument(span)
    .await;
}

/// End the session when its last user goes: the handle may keep `Shared`
/// (and so the connection) alive, so the connection is closed now.
pub(crate) fn drop_shared(shared: &Arc<Shared>) {
    shared.finish(EndReason::Closed);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let shared = Arc::clone(shared);
        let span = shared.span.clone();
        runtime.spawn(async move { shared.conn.close().await }.instrument(span));
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
        let shared = &self.receiver.shared;
        let _entered = shared.span.enter();
        // Encoded and queued now, so messages go out in the order of the
        // calls, whatever order the futures are polled in.
        let queued = match serde_json::to_vec(&item) {
            Ok(bytes) => {
                let kind = match &item {
                    JsonRpcMessage::Request(r) => Kind::Request(id_value(&r.id)),
                    JsonRpcMessage::Response(r) => Kind::Response(id_value(&r.id)),
                    JsonRpcMessage::Notification(_) => {
                        Kind::Notification(cancelled_request(&bytes))
                    }
                    JsonRpcMessage::Error(_) => Kind::Error,
                };
                Ok(send_encoded(shared, Bytes::from(bytes), kind))
            }
            Err(e) => Err(Error::Encode(e)),
        };
        async move { queued?.await }
    }

    /// Cancel-safe: rmcp races it in `select!`. Reads the data channel
    /// itself (no reader task in between).
    async fn receive(&mut self) -> Option<RxJsonRpcMessage<R>> {
        let span = self.receiver.shared.span.clone();
        self.receiver.next().instrument(span).await
    }

    /// Let queued messages go out (within the close timeout), then close the
    /// channel and say bye: the peer's session ends cleanly.
    async fn close(&mut self) -> Result<()> {
        close_shared(Arc::clone(&self.receiver.shared)).await;
        Ok(())
    }
}

impl<R: ServiceRole> Drop for WebRtcTransport<R> {
    fn drop(&mut self) {
        drop_shared(&self.receiver.shared);
    }
}
