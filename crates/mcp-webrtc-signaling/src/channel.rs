//! Adapters that turn a channel the user already has into [`Signaling`].
//!
//! - [`ChannelSignaling`]: any `Sink<SignalMessage>` + `Stream<Item =
//!   SignalMessage>` (for example the two halves of a `futures` or tokio
//!   channel bridged onto an agent-to-agent link).
//! - [`LineChannelSignaling`]: any `Sink<String>` + `Stream<Item = String>`
//!   carrying JSON text in a [`Dialect`] (a WebSocket, a chat, a queue).

use std::fmt::Display;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Sink, SinkExt, Stream, StreamExt};

use crate::{Dialect, Error, Options, Result, SignalMessage, Signaling, StreamState, deadline};

async fn send_with<Si, T>(sink: &mut Si, item: T, timeout: Duration, kind: &str) -> Result<()>
where
    Si: Sink<T> + Unpin,
    Si::Error: Display,
{
    deadline(
        timeout,
        || format!("send of a {kind} message"),
        async move {
            sink.send(item).await.map_err(|e| Error::Channel {
                reason: e.to_string(),
            })
        },
    )
    .await
}

async fn close_with<Si, T>(sink: &mut Si, bye: T, timeout: Duration) -> Result<()>
where
    Si: Sink<T> + Unpin,
    Si::Error: Display,
{
    deadline(timeout, || "close".into(), async move {
        let sent = sink.send(bye).await.map_err(|e| e.to_string());
        let closed = sink.close().await.map_err(|e| e.to_string());
        sent.and(closed).map_err(|reason| Error::Channel { reason })
    })
    .await
}

/// [`Signaling`] over a user's `Sink` and `Stream` of [`SignalMessage`]s.
///
/// The stream ending without a [`SignalMessage::Bye`] is
/// [`Error::PeerClosed`].
#[derive(Debug)]
pub struct ChannelSignaling<Si, St> {
    sink: Si,
    stream: St,
    state: StreamState,
    closed: bool,
    io_timeout: Duration,
}

impl<Si, St> ChannelSignaling<Si, St>
where
    Si: Sink<SignalMessage> + Unpin + Send,
    Si::Error: Display,
    St: Stream<Item = SignalMessage> + Unpin + Send,
{
    /// Signaling that sends into `sink` and receives from `stream`.
    pub fn new(sink: Si, stream: St) -> ChannelSignaling<Si, St> {
        ChannelSignaling {
            sink,
            stream,
            state: StreamState::Open,
            closed: false,
            io_timeout: Options::default().io_timeout,
        }
    }
}

impl<Si, St> Signaling for ChannelSignaling<Si, St>
where
    Si: Sink<SignalMessage> + Unpin + Send,
    Si::Error: Display,
    St: Stream<Item = SignalMessage> + Unpin + Send,
{
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.closed {
                return Err(Error::Closed);
            }
            let kind = message.type_name();
            send_with(&mut self.sink, message, self.io_timeout, kind).await
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        Box::pin(async move {
            if self.state != StreamState::Open || self.closed {
                return Ok(None);
            }
            let read = self.stream.next().await;
            self.state.deliver(read)
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if std::mem::replace(&mut self.closed, true) {
                return Ok(());
            }
            close_with(&mut self.sink, SignalMessage::Bye, self.io_timeout).await
        })
    }
}

/// [`Signaling`] over a user's `Sink` and `Stream` of JSON text, in a
/// [`Dialect`].
#[derive(Debug)]
pub struct LineChannelSignaling<Si, St> {
    sink: Si,
    stream: St,
    dialect: Dialect,
    options: Options,
    state: StreamState,
    closed: bool,
}

impl<Si, St> LineChannelSignaling<Si, St>
where
    Si: Sink<String> + Unpin + Send,
    Si::Error: Display,
    St: Stream<Item = String> + Unpin + Send,
{
    /// Signaling that writes `dialect` JSON into `sink` and reads it from
    /// `stream`, bounded by `options`.
    pub fn new(sink: Si, stream: St, dialect: Dialect, options: Options) -> Self {
        LineChannelSignaling {
            sink,
            stream,
            dialect,
            options,
            state: StreamState::Open,
            closed: false,
        }
    }
}

impl<Si, St> Signaling for LineChannelSignaling<Si, St>
where
    Si: Sink<String> + Unpin + Send,
    Si::Error: Display,
    St: Stream<Item = String> + Unpin + Send,
{
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.closed {
                return Err(Error::Closed);
            }
            let text = self.dialect.encode(&message)?;
            if text.len() > self.options.max_message_size {
                return Err(Error::MessageTooLarge {
                    size: text.len(),
                    limit: self.options.max_message_size,
                });
            }
            send_with(
                &mut self.sink,
                text,
                self.options.io_timeout,
                message.type_name(),
            )
            .await
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        Box::pin(async move {
            if self.state != StreamState::Open || self.closed {
                return Ok(None);
            }
            let read = match self.stream.next().await {
                Some(text) => Some(
                    self.dialect
                        .decode(text.as_bytes(), self.options.max_message_size)?,
                ),
                None => None,
            };
            self.state.deliver(read)
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if std::mem::replace(&mut self.closed, true) {
                return Ok(());
            }
            let bye = self.dialect.encode(&SignalMessage::Bye)?;
            close_with(&mut self.sink, bye, self.options.io_timeout).await
        })
    }
}
