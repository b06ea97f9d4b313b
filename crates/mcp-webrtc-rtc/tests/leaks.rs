//! No task or socket outlives its connection: 100 connections opened and
//! closed, plus set-ups cancelled part-way and connections dropped without
//! `close`. Alone in its own test binary, so the process-wide task and fd
//! counts see nothing else.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::net::SocketAddr;
use std::time::Duration;

use mcp_webrtc_rtc::{Connection, PeerConfig, connect};
use mcp_webrtc_signaling::MemorySignaling;

fn loopback(config: PeerConfig) -> PeerConfig {
    config.with_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

async fn pair() -> (Connection, Connection) {
    let (a, b) = MemorySignaling::pair();
    let (x, y) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(
            connect(loopback(PeerConfig::offerer()), a),
            connect(loopback(PeerConfig::answerer()), b)
        )
    })
    .await
    .unwrap();
    (x.unwrap(), y.unwrap())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_leave_no_task_or_socket_behind() {
    let metrics = tokio::runtime::Handle::current().metrics();
    // Warm up once (lazy statics, the runtime's own fds).
    let (a, b) = pair().await;
    a.close().await;
    b.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tasks0, fds0) = (metrics.num_alive_tasks(), open_fds());

    for _ in 0..100 {
        let (a, b) = pair().await;
        a.send_text("x").await.unwrap();
        assert!(b.recv().await.unwrap().is_some());
        a.close().await;
        b.close().await;
    }
    // Dropped without close.
    for _ in 0..5 {
        let (a, b) = pair().await;
        drop((a, b));
    }
    // Set-ups cancelled part-way (every millisecond of the first 15, which
    // covers building the peer connection), and closes cancelled part-way.
    for wait in (0u64..=15).chain([20]) {
        let (a, b) = MemorySignaling::pair();
        let _ = tokio::time::timeout(Duration::from_millis(wait), async {
            tokio::join!(
                connect(loopback(PeerConfig::offerer()), a),
                connect(loopback(PeerConfig::answerer()), b)
            )
        })
        .await;
        let (a, b) = pair().await;
        let _ = tokio::time::timeout(Duration::from_millis(wait), a.close()).await;
        drop((a, b));
    }

    // Bounded wait for background closes to finish.
    let mut settled = false;
    for _ in 0..60 {
        if metrics.num_alive_tasks() <= tasks0 && open_fds() <= fds0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        settled,
        "tasks {} (baseline {tasks0}), fds {} (baseline {fds0})",
        metrics.num_alive_tasks(),
        open_fds()
    );
}
