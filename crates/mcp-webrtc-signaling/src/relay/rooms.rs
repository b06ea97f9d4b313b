//! Rooms: two peers, each text message from one forwarded verbatim to the
//! other. Everything a room holds is bounded: messages and bytes held for a
//! peer that has not joined (per room and over all rooms), messages and
//! bytes forwarded in all, rooms per token.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::auth::TokenId;
use std::time::Duration;

use super::{Shared, Socket, close};
use crate::relay_protocol::{
    CLOSE_BUDGET, CLOSE_BYE, CLOSE_CONFLICT, CLOSE_FORBIDDEN, CLOSE_IDLE, CLOSE_INTERNAL,
    CLOSE_PEER_LEFT, CLOSE_SHUTDOWN, CLOSE_UNAVAILABLE, RelayMessage,
};

/// How a peer's session ends: a close code and reason (code 0: the socket
/// is already gone, send no close frame).
pub(super) type Outcome = (u16, String);

struct Peer {
    id: u64,
    /// Messages for this peer; bounded, never awaited by the sender.
    tx: mpsc::Sender<String>,
    /// Bytes in `tx` not yet written to the peer's socket.
    queued: Arc<AtomicUsize>,
    /// Tells this peer's task to close, whatever its queue holds.
    close: watch::Sender<Option<Outcome>>,
}

struct Room {
    peers: [Option<Peer>; 2],
    /// Held for the peer that has not joined yet.
    pending: VecDeque<String>,
    pending_bytes: usize,
    /// Budgets used so far (refused messages count).
    messages: u32,
    bytes: u64,
    /// The token whose peer opened the room.
    owner: TokenId,
    /// A host's session room: only the host's token may join it.
    host_owner: Option<TokenId>,
}

/// Every room, and what they hold in all.
#[derive(Default)]
pub(super) struct Rooms {
    map: HashMap<String, Room>,
    /// Bytes held for absent peers over all rooms.
    pending_bytes: usize,
    /// Rooms open per token that opened them.
    per_token: HashMap<TokenId, usize>,
}

impl Rooms {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }
}

/// Who joins a room, and how.
pub(super) struct Joiner {
    pub(super) token: TokenId,
    /// Set when a client of a host opens the session room: the host's token.
    pub(super) host_owner: Option<TokenId>,
}

enum Forward {
    Notice(String),
    Close(u16, String),
}

fn refuse<T>(code: u16, reason: &str) -> Result<T, Outcome> {
    Err((code, reason.to_owned()))
}

impl Shared {
    /// Put a new peer in `room`; the messages held for it. Every check
    /// comes before anything changes, so a refused peer leaves no trace.
    fn join(&self, room: &str, joiner: &Joiner, peer: Peer) -> Result<Vec<String>, Outcome> {
        let config = &self.config;
        let mut rooms = self.rooms();
        let rooms = &mut *rooms;
        if let Some(r) = rooms.map.get_mut(room) {
            // A host's session room: its client opened it; only the host's
            // token may take the other place.
            if let Some(owner) = r.host_owner
                && owner != joiner.token
            {
                return refuse(CLOSE_FORBIDDEN, "this session belongs to another token");
            }
            let Some(slot) = r.peers.iter_mut().find(|p| p.is_none()) else {
                return refuse(CLOSE_CONFLICT, "room full");
            };
            *slot = Some(peer);
            rooms.pending_bytes = rooms.pending_bytes.saturating_sub(r.pending_bytes);
            r.pending_bytes = 0;
            return Ok(r.pending.drain(..).collect());
        }
        if rooms.map.len() >= config.max_rooms {
            return refuse(CLOSE_UNAVAILABLE, "too many rooms");
        }
        let opened = rooms.per_token.entry(joiner.token).or_insert(0);
        if *opened >= config.max_rooms_per_token {
            return refuse(CLOSE_BUDGET, "too many rooms for this token");
        }
        *opened = opened.saturating_add(1);
        rooms.map.insert(
            room.to_owned(),
            Room {
                peers: [Some(peer), None],
                pending: VecDeque::new(),
                pending_bytes: 0,
                messages: 0,
                bytes: 0,
                owner: joiner.token,
                host_owner: joiner.host_owner,
            },
        );
        Ok(Vec::new())
    }

