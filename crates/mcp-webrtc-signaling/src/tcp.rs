//! aiortc-dialect signaling over TCP, interoperable with aiortc's
//! `TcpSocketSignaling`.
//!
//! aiortc picks roles lazily (the first side to send listens, the first to
//! receive connects, once, without retry). Here roles are explicit: the
//! offerer (the MCP server, by default) listens and the answerer connects,
//! which is what aiortc ends up doing with `mcp-webrtc`. Our `connect` retries
//! with backoff until its deadline, so the two sides can start in any order.

use std::fmt;
use std::net::SocketAddr;

use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::{
    Dialect, Error, LineSignaling, Options, Result, SignalMessage, Signaling, connect_with_retry,
    deadline,
};

/// A bound TCP port waiting for its one peer. See [`TcpSignaling::bind`].
#[derive(Debug)]
pub struct TcpSignalingListener {
    listener: TcpListener,
    options: Options,
}

impl TcpSignalingListener {
    /// The address we listen on (useful after binding port 0).
    ///
    /// # Errors
    /// The socket's error, if any.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(Error::io("local_addr"))
    }

    /// Accept one peer, within [`Options::connect_timeout`]. The port is
    /// closed once the peer is accepted.
    ///
    /// # Errors
    /// [`Error::Timeout`] if no peer arrives in time.
    pub async fn accept(self) -> Result<TcpSignaling> {
        let addr = self.listener.local_addr().ok();
        let listener = &self.listener;
        let (stream, peer) = deadline(
            self.options.connect_timeout,
            || format!("accept on {}", display(addr)),
            async move { listener.accept().await.map_err(Error::io("accept")) },
        )
        .await?;
        tracing::debug!(%peer, "tcp signaling: peer connected");
        Ok(TcpSignaling::from_stream(stream, self.options))
    }
}

fn display(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "?".to_owned(), |a| a.to_string())
}

/// aiortc-dialect signaling over one TCP connection.
#[derive(Debug)]
pub struct TcpSignaling {
    inner: LineSignaling<TcpStream>,
    peer: Option<SocketAddr>,
}

impl TcpSignaling {
    /// Bind `addr` and return a listener for one peer.
    ///
    /// # Errors
    /// The bind error.
    pub async fn bind(addr: impl ToSocketAddrs, options: Options) -> Result<TcpSignalingListener> {
        let listener = TcpListener::bind(addr).await.map_err(Error::io("bind"))?;
        Ok(TcpSignalingListener { listener, options })
    }

    /// Bind `addr` and accept one peer (the offerer's default role).
    ///
    /// # Errors
    /// The bind error, or [`Error::Timeout`] if no peer arrives within
    /// [`Options::connect_timeout`].
    pub async fn listen(addr: impl ToSocketAddrs) -> Result<TcpSignaling> {
        TcpSignaling::bind(addr, Options::default())
            .await?
            .accept()
            .await
    }

    /// Connect to `addr` (the answerer's default role), retrying with
    /// backoff until [`Options::connect_timeout`] has passed.
    ///
    /// # Errors
    /// [`Error::ConnectFailed`] naming the target, the attempts and the last
    /// error.
    pub async fn connect<A>(addr: A, options: Options) -> Result<TcpSignaling>
    where
        A: ToSocketAddrs + fmt::Display + Clone + Send,
    {
        let target = addr.to_string();
        let stream = connect_with_retry(target, options.connect_timeout, || {
            TcpStream::connect(addr.clone())
        })
        .await?;
        Ok(TcpSignaling::from_stream(stream, options))
    }

    fn from_stream(stream: TcpStream, options: Options) -> TcpSignaling {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok();
        TcpSignaling {
            inner: LineSignaling::new(stream, Dialect::Aiortc, options),
            peer,
        }
    }

    /// The peer's address.
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}

impl Signaling for TcpSignaling {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        self.inner.send(message)
    }
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        self.inner.recv()
    }
    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        self.inner.close()
    }
}
