//! The untyped message channel: one JSON-RPC message as bytes in, one out.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tracing::Instrument;

use super::handle::TransportHandle;
use super::jsonrpc::{Class, Malformed, answerable_id, cancelled_request, classify};
use super::outbound::Kind;
use super::receiver::{Decode, Receiver};
use super::shared::Shared;
use super::{close_shared, drop_shared, send_encoded};
use crate::error::{Error, Result};

/// Whole messages handed over as they arrived, once checked to be JSON-RPC.
pub(crate) struct Raw;

impl Decode for Raw {
    type Item = Bytes;

    fn decode(bytes: Bytes) -> Result<(Bytes, Option<Value>), Malformed> {
        match classify(&bytes) {
            Ok(class) => {
                let answered = class.answered();
                Ok((bytes, answered))
            }
            Err(why) => Err(Malformed {
                why,
                answer_to: answerable_id(&bytes),
            }),
        }
    }

    fn synthetic(value: Value) -> Option<Bytes> {
        serde_json::to_vec(&value).ok().map(Bytes::from)
    }
}

/// A JSON-RPC message channel over a WebRTC data channel, untyped: each
/// message goes in and comes out as the bytes of one JSON-RPC 2.0 message,
/// unchanged.
///
/// It is the same session as the rmcp transport ([`WebRtcTransport`] is a
/// typed layer over it): the same framing and negotiation, size limits and
/// "too large for this peer" errors, the same handling of malformed input
/// (logged, counted, a request answered with an error), the same counters
/// and end reasons, and "peer gone" errors made up for requests the peer
/// can no longer answer. It never parses a message into a typed model, so
/// methods, fields and protocol versions nobody here knows pass through as
/// they are: use it to bridge MCP verbatim, or to carry any JSON-RPC
/// protocol.
///
/// Made by [`Builder::message_channel`](crate::Builder::message_channel).
///
/// **Keep a [`receive`](MessageChannel::receive) running**, as rmcp does
/// with its transport: it reads the data channel, and with it the peer's
/// HELLO (until which large messages wait) and the framer's timers. Send
/// from another task with a [`MessageSender`].
///
/// ```no_run
/// # async fn demo(signaling: impl mcp_webrtc::signaling::Signaling + 'static) -> mcp_webrtc::Result<()> {
/// use mcp_webrtc::{Builder, Role};
/// let mut channel = Builder::default().message_channel(Role::Answerer, signaling).await?;
/// let sender = channel.sender();
/// tokio::spawn(async move {
///     let _ = sender.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
/// });
/// while let Some(message) = channel.receive().await {
///     println!("{}", String::from_utf8_lossy(&message));
/// }
/// # Ok(()) }
/// ```
///
/// [`WebRtcTransport`]: crate::WebRtcTransport
pub struct MessageChannel {
    receiver: Receiver<Raw>,
}

/// Sends on a [`MessageChannel`] from another task. Clone it freely; the
/// session ends when the channel itself is closed or dropped.
#[derive(Clone)]
pub struct MessageSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MessageChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = &self.receiver.shared;
        f.debug_struct("MessageChannel")
            .field("session", &shared.session_id)
            .field("end", &shared.end_reason())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MessageSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSender")
            .field("session", &self.shared.session_id)
            .finish_non_exhaustive()
    }
}

/// Queue one message: checked to be a JSON-RPC 2.0 message (what it is
/// decides how a failure is reported), then sent unchanged.
fn send_raw(shared: &Shared, message: Bytes) -> impl Future<Output = Result<()>> + Send + 'static {
    let _entered = shared.span.enter();
    let queued = match classify(&message) {
        Ok(class) => {
            let kind = match class {
                Class::Request(id) => Kind::Request(id),
                Class::Response(id) => Kind::Response(id),
                Class::Notification => Kind::Notification(cancelled_request(&message)),
                Class::Error(_) => Kind::Error,
            };
            Ok(send_encoded(shared, message, kind))
        }
        Err(reason) => Err(Error::InvalidMessage { reason }),
    };
    async move { queued?.await }
}

impl MessageSender {
    /// Send one JSON-RPC message (its UTF-8 JSON bytes), in call order.
    ///
    /// The message is queued when this is called, and the future resolves
    /// once the framer has taken it (it waits only while the outbound queue
    /// is full). Dropping the future does not withdraw the message.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] for bytes that are not one JSON-RPC 2.0
    /// message; [`Error::MessageTooLarge`] for a request or notification
    /// over the peer's limit (a result over it is replaced by an error
    /// response to the peer, and this returns `Ok`); [`Error::PeerGone`] or
    /// [`Error::Closed`] once the session has ended.
    pub fn send(
        &self,
        message: impl Into<Bytes>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        send_raw(&self.shared, message.into())
    }
}

impl MessageChannel {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        MessageChannel {
            receiver: Receiver::new(shared),
        }
    }

    /// A sender for another task.
    #[must_use]
    pub fn sender(&self) -> MessageSender {
        MessageSender {
            shared: Arc::clone(&self.receiver.shared),
        }
    }

    /// Send one message; see [`MessageSender::send`].
    ///
    /// # Errors
    /// As [`MessageSender::send`].
    pub fn send(
        &self,
        message: impl Into<Bytes>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        send_raw(&self.receiver.shared, message.into())
    }

    /// The next message from the peer, as it arrived: the bytes of one
    /// JSON-RPC 2.0 message. `None` once the session has ended (after a
    /// "peer gone" error for each request the peer left unanswered, if it
    /// went away); [`MessageChannel::handle`] says why it ended.
    ///
    /// Cancel-safe. While it is not called nothing is read, so the peer's
    /// sends wait: a slow reader slows the peer, not our memory.
    pub async fn receive(&mut self) -> Option<Bytes> {
        let span = self.receiver.shared.span.clone();
        self.receiver.next().instrument(span).await
    }

    /// Let queued messages go out (within the close timeout), then close the
    /// data channel and say bye: the peer's session ends cleanly.
    pub async fn close(&mut self) {
        close_shared(Arc::clone(&self.receiver.shared)).await;
    }

    /// A handle for watching the session: stats, end reason, wire mode.
    #[must_use]
    pub fn handle(&self) -> TransportHandle {
        TransportHandle {
            shared: Arc::clone(&self.receiver.shared),
        }
    }
}

impl Drop for MessageChannel {
    fn drop(&mut self) {
        drop_shared(&self.receiver.shared);
    }
}
