//! The receiving half shared by the untyped [`MessageChannel`] and the rmcp
//! transport: reads the data channel, runs the framer and its timers, and
//! decodes whole messages (off the async worker when they are large).
//!
//! [`MessageChannel`]: crate::MessageChannel

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::end::EndReason;
use super::jsonrpc::Malformed;
use super::shared::{Framed, Shared};
use super::stats::bump;

/// What a receiver hands over, and how it is read from one whole message.
pub(crate) trait Decode: Send + 'static {
    /// One received message.
    type Item: Send + 'static;
    /// Decode one whole message: the item, and the id of the request it
    /// answers (for a response or an error), or why it is malformed.
    fn decode(bytes: Bytes) -> Result<(Self::Item, Option<Value>), Malformed>;
    /// A message we made up (a "peer gone" error) as an item.
    fn synthetic(value: Value) -> Option<Self::Item>;
}

/// A message decoded off the async worker: its size, and what it was.
type Decoding<D> = JoinHandle<(
    usize,
    Result<(<D as Decode>::Item, Option<Value>), Malformed>,
)>;

pub(crate) struct Receiver<D: Decode> {
    pub(crate) shared: Arc<Shared>,
    /// The session has ended: hand over made-up errors, then `None`.
    done: bool,
    /// A large message being decoded on a blocking thread. Kept here, so
    /// that a cancelled `receive` finds it again.
    decoding: Option<Decoding<D>>,
}

impl<D: Decode> Receiver<D> {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Receiver {
            shared,
            done: false,
            decoding: None,
        }
    }

    fn pop_synthetic(&self) -> Option<D::Item> {
        // Bounded by the queue's length; every entry is one we built.
        while let Some(value) = self.shared.pop_synthetic() {
            match D::synthetic(value) {
                Some(item) => return Some(item),
                None => tracing::error!("a made-up error response did not decode"),
            }
        }
        None
    }

    /// A decoded message is handed over; one that did not decode is dealt
    /// with as malformed (what it was was worked out with the decode).
    fn accept(
        &self,
        size: usize,
        decoded: Result<(D::Item, Option<Value>), Malformed>,
    ) -> Option<D::Item> {
        let (item, answered) = match decoded {
            Ok(decoded) => decoded,
            Err(bad) => {
                self.shared.malformed(size, &bad);
                return None;
            }
        };
        bump(&self.shared.counters.messages_received, 1);
        if let Some(id) = answered {
            self.shared.out().answered(&id);
        }
        Some(item)
    }

    /// The next whole message, `None` once the session has ended (after the
    /// made-up errors). Cancel-safe: its awaits are the channel's own
    /// cancel-safe `recv`, timers, notifications, and a decode whose handle
    /// it keeps; what follows each is synchronous.
    pub(crate) async fn next(&mut self) -> Option<D::Item> {
        // Bounded: each pass returns, marks the session done (once), or
        // waits for the channel, a timer or a wake-up.
        loop {
            if let Some(decoding) = &mut self.decoding {
                // Cancel-safe: a dropped `receive` leaves the handle here.
                let joined = decoding.await;
                self.decoding = None;
                match joined {
                    Ok((size, decoded)) => {
                        if let Some(item) = self.accept(size, decoded) {
                            return Some(item);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "decoding a message failed"),
                }
                continue;
            }
            if let Some(item) = self.pop_synthetic() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            let shared = Arc::clone(&self.shared);
            // While replies back up, nothing is read, and the framer's timers
            // wait too (frames that would keep a message alive sit unread).
            let (backed_up, timer) = {
                let out = shared.out();
                let full = out.replies_full();
                let timer = if full {
                    None
                } else {
                    out.framer.poll_timeout()
                };
                (full, timer.map(Instant::from_std))
            };
            // A timer that is due fires before the next read, so a peer that
            // keeps sending cannot starve it.
            if timer.is_some_and(|t| t <= Instant::now()) {
                shared.handle_timeout();
                continue;
            }
            if shared.cancel.is_cancelled() {
                // Ended elsewhere (a failed send, or closed).
                shared.finish(EndReason::Closed);
                self.done = true;
                continue;
            }
            let incoming = if backed_up || timer.is_some() {
                tokio::select! {
                    // Frames already waiting are read before a timer fires.
                    biased;
                    () = shared.synthetic_wake.notified() => continue,
                    incoming = shared.conn.recv(), if !backed_up => incoming,
                    () = shared.reply_room.notified(), if backed_up => continue,
                    () = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                        shared.handle_timeout();
                        continue;
                    }
                }
            } else {
                // The common case (no timer, replies not backed up): only the
                // channel and the wake-up that `finish` and made-up errors
                // send, so that a `receive` rmcp drops and makes again is
                // cheap.
                tokio::select! {
                    biased;
                    () = shared.synthetic_wake.notified() => continue,
                    incoming = shared.conn.recv() => incoming,
                }
            };
            match shared.frame(incoming) {
                Framed::Message(bytes) if bytes.len() >= shared.settings.parse_off_thread => {
                    // A large message would hold this worker for
                    // milliseconds: decode it (and, if it is malformed, work
                    // out why) on a blocking thread.
                    self.decoding = Some(tokio::task::spawn_blocking(move || {
                        (bytes.len(), D::decode(bytes))
                    }));
                }
                Framed::Message(bytes) => {
                    let size = bytes.len();
                    if let Some(item) = self.accept(size, D::decode(bytes)) {
                        return Some(item);
                    }
                }
                Framed::Nothing => {}
                Framed::End(reason) => {
                    shared.finish(reason);
                    self.done = true;
                }
            }
        }
    }
}

impl<D: Decode> Drop for Receiver<D> {
    fn drop(&mut self) {
        if let Some(decoding) = self.decoding.take() {
            decoding.abort();
        }
    }
}
