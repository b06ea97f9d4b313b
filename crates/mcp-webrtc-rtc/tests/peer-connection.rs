//! Real peer connections on loopback: set-up in trickle and non-trickle
//! modes, messages, limits, backpressure, liveness, close, and failures.
//!
//! Every peer binds 127.0.0.1 only, so no traffic leaves loopback.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::future::BoxFuture;
use mcp_webrtc_rtc::{
    Connection, Error, IcePolicy, IceServer, Incoming, PeerConfig, Phase, connect,
};
use mcp_webrtc_signaling::{MemorySignaling, SignalMessage, Signaling};

const T: Duration = Duration::from_secs(30);

fn loopback(config: PeerConfig) -> PeerConfig {
    config.with_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

/// Records what one side sends.
struct Recording<S> {
    inner: S,
    sent: Arc<Mutex<Vec<SignalMessage>>>,
}

impl<S: Signaling> Signaling for Recording<S> {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        self.sent.lock().unwrap().push(message.clone());
        self.inner.send(message)
    }
    fn recv(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<Option<SignalMessage>>> {
        self.inner.recv()
    }
    fn close(&mut self) -> BoxFuture<'_, mcp_webrtc_signaling::Result<()>> {
        self.inner.close()
    }
}

type Log = Arc<Mutex<Vec<SignalMessage>>>;

async fn pair_with(
    offerer: PeerConfig,
    answerer: PeerConfig,
) -> (Connection, Connection, Log, Log) {
    let (a, b) = MemorySignaling::pair();
    let (la, lb) = (Log::default(), Log::default());
    let a = Recording {
        inner: a,
        sent: Arc::clone(&la),
    };
    let b = Recording {
        inner: b,
        sent: Arc::clone(&lb),
    };
    let (x, y) = tokio::time::timeout(T, async {
        tokio::join!(
            connect(loopback(offerer), a),
            connect(loopback(answerer), b)
        )
    })
    .await
    .expect("set-up finishes");
    (x.unwrap(), y.unwrap(), la, lb)
}

async fn pair() -> (Connection, Connection) {
    let (a, b, _, _) = pair_with(PeerConfig::offerer(), PeerConfig::answerer()).await;
    (a, b)
}

fn candidates(log: &Log) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|m| matches!(m, SignalMessage::Candidate { .. }))
        .count()
}

