//! Signaling for MCP over WebRTC: how two peers exchange their SDP offer and
//! answer, and their ICE candidates, before the data channel opens.
//!
//! Everything goes through one object-safe, `Send` trait, [`Signaling`], and
//! one message type, [`SignalMessage`]. Backends:
//!
//! | backend | dialect | feature | for |
//! |---|---|---|---|
//! | [`MemorySignaling`] | none (in process) | always | tests, both peers in one process |
//! | [`TcpSignaling`] | aiortc | `tcp` (default) | the Python `mcp-webrtc` package's `TcpSocketSignaling` |
//! | [`UnixSignaling`] | aiortc | `unix` (default) | its `UnixSocketSignaling` |
//! | [`CopyPasteSignaling`] | aiortc | `stdio` (default) | manual set-ups over any chat or ticket |
//! | [`ChannelSignaling`], [`LineChannelSignaling`] | any | always | a link you already have (A2A, a WebSocket, a queue) |
//! | `WebSocketSignaling` | W3C | `websocket` | browsers, simple-peer, the relay |
//! | `relay::RelayServer` | W3C, verbatim | `relay` | a deployable rendezvous server |
//!
//! The two JSON [`Dialect`]s are pure codecs, usable on their own.
//!
//! # Semantics shared by every backend
//!
//! - `recv` returns `Ok(Some(message))` for each message, and `Ok(None)` once
//!   the peer has said bye or closed cleanly. [`SignalMessage::Bye`] is never
//!   returned; it ends the stream.
//! - A peer that goes away without a bye ends the stream with
//!   [`Error::PeerClosed`] (once; `Ok(None)` after that), never a busy loop.
//! - A malformed message gives a per-message error
//!   ([`Error::is_per_message`]); the next `recv` reads on.
//! - Lines and messages are bounded ([`Options::max_message_size`], 1 MiB by
//!   default). Every connect, accept and send has a deadline.
//! - `close` sends a bye (where the dialect has one) and always returns,
//!   within [`Options::io_timeout`].
//! - `recv` is cancel-safe: dropping its future loses no message.
#![forbid(unsafe_code)]

mod channel;
mod dialect;
mod error;
mod lines;
mod memory;
mod message;
mod pairing;
#[cfg(feature = "relay")]
pub mod relay;
#[cfg(any(feature = "relay", feature = "websocket"))]
pub mod relay_protocol;
#[cfg(feature = "stdio")]
mod stdio;
#[cfg(feature = "tcp")]
mod tcp;
#[cfg(all(unix, feature = "unix"))]
mod unix;
#[cfg(feature = "websocket")]
mod websocket;

use std::time::Duration;

use futures::future::BoxFuture;

pub use channel::{ChannelSignaling, LineChannelSignaling};
pub use error::{Error, Result};
pub use lines::LineSignaling;
pub use memory::MemorySignaling;
pub use message::{Dialect, SignalMessage};
pub use pairing::{CodeSide, PairedSignaling, PairingCode, PairingSecret, carries_pairing_code};
#[cfg(feature = "stdio")]
pub use stdio::CopyPasteSignaling;
#[cfg(feature = "tcp")]
pub use tcp::{TcpSignaling, TcpSignalingListener};
#[cfg(all(unix, feature = "unix"))]
pub use unix::{UnixSignaling, UnixSignalingListener};
#[cfg(feature = "websocket")]
pub use websocket::{PendingSession, RelayHost, WebSocketOptions, WebSocketSignaling};

/// A signaling channel to one peer.
///
/// The trait is object safe: `Box<dyn Signaling>` is itself a `Signaling`.
/// See the [crate docs](crate) for the semantics every backend keeps.
pub trait Signaling: Send {
    /// Send one message.
    ///
    /// # Errors
    /// [`Error::Closed`] after `close`; [`Error::Unrepresentable`] for a
    /// message the dialect cannot carry; I/O errors and timeouts.
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>>;

