//! The relay and the WebSocket client, over real WebSockets on loopback.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mcp_webrtc_signaling::relay::{RelayConfig, RelayServer};
use mcp_webrtc_signaling::{
    Error, Options, RelayHost, SignalMessage, Signaling, WebSocketOptions, WebSocketSignaling,
};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "s3cret-token";
const T: Duration = Duration::from_secs(20);

async fn relay(config: RelayConfig) -> RelayServer {
    RelayServer::bind("127.0.0.1:0", config).await.unwrap()
}

fn opts() -> WebSocketOptions {
    WebSocketOptions::default().with_token(TOKEN)
}

async fn join(relay: &RelayServer, room: &str) -> WebSocketSignaling {
    WebSocketSignaling::connect(&format!("{}/v1/room/{room}", relay.url()), opts())
        .await
        .unwrap()
}

fn offer(n: usize) -> SignalMessage {
    SignalMessage::Offer(format!("v=0\r\no=- {n} 1 IN IP4 127.0.0.1\r\n"))
}

#[tokio::test]
async fn two_peers_converse_through_a_room() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN])).await;
        let mut a = join(&relay, "r1").await;
        // The offer is sent before the other peer joins: the relay holds it.
        a.send(offer(1)).await.unwrap();
        let mut b = join(&relay, "r1").await;
        assert_eq!(b.recv().await.unwrap(), Some(offer(1)));
        b.send(SignalMessage::Answer("v=0\r\n".into()))
            .await
            .unwrap();
        b.send(SignalMessage::EndOfCandidates).await.unwrap();
        assert_eq!(
            a.recv().await.unwrap(),
            Some(SignalMessage::Answer("v=0\r\n".into()))
        );
        assert_eq!(
            a.recv().await.unwrap(),
            Some(SignalMessage::EndOfCandidates)
        );
        a.close().await.unwrap();
        assert_eq!(b.recv().await.unwrap(), None, "bye ends the stream");
        b.close().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(relay.stats().rooms, 0, "an empty room is removed");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_refused_with_a_clear_reason() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN])).await;
        for options in [
            WebSocketOptions::default(),
            WebSocketOptions::default().with_token("wrong"),
            WebSocketOptions::default().with_token("s3cret-tokeN"),
            WebSocketOptions::default().with_token("s3cret-token-longer"),
        ] {
            // Refused before the upgrade (HTTP 401), reported as 4401.
            match WebSocketSignaling::connect(&format!("{}/v1/room/x", relay.url()), options).await
            {
                Err(Error::Relay { code, reason }) => {
                    assert_eq!(code, 4401);
                    assert_eq!(reason, "unauthorized: missing or wrong token");
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        // A browser may put the token in the query string.
        let mut ok = WebSocketSignaling::connect(
            &format!("{}/v1/room/q?token={TOKEN}", relay.url()),
            WebSocketOptions::default(),
        )
        .await
        .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), ok.recv())
                .await
                .is_err(),
            "still open"
        );
        assert!(relay.stats().refused >= 4);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_third_peer_is_refused_and_the_room_goes_on() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN])).await;
        let mut a = join(&relay, "full").await;
        let mut b = join(&relay, "full").await;
        let mut c = join(&relay, "full").await;
        match c.recv().await {
            Err(Error::Relay { code: 4409, reason }) => assert_eq!(reason, "room full"),
            other => panic!("{other:?}"),
        }
        a.send(offer(7)).await.unwrap();
        assert_eq!(b.recv().await.unwrap(), Some(offer(7)));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_room_survives() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN]).with_max_message_size(1024)).await;
        let mut a = join(&relay, "big").await;
        let mut b = join(&relay, "big").await;
        let big = SignalMessage::Offer("x".repeat(5000));
        a.send(big).await.unwrap();
        match a.recv().await {
            Err(Error::RelayNotice { reason }) => {
                assert_eq!(reason, "message too large: 5025 bytes > limit 1024 bytes");
            }
            other => panic!("{other:?}"),
        }
        a.send(offer(2)).await.unwrap();
        assert_eq!(
            b.recv().await.unwrap(),
            Some(offer(2)),
            "the big one was not forwarded"
        );
        b.send(offer(3)).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), Some(offer(3)));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn two_rooms_do_not_see_each_others_messages() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN])).await;
        let mut a1 = join(&relay, "one").await;
        let mut b1 = join(&relay, "one").await;
        let mut a2 = join(&relay, "two").await;
        let mut b2 = join(&relay, "two").await;
        a1.send(offer(1)).await.unwrap();
        a2.send(offer(2)).await.unwrap();
        assert_eq!(b1.recv().await.unwrap(), Some(offer(1)));
        assert_eq!(b2.recv().await.unwrap(), Some(offer(2)));
        // Nothing else is waiting in either room.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), b1.recv())
                .await
                .is_err()
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(200), b2.recv())
                .await
                .is_err()
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn two_hundred_concurrent_rooms_lose_nothing() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // 400 connections from one address, 200 rooms of one token: above
        // the default per-address and per-token caps.
        let relay = relay(
            RelayConfig::with_tokens([TOKEN])
                .with_max_connections_per_ip(1000)
                .with_max_rooms_per_token(1000),
        )
        .await;
        let url = relay.url();
        const ROOMS: usize = 200;
        const MESSAGES: usize = 10;
        let mut tasks = Vec::new();
        for room in 0..ROOMS {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let addr = format!("{url}/v1/room/load-{room}");
                let mut a = WebSocketSignaling::connect(&addr, opts()).await.unwrap();
                let mut b = WebSocketSignaling::connect(&addr, opts()).await.unwrap();
                for i in 0..MESSAGES {
                    a.send(offer(room * 1000 + i)).await.unwrap();
                    b.send(SignalMessage::Answer(format!("{room}-{i}")))
                        .await
                        .unwrap();
                }
                for i in 0..MESSAGES {
                    assert_eq!(b.recv().await.unwrap(), Some(offer(room * 1000 + i)));
                    assert_eq!(
                        a.recv().await.unwrap(),
                        Some(SignalMessage::Answer(format!("{room}-{i}")))
                    );
                }
                a.close().await.unwrap();
                assert_eq!(b.recv().await.unwrap(), None);
                b.close().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let stats = relay.stats();
        assert_eq!(
            stats.forwarded,
            (ROOMS * (2 * MESSAGES + 1)) as u64,
            "{stats:?}"
        );
        assert_eq!(stats.refused, 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(relay.stats().pending_bytes, 0, "nothing left counted");
    })
    .await
    .unwrap();
}

