//! A deployable WebSocket signaling relay.
//!
//! Two peers that cannot reach each other directly meet in a **room** and the
//! relay forwards each text message from one to the other, verbatim. It never
//! parses or logs the SDP it carries.
//!
//! Paths (see `docs/signaling.md`):
//! - `/v1/room/<room>`: join a room; at most two peers.
//! - `/v1/host/<host>`: a server registers a host name (one registration per
//!   name) and receives `{"type":"session","room":"<host>/<n>"}` for each
//!   client, then joins that room.
//! - `/v1/host/<host>/connect`: a client of that host; it is put in a fresh
//!   room `<host>/<n>` of its own.
//!
//! Every connection must present a token (`Authorization: Bearer <token>` or
//! `?token=<token>` for browsers), compared in constant time. Refusals close
//! the WebSocket with a code and a reason: 4401 unauthorized, 4404 unknown
//! path or host, 4409 room full or host name taken, 4400 bad room name,
//! 4408 idle timeout, 4429 message budget spent, 4503 too many rooms, 4410
//! the other peer left without a bye (1000 with a bye).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::{Error, Result};

/// Relay settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Accepted tokens. A connection must present one of them.
    pub tokens: Vec<String>,
    /// Accept connections without a token (for tests on loopback only).
    pub allow_anonymous: bool,
    /// Largest message forwarded; larger ones are refused with a notice and
    /// the room goes on. Default 64 KiB.
    pub max_message_size: usize,
    /// Messages a room may forward in all. Default 1000.
    pub room_message_budget: u32,
    /// Messages held for a peer that has not joined yet. Default 64.
    pub max_pending: usize,
    /// A room peer that sends nothing for this long is closed. Default 120 s.
    pub idle_timeout: Duration,
    /// The WebSocket upgrade must finish within this. Default 10 s.
    pub handshake_timeout: Duration,
    /// Rooms open at once. Default 10,000.
    pub max_rooms: usize,
    /// Interval of pings on host registrations. Default 20 s.
    pub host_ping_interval: Duration,
    /// WebSocket connections open at once (rooms, hosts, handshakes).
    /// Default 20,000.
    pub max_connections: usize,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("allow_anonymous", &self.allow_anonymous)
            .field("max_message_size", &self.max_message_size)
            .field("room_message_budget", &self.room_message_budget)
            .field("max_pending", &self.max_pending)
            .field("idle_timeout", &self.idle_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_rooms", &self.max_rooms)
            .finish_non_exhaustive()
    }
}

impl RelayConfig {
    /// A relay that accepts these tokens, with default limits.
    #[must_use]
    pub fn with_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> RelayConfig {
        RelayConfig {
            tokens: tokens.into_iter().map(Into::into).collect(),
            allow_anonymous: false,
            max_message_size: 64 * 1024,
            room_message_budget: 1000,
            max_pending: 64,
            idle_timeout: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(10),
            max_rooms: 10_000,
            host_ping_interval: Duration::from_secs(20),
            max_connections: 20_000,
        }
    }

    /// Set [`RelayConfig::max_message_size`].
    #[must_use]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
    /// Set [`RelayConfig::room_message_budget`].
    #[must_use]
    pub fn room_message_budget(mut self, messages: u32) -> Self {
        self.room_message_budget = messages;
        self
    }
    /// Set [`RelayConfig::idle_timeout`].
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }
    /// Set [`RelayConfig::handshake_timeout`].
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
    /// Set [`RelayConfig::max_rooms`].
    #[must_use]
    pub fn max_rooms(mut self, rooms: usize) -> Self {
        self.max_rooms = rooms;
        self
    }
    /// Set [`RelayConfig::allow_anonymous`].
    #[must_use]
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }
}

/// Counters of a running relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RelayStats {
    /// Rooms open now.
    pub rooms: usize,
    /// WebSocket connections open now (rooms and host registrations).
    pub connections: usize,
    /// Messages forwarded since start.
    pub forwarded: u64,
    /// Connections or messages refused since start.
    pub refused: u64,
}

enum Outgoing {
    Text(String),
    Close(u16, String),
}

struct Peer {
    id: u64,
    tx: mpsc::Sender<Outgoing>,
}

#[derive(Default)]
struct Room {
    peers: [Option<Peer>; 2],
    pending: VecDeque<String>,
    used: u32,
}

struct Shared {
    config: RelayConfig,
    rooms: Mutex<HashMap<String, Room>>,
    hosts: Mutex<HashMap<String, mpsc::Sender<Outgoing>>>,
    next_id: AtomicU64,
    connections: AtomicUsize,
    forwarded: AtomicU64,
    refused: AtomicU64,
}

