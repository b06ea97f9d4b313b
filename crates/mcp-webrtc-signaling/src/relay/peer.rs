//! One room peer's task: its reading and writing halves, run apart, and the
//! queue between the relay and its socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::rooms::{Counted, Forward, Joiner, Outcome, Peer, enqueue};
use super::{Shared, Socket, close};
use crate::relay_protocol::{
    CLOSE_IDLE, CLOSE_INTERNAL, CLOSE_SHUTDOWN, CLOSE_UNAVAILABLE, RelayMessage,
};

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

/// The writing half of a room peer: what was held for it, then its queue,
/// until the reading half ends the session; then what is still queued (the
/// partner's last messages, its bye) and the close frame, or, when the peer
/// closed, the reply to its close. Returns early if a write fails or times
/// out: the peer is not reading.
async fn write_half(
    mut sink: Sink,
    held: Vec<String>,
    mut queue: mpsc::Receiver<Counted>,
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
            counted = queue.recv() => match counted {
                // `counted` stays alive (and counted) until the write is done.
                Some(mut counted) => {
                    if !send(&mut sink, counted.take()).await {
                        return;
                    }
                }
                None => break (CLOSE_INTERNAL, "relay error".into()),
            },
        }
    };
    let (code, reason) = outcome;
    let closing = async {
        if code == 0 {
            // The peer closed: nothing more can be sent but the reply to its
            // close frame, which tungstenite flushes on close.
            let _ = sink.close().await;
            return;
        }
        // What was queued before the end goes out first: no more can come
        // (the queue is closed), and each write is bounded.
        queue.close();
        while let Ok(mut counted) = queue.try_recv() {
            if !send(&mut sink, counted.take()).await {
                return;
            }
        }
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            sink.send(Message::Close(Some(frame))),
        )
        .await;
    };
    closing.await;
}

/// The reading half of a room peer: forwards what it sends, until it
/// leaves, is told to close, goes idle, or the relay stops. Its notices go
/// through its own queue (dropped if that is full: it is not reading).
async fn read_half(
    mut stream: Stream,
    room: &str,
    id: u64,
    own: (&mpsc::Sender<Counted>, &Arc<AtomicUsize>),
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
    let (tx, rx) = mpsc::channel::<Counted>(config.max_pending.max(8));
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
    let writer = write_half(sink, held, rx, end_rx);
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
