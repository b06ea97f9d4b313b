//! The relay against hostile clients, over real sockets on loopback: each
//! limit is reached, and the test fails if the limit is removed.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use mcp_webrtc_signaling::relay::{RelayConfig, RelayServer};
use mcp_webrtc_signaling::{
    Error, RelayHost, SignalMessage, Signaling, WebSocketOptions, WebSocketSignaling,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const A: &str = "token-a";
const B: &str = "token-b";
const T: Duration = Duration::from_secs(20);

async fn relay(config: RelayConfig) -> RelayServer {
    RelayServer::bind("127.0.0.1:0", config).await.unwrap()
}

fn with(token: &str) -> WebSocketOptions {
    WebSocketOptions::default().with_token(token)
}

async fn join(relay: &RelayServer, room: &str, token: &str) -> WebSocketSignaling {
    WebSocketSignaling::connect(&format!("{}/v1/room/{room}", relay.url()), with(token))
        .await
        .unwrap()
}

type Raw = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A WebSocket client that sends whatever it is told to.
async fn raw(relay: &RelayServer, path: &str, token: &str) -> Raw {
    let url = format!("{}{path}?token={token}", relay.url());
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The close frame a raw client gets, skipping other messages.
async fn close_of(ws: &mut Raw) -> (u16, String) {
    loop {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.as_str().to_owned());
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Whether the relay closed a raw TCP connection within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

fn offer(sdp: &str) -> SignalMessage {
    SignalMessage::Offer(sdp.to_owned())
}

#[tokio::test]
async fn a_wrong_token_is_answered_401_before_any_upgrade() {
    let relay = relay(RelayConfig::with_tokens([A])).await;
    let mut tcp = TcpStream::connect(relay.local_addr()).await.unwrap();
    let request = format!(
        "GET /v1/room/x HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer wrong\r\n\r\n",
        relay.local_addr()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(T, tcp.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(!response.contains("101"), "no upgrade: {response}");
    assert!(
        response.contains("unauthorized: missing or wrong token"),
        "{response}"
    );
    assert_eq!(relay.stats().refused, 1);
}

#[tokio::test]
async fn a_connection_that_does_not_finish_its_handshake_is_dropped_within_2_s() {
    // The default pre-auth timeout.
    let relay = relay(RelayConfig::with_tokens([A])).await;
    let start = Instant::now();
    let mut idle = TcpStream::connect(relay.local_addr()).await.unwrap();
    // Half a request, then nothing: the slot must not be held for long.
    idle.write_all(b"GET /v1/room/x HTTP/1.1\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(4)).await);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(relay.stats().connections, 0);
}

#[tokio::test]
async fn connections_from_one_address_are_capped() {
    let relay = relay(
        RelayConfig::with_tokens([A])
            .with_max_connections_per_ip(3)
            .with_handshake_timeout(Duration::from_secs(30)),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(relay.local_addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = TcpStream::connect(relay.local_addr()).await.unwrap();
    assert!(
        closed_within(&mut fourth, Duration::from_secs(2)).await,
        "the fourth connection from 127.0.0.1 is dropped at once"
    );
    for stream in &mut held {
        assert!(!closed_within(stream, Duration::from_millis(100)).await);
    }
    // A slot freed is a slot to use again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = TcpStream::connect(relay.local_addr()).await.unwrap();
    assert!(!closed_within(&mut again, Duration::from_millis(300)).await);
}

#[tokio::test]
async fn bytes_held_for_absent_peers_are_bounded_per_room_and_in_all() {
    tokio::time::timeout(T, async {
        let relay = relay(
            RelayConfig::with_tokens([A])
                .with_max_pending_bytes(1000)
                .with_max_total_pending_bytes(1500),
        )
        .await;
        let sdp = "x".repeat(375); // 400 bytes as a W3C offer
        let mut a = join(&relay, "r1", A).await;
        a.send(offer(&sdp)).await.unwrap();
        a.send(offer(&sdp)).await.unwrap();
        a.send(offer(&sdp)).await.unwrap();
        match a.recv().await {
            Err(Error::RelayNotice { reason }) => {
                assert!(reason.contains("800 bytes already wait"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(relay.stats().pending_bytes, 800);
        // Another room: its own 1000 bytes, but only 700 left in all.
        let mut c = join(&relay, "r2", A).await;
        c.send(offer(&sdp)).await.unwrap();
        c.send(offer(&sdp)).await.unwrap();
        match c.recv().await {
            Err(Error::RelayNotice { reason }) => {
                assert!(reason.contains("holds too much"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(relay.stats().pending_bytes, 1200);
        // The peer joins: it gets what was held, and the bytes are released.
        let mut b = join(&relay, "r1", A).await;
        assert_eq!(b.recv().await.unwrap(), Some(offer(&sdp)));
        assert_eq!(b.recv().await.unwrap(), Some(offer(&sdp)));
        assert_eq!(relay.stats().pending_bytes, 400);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn refused_and_binary_frames_spend_the_room_byte_budget() {
    let relay = relay(
        RelayConfig::with_tokens([A])
            .with_max_message_size(1000)
            .with_room_byte_budget(10_000),
    )
    .await;
    let mut flooder = raw(&relay, "/v1/room/b", A).await;
    let _peer = join(&relay, "b", A).await;
    let mut notices = 0;
    let mut closed = None;
    for n in 0..10 {
        let frame = if n % 2 == 0 {
            Message::Binary(vec![0u8; 3000].into())
        } else {
            Message::text("y".repeat(3000))
        };
        if flooder.send(frame).await.is_err() {
            break;
        }
        match tokio::time::timeout(T, flooder.next()).await.unwrap() {
            Some(Ok(Message::Text(_))) => notices += 1,
            Some(Ok(Message::Close(Some(frame)))) => {
                closed = Some((u16::from(frame.code), frame.reason.as_str().to_owned()));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(notices, 3, "three refused frames fit the budget");
    assert_eq!(
        closed,
        Some((4429, "room byte budget exhausted".to_owned())),
        "the fourth spends it"
    );
}

#[tokio::test]
async fn pings_do_not_keep_a_silent_peer_alive() {
    let relay =
        relay(RelayConfig::with_tokens([A]).with_idle_timeout(Duration::from_millis(400))).await;
    let mut pinger = raw(&relay, "/v1/room/p", A).await;
    let start = Instant::now();
    let pings = async {
        loop {
            if pinger.send(Message::Ping(vec![1].into())).await.is_err() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if start.elapsed() > Duration::from_secs(5) {
                return Some("still open after 5 s of pings");
            }
            if let Ok(Some(Ok(Message::Close(Some(frame))))) =
                tokio::time::timeout(Duration::from_millis(1), pinger.next()).await
            {
                assert_eq!(frame.code, CloseCode::from(4408));
                return None;
            }
        }
    };
    assert_eq!(pings.await, None);
}

#[tokio::test]
async fn one_token_cannot_take_every_room() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([A, B]).with_max_rooms_per_token(2)).await;
        let first = join(&relay, "a1", A).await;
        let _second = join(&relay, "a2", A).await;
        let mut third = join(&relay, "a3", A).await;
        match third.recv().await {
            Err(Error::Relay { code: 4429, reason }) => {
                assert_eq!(reason, "too many rooms for this token");
            }
            other => panic!("{other:?}"),
        }
        // Another token is not affected, and joining A's room costs nothing.
        let mut b_room = join(&relay, "b1", B).await;
        let mut b_in_a = join(&relay, "a1", B).await;
        for peer in [&mut b_room, &mut b_in_a] {
            assert!(
                tokio::time::timeout(Duration::from_millis(200), peer.recv())
                    .await
                    .is_err(),
                "still open"
            );
        }
        // A room of A's that closes frees its place.
        drop(first);
        drop(b_in_a);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut again = join(&relay, "a4", A).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(200), again.recv())
                .await
                .is_err(),
            "a freed place is used again"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_host_name_and_its_sessions_stay_bound_to_its_token() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([A, B])).await;
        let url = relay.url();
        // A registers "desk", then its registration lapses.
        let host = RelayHost::register(&url, "desk", with(A)).await.unwrap();
        drop(host);
        tokio::time::sleep(Duration::from_millis(200)).await;
        // B cannot take the lapsed name.
        let mut thief = RelayHost::register(&url, "desk", with(B)).await.unwrap();
        match thief.accept().await {
            Err(Error::Relay { code: 4409, reason }) => assert_eq!(reason, "host name taken"),
            other => panic!("{other:?}"),
        }
        // A can, with a raw registration that shows the session's room.
        let mut control = raw(&relay, "/v1/host/desk", A).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut client = WebSocketSignaling::connect(&RelayHost::client_url(&url, "desk"), with(B))
            .await
            .unwrap();
        client.send(offer("from the client")).await.unwrap();
        let room = loop {
            match control.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                    break v["room"].as_str().unwrap().to_owned();
                }
                Some(Ok(_)) => {}
                other => panic!("the host registration ended: {other:?}"),
            }
        };
        let id = room.strip_prefix("desk/").unwrap();
        assert_eq!(id.len(), 32, "128 random bits: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        // B, knowing the room, cannot join the host's side of it.
        let mut intruder = join(&relay, &room, B).await;
        match intruder.recv().await {
            Err(Error::Relay { code: 4403, .. }) => {}
            other => panic!("{other:?}"),
        }
        // A can.
        let mut server = join(&relay, &room, A).await;
        assert_eq!(server.recv().await.unwrap(), Some(offer("from the client")));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn connections_to_a_host_are_throttled() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([A]).with_host_connect_rate(2)).await;
        let url = relay.url();
        let _control = raw(&relay, "/v1/host/busy", A).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let client = RelayHost::client_url(&url, "busy");
        let mut admitted = Vec::new();
        let mut throttled = None;
        for _ in 0..10 {
            match WebSocketSignaling::connect(&client, with(A)).await {
                Ok(ws) => admitted.push(ws),
                Err(e) => {
                    throttled = Some(e);
                    break;
                }
            }
        }
        assert_eq!(admitted.len(), 4, "a burst of twice the rate");
        match throttled {
            Some(Error::Relay { code: 4429, reason }) => {
                assert!(reason.contains("slow down"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // The bucket refills at the rate.
        tokio::time::sleep(Duration::from_millis(600)).await;
        WebSocketSignaling::connect(&client, with(A)).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_peer_that_does_not_read_does_not_stall_its_partner() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let relay = relay(
            RelayConfig::with_tokens([A])
                .with_room_byte_budget(1 << 30)
                .with_room_message_budget(100_000),
        )
        .await;
        let mut talker = raw(&relay, "/v1/room/f", A).await;
        // The deaf peer never reads its socket.
        let mut deaf = raw(&relay, "/v1/room/f", A).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Fill the deaf peer's socket and its queue at the relay.
        let big = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "z".repeat(60_000));
        let mut refused = false;
        for _ in 0..2000 {
            talker.send(Message::text(big.clone())).await.unwrap();
            if let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(Duration::from_millis(1), talker.next()).await
            {
                assert!(t.as_str().contains("not reading"), "{t}");
                refused = true;
                break;
            }
        }
        assert!(refused, "the talker is told its partner does not read");
        // The deaf peer now says something: it reaches the talker at once,
        // because the talker's side of the relay never waits on the deaf one.
        let start = Instant::now();
        deaf.send(Message::text(r#"{"type":"answer","sdp":"hi"}"#))
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(T, talker.next()).await.unwrap() {
                Some(Ok(Message::Text(t))) if t.as_str().contains("answer") => break,
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        // The talker leaves without a bye: the deaf peer, whose queue is
        // full, is still told, once it reads.
        drop(talker);
        assert_eq!(close_of(&mut deaf).await.0, 4410);
        // What was queued for it is uncounted as it goes or is dropped.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stats = relay.stats();
        assert_eq!((stats.rooms, stats.pending_bytes), (0, 0), "{stats:?}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn what_a_peer_sent_before_leaving_is_delivered_before_the_close() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([A])).await;
        let mut a = join(&relay, "last", A).await;
        let mut b = join(&relay, "last", A).await;
        for n in 0..40 {
            a.send(offer(&format!("m{n}"))).await.unwrap();
        }
        a.close().await.unwrap(); // the bye, then the socket closes
        for n in 0..40 {
            assert_eq!(b.recv().await.unwrap(), Some(offer(&format!("m{n}"))));
        }
        assert_eq!(b.recv().await.unwrap(), None, "then the bye ends it");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_token_cannot_flush_the_host_names_of_another() {
    tokio::time::timeout(T, async {
        let relay = relay(
            RelayConfig::with_tokens([A, B])
                .with_max_hosts(3)
                .with_max_hosts_per_token(3),
        )
        .await;
        let url = relay.url();
        // A holds three names, all lapsed.
        for name in ["h1", "h2", "h3"] {
            let host = RelayHost::register(&url, name, with(A)).await.unwrap();
            drop(host);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // B cannot make room by evicting them.
        let mut b = RelayHost::register(&url, "b1", with(B)).await.unwrap();
        match b.accept().await {
            Err(Error::Relay { code: 4503, reason }) => assert_eq!(reason, "too many hosts"),
            other => panic!("{other:?}"),
        }
        // A's own oldest lapsed name makes room for A's new one.
        let mut a4 = RelayHost::register(&url, "h4", with(A)).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), a4.accept())
                .await
                .is_err(),
            "h4 registered"
        );
        // h1 was forgotten: B may take it now; h2 is still A's.
        let mut b_h2 = RelayHost::register(&url, "h2", with(B)).await.unwrap();
        assert!(matches!(
            b_h2.accept().await,
            Err(Error::Relay { code: 4409, .. })
        ));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn one_token_holds_a_bounded_number_of_host_names() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([A]).with_max_hosts_per_token(2)).await;
        let url = relay.url();
        let _h1 = RelayHost::register(&url, "n1", with(A)).await.unwrap();
        let _h2 = RelayHost::register(&url, "n2", with(A)).await.unwrap();
        let mut h3 = RelayHost::register(&url, "n3", with(A)).await.unwrap();
        match h3.accept().await {
            Err(Error::Relay { code: 4429, reason }) => {
                assert_eq!(reason, "too many host names for this token");
            }
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_peer_that_closes_gets_the_relays_close_reply() {
    tokio::time::timeout(T, async {
        let relay = relay(RelayConfig::with_tokens([A])).await;
        let mut peer = raw(&relay, "/v1/room/bye", A).await;
        let _other = join(&relay, "bye", A).await;
        peer.send(Message::Close(None)).await.unwrap();
        // The relay answers the close handshake instead of resetting.
        loop {
            match peer.next().await {
                Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
                other => panic!("the close handshake was not completed: {other:?}"),
            }
        }
    })
    .await
    .unwrap();
}
