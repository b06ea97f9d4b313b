//! WebSocket signaling in the W3C dialect (browsers, simple-peer, the relay).
//!
//! `ws://` and `wss://` (rustls with the webpki roots, or a
//! `rustls::ClientConfig` of your own for a private CA). A bearer token goes in
//! the `Authorization` header.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::{Dialect, Error, Options, Result, SignalMessage, Signaling, StreamState, deadline};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Options of [`WebSocketSignaling::connect`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct WebSocketOptions {
    /// Bearer token sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Limits and deadlines.
    pub options: Options,
    /// TLS configuration for `wss://` (default: rustls with webpki roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for WebSocketOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("options", &self.options)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl WebSocketOptions {
    /// Set the bearer token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Set the limits and deadlines.
    #[must_use]
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }
    /// Use this TLS configuration for `wss://`.
    #[must_use]
    pub fn with_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }
}

fn ws_error(e: &tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let status = response.status();
            // A relay refuses before the upgrade with an HTTP status and the
            // reason as the body; report it as the close code it stands for.
            if status.is_client_error() || status.is_server_error() {
                let reason = body.trim();
                Error::Relay {
                    code: crate::relay_protocol::close_code_of_http(status.as_u16()),
                    reason: if reason.is_empty() {
                        format!("HTTP {status}")
                    } else {
                        reason.to_owned()
                    },
                }
            } else {
                Error::WebSocket {
                    reason: format!("HTTP {status} {}", body.trim()),
                }
            }
        }
        tungstenite::Error::Io(io)
            if crate::lines::is_gone(&Error::Io {
                operation: "websocket",
                source: std::io::Error::from(io.kind()),
            }) =>
        {
            Error::PeerClosed
        }
        other => Error::WebSocket {
            reason: other.to_string(),
        },
    }
}

pub(crate) async fn open(url: &str, options: &WebSocketOptions) -> Result<Ws> {
    let mut request = url.into_client_request().map_err(|e| ws_error(&e))?;
    if let Some(token) = &options.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Error::InvalidConfig {
                reason: "token contains characters not allowed in an HTTP header".into(),
            }
        })?;
        request.headers_mut().insert("authorization", value);
    }
    // Room to read an over-limit message and refuse it as one message;
    // beyond this tungstenite drops the connection.
    let max = options
        .options
        .max_message_size
        .saturating_mul(4)
        .max(1 << 20);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let connector = options.tls.clone().map(Connector::Rustls);
    let target = url.split('?').next().unwrap_or_default().to_owned();
    let (ws, _) = deadline(
        options.options.connect_timeout,
        || format!("websocket connect to {target}"),
        async move {
            tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector)
                .await
                .map_err(|e| ws_error(&e))
        },
    )
    .await?;
    Ok(ws)
}

/// W3C-dialect signaling over one WebSocket.
pub struct WebSocketSignaling {
    ws: Ws,
    options: Options,
    state: StreamState,
    closed: bool,
}