impl Shared {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn hosts(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<Outgoing>>> {
        self.hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
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
    /// [`Error::InvalidConfig`] if no token is configured and anonymous
    /// access is not allowed; the bind error.
    pub async fn bind(addr: impl tokio::net::ToSocketAddrs, config: RelayConfig) -> Result<Self> {
        if config.tokens.is_empty() && !config.allow_anonymous {
            return Err(Error::InvalidConfig {
                reason: "the relay needs at least one token (or allow_anonymous)".into(),
            });
        }
        if config.tokens.iter().any(String::is_empty) {
            return Err(Error::InvalidConfig {
                reason: "empty token".into(),
            });
        }
        for (name, value) in [
            ("idle_timeout", config.idle_timeout),
            ("handshake_timeout", config.handshake_timeout),
            ("host_ping_interval", config.host_ping_interval),
        ] {
            if value < Duration::from_millis(10) {
                return Err(Error::InvalidConfig {
                    reason: format!("{name} must be at least 10 ms, not {value:?}"),
                });
            }
        }
        if config.max_message_size == 0 || config.max_rooms == 0 || config.max_connections == 0 {
            return Err(Error::InvalidConfig {
                reason: "max_message_size, max_rooms and max_connections must be positive".into(),
            });
        }
        let listener = TcpListener::bind(addr).await.map_err(Error::io("bind"))?;
        let addr = listener.local_addr().map_err(Error::io("local_addr"))?;
        let shared = Arc::new(Shared {
            config,
            rooms: Mutex::default(),
            hosts: Mutex::default(),
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
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
        RelayStats {
            rooms: self.shared.rooms().len(),
            connections: self.shared.connections.load(Ordering::Relaxed),
            forwarded: self.shared.forwarded.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
        }
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
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            // Reap finished connection tasks so the set stays small.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if shared.connections.load(Ordering::Relaxed) >= shared.config.max_connections {
                        shared.refuse();
                        tracing::warn!(%peer, "relay: connection limit reached, refusing");
                        drop(stream);
                        continue;
                    }
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::clone(&shared);
                    let stopped = stopped.clone();
                    tasks.spawn(async move {
                        connection(stream, peer, &shared, stopped).await;
                        shared.connections.fetch_sub(1, Ordering::Relaxed);
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

/// What the upgrade request asked for.
#[derive(Default)]
struct Asked {
    path: String,
    token: Option<String>,
}

fn token_of(request: &Request) -> Option<String> {
    if let Some(auth) = request.headers().get("authorization")
        && let Ok(auth) = auth.to_str()
        && let Some(token) = auth.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .and_then(percent_decode)
    })
}

/// Decode `%XX` escapes (and `+` as a space) in a query value; `None` for a
/// malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi.checked_mul(16)?.checked_add(lo)?).ok()?);
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

fn authorized(config: &RelayConfig, token: Option<&str>) -> bool {
    match token {
        None => config.allow_anonymous,
        Some(token) => {
            // Compare against every token, so timing does not tell which
            // one (or how many) matched.
            let mut ok = subtle::Choice::from(0u8);
            for t in &config.tokens {
                ok |= t.as_bytes().ct_eq(token.as_bytes());
            }
            bool::from(ok) || (config.allow_anonymous && config.tokens.is_empty())
        }
    }
}

/// Host names: 1 to 160 characters of `A-Z a-z 0-9 - _ . ~`, leaving room
/// for the session id in `<host>/<id>` room names.
fn valid_host(name: &str) -> bool {
    name.len() <= 160 && !name.contains('/') && valid_name(name)
}

/// Room names: 1 to 200 characters of `A-Z a-z 0-9 - _ . ~ /`, with no
/// empty `/`-separated segment.
fn valid_name(name: &str) -> bool {
    (1..=200).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~/".contains(&b))
        && name.split('/').all(|segment| !segment.is_empty())
}

type Socket = WebSocketStream<TcpStream>;

async fn close(ws: &mut Socket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    stopped: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut asked = Asked::default();
    let ws_config = WebSocketConfig::default()
        // Room to read an oversized message and refuse it politely; beyond
        // this the connection itself is dropped.
        .max_message_size(Some(config.max_message_size.saturating_mul(4).max(1 << 20)))
        .max_frame_size(Some(config.max_message_size.saturating_mul(4).max(1 << 20)));
    // The signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        asked.path = request.uri().path().to_owned();
        asked.token = token_of(request);
        Ok(response)
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config));
    let mut ws = match tokio::time::timeout(config.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "relay: websocket handshake failed");
            shared.refuse();
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "relay: websocket handshake timed out");
            shared.refuse();
            return;
        }
    };
    if !authorized(config, asked.token.as_deref()) {
        tracing::info!(%peer, "relay: refused, missing or wrong token");
        shared.refuse();
        close(&mut ws, 4401, "unauthorized: missing or wrong token").await;
        return;
    }
    let path = asked.path;
    if let Some(room) = path.strip_prefix("/v1/room/") {
        if !valid_name(room) {
            shared.refuse();
            close(&mut ws, 4400, "bad room name").await;
            return;
        }
        join_room(ws, room.to_owned(), shared, stopped).await;
    } else if let Some(host) = path
        .strip_prefix("/v1/host/")
        .and_then(|rest| rest.strip_suffix("/connect"))
    {
        let room = format!("{host}/{}", session_id(shared));
        if !valid_host(host) {
            shared.refuse();
            close(&mut ws, 4400, "bad host name").await;
            return;
        }
        let Some(control) = shared.hosts().get(host).cloned() else {
            shared.refuse();
            close(&mut ws, 4404, "no such host").await;
            return;
        };
        // Join first, so the host finds the client's messages waiting. The
        // notice never waits: a host that does not keep up is not answering.
        let notice = serde_json::json!({"type": "session", "room": room}).to_string();
        let announce = move || control.try_send(Outgoing::Text(notice)).is_ok();
        join_room_then(ws, room, shared, stopped, announce).await;
    } else if let Some(host) = path.strip_prefix("/v1/host/") {
        if !valid_host(host) {
            shared.refuse();
            close(&mut ws, 4400, "bad host name").await;
            return;
        }
        register_host(ws, host.to_owned(), shared, stopped).await;
    } else {
        shared.refuse();
        close(&mut ws, 4404, "unknown path").await;
    }
}

