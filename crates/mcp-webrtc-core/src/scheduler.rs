//! The outbound scheduler: whole messages in, frames out, interleaved fairly.
//!
//! Messages wait in one round-robin rotation. Each call to
//! [`Scheduler::poll_transmit`] takes the message at the front, emits one
//! frame of it (a text message is one frame), and puts it at the back if it
//! has more to send. A message queued behind any number of large ones
//! therefore goes out after at most one frame of each message ahead of it.
//!
//! Chunked messages only join the rotation while the peer can hold them: the
//! number of chunked messages in the rotation, and the sum of their sizes,
//! stay within the limits the peer announced in its HELLO. The rest wait in a FIFO.
//! Until the peer's limits are known, chunked messages wait.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::wire::{BinaryFrame, DATA_HEADER_LEN, DataHeader, Limits};

/// One unit of output for the data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A whole JSON-RPC message, sent as one data-channel **text** message.
    /// The bytes are valid UTF-8.
    Text(Bytes),
    /// A binary frame (DATA or HELLO), sent as one data-channel **binary**
    /// message.
    Binary(BinaryFrame),
}

impl Transmit {
    /// Length on the wire.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Transmit::Text(b) => b.len(),
            Transmit::Binary(f) => f.len(),
        }
    }

    /// Whether the transmit has no bytes (never true for frames the framer
    /// produces).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A message the scheduler could not send, handed back with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The message, as it was queued.
    pub message: Bytes,
    /// Why it was refused (for example [`Error::MessageTooLarge`] once the
    /// peer's limits became known).
    pub error: Error,
}

#[derive(Debug)]
enum Entry {
    Text(Bytes),
    Chunked {
        id: u32,
        message: Bytes,
        sent: usize,
    },
}

/// Fair, bounded, zero-copy outbound scheduler.
#[derive(Debug)]
pub struct Scheduler {
    /// Largest frame on the wire, header included.
    frame_size: usize,
    /// Bytes queued (not yet emitted) and the bound on them.
    queued_bytes: u64,
    max_queued_bytes: u64,
    /// Control frames (HELLO) go out before anything else.
    control: VecDeque<BinaryFrame>,
    rotation: VecDeque<Entry>,
    waiting: VecDeque<Bytes>,
    /// The peer's receive limits; `None` holds chunked messages back.
    peer: Option<Limits>,
    /// Chunked messages in the rotation, and the sum of their sizes.
    active: u32,
    active_bytes: u64,
    next_id: u32,
    /// Send each message whole before the next (a negative control for
    /// benchmarks; never what a transport wants).
    fifo: bool,
}