impl std::fmt::Debug for WebSocketSignaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketSignaling")
            .field("state", &self.state)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl WebSocketSignaling {
    /// Connect to `url` (`ws://…` or `wss://…`), within
    /// [`Options::connect_timeout`].
    ///
    /// # Errors
    /// [`Error::Relay`] for an upgrade the relay refused (with the close code
    /// its HTTP status stands for, see
    /// [`relay_protocol`](crate::relay_protocol)), [`Error::WebSocket`] for
    /// another refused upgrade,
    /// [`Error::Timeout`], or a TLS or network error.
    pub async fn connect(url: &str, options: WebSocketOptions) -> Result<WebSocketSignaling> {
        let ws = open(url, &options).await?;
        Ok(WebSocketSignaling {
            ws,
            options: options.options,
            state: StreamState::Open,
            closed: false,
        })
    }

    async fn send_text(&mut self, text: String, kind: &str) -> Result<()> {
        if text.len() > self.options.max_message_size {
            return Err(Error::MessageTooLarge {
                size: text.len(),
                limit: self.options.max_message_size,
            });
        }
        let ws = &mut self.ws;
        deadline(
            self.options.io_timeout,
            || format!("send of a {kind} message"),
            async move { ws.send(Message::text(text)).await.map_err(|e| ws_error(&e)) },
        )
        .await
    }

    async fn recv_inner(&mut self) -> Result<Option<SignalMessage>> {
        loop {
            if self.state != StreamState::Open || self.closed {
                return Ok(None);
            }
            // WebSocketStream's poll_next keeps partial frames in the stream,
            // so dropping this future loses nothing.
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let message =
                        Dialect::W3c.decode(text.as_bytes(), self.options.max_message_size)?;
                    return self.state.deliver(Some(message));
                }
                Some(Ok(Message::Binary(data))) => {
                    return Err(Error::WrongFieldType {
                        dialect: Dialect::W3c,
                        field: "(frame)",
                        expected: "a text frame",
                        found: if data.is_empty() {
                            "an empty binary frame"
                        } else {
                            "a binary frame"
                        },
                    });
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((CloseCode::Normal, String::new()), |f| {
                        (f.code, f.reason.as_str().to_owned())
                    });
                    return if code == CloseCode::Normal {
                        self.state = StreamState::Ended;
                        Ok(None)
                    } else {
                        self.state = StreamState::Failed;
                        Err(Error::Relay {
                            code: code.into(),
                            reason,
                        })
                    };
                }
                Some(Ok(_)) => {} // ping, pong: handled by tungstenite
                Some(Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ),
                ))
                | None => {
                    self.state = StreamState::Failed;
                    return Err(Error::PeerClosed);
                }
                Some(Err(tungstenite::Error::Capacity(e))) => {
                    self.state = StreamState::Failed;
                    return Err(Error::WebSocket {
                        reason: format!("message over the limit: {e}"),
                    });
                }
                Some(Err(e)) => {
                    self.state = StreamState::Failed;
                    return Err(ws_error(&e));
                }
            }
        }
    }
}

impl WebSocketSignaling {
    /// Turn the session down before it starts: the peer's set-up fails with
    /// [`Error::PeerRefused`] and `reason` (a server at its session limit,
    /// say). Then close.
    ///
    /// # Errors
    /// An I/O error or timeout while sending; the socket is closed
    /// regardless.
    pub async fn refuse(mut self, reason: &str) -> Result<()> {
        let text = serde_json::json!({"type": "refused", "reason": reason}).to_string();
        let sent = self.send_text(text, "refused").await;
        self.closed = true;
        let _ = deadline(self.options.io_timeout, || "close".into(), async {
            let _ = self.ws.close(None).await;
            Ok(())
        })
        .await;
        sent
    }
}

impl Signaling for WebSocketSignaling {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.closed {
                return Err(Error::Closed);
            }
            let text = Dialect::W3c.encode(&message)?;
            self.send_text(text, message.type_name()).await
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        Box::pin(self.recv_inner())
    }

    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if std::mem::replace(&mut self.closed, true) {
                return Ok(());
            }
            // One deadline for the bye and the close handshake together.
            let timeout = self.options.io_timeout;
            let result = deadline(timeout, || "close".into(), async {
                let bye = if self.state == StreamState::Open {
                    let text = Dialect::W3c.encode(&SignalMessage::Bye)?;
                    self.send_text(text, "bye").await
                } else {
                    Ok(())
                };
                let _ = self.ws.close(None).await;
                bye
            })
            .await;
            match result {
                Err(e) if !crate::lines::is_gone(&e) => Err(e),
                _ => Ok(()),
            }
        })
    }
}

/// A server's registration at a relay: each client that connects to the
/// server's host name gets its own room, announced here.
///
/// ```no_run
/// # async fn demo() -> Result<(), mcp_webrtc_signaling::Error> {
/// use mcp_webrtc_signaling::{RelayHost, WebSocketOptions};
/// let options = WebSocketOptions::default().with_token("secret");
/// let mut host = RelayHost::register("ws://127.0.0.1:8787", "my-desktop", options).await?;
/// loop {
///     let signaling = host.accept().await?; // one per client
///     tokio::spawn(async move { /* run one MCP session over `signaling` */ drop(signaling) });
/// }
/// # }
/// ```
pub struct RelayHost {
    control: Ws,
    base: String,
    options: WebSocketOptions,
    /// A session announced but not joined yet (kept if `accept` is
    /// cancelled while joining).
    pending_room: Option<String>,
}

