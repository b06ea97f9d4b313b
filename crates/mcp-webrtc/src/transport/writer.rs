//! Putting the framer's output on the data channel, one frame at a time,
//! under the channel's backpressure. One writer at a time holds the
//! channel (`Shared::writing`, taken under the outbound lock, so frames
//! leave in the framer's order):
//! - a **send future** that finds the channel idle writes its message's
//!   first frame itself (the hot path: no hand-off to another task);
//! - the **writer task** writes everything else: frames of large messages,
//!   messages that waited for room, replies we make up, and whatever a
//!   direct write left behind.
//!
//! A direct write that is cancelled part way (rmcp drops send futures) is
//! moved onto a task of its own and finishes there: the stack's send cannot
//! say whether a cancelled send went out, so it is never cancelled.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::BytesMut;
use mcp_webrtc_core::Transmit;
use mcp_webrtc_rtc::Connection;
use tracing::Instrument;

use super::end::{EndReason, end_of};
use super::shared::Shared;
use super::stats::bump;

/// Send what the framer produced: text as a text message, a frame as one
/// binary message (one copy, into the channel's buffer).
async fn send_transmit(conn: &Connection, transmit: Transmit) -> mcp_webrtc_rtc::Result<()> {
    match transmit {
        Transmit::Text(bytes) => {
            // The framer only emits text it checked is UTF-8.
            let text =
                std::str::from_utf8(&bytes).map_err(|e| mcp_webrtc_rtc::Error::InvalidConfig {
                    reason: format!("text message is not UTF-8: {e}"),
                })?;
            conn.send_text(text).await
        }
        Transmit::Binary(frame) => {
            let mut buf = BytesMut::with_capacity(frame.len());
            frame.write_to(&mut buf);
            conn.send_binary(buf).await
        }
    }
}

impl Shared {
    /// Take the channel and the next frame, if the channel is idle and the
    /// framer has one (after moving waiting messages and replies in).
    fn take_transmit(&self) -> Option<Transmit> {
        let mut out = self.out();
        if self.writing.load(Ordering::Acquire) {
            return None;
        }
        self.refill(&mut out);
        let transmit = out.framer.poll_transmit()?;
        self.writing.store(true, Ordering::Release);
        Some(transmit)
    }

    /// Give the channel back; wake the writer task if anything is left.
    fn release(&self) {
        self.writing.store(false, Ordering::Release);
        if !self.out().is_empty() {
            self.writer_wake.notify_one();
        }
    }
}

/// Write one frame the caller took with `take_transmit`; `false` when the
/// session ended on it.
async fn write_one(shared: &Shared, transmit: Transmit) -> bool {
    let len = transmit.len() as u64;
    let sent = tokio::select! {
        sent = send_transmit(&shared.conn, transmit) => sent,
        () = shared.cancel.cancelled() => return false,
    };
    match sent {
        Ok(()) => {
            bump(&shared.counters.bytes_sent, len);
            true
        }
        Err(e) => {
            let reason = match e {
                // The framer keeps frames within the channel's limit, so
                // the stack's limit is below what the SDP said. A frame
                // cannot be skipped (the peer's reassembly would break),
                // so the session fails rather than lose it.
                mcp_webrtc_rtc::Error::MessageTooLarge { .. }
                | mcp_webrtc_rtc::Error::SendTimeout { .. }
                | mcp_webrtc_rtc::Error::InvalidConfig { .. } => EndReason::SendFailed {
                    reason: e.to_string(),
                },
                other => end_of(other),
            };
            shared.finish(reason);
            false
        }
    }
}

pub(crate) async fn write_loop(shared: Arc<Shared>) {
    // Bounded: each pass sends one frame, or waits for work or the end.
    loop {
        let Some(transmit) = shared.take_transmit() else {
            tokio::select! {
                () = shared.writer_wake.notified() => {}
                () = shared.cancel.cancelled() => return,
            }
            continue;
        };
        let ok = write_one(&shared, transmit).await;
        shared.writing.store(false, Ordering::Release);
        if !ok {
            return;
        }
    }
}

/// What a send future owes for a message the framer took at once: a direct
/// write, or else a wake-up of the writer task. Dropped unused (the future
/// was never polled to that point), it wakes the writer.
pub(crate) struct WakeOnDrop(Option<Arc<Shared>>);

impl WakeOnDrop {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        WakeOnDrop(Some(shared))
    }

    /// Write the next frame now if the channel is idle; otherwise whoever
    /// holds it carries on (and wakes the writer task when done).
    pub(crate) async fn write_now(mut self) {
        let Some(shared) = self.0.take() else {
            return;
        };
        if let Some(transmit) = shared.take_transmit() {
            DirectWrite::start(shared, transmit).await;
        }
    }
}

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.writer_wake.notify_one();
        }
    }
}

type Write = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A frame being written by a send future. If the future is dropped first,
/// the write goes on on a task of its own.
struct DirectWrite {
    write: Option<Write>,
    shared: Arc<Shared>,
}

impl DirectWrite {
    fn start(shared: Arc<Shared>, transmit: Transmit) -> Self {
        let span = shared.span.clone();
        let owner = Arc::clone(&shared);
        let write = async move {
            let _ = write_one(&owner, transmit).await;
            owner.release();
        }
        .instrument(span);
        DirectWrite {
            write: Some(Box::pin(write)),
            shared,
        }
    }
}

impl Future for DirectWrite {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(write) = self.write.as_mut() {
            if write.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.write = None;
        }
        Poll::Ready(())
    }
}

impl Drop for DirectWrite {
    fn drop(&mut self) {
        let Some(write) = self.write.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(write);
        } else {
            // No runtime left to finish it on: the process is shutting
            // down, and the session with it.
            drop(write);
            self.shared.finish(EndReason::SendFailed {
                reason: "a write was cut short outside the runtime".into(),
            });
            self.shared.writing.store(false, Ordering::Release);
        }
    }
}
