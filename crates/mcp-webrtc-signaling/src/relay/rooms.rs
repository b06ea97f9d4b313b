//! Rooms: two peers, each text message from one forwarded verbatim to the
//! other (each peer's task is in `peer`). Everything a room holds is bounded: messages and bytes held for a
//! peer that has not joined (per room and over all rooms), messages and
//! bytes forwarded in all, rooms per token.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, watch};

use super::Shared;
use super::auth::TokenId;
use crate::relay_protocol::{
    CLOSE_BUDGET, CLOSE_BYE, CLOSE_CONFLICT, CLOSE_FORBIDDEN, CLOSE_INTERNAL, CLOSE_PEER_LEFT,
    CLOSE_UNAVAILABLE,
};

/// How a peer's session ends: a close code and reason (code 0: the socket
/// is already gone, send no close frame).
pub(super) type Outcome = (u16, String);

pub(super) struct Peer {
    pub(super) id: u64,
    /// Messages for this peer; bounded, never awaited by the sender.
    pub(super) tx: mpsc::Sender<Counted>,
    /// Bytes in `tx` not yet written to the peer's socket.
    pub(super) queued: Arc<AtomicUsize>,
    /// Tells this peer's task to close, whatever its queue holds.
    pub(super) close: watch::Sender<Option<Outcome>>,
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

pub(super) enum Forward {
    Notice(String),
    Close(u16, String),
}

fn refuse<T>(code: u16, reason: &str) -> Result<T, Outcome> {
    Err((code, reason.to_owned()))
}

impl Shared {
    /// Put a new peer in `room`; the messages held for it. Every check
    /// comes before anything changes, so a refused peer leaves no trace.
    pub(super) fn join(
        &self,
        room: &str,
        joiner: &Joiner,
        peer: Peer,
    ) -> Result<Vec<String>, Outcome> {
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
    pub(super) fn charge_refused(&self, room: &str, len: usize) -> Result<(), Forward> {
        let mut rooms = self.rooms();
        match rooms.map.get_mut(room) {
            Some(r) => Self::charge(r, len, &self.config),
            None => Err(Forward::Close(CLOSE_INTERNAL, "room vanished".into())),
        }
    }

    /// Forward `text` to the other peer, or hold it until it joins. Never
    /// waits: a peer whose queue is full is not reading, and the sender is
    /// told at once.
    pub(super) fn forward(&self, room: &str, from: u64, text: String) -> Result<(), Forward> {
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
    pub(super) fn leave(&self, room: &str, id: u64, said_bye: bool) {
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

/// A message queued for a peer: its bytes are counted for the peer and in
/// all from when it is made until it is dropped, however that happens (sent,
/// refused by a full queue, dropped with the queue or with a writer cut off
/// mid-send), so the counts cannot drift.
pub(super) struct Counted {
    text: String,
    len: usize,
    queued: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

impl Counted {
    fn new(text: String, queued: &Arc<AtomicUsize>, total: &Arc<AtomicUsize>) -> Counted {
        let len = text.len();
        queued.fetch_add(len, Ordering::Relaxed);
        total.fetch_add(len, Ordering::Relaxed);
        Counted {
            text,
            len,
            queued: Arc::clone(queued),
            total: Arc::clone(total),
        }
    }

    /// The text, to send; the bytes stay counted until `self` is dropped.
    pub(super) fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.len, Ordering::Relaxed);
        self.total.fetch_sub(self.len, Ordering::Relaxed);
    }
}

/// Queue `text` for a peer (counted, see [`Counted`]). `false` if the queue
/// is full or closed: the peer is not reading.
pub(super) fn enqueue(
    tx: &mpsc::Sender<Counted>,
    queued: &Arc<AtomicUsize>,
    total: &Arc<AtomicUsize>,
    text: String,
) -> bool {
    tx.try_send(Counted::new(text, queued, total)).is_ok()
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