    /// Charge one message of `len` bytes to the room's budgets (refused
    /// ones too); once spent, both peers are closed.
    fn charge(r: &mut Room, len: usize, config: &super::RelayConfig) -> Result<(), Forward> {
        r.messages = r.messages.saturating_add(1);
        r.bytes = r.bytes.saturating_add(len as u64);
        let spent = if r.messages > config.room_message_budget {
            Some("room message budget exhausted")
        } else if r.bytes > config.room_byte_budget {
            Some("room byte budget exhausted")
        } else {
            None
        };
        if let Some(reason) = spent {
            for p in r.peers.iter().flatten() {
                first_close(&p.close, (CLOSE_BUDGET, reason.to_owned()));
            }
            return Err(Forward::Close(CLOSE_BUDGET, reason.to_owned()));
        }
        Ok(())
    }

    /// Count a refused message against the room's budgets.
    fn charge_refused(&self, room: &str, len: usize) -> Result<(), Forward> {
        let mut rooms = self.rooms();
        match rooms.map.get_mut(room) {
            Some(r) => Self::charge(r, len, &self.config),
            None => Err(Forward::Close(CLOSE_INTERNAL, "room vanished".into())),
        }
    }

    /// Forward `text` to the other peer, or hold it until it joins. Never
    /// waits: a peer whose queue is full is not reading, and the sender is
    /// told at once.
    fn forward(&self, room: &str, from: u64, text: String) -> Result<(), Forward> {
        let config = &self.config;
        let mut rooms = self.rooms();
        let rooms = &mut *rooms;
        let Some(r) = rooms.map.get_mut(room) else {
            return Err(Forward::Close(CLOSE_INTERNAL, "room vanished".into()));
        };
        Self::charge(r, text.len(), config)?;
        let len = text.len();
        let in_all = rooms
            .pending_bytes
            .saturating_add(self.queued_bytes.load(Ordering::Relaxed));
        if in_all.saturating_add(len) > config.max_total_pending_bytes {
            return Err(Forward::Notice(
                "the relay holds too much for absent or slow peers; try again later".into(),
            ));
        }
        if let Some(other) = r.peers.iter().flatten().find(|p| p.id != from) {
            // Counted before it is queued, so the writer never uncounts
            // what was not counted.
            if other.queued.load(Ordering::Relaxed).saturating_add(len) > config.max_pending_bytes {
                return Err(Forward::Notice(
                    "the other peer is not reading: message dropped".into(),
                ));
            }
            if enqueue(&other.tx, &other.queued, &self.queued_bytes, text) {
                self.forwarded.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            return Err(Forward::Notice(
                "the other peer is not reading: message dropped".into(),
            ));
        }
        if r.pending.len() >= config.max_pending {
            return Err(Forward::Notice(format!(
                "the other peer has not joined and {} messages already wait",
                config.max_pending
            )));
        }
        if r.pending_bytes.saturating_add(len) > config.max_pending_bytes {
            return Err(Forward::Notice(format!(
                "the other peer has not joined and {} bytes already wait",
                r.pending_bytes
            )));
        }
        r.pending_bytes = r.pending_bytes.saturating_add(len);
        rooms.pending_bytes = rooms.pending_bytes.saturating_add(len);
        r.pending.push_back(text);
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Take peer `id` out of `room`, tell the other one how it left, and
    /// remove the room once empty.
    fn leave(&self, room: &str, id: u64, said_bye: bool) {
        let mut rooms = self.rooms();
        let rooms = &mut *rooms;
        let Some(r) = rooms.map.get_mut(room) else {
            return;
        };
        for slot in &mut r.peers {
            if slot.as_ref().is_some_and(|p| p.id == id) {
                *slot = None;
            }
        }
        let outcome = if said_bye {
            (CLOSE_BYE, "peer said bye".to_owned())
        } else {
            (CLOSE_PEER_LEFT, "peer left without a bye".to_owned())
        };
        // Through the close channel, not the queue: a survivor whose queue
        // is full still learns it.
        for p in r.peers.iter().flatten() {
            first_close(&p.close, outcome.clone());
        }
        if r.peers.iter().all(Option::is_none) {
            let owner = r.owner;
            let held = r.pending_bytes;
            rooms.map.remove(room);
            rooms.pending_bytes = rooms.pending_bytes.saturating_sub(held);
            if let Some(n) = rooms.per_token.get_mut(&owner) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    rooms.per_token.remove(&owner);
                }
            }
        }
    }
}

