//! A deployable WebSocket signaling relay, built to face the open internet.
//!
//! Two peers that cannot reach each other directly meet in a **room** and the
//! relay forwards each text message from one to the other, verbatim. It never
//! parses or logs the SDP it carries. The paths, close codes and the relay's
//! own messages are in [`relay_protocol`](crate::relay_protocol):
//! - `/v1/room/<room>`: join a room; at most two peers.
//! - `/v1/host/<host>`: a server registers a host name and receives
//!   `{"type":"session","room":"<host>/<id>"}` for each client, then joins
//!   that room. The name stays bound to the registering token.
//! - `/v1/host/<host>/connect`: a client of that host; it is put in a fresh
//!   room `<host>/<id>` of its own, which only the host's token may join.
//!
//! What it holds against:
//! - **Before the upgrade**: a connection that does not finish its WebSocket
//!   handshake within [`RelayConfig::handshake_timeout`] (2 s) is dropped; a
//!   missing or wrong token, an unknown path, a bad name or a throttled host
//!   is answered with an HTTP error and no upgrade. Tokens are compared as
//!   SHA-256 digests in constant time. Connections are capped in all and
//!   per source address.
//! - **Memory**: messages and bytes held for absent peers are bounded per
//!   room and in all; each room has a message and a byte budget (refused and
//!   binary frames count); each token a number of rooms.
//! - **Fairness**: forwarding never waits for the other peer; a peer that
//!   does not read makes its partner's messages fail with a notice, and a
//!   peer that leaves is reported to its partner whatever its queue holds.
//!
//! - `GET /healthz` answers `ok`, and `GET /metrics` gives the counters of
//!   [`RelayStats`] in the Prometheus text format (no names, tokens or
//!   addresses), without a token.
//!
//! It does not: terminate TLS (put it behind a proxy for `wss://`), keep
//! anything across restarts, or tell apart two holders of the same token.

mod auth;
mod config;
mod hosts;
mod http;
mod peer;
mod rooms;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::SinkExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub use config::RelayConfig;
pub use http::{HEALTHZ, METRICS};

use crate::relay_protocol::{Endpoint, RelayMessage};
use crate::{Error, Result};
use auth::{PerIp, TokenId, Tokens};
use hosts::{Hosts, Refused};
use rooms::{Joiner, Rooms};

/// Counters of a running relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RelayStats {
    /// Rooms open now.
    pub rooms: usize,
    /// Host names registered now.
    pub hosts: usize,
    /// WebSocket connections open now (rooms, hosts, handshakes).
    pub connections: usize,
    /// Bytes held now for peers: those that have not joined their room, and
    /// those that have not read what was forwarded to them yet.
    pub pending_bytes: usize,
    /// Messages forwarded since start.
    pub forwarded: u64,
    /// Connections or messages refused since start.
    pub refused: u64,
}

pub(crate) struct Shared {
    config: RelayConfig,
    tokens: Tokens,
    rooms: Mutex<Rooms>,
    hosts: Mutex<Hosts>,
    per_ip: Arc<PerIp>,
    next_id: AtomicU64,
    connections: AtomicUsize,
    /// Bytes queued for peers and not yet written to their sockets.
    queued_bytes: Arc<AtomicUsize>,
    forwarded: AtomicU64,
    refused: AtomicU64,
}