    /// Receive the next message; `Ok(None)` once the peer said bye or closed
    /// cleanly. Cancel-safe.
    ///
    /// # Errors
    /// Per-message decoding errors (read on), [`Error::PeerClosed`] and I/O
    /// errors (the stream has ended).
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>>;

    /// Say bye (where the dialect allows) and close. Always returns, within
    /// the backend's I/O timeout; calling it twice is harmless.
    ///
    /// # Errors
    /// An I/O error while sending the bye; the channel is closed regardless.
    fn close(&mut self) -> BoxFuture<'_, Result<()>>;
}

impl<S: Signaling + ?Sized> Signaling for Box<S> {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        (**self).send(message)
    }
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        (**self).recv()
    }
    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        (**self).close()
    }
}

/// Limits and deadlines shared by the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Largest message (or line) accepted or sent. Default 1 MiB.
    pub max_message_size: usize,
    /// Deadline for one send, and for `close`. Default 10 s.
    pub io_timeout: Duration,
    /// Deadline for connect (with retries) and accept. Default 30 s.
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_message_size: 1024 * 1024,
            io_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl Options {
    /// Set [`Options::max_message_size`].
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: usize) -> Options {
        self.max_message_size = bytes;
        self
    }
    /// Set [`Options::io_timeout`].
    #[must_use]
    pub fn with_io_timeout(mut self, timeout: Duration) -> Options {
        self.io_timeout = timeout;
        self
    }
    /// Set [`Options::connect_timeout`].
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self
    }
}

/// Where a stream is: open, ended by the peer, or closed by us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum StreamState {
    #[default]
    Open,
    /// The peer said bye or closed cleanly: `recv` gives `Ok(None)`.
    Ended,
    /// The peer vanished; the error was reported once.
    Failed,
}

impl StreamState {
    /// What `recv` returns for what was read from the peer: a message
    /// (`None` when its stream ended). A bye ends the stream cleanly; an end
    /// without one is [`Error::PeerClosed`], reported once.
    pub(crate) fn deliver(&mut self, read: Option<SignalMessage>) -> Result<Option<SignalMessage>> {
        match read {
            Some(SignalMessage::Bye) => {
                *self = StreamState::Ended;
                Ok(None)
            }
            Some(message) => Ok(Some(message)),
            None => {
                *self = StreamState::Failed;
                Err(Error::PeerClosed)
            }
        }
    }
}

/// Write all of `bytes` and flush, within `timeout`. On any failure
/// `broken` is set: part of the bytes may be out, so nothing more may be
/// written after them.
pub(crate) async fn write_bounded<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    timeout: Duration,
    operation: impl FnOnce() -> String,
    broken: &mut bool,
) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    if *broken {
        return Err(Error::Closed);
    }
    let result = deadline(timeout, operation, async {
        writer.write_all(bytes).await.map_err(Error::io("write"))?;
        writer.flush().await.map_err(Error::io("flush"))
    })
    .await;
    if result.is_err() {
        *broken = true;
    }
    result
}

/// Run `fut` with a deadline, naming the operation in the timeout error.
pub(crate) async fn deadline<T>(
    after: Duration,
    operation: impl FnOnce() -> String,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            operation: operation(),
            after,
        }),
    }
}

/// Connect with exponential backoff (10 ms doubling to 500 ms) until
/// `timeout` has passed.
#[cfg(any(feature = "tcp", all(unix, feature = "unix")))]
pub(crate) async fn connect_with_retry<T, F, Fut>(
    target: String,
    timeout: Duration,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(10);
    let mut attempts = 0u32;
    loop {
        attempts = attempts.saturating_add(1);
        let left = timeout.saturating_sub(start.elapsed());
        let error = match tokio::time::timeout(left, attempt()).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "attempt timed out".to_owned(),
        };
        let elapsed = start.elapsed();
        if elapsed.saturating_add(delay) >= timeout {
            return Err(Error::ConnectFailed {
                target,
                attempts,
                after: elapsed,
                last_error: error,
            });
        }
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2).min(Duration::from_millis(500));
    }
}