/// Queue `text` for a peer, counting its bytes for the peer and in all
/// before it is queued (so that the writer, which uncounts each message it
/// takes, never uncounts what was not counted). `false` if the queue is
/// full or closed: the peer is not reading.
fn enqueue(
    tx: &mpsc::Sender<String>,
    queued: &AtomicUsize,
    total: &AtomicUsize,
    text: String,
) -> bool {
    let len = text.len();
    queued.fetch_add(len, Ordering::Relaxed);
    total.fetch_add(len, Ordering::Relaxed);
    if tx.try_send(text).is_ok() {
        return true;
    }
    queued.fetch_sub(len, Ordering::Relaxed);
    total.fetch_sub(len, Ordering::Relaxed);
    false
}

/// Tell a peer to close, unless it was told already: the first reason
/// stands (a spent budget, not the partner's leaving that followed it).
fn first_close(close: &watch::Sender<Option<Outcome>>, outcome: Outcome) {
    close.send_if_modified(|current| {
        if current.is_some() {
            return false;
        }
        *current = Some(outcome);
        true
    });
}

fn is_bye(text: &str) -> bool {
    // Cheap pre-check before parsing: only tiny messages can be a bye.
    text.len() < 64
        && serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(|t| t == "bye"))
            .unwrap_or(false)
}

fn notice(reason: &str) -> String {
    RelayMessage::Error {
        reason: reason.to_owned(),
    }
    .to_text()
}

type Sink = futures::stream::SplitSink<Socket, Message>;
type Stream = futures::stream::SplitStream<Socket>;

/// A peer's queue, with the bytes it holds counted for it and in all.
struct Queue<'a> {
    rx: mpsc::Receiver<String>,
    queued: Arc<AtomicUsize>,
    total: &'a AtomicUsize,
}

impl Queue<'_> {
    /// One message has left the queue.
    fn uncount(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
        self.total.fetch_sub(len, Ordering::Relaxed);
    }
}

impl Drop for Queue<'_> {
    fn drop(&mut self) {
        // Whatever is still queued is dropped with the queue: uncount it.
        self.rx.close();
        while let Ok(text) = self.rx.try_recv() {
            self.uncount(text.len());
        }
    }
}

