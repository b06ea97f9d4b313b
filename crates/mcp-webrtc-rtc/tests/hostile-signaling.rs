//! Signaling that misbehaves around real peer connections on loopback: it
//! is lost after the SDP exchange (not a bye), or it floods the peer with
//! ICE candidates. Every peer binds 127.0.0.1 only, and the injected
//! candidates name closed loopback ports, so no traffic leaves loopback.
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use mcp_webrtc_rtc::{Connection, Incoming, MAX_REMOTE_CANDIDATES, PeerConfig, connect};
use mcp_webrtc_signaling::{Error, MemorySignaling, SignalMessage, Signaling};
use tokio::sync::Notify;

const T: Duration = Duration::from_secs(30);

fn loopback(config: PeerConfig) -> PeerConfig {
    config.with_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

/// Signaling that is lost right after it has delivered the answer: `recv`
/// fails with `PeerClosed` once, then gives `Ok(None)` (as every backend
/// does after a loss), and sends fail.
struct LostAfterAnswer {
    inner: MemorySignaling,
    lost: Arc<AtomicBool>,
    reported: bool,
}

impl Signaling for LostAfterAnswer {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        if self.lost.load(Ordering::SeqCst) {
            return Box::pin(async { Err(Error::Closed) });
        }
        self.inner.send(message)
    }
    fn recv(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<Option<SignalMessage>>> {
        Box::pin(async move {
            if self.lost.load(Ordering::SeqCst) {
                if self.reported {
                    return Ok(None);
                }
                self.reported = true;
                return Err(Error::PeerClosed);
            }
            let message = self.inner.recv().await?;
            if matches!(message, Some(SignalMessage::Answer(_))) {
                self.lost.store(true, Ordering::SeqCst);
            }
            Ok(message)
        })
    }
    fn close(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

async fn round_trip(a: &Connection, b: &Connection, text: &str) {
    a.send_text(text).await.unwrap();
    let got = tokio::time::timeout(T, b.recv()).await.unwrap().unwrap();
    assert_eq!(got, Some(Incoming::Text(text.as_bytes().to_vec().into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_lost_after_the_exchange_is_not_a_bye() {
    let (a, b) = MemorySignaling::pair();
    let lost = Arc::new(AtomicBool::new(false));
    let a = LostAfterAnswer {
        inner: a,
        lost: Arc::clone(&lost),
        reported: false,
    };
    // The offerer puts its candidates in the offer (no trickle): what is
    // lost after the answer is then only the answerer's candidates, which
    // ICE does without (the answerer's checks reveal it). With trickle, a
    // loaded machine may gather the offerer's only candidate after the loss,
    // and no pair can form: that is ICE failing, not the session ending.
    let (offerer, answerer) = tokio::time::timeout(T, async {
        tokio::join!(
            connect(loopback(PeerConfig::offerer().with_trickle(false)), a),
            connect(loopback(PeerConfig::answerer()), b)
        )
    })
    .await
    .unwrap();
    assert!(
        lost.load(Ordering::SeqCst),
        "the offerer's signaling was lost"
    );
    let (offerer, answerer) = (offerer.unwrap(), answerer.unwrap());
    // Long after the loss (well past the 300 ms a bye allows for draining),
    // the session runs both ways: a lost signaling channel ended nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    round_trip(&offerer, &answerer, "after the loss").await;
    round_trip(&answerer, &offerer, "and back").await;
    let silent = tokio::time::timeout(Duration::from_millis(500), offerer.recv()).await;
    assert!(silent.is_err(), "recv waits; it did not end: {silent:?}");
    offerer.close().await;
    answerer.close().await;
}

/// Signaling that, on request, hands its side `pending` made-up candidates
/// (closed loopback ports) before anything real.
struct Flooding {
    inner: MemorySignaling,
    pending: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    /// Start flooding once the answer has been delivered.
    after_answer: usize,
    next_port: u16,
}

impl Flooding {
    fn bogus(&mut self) -> SignalMessage {
        self.next_port = self.next_port.wrapping_add(1);
        SignalMessage::Candidate {
            candidate: format!(
                "candidate:{port} 1 udp 2130706431 127.0.0.1 {port} typ host",
                port = self.next_port
            ),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        }
    }
}

impl Signaling for Flooding {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        self.inner.send(message)
    }
    fn recv(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<Option<SignalMessage>>> {
        Box::pin(async move {
            loop {
                if self
                    .pending
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return Ok(Some(self.bogus()));
                }
                tokio::select! {
                    message = self.inner.recv() => {
                        let message = message?;
                        if matches!(message, Some(SignalMessage::Answer(_))) {
                            self.pending.fetch_add(self.after_answer, Ordering::SeqCst);
                        }
                        return Ok(message);
                    }
                    () = self.wake.notified() => {}
                }
            }
        })
    }
    fn close(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        self.inner.close()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_remote_candidates_is_cut_at_the_limit() {
    let (a, b) = MemorySignaling::pair();
    let pending = Arc::new(AtomicUsize::new(0));
    let wake = Arc::new(Notify::new());
    let a = Flooding {
        inner: a,
        pending: Arc::clone(&pending),
        wake: Arc::clone(&wake),
        after_answer: 200,
        next_port: 20_000,
    };
    let (offerer, answerer) = tokio::time::timeout(T, async {
        tokio::join!(
            connect(loopback(PeerConfig::offerer()), a),
            connect(loopback(PeerConfig::answerer()), b)
        )
    })
    .await
    .unwrap();
    let (offerer, answerer) = (offerer.unwrap(), answerer.unwrap());

    // 200 more once the channel is open: the limit holds after set-up too.
    pending.fetch_add(200, Ordering::SeqCst);
    wake.notify_one();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let stats = offerer.stats().await;
        if pending.load(Ordering::SeqCst) == 0 && stats.remote_candidates_ignored >= 336 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood was not taken: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = offerer.stats().await;
    assert_eq!(stats.remote_candidates, MAX_REMOTE_CANDIDATES, "{stats:?}");
    assert!(
        stats.remote_candidates_ignored >= 400 - MAX_REMOTE_CANDIDATES,
        "{stats:?}"
    );
    round_trip(&offerer, &answerer, "still connected").await;
    offerer.close().await;
    answerer.close().await;
}

/// Signaling that rewrites the fingerprint in the answer it delivers: the
/// SDP then names the pinned certificate, while the peer presents its own.
struct RewriteFingerprint {
    inner: MemorySignaling,
    to: String,
}

impl Signaling for RewriteFingerprint {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        self.inner.send(message)
    }
    fn recv(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<Option<SignalMessage>>> {
        Box::pin(async move {
            Ok(match self.inner.recv().await? {
                Some(SignalMessage::Answer(sdp)) => {
                    let rewritten: Vec<String> = sdp
                        .split("\r\n")
                        .map(|line| {
                            if line.starts_with("a=fingerprint:") {
                                format!("a=fingerprint:{}", self.to)
                            } else {
                                line.to_owned()
                            }
                        })
                        .collect();
                    Some(SignalMessage::Answer(rewritten.join("\r\n")))
                }
                other => other,
            })
        })
    }
    fn close(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        self.inner.close()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_other_than_the_pinned_one_is_refused_in_dtls() {
    // What a relay that swapped in its own SDP would show: the pinned
    // fingerprint in the answer, and a DTLS peer with another certificate.
    let pinned = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    let (a, b) = MemorySignaling::pair();
    let a = RewriteFingerprint {
        inner: a,
        to: pinned.to_owned(),
    };
    let (offerer, answerer) = tokio::time::timeout(T, async {
        tokio::join!(
            connect(
                loopback(PeerConfig::offerer())
                    .with_remote_fingerprint(pinned)
                    .with_handshake_timeout(Duration::from_secs(4)),
                a
            ),
            connect(
                loopback(PeerConfig::answerer()).with_handshake_timeout(Duration::from_secs(4)),
                b
            )
        )
    })
    .await
    .unwrap();
    let e = offerer.expect_err("the offerer must refuse the peer's certificate");
    assert_eq!(e.phase(), Some(mcp_webrtc_rtc::Phase::Dtls), "{e}");
    assert!(e.to_string().contains("fingerprint"), "{e}");
    assert!(
        answerer.is_err(),
        "no channel opens on the other side either"
    );
}