fn description(log: &Log) -> String {
    log.lock()
        .unwrap()
        .iter()
        .find_map(|m| match m {
            SignalMessage::Offer(s) | SignalMessage::Answer(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickle_both_sides_carries_200_kib_each_way() {
    let (server, client, server_log, client_log) =
        pair_with(PeerConfig::offerer(), PeerConfig::answerer()).await;
    assert!(candidates(&server_log) > 0, "the offerer trickled");
    assert!(candidates(&client_log) > 0, "the answerer trickled");
    // Defaults: channel mcp, no protocol string, 262144 advertised both
    // ways.
    for c in [&server, &client] {
        assert_eq!(c.info().label, "mcp");
        assert_eq!(c.info().protocol, "");
        assert_eq!(c.info().max_message_size, 262_144);
        assert_eq!(c.info().remote_max_message_size, Some(262_144));
    }
    let down = "d".repeat(200 * 1024);
    let up = vec![7u8; 200 * 1024];
    server.send_text(&down).await.unwrap();
    client.send_binary(BytesMut::from(&up[..])).await.unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        Some(Incoming::Text(down.into()))
    );
    assert_eq!(
        server.recv().await.unwrap(),
        Some(Incoming::Binary(up.into()))
    );
    let stats = client.stats().await;
    assert!(stats.bytes_received > 200 * 1024, "{stats:?}");
    assert!(stats.selected_pair.unwrap().contains("127.0.0.1"));
    server.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_trickle_puts_every_candidate_in_the_sdp() {
    let (server, client, server_log, client_log) = pair_with(
        PeerConfig::offerer().with_trickle(false),
        PeerConfig::answerer().with_trickle(false),
    )
    .await;
    assert_eq!(
        candidates(&server_log),
        0,
        "no candidate messages, like aiortc"
    );
    assert_eq!(candidates(&client_log), 0);
    assert!(description(&server_log).contains("a=candidate:"));
    assert!(description(&client_log).contains("a=candidate:"));
    server.send_text("{}").await.unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        Some(Incoming::Text("{}".into()))
    );
    server.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_offerer_meets_a_non_trickle_answerer() {
    let (server, client, _, client_log) = pair_with(
        PeerConfig::offerer(),
        PeerConfig::answerer().with_trickle(false),
    )
    .await;
    assert_eq!(candidates(&client_log), 0);
    client.send_text("up").await.unwrap();
    assert_eq!(
        server.recv().await.unwrap(),
        Some(Incoming::Text("up".into()))
    );
    server.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answerer_takes_any_label_and_reads_the_protocol() {
    let (server, client, _, _) = pair_with(
        PeerConfig::offerer().with_label("7f3a9c").with_protocol(""),
        PeerConfig::answerer(),
    )
    .await;
    assert_eq!(client.info().label, "7f3a9c");
    assert_eq!(client.info().protocol, "");
    server.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_is_refused_with_its_size_and_the_limit() {
    let (server, client, _, _) = pair_with(
        PeerConfig::offerer(),
        PeerConfig::answerer().with_max_message_size(65_536),
    )
    .await;
    // min(local, remote) both ways.
    assert_eq!(server.info().max_message_size, 65_536);
    assert_eq!(server.info().remote_max_message_size, Some(65_536));
    match server.send_text(&"x".repeat(65_537)).await {
        Err(Error::MessageTooLarge { size, limit }) => {
            assert_eq!((size, limit), (65_537, 65_536));
        }
        other => panic!("{other:?}"),
    }
    // Nothing was queued and the channel still works.
    server.send_text(&"y".repeat(65_536)).await.unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        Some(Incoming::Text("y".repeat(65_536).into()))
    );
    server.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_writer_stays_within_the_send_buffer_bound() {
    const LIMIT: usize = 1024 * 1024;
    const MESSAGE: usize = 64 * 1024;
    const MESSAGES: usize = 400; // 25 MiB
    let (server, client, _, _) = pair_with(
        PeerConfig::offerer().with_send_buffer_limit(LIMIT),
        PeerConfig::answerer(),
    )
    .await;
    let server = Arc::new(server);
    let writer = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let mut peak = 0;
            let payload = vec![1u8; MESSAGE];
            for _ in 0..MESSAGES {
                server
                    .send_binary(BytesMut::from(&payload[..]))
                    .await
                    .unwrap();
                peak = peak.max(server.outstanding_bytes().await);
            }
            peak
        })
    };
    // A reader that takes a pause every 4 messages: far slower than the writer.
    let mut got = 0;
    while got < MESSAGES {
        match client.recv().await.unwrap() {
            Some(Incoming::Binary(b)) => assert_eq!(b.len(), MESSAGE),
            other => panic!("{other:?}"),
        }
        got += 1;
        if got % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let peak = tokio::time::timeout(T, writer).await.unwrap().unwrap();
    println!("peak outstanding: {peak} bytes (limit {LIMIT})");
    assert!(
        peak <= LIMIT + MESSAGE,
        "outstanding {peak} > bound {}",
        LIMIT + MESSAGE
    );
    server.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_close_from_either_side_is_a_clean_end_within_a_second() {
    for offerer_closes in [true, false] {
        let (server, client) = pair().await;
        let (closer, other) = if offerer_closes {
            (server, client)
        } else {
            (client, server)
        };
        let closer = Arc::new(closer);
        // The last words, sent just before closing, still arrive.
        closer.send_text(&"z".repeat(100_000)).await.unwrap();
        let start = Instant::now();
        let closing = {
            let closer = Arc::clone(&closer);
            tokio::spawn(async move { closer.close().await })
        };
        let last = tokio::time::timeout(Duration::from_secs(1), other.recv()).await;
        assert!(
            matches!(&last, Ok(Ok(Some(Incoming::Text(t)))) if t.len() == 100_000),
            "{last:?}"
        );
        let end = tokio::time::timeout(Duration::from_secs(1), other.recv()).await;
        let took = start.elapsed();
        assert!(matches!(end, Ok(Ok(None))), "{end:?} after {took:?}");
        assert!(took < Duration::from_secs(1), "clean end after {took:?}");
        tokio::time::timeout(T, closing).await.unwrap().unwrap();
        assert!(matches!(closer.send_text("late").await, Err(Error::Closed)));
        other.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_hits_the_handshake_timeout() {
    let (a, _silent) = MemorySignaling::pair();
    let config =
        loopback(PeerConfig::answerer()).with_handshake_timeout(Duration::from_millis(500));
    let start = Instant::now();
    let e = connect(config, a).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::HandshakeTimeout {
                phase: Phase::Signaling,
                ..
            }
        ),
        "{e}"
    );
    // The deadline holds (with room for teardown on a loaded machine).
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_sdp_fails_at_once() {
    let (a, mut b) = MemorySignaling::pair();
    b.send(SignalMessage::Offer("this is not SDP".into()))
        .await
        .unwrap();
    let start = Instant::now();
    let e = connect(loopback(PeerConfig::answerer()), a)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Sdp { .. }), "{e}");
    assert_eq!(e.phase(), Some(Phase::Sdp));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_offer_is_an_error_not_a_panic() {
    // A real offer, sent twice.
    let (a, b) = MemorySignaling::pair();
    let log = Log::default();
    let recording = Recording {
        inner: a,
        sent: Arc::clone(&log),
    };
    let offerer = tokio::spawn(connect(
        loopback(PeerConfig::offerer()).with_handshake_timeout(Duration::from_secs(3)),
        recording,
    ));
    // Read the offer, then replay it twice to an answerer.
    let mut b = b;
    let offer = loop {
        if let Some(SignalMessage::Offer(sdp)) = b.recv().await.unwrap() {
            break sdp;
        }
    };
    let (c, mut d) = MemorySignaling::pair();
    d.send(SignalMessage::Offer(offer.clone())).await.unwrap();
    d.send(SignalMessage::Offer(offer)).await.unwrap();
    let e = connect(loopback(PeerConfig::answerer()), c)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnexpectedSignal { got: "offer", .. }),
        "{e}"
    );
    offerer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fingerprint_mismatch_is_refused() {
    let wrong = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    let (a, b) = MemorySignaling::pair();
    let (x, y) = tokio::join!(
        connect(
            loopback(PeerConfig::offerer())
                .with_remote_fingerprint(wrong)
                .with_handshake_timeout(Duration::from_secs(5)),
            a
        ),
        connect(
            loopback(PeerConfig::answerer()).with_handshake_timeout(Duration::from_secs(5)),
            b
        )
    );
    match x {
        Err(Error::FingerprintMismatch { expected, found }) => {
            assert!(expected.starts_with("00:11:22"));
            assert_ne!(found, "none");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        Error::FingerprintMismatch {
            expected: String::new(),
            found: String::new()
        }
        .phase(),
        Some(Phase::Dtls)
    );
    // The answerer never gets a channel.
    assert!(y.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_pinned_fingerprint_is_accepted() {
    // The test stands between the peers: it reads the offer, pins the
    // fingerprint it announces, and only then starts the answerer.
    tokio::time::timeout(T, async {
        let (a, mut b) = MemorySignaling::pair();
        let offerer = tokio::spawn(connect(loopback(PeerConfig::offerer()), a));
        let offer = loop {
            if let Some(SignalMessage::Offer(sdp)) = b.recv().await.unwrap() {
                break sdp;
            }
        };
        let pin = offer
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))
            .unwrap()
            .to_owned();
        assert!(pin.starts_with("sha-256 "), "{pin}");
        let (c, mut d) = MemorySignaling::pair();
        d.send(SignalMessage::Offer(offer)).await.unwrap();
        let relay = tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = b.recv() => match m {
                        Ok(Some(m)) => { let _ = d.send(m).await; }
                        _ => break,
                    },
                    m = d.recv() => match m {
                        Ok(Some(m)) => { let _ = b.send(m).await; }
                        _ => break,
                    },
                }
            }
        });
        let answerer = connect(
            loopback(PeerConfig::answerer()).with_remote_fingerprint(pin),
            c,
        )
        .await
        .expect("the pinned fingerprint matches");
        let offerer = offerer.await.unwrap().unwrap();
        offerer.send_text("pinned").await.unwrap();
        assert_eq!(
            answerer.recv().await.unwrap(),
            Some(Incoming::Text("pinned".into()))
        );
        offerer.close().await;
        answerer.close().await;
        relay.abort();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdp_without_a_data_section_fails_at_once() {
    let (a, mut b) = MemorySignaling::pair();
    b.send(SignalMessage::Offer(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".into(),
    ))
    .await
    .unwrap();
    let e = tokio::time::timeout(T, connect(loopback(PeerConfig::answerer()), a))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, Error::Sdp { .. }), "{e}");
    assert!(e.to_string().contains("m=application"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ice_server_unless_configured_and_bad_configs_are_refused() {
    assert!(PeerConfig::offerer().ice_servers.is_empty());
    let (a, _b) = MemorySignaling::pair();
    let e = connect(PeerConfig::offerer().with_ice_policy(IcePolicy::Relay), a)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
    let (a, _b) = MemorySignaling::pair();
    let e = connect(
        PeerConfig::offerer().with_ice_server(IceServer::turn("turn:127.0.0.1:9", "", "")),
        a,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("needs a username and a credential"),
        "{e}"
    );
    let (a, _b) = MemorySignaling::pair();
    let e = connect(PeerConfig::offerer().with_max_message_size(300_000), a)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_policy_with_an_unreachable_turn_server_names_it() {
    // Nothing listens on 127.0.0.1:9: no relay candidate can be gathered.
    let (a, _b) = MemorySignaling::pair();
    let config = loopback(PeerConfig::offerer())
        .with_ice_server(IceServer::turn("turn:127.0.0.1:9", "mcp", "wrong"))
        .with_ice_policy(IcePolicy::Relay)
        .with_handshake_timeout(Duration::from_secs(15));
    let e = connect(config, a).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("turn:127.0.0.1:9"), "{text}");
    assert_eq!(e.phase(), Some(Phase::Ice), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_reads_nothing_makes_sends_time_out() {
    let (a, b) = MemorySignaling::pair();
    let (x, y) = tokio::time::timeout(T, async {
        tokio::join!(
            connect(
                loopback(PeerConfig::offerer())
                    .with_send_buffer_limit(256 * 1024)
                    .with_send_timeout(Duration::from_millis(500)),
                a
            ),
            connect(loopback(PeerConfig::answerer()), b)
        )
    })
    .await
    .unwrap();
    let (writer, _never_reads) = (x.unwrap(), y.unwrap());
    let payload = vec![0u8; 64 * 1024];
    let mut outcome = None;
    // Bounded: the stack takes in at most its 256-event queue and SCTP
    // window before the send buffer fills.
    for _ in 0..10_000 {
        if let Err(e) = writer.send_binary(BytesMut::from(&payload[..])).await {
            outcome = Some(e);
            break;
        }
    }
    assert!(
        matches!(outcome, Some(Error::SendTimeout { .. })),
        "{outcome:?}"
    );
    writer.close().await;
}
