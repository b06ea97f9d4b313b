//! TURN against a real coturn server on 127.0.0.1: a wrong credential fails
//! with an error that names the server, and a relay-only connection works.
//!
//! Needs `turnserver` (Debian's `coturn`); `.ci/run` and `cargo xtask ci`
//! install it.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use mcp_webrtc_rtc::{
    Connection, Error, IcePolicy, IceServer, Incoming, PeerConfig, Phase, connect,
};
use mcp_webrtc_signaling::MemorySignaling;
use tokio::process::{Child, Command};

const T: Duration = Duration::from_secs(30);

/// A coturn on 127.0.0.1 with user `mcp`, password `mcp-secret`, relaying on
/// 127.0.0.1 only. Killed when dropped.
struct Turn {
    _child: Child,
    url: String,
}

async fn turn() -> Turn {
    turn_with(false).await
}

/// With `tcp_only`, coturn has no UDP listener at all (`--no-udp`): only
/// TURN over TCP reaches it (its relayed addresses are still UDP).
async fn turn_with(tcp_only: bool) -> Turn {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir();
    let child = Command::new("turnserver")
        .args(["-c", "/dev/null", "-n", "--no-cli", "--no-tls", "--no-dtls"])
        .args(["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
        .arg(format!("--listening-port={port}"))
        .args([
            "--realm=mcp.test",
            "--lt-cred-mech",
            "--user=mcp:mcp-secret",
        ])
        .args([
            "--fingerprint",
            "--allow-loopback-peers",
            "--no-multicast-peers",
        ])
        .args(["--simple-log", "--log-file=stdout"])
        .args(if tcp_only { &["--no-udp"][..] } else { &[][..] })
        .arg(format!(
            "--pidfile={}",
            dir.join(format!("turn-{port}.pid")).display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start turnserver ({e}): install coturn (`apt-get install coturn`)")
        });
    if tcp_only {
        // Wait (bounded) until it accepts on its TCP port.
        let mut ready = false;
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "turnserver did not accept on 127.0.0.1:{port}");
        return Turn {
            _child: child,
            url: format!("turn:127.0.0.1:{port}?transport=tcp"),
        };
    }
    // Wait (bounded) until it answers on its UDP port.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // A STUN binding request: type 0x0001, length 0, magic cookie, id.
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&[7u8; 12]);
    let mut ready = false;
    for _ in 0..50 {
        let _ = probe.send_to(&request, ("127.0.0.1", port));
        let mut buf = [0u8; 512];
        if probe.recv_from(&mut buf).is_ok() {
            ready = true;
            break;
        }
    }
    assert!(ready, "turnserver did not answer on 127.0.0.1:{port}");
    Turn {
        _child: child,
        url: format!("turn:127.0.0.1:{port}"),
    }
}

fn relay_only(config: PeerConfig, url: &str, password: &str) -> PeerConfig {
    config
        .with_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
        .with_ice_server(IceServer::turn(url, "mcp", password))
        .with_ice_policy(IcePolicy::Relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_turn_credential_names_the_server() {
    let turn = turn().await;
    let (a, _b) = MemorySignaling::pair();
    let e = tokio::time::timeout(
        T,
        connect(relay_only(PeerConfig::offerer(), &turn.url, "wrong"), a),
    )
    .await
    .expect("fails, does not hang")
    .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, Error::NoCandidates { what: "relay", .. }),
        "{text}"
    );
    assert!(text.contains(&turn.url), "{text}");
    assert_eq!(e.phase(), Some(Phase::Ice));
}

/// Two peers connected through `turn`, relay candidates only.
async fn relayed_pair(turn: &Turn) -> (Connection, Connection) {
    let (a, b) = MemorySignaling::pair();
    let (x, y) = tokio::time::timeout(T, async {
        tokio::join!(
            connect(
                relay_only(PeerConfig::offerer(), &turn.url, "mcp-secret"),
                a
            ),
            connect(
                relay_only(PeerConfig::answerer(), &turn.url, "mcp-secret"),
                b
            )
        )
    })
    .await
    .expect("set-up finishes");
    (x.unwrap(), y.unwrap())
}

/// 1 MiB in 64 KiB messages from `server` to `client`, each in order and
/// whole, then both close. The pair must be a relayed one.
async fn bulk_through_the_relay(server: Connection, client: Connection) {
    let chunk = "t".repeat(64 * 1024);
    let sending = tokio::spawn({
        let chunk = chunk.clone();
        async move {
            for _ in 0..16 {
                server.send_text(&chunk).await.unwrap();
            }
            server
        }
    });
    for i in 0..16 {
        let got = tokio::time::timeout(T, client.recv())
            .await
            .unwrap_or_else(|_| panic!("message {i} did not arrive"));
        assert_eq!(got.unwrap(), Some(Incoming::Text(chunk.clone().into())));
    }
    let server = sending.await.unwrap();
    let pair = server.stats().await.selected_pair.unwrap_or_default();
    assert!(pair.contains("relay"), "selected pair {pair}");
    server.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_connection_works_through_turn() {
    let turn = turn().await;
    let (server, client) = relayed_pair(&turn).await;
    server.send_text("through the relay").await.unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        Some(Incoming::Text("through the relay".into()))
    );
    // Bulk traffic too: every packet leaves through the stack's TURN client.
    bulk_through_the_relay(server, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_connection_works_through_turn_over_tcp() {
    // No UDP listener: the stack's TURN client (UDP only) gets through
    // only over our TCP bridge.
    let turn = turn_with(true).await;
    let (server, client) = relayed_pair(&turn).await;
    bulk_through_the_relay(server, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_credential_over_tcp_names_the_server_too() {
    let turn = turn_with(true).await;
    let (a, _b) = MemorySignaling::pair();
    let e = tokio::time::timeout(
        T,
        connect(relay_only(PeerConfig::offerer(), &turn.url, "wrong"), a),
    )
    .await
    .expect("fails, does not hang")
    .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, Error::NoCandidates { what: "relay", .. }),
        "{text}"
    );
    assert!(text.contains(&turn.url), "{text}");
}

#[tokio::test]
async fn turn_over_tls_is_refused_with_what_to_use_instead() {
    let (a, _b) = MemorySignaling::pair();
    let config = relay_only(PeerConfig::offerer(), "turns:127.0.0.1:5349", "x");
    let e = connect(config, a).await.unwrap_err().to_string();
    assert!(e.contains("turns:") && e.contains("transport=tcp"), "{e}");
}
