//! A peer process killed with SIGKILL: the survivor's pending `recv` and
//! its sends fail with `PeerGone` within the dead-peer timeout. A real second
//! process over a real peer connection on loopback.
//!
//! This binary has its own `main` (no libtest harness): run with
//! `MCP_WEBRTC_CHILD_SIGNALING` set, it is the peer process the test starts
//! and kills; otherwise it is the test. No test returns early.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_webrtc_rtc::{Error, Incoming, PeerConfig, connect};
use mcp_webrtc_signaling::{Options, TcpSignaling};

/// Set in the child's environment: the signaling address to connect to.
const CHILD: &str = "MCP_WEBRTC_CHILD_SIGNALING";
const T: Duration = Duration::from_secs(30);

fn loopback(config: PeerConfig) -> PeerConfig {
    config.with_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(addr) = std::env::var(CHILD) {
        runtime.block_on(child_peer_process(addr));
    } else {
        // A failed assertion panics, and the non-zero exit fails `cargo test`.
        runtime.block_on(a_killed_peer_is_detected_within_the_dead_peer_timeout());
        println!("test a_killed_peer_is_detected_within_the_dead_peer_timeout ... ok");
        println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
    }
    ExitCode::SUCCESS
}

/// The child process: connect as the answerer over TCP signaling at
/// `addr`, then wait to be killed.
async fn child_peer_process(addr: String) {
    let sig = TcpSignaling::connect(addr.as_str(), Options::default())
        .await
        .unwrap();
    let conn = connect(loopback(PeerConfig::answerer()), sig)
        .await
        .unwrap();
    conn.send_text("child ready").await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
}

async fn a_killed_peer_is_detected_within_the_dead_peer_timeout() {
    let listener = TcpSignaling::bind("127.0.0.1:0", Options::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, addr.to_string())
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sig = tokio::time::timeout(T, listener.accept())
        .await
        .expect("the child connects")
        .unwrap();
    let dead_peer = Duration::from_secs(5);
    let conn = connect(
        loopback(PeerConfig::offerer()).with_dead_peer_timeout(dead_peer),
        sig,
    )
    .await
    .unwrap();
    assert_eq!(
        conn.recv().await.unwrap(),
        Some(Incoming::Text("child ready".into()))
    );
    let conn = Arc::new(conn);
    // A receive that is already waiting when the peer dies.
    let pending_recv = {
        let conn = Arc::clone(&conn);
        tokio::spawn(async move { conn.recv().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    child.start_kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    let result = tokio::time::timeout(dead_peer + Duration::from_secs(2), pending_recv)
        .await
        .expect("no hang")
        .unwrap();
    let noticed = killed.elapsed();
    println!("peer gone noticed after {noticed:?}");
    assert!(matches!(result, Err(Error::PeerGone { .. })), "{result:?}");
    assert!(noticed <= dead_peer, "noticed after {noticed:?}");
    assert!(matches!(
        conn.send_text("anyone?").await,
        Err(Error::PeerGone { .. })
    ));
    conn.close().await;
}