impl std::fmt::Debug for RelayHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHost")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RelayHost {
    /// Register `host` at the relay at `base` (`ws://relay:8787`).
    ///
    /// # Errors
    /// As [`WebSocketSignaling::connect`]; the relay refuses a host name
    /// that is taken.
    pub async fn register(base: &str, host: &str, options: WebSocketOptions) -> Result<RelayHost> {
        let base = base.trim_end_matches('/').to_owned();
        let control = open(&crate::relay_protocol::host_url(&base, host), &options).await?;
        Ok(RelayHost {
            control,
            base,
            options,
            pending_room: None,
        })
    }

    /// The URL a client connects to, to reach `host` at the relay at `base`.
    #[must_use]
    pub fn client_url(base: &str, host: &str) -> String {
        crate::relay_protocol::client_url(base, host)
    }

    /// Wait for the next client and join its room. Cancel-safe: a session
    /// announced while a cancelled call was joining it is joined by the next
    /// call.
    ///
    /// The relay pings the registration and closes it if nothing answers, and
    /// pings are answered only while `accept` (or `next_session`) runs: keep
    /// a task in it (spawn each session) rather than serving clients one at
    /// a time.
    ///
    /// `accept` joins each room before it returns, one client at a time. The
    /// relay holds a bounded number of announcements per host (1,024) and
    /// refuses clients beyond them ("host not answering"), so servers that
    /// take bursts use [`RelayHost::next_session`] and join on each
    /// session's own task.
    ///
    /// # Errors
    /// [`Error::Relay`] if the relay closes the registration, or the error of
    /// joining the room.
    pub async fn accept(&mut self) -> Result<WebSocketSignaling> {
        if self.pending_room.is_none() {
            let room = self.next_room().await?;
            self.pending_room = Some(room);
        }
        let Some(room) = self.pending_room.clone() else {
            return Err(Error::PeerClosed);
        };
        let url = crate::relay_protocol::room_url(&self.base, &room);
        let joined = WebSocketSignaling::connect(&url, self.options.clone()).await;
        self.pending_room = None;
        joined
    }

    /// Wait for the next client, and return at once with its session, to
    /// be joined ([`PendingSession::join`]) on a task of its own: the
    /// registration goes back to reading announcements straight away, so a
    /// burst of clients is taken as fast as they come. Cancel-safe.
    ///
    /// # Errors
    /// [`Error::Relay`] if the relay closes the registration; a malformed
    /// announcement.
    pub async fn next_session(&mut self) -> Result<PendingSession> {
        let room = match self.pending_room.take() {
            Some(room) => room,
            None => self.next_room().await?,
        };
        Ok(PendingSession {
            url: crate::relay_protocol::room_url(&self.base, &room),
            options: self.options.clone(),
        })
    }

    /// The next room the relay announces. Cancel-safe: it only reads the
    /// registration's stream.
    async fn next_room(&mut self) -> Result<String> {
        // Bounded by the registration: each pass reads one message of it.
        loop {
            match self.control.next().await {
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<crate::relay_protocol::RelayMessage>(&text) {
                        Ok(crate::relay_protocol::RelayMessage::Session { room }) => {
                            return Ok(room);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            return Err(Error::InvalidJson {
                                dialect: Dialect::W3c,
                                reason: e.to_string(),
                            });
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((1000, String::new()), |f| {
                        (f.code.into(), f.reason.as_str().to_owned())
                    });
                    return Err(Error::Relay { code, reason });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ws_error(&e)),
                None => return Err(Error::PeerClosed),
            }
        }
    }
}

/// A client the relay announced to a [`RelayHost`], not joined yet.
#[derive(Clone)]
pub struct PendingSession {
    url: String,
    options: WebSocketOptions,
}

impl std::fmt::Debug for PendingSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The room is the client's session id: not printed, like the
        // token in the options.
        f.debug_struct("PendingSession").finish_non_exhaustive()
    }
}

impl PendingSession {
    /// Join the client's room: the signaling of this one session.
    ///
    /// # Errors
    /// As [`WebSocketSignaling::connect`].
    pub async fn join(self) -> Result<WebSocketSignaling> {
        WebSocketSignaling::connect(&self.url, self.options).await
    }
}
