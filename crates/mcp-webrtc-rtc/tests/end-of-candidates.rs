//! Signaling whose dialect cannot carry end-of-candidates (aiortc's: the
//! send fails with `Unrepresentable`) is still read after that send: the
//! peer's candidates that come later are taken. Taking the refusal for lost
//! signaling made both sides stop reading, and on a loaded machine a
//! set-up on loopback could end with no candidate pair at all. Every peer
//! binds 127.0.0.1 only.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use mcp_webrtc_rtc::{PeerConfig, connect};
use mcp_webrtc_signaling::{Dialect, Error, MemorySignaling, SignalMessage, Signaling};
use tokio::sync::Notify;

const T: Duration = Duration::from_secs(30);

fn loopback(config: PeerConfig) -> PeerConfig {
    config.with_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

/// As the aiortc dialect: end-of-candidates cannot be sent. The peer's
/// candidates are held back until this side has tried to send its own
/// end-of-candidates, so they can only be read after that refusal.
struct NoEndOfCandidates {
    inner: MemorySignaling,
    refused: Arc<Notify>,
    refused_once: bool,
    held: Vec<SignalMessage>,
}

impl Signaling for NoEndOfCandidates {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        if matches!(message, SignalMessage::EndOfCandidates) {
            self.refused_once = true;
            self.refused.notify_one();
            return Box::pin(async {
                Err(Error::Unrepresentable {
                    dialect: Dialect::Aiortc,
                    what: "end-of-candidates",
                })
            });
        }
        self.inner.send(message)
    }
    fn recv(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<Option<SignalMessage>>> {
        Box::pin(async move {
            loop {
                if self.refused_once && !self.held.is_empty() {
                    return Ok(Some(self.held.remove(0)));
                }
                tokio::select! {
                    message = self.inner.recv() => match message? {
                        Some(c @ SignalMessage::Candidate { .. }) if !self.refused_once => self.held.push(c),
                        other => return Ok(other),
                    },
                    () = self.refused.notified(), if !self.refused_once => {}
                    () = std::future::ready(()), if self.refused_once && !self.held.is_empty() => {}
                }
            }
        })
    }
    fn close(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        self.inner.close()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_after_an_unrepresentable_end_of_candidates_are_still_taken() {
    let (a, b) = MemorySignaling::pair();
    let answering = NoEndOfCandidates {
        inner: b,
        refused: Arc::new(Notify::new()),
        refused_once: false,
        held: Vec::new(),
    };
    let (offerer, answerer) = tokio::time::timeout(T, async {
        tokio::join!(
            connect(loopback(PeerConfig::offerer()), a),
            connect(loopback(PeerConfig::answerer()), answering)
        )
    })
    .await
    .unwrap();
    let (offerer, answerer) = (offerer.unwrap(), answerer.unwrap());
    // The offerer's candidates reach the answerer only after its refused
    // end-of-candidates; they must still be read (during set-up or after).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stats = answerer.stats().await;
        if stats.remote_candidates >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the answerer stopped reading signaling: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    offerer.close().await;
    answerer.close().await;
}