async fn join_room(ws: Socket, room: String, shared: &Arc<Shared>, stopped: watch::Receiver<bool>) {
    join_room_then(ws, room, shared, stopped, || true).await;
}

/// How long the relay waits to hand one message to a peer's socket before
/// giving up on that peer.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Send with a deadline: a peer that stops reading is dropped, not waited on.
async fn send_ws(ws: &mut Socket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, ws.send(message)).await,
        Ok(Ok(()))
    )
}

fn notice(reason: &str) -> Message {
    Message::text(serde_json::json!({"type": "error", "reason": reason}).to_string())
}

async fn join_room_then(
    mut ws: Socket,
    room: String,
    shared: &Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    after_join: impl FnOnce() -> bool,
) {
    let config = &shared.config;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Outgoing>(config.max_pending.max(8));
    let joined = {
        let mut rooms = shared.rooms();
        let count = rooms.len();
        let new = !rooms.contains_key(&room);
        if new && count >= config.max_rooms {
            Err((4503, "too many rooms"))
        } else {
            let r = rooms.entry(room.clone()).or_default();
            match r.peers.iter_mut().find(|p| p.is_none()) {
                None => Err((4409, "room full")),
                Some(slot) => {
                    *slot = Some(Peer { id, tx });
                    Ok(r.pending.drain(..).collect::<Vec<_>>())
                }
            }
        }
    };
    let pending = match joined {
        Ok(pending) => pending,
        Err((code, reason)) => {
            tracing::info!(room = %room, reason, "relay: join refused");
            shared.refuse();
            close(&mut ws, code, reason).await;
            return;
        }
    };
    tracing::info!(room = %room, "relay: peer joined");
    let mut said_bye = false;
    let mut outcome: Option<(u16, String)> = None;
    if !after_join() {
        shared.refuse();
        outcome = Some((4503, "host not answering".into()));
    }
    for text in pending {
        if outcome.is_some() || !send_ws(&mut ws, Message::text(text)).await {
            outcome.get_or_insert((0, String::new()));
            break;
        }
    }
    // Only what the peer sends keeps it alive: forwarded traffic does not.
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    while outcome.is_none() {
        tokio::select! {
            _ = stopped.changed() => {
                outcome = Some((1001, "relay shutting down".into()));
            }
            () = &mut idle => outcome = Some((4408, "idle timeout".into())),
            out = rx.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if !send_ws(&mut ws, Message::text(text)).await {
                        outcome = Some((0, String::new()));
                    }
                }
                Some(Outgoing::Close(code, reason)) => outcome = Some((code, reason)),
                None => outcome = Some((1011, "relay error".into())),
            },
            incoming = ws.next() => {
                if let Some(at) = tokio::time::Instant::now().checked_add(config.idle_timeout) {
                    idle.as_mut().reset(at);
                }
                match incoming {
                    None | Some(Err(_) | Ok(Message::Close(_))) => outcome = Some((0, String::new())),
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > config.max_message_size {
                            shared.refuse();
                            let reason = format!(
                                "message too large: {} bytes > limit {} bytes",
                                text.len(),
                                config.max_message_size
                            );
                            if !send_ws(&mut ws, notice(&reason)).await {
                                outcome = Some((0, String::new()));
                            }
                            continue;
                        }
                        if is_bye(text.as_str()) {
                            said_bye = true;
                        }
                        match forward(shared, &room, id, text.as_str().to_owned()).await {
                            Ok(()) => {}
                            Err(Forward::Notice(reason)) => {
                                shared.refuse();
                                if !send_ws(&mut ws, notice(&reason)).await {
                                    outcome = Some((0, String::new()));
                                }
                            }
                            Err(Forward::Close(code, reason)) => outcome = Some((code, reason)),
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        shared.refuse();
                        if !send_ws(&mut ws, notice("binary frames are not relayed")).await {
                            outcome = Some((0, String::new()));
                        }
                    }
                    Some(Ok(_)) => {} // ping/pong/raw frames
                }
            }
        }
    }
    let (code, reason) = outcome.unwrap_or_default();
    if code != 0 {
        close(&mut ws, code, &reason).await;
    }
    leave(shared, &room, id, said_bye);
    tracing::info!(code, "relay: peer left");
}