/// The writing half of a room peer: what was held for it, then its queue,
/// until the reading half ends the session; then what is still queued (the
/// partner's last messages, its bye) and the close frame. Returns early if a
/// write fails or times out: the peer is not reading.
async fn write_half(
    mut sink: Sink,
    held: Vec<String>,
    mut queue: Queue<'_>,
    mut end: tokio::sync::oneshot::Receiver<Outcome>,
) {
    use futures::SinkExt;
    async fn send(sink: &mut Sink, text: String) -> bool {
        matches!(
            tokio::time::timeout(super::SEND_TIMEOUT, sink.send(Message::text(text))).await,
            Ok(Ok(()))
        )
    }
    for text in held {
        if !send(&mut sink, text).await {
            return;
        }
    }
    // Bounded: each pass writes one message, or ends.
    let outcome = loop {
        tokio::select! {
            biased;
            outcome = &mut end => break outcome.unwrap_or_default(),
            text = queue.rx.recv() => match text {
                Some(text) => {
                    let len = text.len();
                    let sent = send(&mut sink, text).await;
                    queue.uncount(len);
                    if !sent {
                        return;
                    }
                }
                None => break (CLOSE_INTERNAL, "relay error".into()),
            },
        }
    };
    // What was queued before the end goes out first (at most the queue's
    // capacity, each write bounded).
    while let Ok(text) = queue.rx.try_recv() {
        let len = text.len();
        let sent = send(&mut sink, text).await;
        queue.uncount(len);
        if !sent {
            return;
        }
    }
    let (code, reason) = outcome;
    let closing = async {
        if code == 0 {
            // The peer closed: flush tungstenite's reply to its close frame.
            let _ = sink.close().await;
        } else {
            let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: code.into(),
                reason: reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
}

/// The reading half of a room peer: forwards what it sends, until it
/// leaves, is told to close, goes idle, or the relay stops. Its notices go
/// through its own queue (dropped if that is full: it is not reading).
async fn read_half(
    mut stream: Stream,
    room: &str,
    id: u64,
    own: (&mpsc::Sender<String>, &AtomicUsize),
    shared: &Shared,
    stopped: &mut watch::Receiver<bool>,
    closed: &mut watch::Receiver<Option<Outcome>>,
) -> (Outcome, bool) {
    let mut said_bye = false;
    let config = &shared.config;
    // Only what the peer sends and the relay forwards keeps it alive: not
    // pings, not refused frames, not forwarded traffic.
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    // Bounded: each pass handles one event; the idle timer ends a silent peer.
    loop {
        let refused = tokio::select! {
            _ = stopped.changed() => return ((CLOSE_SHUTDOWN, "relay shutting down".into()), said_bye),
            () = &mut idle => return ((CLOSE_IDLE, "idle timeout".into()), said_bye),
            changed = closed.changed() => {
                let outcome = match (changed, closed.borrow().clone()) {
                    (Ok(()), Some(o)) => o,
                    _ => (CLOSE_INTERNAL, "relay error".into()),
                };
                return (outcome, said_bye);
            }
            incoming = stream.next() => match incoming {
                None | Some(Err(_) | Ok(Message::Close(_))) => return ((0, String::new()), said_bye),
                Some(Ok(Message::Text(text))) if text.len() > config.max_message_size => {
                    Some((text.len(), format!(
                        "message too large: {} bytes > limit {} bytes",
                        text.len(),
                        config.max_message_size
                    )))
                }
                Some(Ok(Message::Text(text))) => {
                    if is_bye(text.as_str()) {
                        said_bye = true;
                    }
                    match shared.forward(room, id, text.as_str().to_owned()) {
                        Ok(()) => {
                            if let Some(at) =
                                tokio::time::Instant::now().checked_add(config.idle_timeout)
                            {
                                idle.as_mut().reset(at);
                            }
                            None
                        }
                        Err(Forward::Notice(reason)) => Some((0, reason)),
                        Err(Forward::Close(code, reason)) => return ((code, reason), said_bye),
                    }
                }
                Some(Ok(Message::Binary(data))) => {
                    Some((data.len(), "binary frames are not relayed".to_owned()))
                }
                Some(Ok(_)) => None, // ping, pong, raw frames: not traffic
            },
        };
        if let Some((len, reason)) = refused {
            shared.refuse();
            // A refused message still spends the room's budgets (a
            // forwarded one was charged in `forward`).
            if len > 0
                && let Err(Forward::Close(code, why)) = shared.charge_refused(room, len)
            {
                return ((code, why), said_bye);
            }
            if !enqueue(own.0, own.1, &shared.queued_bytes, notice(&reason)) {
                tracing::debug!("relay: a notice was dropped: the peer is not reading");
            }
        }
    }
}

/// Serve one room peer until it leaves, is closed, or the relay stops.
/// `after_join` runs once the peer is in (a host is told of its client).
/// Its two halves run apart: a peer whose socket is full still has what it
/// sends forwarded, and still learns that the session ended.
pub(super) async fn run_peer(
    mut ws: Socket,
    room: String,
    joiner: Joiner,
    shared: &Shared,
    mut stopped: watch::Receiver<bool>,
    after_join: impl FnOnce() -> bool,
) {
    let config = &shared.config;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<String>(config.max_pending.max(8));
    let queued = Arc::new(AtomicUsize::new(0));
    let (close_tx, mut closed) = watch::channel(None);
    let peer = Peer {
        id,
        tx: tx.clone(),
        queued: Arc::clone(&queued),
        close: close_tx,
    };
    let held = match shared.join(&room, &joiner, peer) {
        Ok(held) => held,
        Err((code, reason)) => {
            tracing::info!(reason, "relay: join refused");
            tracing::debug!(room = %room, reason, "relay: join refused");
            shared.refuse();
            close(&mut ws, code, &reason).await;
            return;
        }
    };
    tracing::debug!(room = %room, "relay: peer joined");
    let (sink, stream) = ws.split();
    let (end_tx, end_rx) = tokio::sync::oneshot::channel();
    let own_queued = Arc::clone(&queued);
    let queue = Queue {
        rx,
        queued,
        total: &shared.queued_bytes,
    };
    let writer = write_half(sink, held, queue, end_rx);
    tokio::pin!(writer);
    let mut said_bye = false;
    let outcome = if after_join() {
        let reader = read_half(
            stream,
            &room,
            id,
            (&tx, &own_queued),
            shared,
            &mut stopped,
            &mut closed,
        );
        tokio::select! {
            (outcome, bye) = reader => {
                said_bye = bye;
                Some(outcome)
            }
            () = &mut writer => None, // a write failed: the peer is gone
        }
    } else {
        shared.refuse();
        Some((CLOSE_UNAVAILABLE, "host not answering".into()))
    };
    let code = outcome.as_ref().map_or(0, |o| o.0);
    if let Some(outcome) = outcome
        && end_tx.send(outcome).is_ok()
    {
        // The writer sends what is queued and the close frame: each write
        // bounded by its own timeout, all of it by this one.
        let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
    }
    shared.leave(&room, id, said_bye);
    tracing::debug!(room = %room, code, "relay: peer left");
}