/// A burst of clients that all arrive before the host reads anything (this
/// test's runtime has one thread: every client connects before the host's
/// loop runs), and a host that takes every announcement with
/// `next_session` before joining any room: none is refused. With the
/// relay's old queue of 64 announcements, 58 of 150 were.
#[tokio::test]
async fn a_burst_of_clients_beyond_the_announcement_queue_is_served() {
    const CLIENTS: usize = 150;
    tokio::time::timeout(T, async {
        let config = RelayConfig::with_tokens([TOKEN])
            .with_max_connections_per_ip(1000)
            .with_max_rooms_per_token(1000)
            .with_host_connect_rate(10_000);
        let relay = relay(config).await;
        let mut host = RelayHost::register(&relay.url(), "desk", opts())
            .await
            .unwrap();
        let client_url = RelayHost::client_url(&relay.url(), "desk");
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let url = client_url.clone();
                tokio::spawn(async move {
                    let mut c = WebSocketSignaling::connect(&url, opts()).await?;
                    c.send(offer(n)).await?;
                    let answer = c.recv().await?;
                    let SignalMessage::Offer(sdp) = offer(n) else {
                        unreachable!()
                    };
                    assert_eq!(
                        answer,
                        Some(SignalMessage::Answer(format!("answer to {sdp}")))
                    );
                    Ok::<(), Error>(())
                })
            })
            .collect();
        // Every announcement first, none joined yet: more than the relay's
        // queue for this host holds at once.
        let mut pending = Vec::new();
        for _ in 0..CLIENTS {
            pending.push(host.next_session().await.unwrap());
        }
        for session in pending {
            tokio::spawn(async move {
                let mut session = session.join().await.unwrap();
                let Some(SignalMessage::Offer(sdp)) = session.recv().await.unwrap() else {
                    panic!("no offer")
                };
                session
                    .send(SignalMessage::Answer(format!("answer to {sdp}")))
                    .await
                    .unwrap();
                let _ = session.recv().await;
            });
        }
        for client in clients {
            client.await.unwrap().unwrap();
        }
        assert_eq!(relay.stats().refused, 0, "no client was refused");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn each_client_of_a_host_gets_its_own_session() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN])).await;
        let mut host = RelayHost::register(&relay.url(), "desk", opts())
            .await
            .unwrap();
        // A second registration of the same name is refused.
        let e = RelayHost::register(&relay.url(), "desk", opts())
            .await
            .unwrap()
            .accept()
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Relay { code: 4409, reason } if reason == "host name taken"),
            "{e}"
        );

        let client_url = RelayHost::client_url(&relay.url(), "desk");
        let mut clients = Vec::new();
        for n in 0..3 {
            let mut c = WebSocketSignaling::connect(&client_url, opts())
                .await
                .unwrap();
            c.send(offer(n)).await.unwrap();
            clients.push(c);
        }
        for _ in 0..3 {
            let mut session = host.accept().await.unwrap();
            let Some(SignalMessage::Offer(sdp)) = session.recv().await.unwrap() else {
                panic!()
            };
            session
                .send(SignalMessage::Answer(format!("answer to {sdp}")))
                .await
                .unwrap();
            // keep the session open until the client has read
            tokio::spawn(async move {
                let _ = session.recv().await;
            });
        }
        for (n, c) in clients.iter_mut().enumerate() {
            let SignalMessage::Offer(sdp) = offer(n) else {
                unreachable!()
            };
            assert_eq!(
                c.recv().await.unwrap(),
                Some(SignalMessage::Answer(format!("answer to {sdp}")))
            );
        }
        // A client of an unknown host is refused.
        let lost =
            WebSocketSignaling::connect(&RelayHost::client_url(&relay.url(), "nobody"), opts())
                .await;
        assert!(matches!(lost, Err(Error::Relay { code: 4404, .. })));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_peer_that_vanishes_ends_the_other_side_with_an_error() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN])).await;
        let a = join(&relay, "gone").await;
        let mut b = join(&relay, "gone").await;
        drop(a); // no bye, no close handshake
        match b.recv().await {
            Err(Error::Relay { code: 4410, reason }) => {
                assert_eq!(reason, "peer left without a bye")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.recv().await.unwrap(), None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn idle_peers_and_spent_budgets_are_closed() {
    tokio::time::timeout(T, async {
        let relay = relay(
            RelayConfig::with_tokens([TOKEN])
                .with_idle_timeout(Duration::from_millis(300))
                .with_room_message_budget(3),
        )
        .await;
        let mut idle = join(&relay, "idle").await;
        match idle.recv().await {
            Err(Error::Relay { code: 4408, reason }) => assert_eq!(reason, "idle timeout"),
            other => panic!("{other:?}"),
        }
        let mut a = join(&relay, "budget").await;
        let mut b = join(&relay, "budget").await;
        for n in 0..3 {
            a.send(offer(n)).await.unwrap();
            assert_eq!(b.recv().await.unwrap(), Some(offer(n)));
        }
        a.send(offer(4)).await.unwrap();
        assert!(matches!(
            b.recv().await,
            Err(Error::Relay { code: 4429, .. })
        ));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_paths_names_and_frames_are_refused() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN])).await;
        for (path, code) in [
            ("/nope", 4404),
            ("/v1/room/bad%20name", 4400),
            ("/v1/room/a//b", 4400),
        ] {
            match WebSocketSignaling::connect(&format!("{}{path}", relay.url()), opts()).await {
                Err(Error::Relay { code: c, .. }) => assert_eq!(c, code, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        // A raw client sending binary gets a notice, and the room goes on.
        let (mut raw, _) =
            tokio_tungstenite::connect_async(format!("{}/v1/room/raw?token={TOKEN}", relay.url()))
                .await
                .unwrap();
        let mut peer = join(&relay, "raw").await;
        raw.send(Message::Binary(vec![1, 2, 3].into()))
            .await
            .unwrap();
        let notice = raw.next().await.unwrap().unwrap();
        assert!(
            notice
                .to_text()
                .unwrap()
                .contains("binary frames are not relayed")
        );
        raw.send(Message::text(r#"{"type":"offer","sdp":"v=0"}"#))
            .await
            .unwrap();
        assert_eq!(
            peer.recv().await.unwrap(),
            Some(SignalMessage::Offer("v=0".into()))
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_relay_refuses_to_start_without_tokens() {
    let e = RelayServer::bind(
        "127.0.0.1:0",
        RelayConfig::with_tokens(Vec::<String>::new()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
}

#[tokio::test]
async fn websocket_connect_errors_are_clear() {
    // Nothing listens: a network error, named, within the deadline.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = WebSocketSignaling::connect(&format!("ws://127.0.0.1:{port}/v1/room/x"), opts())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::WebSocket { .. }), "{e}");
    // A listener that never answers the upgrade: the deadline.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let options =
        opts().with_options(Options::default().with_connect_timeout(Duration::from_millis(300)));
    let e = WebSocketSignaling::connect(&format!("ws://{addr}/v1/room/x"), options)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    drop(silent);
}

#[tokio::test]
async fn review_fixes_hold() {
    tokio::time::timeout(T, async {
        // Config values that would panic or close everyone at once are refused.
        let mut bad = RelayConfig::with_tokens([TOKEN]);
        bad.host_ping_interval = Duration::ZERO;
        assert!(matches!(
            RelayServer::bind("127.0.0.1:0", bad).await,
            Err(Error::InvalidConfig { .. })
        ));

        let relay = relay(RelayConfig::with_tokens(["a b/c+d"])).await;
        // A browser percent-encodes the token in the query string.
        let mut ok = WebSocketSignaling::connect(
            &format!("{}/v1/room/pct?token=a%20b%2Fc%2Bd", relay.url()),
            WebSocketOptions::default(),
        )
        .await
        .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), ok.recv())
                .await
                .is_err(),
            "accepted"
        );

        // Host names long enough to break their session rooms are refused.
        let long = "h".repeat(170);
        let host = RelayHost::register(
            &relay.url(),
            &long,
            WebSocketOptions::default().with_token("a b/c+d"),
        )
        .await;
        assert!(matches!(host, Err(Error::Relay { code: 4400, .. })));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn forwarded_traffic_does_not_keep_a_silent_peer_alive() {
    tokio::time::timeout(T, async {
        let relay =
            relay(RelayConfig::with_tokens([TOKEN]).with_idle_timeout(Duration::from_millis(400)))
                .await;
        let mut silent = join(&relay, "quiet").await;
        let mut talker = join(&relay, "quiet").await;
        let chatter = tokio::spawn(async move {
            for n in 0..20 {
                if talker.send(offer(n)).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let start = std::time::Instant::now();
        loop {
            match silent.recv().await {
                Ok(Some(_)) => continue,
                Err(Error::Relay { code: 4408, .. }) => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "closed after {:?}",
            start.elapsed()
        );
        chatter.abort();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN])).await;
        let mut a = join(&relay, "bye").await;
        let mut host = RelayHost::register(&relay.url(), "h", opts())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        relay.shutdown().await;
        assert!(matches!(
            a.recv().await,
            Err(Error::Relay { code: 1001, .. })
        ));
        assert!(matches!(
            host.accept().await,
            Err(Error::Relay { code: 1001, .. })
        ));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_over_limit_message_is_one_bad_message_for_the_client() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([TOKEN])).await;
        let small = opts().with_options(Options::default().with_max_message_size(1024));
        let mut a = WebSocketSignaling::connect(&format!("{}/v1/room/lim", relay.url()), small)
            .await
            .unwrap();
        let mut b = join(&relay, "lim").await;
        b.send(SignalMessage::Offer("y".repeat(4000)))
            .await
            .unwrap();
        b.send(offer(1)).await.unwrap();
        let e = a.recv().await.unwrap_err();
        assert!(
            matches!(e, Error::MessageTooLarge { limit: 1024, .. }),
            "{e}"
        );
        assert!(e.is_per_message());
        assert_eq!(a.recv().await.unwrap(), Some(offer(1)));
    })
    .await
    .unwrap();
}