/// An unguessable session id (tokens still guard every room).
fn session_id(shared: &Shared) -> String {
    use std::hash::{BuildHasher, Hasher};
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    format!("{:016x}{n:x}", h.finish())
}

fn is_bye(text: &str) -> bool {
    // Cheap pre-check before parsing: only tiny messages can be a bye.
    text.len() < 64
        && serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(|t| t == "bye"))
            .unwrap_or(false)
}

enum Forward {
    Notice(String),
    Close(u16, String),
}

async fn forward(shared: &Shared, room: &str, from: u64, text: String) -> Result<(), Forward> {
    let config = &shared.config;
    let target = {
        let mut rooms = shared.rooms();
        let Some(r) = rooms.get_mut(room) else {
            return Err(Forward::Close(1011, "room vanished".into()));
        };
        r.used = r.used.saturating_add(1);
        if r.used > config.room_message_budget {
            let reason = "room message budget exhausted".to_owned();
            for p in r.peers.iter().flatten() {
                let _ = p.tx.try_send(Outgoing::Close(4429, reason.clone()));
            }
            return Err(Forward::Close(4429, reason));
        }
        match r.peers.iter().flatten().find(|p| p.id != from) {
            Some(other) => other.tx.clone(),
            None => {
                if r.pending.len() >= config.max_pending {
                    return Err(Forward::Notice(format!(
                        "the other peer has not joined and {} messages already wait",
                        config.max_pending
                    )));
                }
                r.pending.push_back(text);
                shared.forwarded.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(5), target.send(Outgoing::Text(text))).await {
        Ok(Ok(())) => {
            shared.forwarded.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        _ => Err(Forward::Notice("the other peer is not reading".into())),
    }
}

fn leave(shared: &Shared, room: &str, id: u64, said_bye: bool) {
    let mut rooms = shared.rooms();
    let Some(r) = rooms.get_mut(room) else { return };
    for slot in &mut r.peers {
        if slot.as_ref().is_some_and(|p| p.id == id) {
            *slot = None;
        }
    }
    let (code, reason) = if said_bye {
        (1000, "peer said bye")
    } else {
        (4410, "peer left without a bye")
    };
    for p in r.peers.iter().flatten() {
        let _ = p.tx.try_send(Outgoing::Close(code, reason.into()));
    }
    if r.peers.iter().all(Option::is_none) {
        rooms.remove(room);
    }
}

async fn register_host(
    mut ws: Socket,
    host: String,
    shared: &Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::channel::<Outgoing>(64);
    let taken = {
        let mut hosts = shared.hosts();
        let taken = hosts.get(&host).is_some_and(|t| !t.is_closed());
        if !taken {
            hosts.insert(host.clone(), tx);
        }
        taken
    };
    if taken {
        shared.refuse();
        close(&mut ws, 4409, "host name taken").await;
        return;
    }
    tracing::info!(host = %host, "relay: host registered");
    let interval = shared.config.host_ping_interval;
    let mut ping = tokio::time::interval(interval);
    let mut last_seen = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stopped.changed() => {
                close(&mut ws, 1001, "relay shutting down").await;
                break;
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > interval.saturating_mul(3) {
                    close(&mut ws, 4408, "host stopped answering pings").await;
                    break;
                }
                if !send_ws(&mut ws, Message::Ping(Vec::new().into())).await {
                    break;
                }
            }
            out = rx.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if !send_ws(&mut ws, Message::text(text)).await {
                        break;
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    close(&mut ws, code, &reason).await;
                    break;
                }
                None => break,
            },
            incoming = ws.next() => match incoming {
                None | Some(Err(_) | Ok(Message::Close(_))) => break,
                Some(Ok(_)) => last_seen = tokio::time::Instant::now(),
            },
        }
    }
    shared.hosts().remove(&host);
    tracing::info!(host = %host, "relay: host left");
}
