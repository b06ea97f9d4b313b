//! Liveness when the network path goes away while both processes live on.
//!
//! Two network namespaces made by this test, joined by a veth pair whose ends
//! are created inside them (198.18.77.1 and 198.18.77.2; the host's own
//! interfaces are never touched). A child peer runs in each. Once the channel
//! is open the test takes one end of the link down, and the offerer must
//! report `PeerGone` within its dead-peer timeout. Needs root (as CI runs).
//!
//! This binary has its own `main` (no libtest harness): run with
//! `MCP_WEBRTC_PATH_LOSS_ROLE` set, it is one of the peers inside a
//! namespace; otherwise it is the test. No test returns early.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::print_stdout,
    clippy::cast_possible_truncation
)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_webrtc_rtc::{Error, Incoming, PeerConfig, connect};
use mcp_webrtc_signaling::{Options, TcpSignaling};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const A_ADDR: &str = "198.18.77.1";
const B_ADDR: &str = "198.18.77.2";
const DEAD_PEER: Duration = Duration::from_secs(5);

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn bind(addr: &str) -> PeerConfig {
    PeerConfig::offerer().with_bind(vec![SocketAddr::new(addr.parse().unwrap(), 0)])
}

/// Two namespaces and the link between them; removed when dropped.
struct Lab {
    a: String,
    b: String,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {}: {} (this test needs root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id();
        let lab = Lab {
            a: format!("mcpw-a-{id}"),
            b: format!("mcpw-b-{id}"),
        };
        ip(&["netns", "add", &lab.a]);
        ip(&["netns", "add", &lab.b]);
        // Both veth ends are created inside the namespaces.
        ip(&[
            "-n", &lab.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
            &lab.b,
        ]);
        ip(&[
            "-n",
            &lab.a,
            "addr",
            "add",
            &format!("{A_ADDR}/24"),
            "dev",
            "va",
        ]);
        ip(&[
            "-n",
            &lab.b,
            "addr",
            "add",
            &format!("{B_ADDR}/24"),
            "dev",
            "vb",
        ]);
        for (ns, dev) in [(&lab.a, "va"), (&lab.b, "vb")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn run(&self, ns: &str, role: &str) -> Child {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(std::env::current_exe().unwrap())
            .env(ROLE, role)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

/// Set in a child's environment: its role.
const ROLE: &str = "MCP_WEBRTC_PATH_LOSS_ROLE";

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(role) = std::env::var(ROLE) {
        runtime.block_on(path_loss_child(role));
    } else {
        // A failed assertion panics, and the non-zero exit fails `cargo test`.
        runtime.block_on(a_lost_network_path_is_detected_within_the_dead_peer_timeout());
        println!("test a_lost_network_path_is_detected_within_the_dead_peer_timeout ... ok");
        println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
    }
    std::process::ExitCode::SUCCESS
}

/// The peers, run inside the namespaces by the test. The offerer (in A)
/// prints `READY` once the channel carries a message, then `GONE <ms>`
/// (wall clock) when it notices the loss.
async fn path_loss_child(role: String) {
    let signaling_addr = format!("{A_ADDR}:47001");
    if role == "offerer" {
        let sig = TcpSignaling::listen(signaling_addr.as_str()).await.unwrap();
        let conn = connect(bind(A_ADDR).with_dead_peer_timeout(DEAD_PEER), sig)
            .await
            .unwrap();
        assert_eq!(
            conn.recv().await.unwrap(),
            Some(Incoming::Text("hi".into()))
        );
        println!("READY");
        let result = tokio::time::timeout(Duration::from_secs(20), conn.recv()).await;
        match result {
            Ok(Err(Error::PeerGone { .. })) => println!("GONE {}", now_ms()),
            other => println!("UNEXPECTED {other:?}"),
        }
    } else {
        let sig = TcpSignaling::connect(signaling_addr.as_str(), Options::default())
            .await
            .unwrap();
        let config =
            PeerConfig::answerer().with_bind(vec![SocketAddr::new(B_ADDR.parse().unwrap(), 0)]);
        let conn = connect(config, sig).await.unwrap();
        conn.send_text("hi").await.unwrap();
        tokio::time::sleep(Duration::from_secs(25)).await;
    }
}

async fn a_lost_network_path_is_detected_within_the_dead_peer_timeout() {
    let lab = Lab::new();
    let mut offerer = lab.run(&lab.a, "offerer");
    let _answerer = lab.run(&lab.b, "answerer");
    let mut lines = BufReader::new(offerer.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            // libtest may print its "test … " prefix on the same line.
            if line.ends_with("READY") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "the peers connected across the namespaces");

    // The path goes away; both processes stay alive.
    let cut = now_ms();
    ip(&["-n", &lab.b, "link", "set", "vb", "down"]);

    let gone = tokio::time::timeout(DEAD_PEER + Duration::from_secs(5), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some((_, ms)) = line.split_once("GONE ") {
                return Some(ms.trim().parse::<u128>().unwrap());
            }
            if line.contains("UNEXPECTED") {
                panic!("{line}");
            }
        }
        None
    })
    .await
    .expect("the loss is noticed, no hang")
    .expect("the offerer reports PeerGone");
    let noticed = Duration::from_millis((gone - cut) as u64);
    println!("path loss noticed after {noticed:?}");
    assert!(noticed <= DEAD_PEER, "noticed after {noticed:?}");
}
