//! The inbound reassembler: DATA frames in, whole messages out, bounded.
//!
//! A message's first frame (offset 0) announces its total length. The
//! reassembler checks it against its limits, reserves exactly that many
//! bytes, and copies each payload into place, so each byte is copied once.
//! A message is in flight from its first frame to its last.
//!
//! Bounds, all checked before any memory is reserved:
//! - a message's total length is at most `max_message_size`;
//! - at most `max_in_flight` messages are in flight;
//! - the totals of the messages in flight add up to at most
//!   `max_buffered_bytes`.
//!
//! Any error that concerns a message in flight (a duplicate, a gap, a changed
//! total) discards that message and frees its buffer. Later frames of a
//! refused or discarded message are skipped without further errors, up to
//! its last frame; the set of such messages is bounded too.
//!
//! A message that stops making progress expires: [`Reassembler::expire`]
//! drops every message whose last frame is older than a timeout, frees its
//! buffer and skips its remaining frames. The reassembler has no clock; the
//! caller passes the time of each frame and of each expiry check.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::wire::{DataHeader, FrameError, Limits};

#[derive(Debug)]
struct Partial {
    buf: Vec<u8>,
    total: u64,
    /// When its last frame arrived.
    last: Instant,
}

/// How many refused messages we remember, to skip their remaining frames
/// quietly, at most.
const MAX_DISCARDING: usize = 1024;

/// Bounded reassembler for DATA frames.
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    partial: HashMap<u32, Partial>,
    /// Refused messages whose remaining frames are skipped, with their total.
    discarding: HashMap<u32, u64>,
    buffered: u64,
}

impl Reassembler {
    /// A reassembler enforcing `limits` (our own, as announced in our HELLO).
    #[must_use]
    pub fn new(limits: Limits) -> Reassembler {
        Reassembler {
            limits,
            partial: HashMap::new(),
            discarding: HashMap::new(),
            buffered: 0,
        }
    }

    /// The limits this reassembler enforces.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Messages currently in flight.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.partial.len()
    }

    /// Bytes reserved for messages in flight.
    #[must_use]
    pub fn buffered_bytes(&self) -> u64 {
        self.buffered
    }

    /// Take one DATA frame. Returns the message it completes, if any.
    ///
    /// The payload must be non-empty and lie within `total`, as
    /// [`Frame::parse`](crate::wire::Frame::parse) guarantees; it is checked
    /// again here.
    ///
    /// # Errors
    /// A typed error naming what was wrong with the frame; the session can
    /// go on after any of them.
    pub fn receive(
        &mut self,
        header: DataHeader,
        payload: &[u8],
        now: Instant,
    ) -> Result<Option<Bytes>> {
        let DataHeader { id, offset, total } = header;
        let len = payload.len() as u64;
        // The same checks as Frame::parse, for callers that build headers
        // themselves: a payload never grows a message past its total.
        if len == 0 {
            return Err(FrameError::EmptyPayload { id, offset }.into());
        }
        let Some(end) = offset.checked_add(len).filter(|&end| end <= total) else {
            return Err(FrameError::FrameOverrun {
                id,
                offset,
                len,
                total,
            }
            .into());
        };

        if let Some(partial) = self.partial.get_mut(&id) {
            let have = partial.buf.len() as u64;
            let problem = if partial.total != total {
                Some(Error::TotalMismatch {
                    id,
                    total,
                    expected: partial.total,
                })
            } else if offset < have {
                Some(Error::DuplicateFrame {
                    id,
                    offset,
                    expected: have,
                })
            } else if offset > have {
                Some(Error::OutOfOrderFrame {
                    id,
                    offset,
                    expected: have,
                })
            } else {
                None
            };
            if let Some(error) = problem {
                let total = partial.total;
                self.abort(id);
                // Skip the rest of this message unless this frame was its last.
                if end < total {
                    self.discard(id, total);
                }
                return Err(error);
            }
            partial.buf.extend_from_slice(payload);
            partial.last = now;
            if end < total {
                return Ok(None);
            }
            let done = self.partial.remove(&id).map(|p| p.buf).unwrap_or_default();
            self.buffered = self.buffered.saturating_sub(total);
            return Ok(Some(Bytes::from(done)));
        }

        if offset > 0 {
            if let Some(&discard_total) = self.discarding.get(&id) {
                if end >= discard_total {
                    self.discarding.remove(&id);
                }
                return Ok(None);
            }
            return Err(Error::UnknownMessage { id, offset });
        }

        // A first frame: a new message (reusing the id of a refused one is fine).
        self.discarding.remove(&id);
        let refuse = if total > self.limits.max_message_size {
            Some(Error::MessageTooLarge {
                size: total,
                limit: self.limits.max_message_size,
            })
        } else if self.partial.len() >= self.limits.max_in_flight as usize {
            Some(Error::TooManyInFlight {
                id,
                limit: self.limits.max_in_flight,
            })
        } else if self.buffered.saturating_add(total) > self.limits.max_buffered_bytes {
            Some(Error::BufferLimitExceeded {
                id,
                requested: total,
                buffered: self.buffered,
                limit: self.limits.max_buffered_bytes,
            })
        } else {
            None
        };
        if let Some(error) = refuse {
            if end < total {
                self.discard(id, total);
            }
            return Err(error);
        }
        if end >= total {
            // The whole message in one frame.
            return Ok(Some(Bytes::copy_from_slice(payload)));
        }
        // `total` is bounded by max_message_size, which the caller chose to
        // be addressable; a total that does not fit usize cannot get here on
        // 64-bit targets, and is refused on 32-bit ones.
        let Ok(capacity) = usize::try_from(total) else {
            return Err(Error::MessageTooLarge {
                size: total,
                limit: usize::MAX as u64,
            });
        };
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(payload);
        self.buffered = self.buffered.saturating_add(total);
        self.partial.insert(
            id,
            Partial {
                buf,
                total,
                last: now,
            },
        );
        Ok(None)
    }

    /// When the oldest-progressing message in flight expires, given
    /// `timeout`: its last frame's time plus `timeout`. `None` when nothing
    /// is in flight, or when that instant is past what the clock can hold
    /// (the timeout is, in effect, never).
    #[must_use]
    pub fn next_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.partial
            .values()
            .map(|p| p.last)
            .min()
            .and_then(|last| last.checked_add(timeout))
    }

    /// Drop every message in flight whose last frame is `timeout` or more
    /// before `now`: free its buffer, skip its remaining frames, and return
    /// an [`Error::PartialTimeout`] for each (at most `max_in_flight`).
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<Error> {
        let stale: Vec<u32> = self
            .partial
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last) >= timeout)
            .map(|(&id, _)| id)
            .collect();
        let mut errors = Vec::with_capacity(stale.len());
        for id in stale {
            if let Some(p) = self.partial.remove(&id) {
                self.buffered = self.buffered.saturating_sub(p.total);
                self.discard(id, p.total);
                errors.push(Error::PartialTimeout {
                    id,
                    received: p.buf.len() as u64,
                    total: p.total,
                    after: timeout,
                });
            }
        }
        errors
    }

    fn abort(&mut self, id: u32) {
        if let Some(p) = self.partial.remove(&id) {
            self.buffered = self.buffered.saturating_sub(p.total);
        }
    }

    fn discard(&mut self, id: u32, total: u64) {
        if self.discarding.len() >= MAX_DISCARDING
            && let Some(&old) = self.discarding.keys().next()
        {
            self.discarding.remove(&old);
        }
        self.discarding.insert(id, total);
    }
}
