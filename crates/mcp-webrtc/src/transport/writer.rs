//! The writer task: moves queued messages into the framer, in call order,
//! and puts the framer's output on the data channel, one frame at a time,
//! under the channel's backpressure.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use mcp_webrtc_core::Transmit;
use mcp_webrtc_rtc::Connection;

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

pub(crate) async fn write_loop(shared: Arc<Shared>) {
    // Bounded: each pass sends one frame, or waits for work or the end.
    loop {
        // Once the session has ended nothing more goes out, even if the
        // framer still holds frames and each send would be done at once.
        if shared.cancel.is_cancelled() {
            return;
        }
        let transmit = {
            let mut out = shared.out();
            shared.refill(&mut out);
            let transmit = out.framer.poll_transmit();
            if transmit.is_some() {
                shared.writing.store(true, Ordering::Release);
            }
            transmit
        };
        let Some(transmit) = transmit else {
            // `finish` cancels, then wakes this task: the wake-up is enough
            // (a permit is kept if this task is not waiting yet), and one
            // waiter costs less than two each time the queue runs dry.
            shared.writer_wake.notified().await;
            continue;
        };
        let len = transmit.len() as u64;
        let sent = tokio::select! {
            // The send first: one that is done at once never registers
            // with the cancellation token.
            biased;
            sent = send_transmit(&shared.conn, transmit) => sent,
            () = shared.cancel.cancelled() => return,
        };
        shared.writing.store(false, Ordering::Release);
        match sent {
            Ok(()) => {
                bump(&shared.counters.bytes_sent, len);
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
                return;
            }
        }
    }
}