impl Shared {
    fn rooms(&self) -> MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn hosts(&self) -> MutexGuard<'_, Hosts> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
    fn stats(&self) -> RelayStats {
        let (rooms, pending_bytes) = {
            let rooms = self.rooms();
            (rooms.len(), rooms.pending_bytes())
        };
        RelayStats {
            rooms,
            hosts: self.hosts().registered(),
            connections: self.connections.load(Ordering::Relaxed),
            pending_bytes: pending_bytes.saturating_add(self.queued_bytes.load(Ordering::Relaxed)),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// A running relay. Dropping it (or [`RelayServer::shutdown`]) stops it.
pub struct RelayServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RelayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RelayServer {
    /// Bind `addr` and start serving.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (see [`RelayConfig::validate`]); the bind
    /// error.
    pub async fn bind(addr: impl tokio::net::ToSocketAddrs, config: RelayConfig) -> Result<Self> {
        config.validate()?;
        let listener = TcpListener::bind(addr).await.map_err(Error::io("bind"))?;
        let addr = listener.local_addr().map_err(Error::io("local_addr"))?;
        let shared = Arc::new(Shared {
            tokens: Tokens::new(&config.tokens, config.allow_anonymous),
            config,
            rooms: Mutex::default(),
            hosts: Mutex::default(),
            per_ip: Arc::default(),
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            queued_bytes: Arc::default(),
            forwarded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), stopped));
        tracing::info!(%addr, "signaling relay listening");
        Ok(RelayServer {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    /// The address the relay listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `ws://` base URL of this relay.
    #[must_use]
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Current counters.
    #[must_use]
    pub fn stats(&self) -> RelayStats {
        self.shared.stats()
    }

    /// Stop accepting, close every connection (1001), and wait for them
    /// (at most about 5 s).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(6), task).await;
        }
    }
}

impl Drop for RelayServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    // Bounded: each pass accepts or reaps one connection, or stops.
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            // Reap finished connection tasks so the set stays small.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if shared.connections.load(Ordering::Relaxed) >= shared.config.max_connections {
                        shared.refuse();
                        tracing::warn!("relay: connection limit reached, refusing");
                        drop(stream);
                        continue;
                    }
                    let Some(slot) = shared.per_ip.take(peer.ip(), shared.config.max_connections_per_ip) else {
                        shared.refuse();
                        tracing::debug!(%peer, "relay: too many connections from this address");
                        drop(stream);
                        continue;
                    };
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::clone(&shared);
                    let stopped = stopped.clone();
                    tasks.spawn(async move {
                        connection(stream, peer, &shared, stopped).await;
                        shared.connections.fetch_sub(1, Ordering::Relaxed);
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    // Every connection task sees `stopped` and closes its socket with 1001;
    // give them a moment, then stop what is left.
    let drained = tokio::time::timeout(Duration::from_secs(4), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    tracing::info!("signaling relay stopped");
}

type Socket = WebSocketStream<TcpStream>;

async fn close(ws: &mut Socket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
}

/// How long the relay waits to hand one message to a peer's socket before
/// giving up on that peer.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Send with a deadline: a peer that stops reading is dropped, not waited on.
async fn send_ws(ws: &mut Socket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, ws.send(message)).await,
        Ok(Ok(()))
    )
}

/// What the upgrade request was admitted to.
enum Admitted {
    Room(String, TokenId),
    Host(String, TokenId),
    Client {
        room: String,
        token: TokenId,
        control: tokio::sync::mpsc::Sender<String>,
        host_owner: TokenId,
    },
}

/// An HTTP refusal: the status, and the reason as the body.
type Refusal = (StatusCode, &'static str);

fn http_refusal((status, reason): Refusal) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

/// Decide on an upgrade request before upgrading: the token, the path and
/// name, and for a host's client, the host and its rate.
fn admit(shared: &Shared, request: &Request) -> Result<Admitted, Refusal> {
    let Some(token) = shared.tokens.check(auth::token_of(request).as_deref()) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "unauthorized: missing or wrong token",
        ));
    };
    let Some(endpoint) = Endpoint::parse(request.uri().path()) else {
        return Err((StatusCode::NOT_FOUND, "unknown path"));
    };
    if !endpoint.valid() {
        let what = match endpoint {
            Endpoint::Room(_) => "bad room name",
            Endpoint::Host(_) | Endpoint::Connect(_) => "bad host name",
        };
        return Err((StatusCode::BAD_REQUEST, what));
    }
    Ok(match endpoint {
        Endpoint::Room(room) => Admitted::Room(room.to_owned(), token),
        Endpoint::Host(host) => Admitted::Host(host.to_owned(), token),
        Endpoint::Connect(host) => match shared.connect_to(host) {
            Ok((control, host_owner)) => {
                let Some(id) = auth::random_id() else {
                    return Err((
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the relay has no source of randomness",
                    ));
                };
                Admitted::Client {
                    room: format!("{host}/{id}"),
                    token,
                    control,
                    host_owner,
                }
            }
            Err(Refused::NoSuchHost) => {
                return Err((StatusCode::NOT_FOUND, "no such host"));
            }
            Err(Refused::Throttled) => {
                return Err((
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many connections to this host: slow down",
                ));
            }
        },
    })
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    stopped: watch::Receiver<bool>,
) {
    let config = &shared.config;
    // One pre-auth deadline for everything before the upgrade. `GET
    // /healthz` and `GET /metrics` are answered as plain HTTP within it.
    let deadline = tokio::time::Instant::now()
        .checked_add(config.handshake_timeout)
        .unwrap_or_else(tokio::time::Instant::now);
    if let Some(plain) = http::plain_request(&stream, deadline).await {
        http::answer(stream, plain, shared.stats(), deadline).await;
        return;
    }
    let mut admitted = None;
    let ws_config = WebSocketConfig::default()
        // Room to read an oversized message and refuse it politely; beyond
        // this the connection itself is dropped.
        .max_message_size(Some(config.max_message_size.saturating_mul(4).max(1 << 20)))
        .max_frame_size(Some(config.max_message_size.saturating_mul(4).max(1 << 20)));
    // The signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        admitted = Some(admit(shared, request).map_err(http_refusal)?);
        Ok(response)
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config));
    // The pre-auth timeout: nothing is upgraded (or held) past it.
    let ws = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "relay: refused before the upgrade");
            shared.refuse();
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "relay: websocket handshake timed out");
            shared.refuse();
            return;
        }
    };
    let Some(admitted) = admitted else {
        shared.refuse();
        return;
    };
    match admitted {
        Admitted::Room(room, token) => {
            let joiner = Joiner {
                token,
                host_owner: None,
            };
            peer::run_peer(ws, room, joiner, shared, stopped, || true).await;
        }
        Admitted::Host(host, token) => hosts::run_host(ws, host, token, shared, stopped).await,
        Admitted::Client {
            room,
            token,
            control,
            host_owner,
        } => {
            // Join first, so the host finds the client's messages waiting.
            // The notice never waits: a host that does not keep up is not
            // answering.
            let notice = RelayMessage::Session { room: room.clone() }.to_text();
            let announce = move || control.try_send(notice).is_ok();
            let joiner = Joiner {
                token,
                host_owner: Some(host_owner),
            };
            peer::run_peer(ws, room, joiner, shared, stopped, announce).await;
        }
    }
}