impl Scheduler {
    /// A scheduler that emits frames of at most `frame_size` bytes and holds
    /// at most `max_queued_bytes` (a message larger than that is still
    /// accepted when the queue is empty).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `frame_size` cannot hold a DATA header and
    /// at least one payload byte.
    pub fn new(frame_size: usize, max_queued_bytes: u64) -> Result<Scheduler> {
        if frame_size <= DATA_HEADER_LEN {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "frame size {frame_size} must exceed the {DATA_HEADER_LEN}-byte DATA header"
                ),
            });
        }
        Ok(Scheduler {
            frame_size,
            queued_bytes: 0,
            max_queued_bytes,
            control: VecDeque::new(),
            rotation: VecDeque::new(),
            waiting: VecDeque::new(),
            peer: None,
            active: 0,
            active_bytes: 0,
            next_id: 0,
            fifo: false,
        })
    }

    /// Send each message whole before the next, instead of interleaving.
    /// Only a benchmark's negative control wants this: it shows what the
    /// interleaving is worth.
    #[doc(hidden)]
    pub fn set_fifo(&mut self, fifo: bool) {
        self.fifo = fifo;
    }

    /// Largest frame this scheduler emits, header included.
    #[must_use]
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// The peer's limits, once known.
    #[must_use]
    pub fn peer_limits(&self) -> Option<Limits> {
        self.peer
    }

    /// The largest message the peer accepts, once known.
    #[must_use]
    pub fn peer_max_message_size(&self) -> Option<u64> {
        self.peer
            .map(|p| p.max_message_size.min(p.max_buffered_bytes))
    }

    /// Record the peer's limits. Chunked messages that were waiting for them
    /// and exceed them are returned; the rest may now be scheduled.
    pub fn set_peer_limits(&mut self, hello: Limits) -> Vec<Rejected> {
        self.peer = Some(hello);
        let limit = hello.max_message_size.min(hello.max_buffered_bytes);
        let mut rejected = Vec::new();
        let waiting = std::mem::take(&mut self.waiting);
        for message in waiting {
            let size = message.len() as u64;
            if size > limit {
                self.queued_bytes = self.queued_bytes.saturating_sub(size);
                rejected.push(Rejected {
                    message,
                    error: Error::MessageTooLarge { size, limit },
                });
            } else {
                self.waiting.push_back(message);
            }
        }
        rejected
    }

    /// Remove and return every chunked message still waiting for the peer's
    /// limits.
    pub fn take_waiting(&mut self) -> Vec<Bytes> {
        let waiting: Vec<Bytes> = self.waiting.drain(..).collect();
        for m in &waiting {
            self.queued_bytes = self.queued_bytes.saturating_sub(m.len() as u64);
        }
        waiting
    }

    /// Queue a control frame ahead of all messages.
    pub fn push_control(&mut self, frame: BinaryFrame) {
        self.control.push_back(frame);
    }

    /// Queue a message to go out whole as one text message.
    ///
    /// # Errors
    /// [`Error::QueueFull`].
    pub fn push_text(&mut self, message: Bytes) -> Result<()> {
        self.admit(message.len())?;
        self.rotation.push_back(Entry::Text(message));
        Ok(())
    }

    /// Queue a message to go out as DATA frames.
    ///
    /// # Errors
    /// [`Error::QueueFull`], or [`Error::MessageTooLarge`] if the peer's
    /// limits are known and the message exceeds them.
    pub fn push_chunked(&mut self, message: Bytes) -> Result<()> {
        if let Some(limit) = self.peer_max_message_size() {
            let size = message.len() as u64;
            if size > limit {
                return Err(Error::MessageTooLarge { size, limit });
            }
        }
        self.admit(message.len())?;
        self.waiting.push_back(message);
        Ok(())
    }

    fn admit(&mut self, len: usize) -> Result<()> {
        let size = len as u64;
        let total = self.queued_bytes.saturating_add(size);
        if self.queued_bytes > 0 && total > self.max_queued_bytes {
            return Err(Error::QueueFull {
                queued: self.queued_bytes,
                size,
                limit: self.max_queued_bytes,
            });
        }
        self.queued_bytes = total;
        Ok(())
    }

    /// Move waiting chunked messages into the rotation while the peer's
    /// limits allow.
    fn activate(&mut self) {
        let Some(peer) = self.peer else { return };
        while let Some(next) = self.waiting.front() {
            let size = next.len() as u64;
            let fits = self.active < peer.max_in_flight
                && self.active_bytes.saturating_add(size) <= peer.max_buffered_bytes;
            if !fits {
                break;
            }
            let Some(message) = self.waiting.pop_front() else {
                break;
            };
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            self.active = self.active.saturating_add(1);
            self.active_bytes = self.active_bytes.saturating_add(size);
            self.rotation.push_back(Entry::Chunked {
                id,
                message,
                sent: 0,
            });
        }
    }

    /// The next frame to put on the wire, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(frame) = self.control.pop_front() {
            return Some(Transmit::Binary(frame));
        }
        self.activate();
        let entry = self.rotation.pop_front()?;
        match entry {
            Entry::Text(message) => {
                self.queued_bytes = self.queued_bytes.saturating_sub(message.len() as u64);
                Some(Transmit::Text(message))
            }
            Entry::Chunked { id, message, sent } => {
                let room = self.frame_size.saturating_sub(DATA_HEADER_LEN);
                let end = sent.saturating_add(room).min(message.len());
                let payload = message.slice(sent..end);
                let header = DataHeader {
                    id,
                    offset: sent as u64,
                    total: message.len() as u64,
                };
                self.queued_bytes = self.queued_bytes.saturating_sub(payload.len() as u64);
                if end < message.len() {
                    let rest = Entry::Chunked {
                        id,
                        message,
                        sent: end,
                    };
                    if self.fifo {
                        self.rotation.push_front(rest);
                    } else {
                        self.rotation.push_back(rest);
                    }
                } else {
                    self.active = self.active.saturating_sub(1);
                    self.active_bytes = self.active_bytes.saturating_sub(message.len() as u64);
                }
                Some(Transmit::Binary(BinaryFrame::data(header, payload)))
            }
        }
    }

    /// Bytes of message data not yet emitted.
    #[must_use]
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// Messages not yet fully emitted.
    #[must_use]
    pub fn queued_messages(&self) -> usize {
        self.rotation.len().saturating_add(self.waiting.len())
    }

    /// Whether nothing is left to emit.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.control.is_empty() && self.rotation.is_empty() && self.waiting.is_empty()
    }

    /// Whether chunked messages are held back until the peer's limits are
    /// known.
    #[must_use]
    pub fn is_waiting_for_peer(&self) -> bool {
        self.peer.is_none() && !self.waiting.is_empty()
    }
}
