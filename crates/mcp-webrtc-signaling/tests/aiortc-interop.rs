//! Our `tcp` and `unix` backends against aiortc 1.16.0's own
//! `TcpSocketSignaling` and `UnixSocketSignaling`, in both roles.
//!
//! Run by `cargo xtask interop`, which makes the pinned Python venv and sets
//! `MCP_WEBRTC_PYTHON`. Each cell runs the real Python peer as a child
//! process and checks what each side received.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use mcp_webrtc_signaling::{Options, SignalMessage, Signaling, TcpSignaling, UnixSignaling};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=python offer\r\nt=0 0\r\n";
const ANSWER: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=python answer\r\nt=0 0\r\n";
const PY_CANDIDATE: &str = "candidate:2 1 udp 2130706431 127.0.0.1 50001 typ host";
const RUST_OFFER: &str = "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=rust offer \u{2603}\r\nt=0 0\r\n";
const RUST_ANSWER: &str = "v=0\r\no=- 8 8 IN IP4 127.0.0.1\r\ns=rust answer\r\nt=0 0\r\n";
const RUST_CANDIDATE: &str = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host";

fn python() -> String {
    std::env::var("MCP_WEBRTC_PYTHON").unwrap_or_else(|_| {
        panic!("MCP_WEBRTC_PYTHON is not set: run these tests with `cargo xtask interop`")
    })
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../xtask/interop/aiortc_signaling.py")
}

fn spawn(kind: &str, role: &str, target: &str) -> Child {
    Command::new(python())
        .arg(script())
        .args([kind, role, target])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python peer")
}

async fn finish(child: Child) -> Vec<Value> {
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the Python peer finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python peer failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rust_candidate() -> SignalMessage {
    SignalMessage::Candidate {
        candidate: RUST_CANDIDATE.into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    }
}

fn py_candidate() -> SignalMessage {
    SignalMessage::Candidate {
        candidate: PY_CANDIDATE.into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    }
}

/// Python listens (it sends first); we connect, as the answerer.
async fn we_connect(mut sig: impl Signaling, child: Child) {
    assert_eq!(
        sig.recv().await.unwrap(),
        Some(SignalMessage::Offer(OFFER.into()))
    );
    sig.send(SignalMessage::Answer(RUST_ANSWER.into()))
        .await
        .unwrap();
    sig.send(rust_candidate()).await.unwrap();
    assert_eq!(sig.recv().await.unwrap(), Some(py_candidate()));
    sig.close().await.unwrap();
    let seen = finish(child).await;
    assert_eq!(
        seen,
        vec![
            json!({"type": "answer", "sdp": RUST_ANSWER}),
            json!({"type": "candidate", "candidate": RUST_CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0}),
            json!({"type": "bye"}),
        ]
    );
}

/// We listen (we send first), as the offerer; Python connects.
async fn we_listen(mut sig: impl Signaling, child: Child) {
    sig.send(SignalMessage::Offer(RUST_OFFER.into()))
        .await
        .unwrap();
    assert_eq!(
        sig.recv().await.unwrap(),
        Some(SignalMessage::Answer(ANSWER.into()))
    );
    assert_eq!(sig.recv().await.unwrap(), Some(py_candidate()));
    sig.send(rust_candidate()).await.unwrap();
    sig.close().await.unwrap();
    let seen = finish(child).await;
    assert_eq!(
        seen,
        vec![
            json!({"type": "offer", "sdp": RUST_OFFER}),
            json!({"type": "candidate", "candidate": RUST_CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0}),
            json!({"type": "bye"}),
        ]
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "mcp-webrtc-interop-{}-{name}.sock",
        std::process::id()
    ))
}

#[tokio::test]
async fn tcp_python_listens_rust_connects() {
    let target = format!("127.0.0.1:{}", free_port());
    let child = spawn("tcp", "listen", &target);
    let sig = TcpSignaling::connect(target.as_str(), Options::default())
        .await
        .unwrap();
    we_connect(sig, child).await;
}

#[tokio::test]
async fn tcp_rust_listens_python_connects() {
    let listener = TcpSignaling::bind("127.0.0.1:0", Options::default())
        .await
        .unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let child = spawn("tcp", "connect", &target);
    let sig = listener.accept().await.unwrap();
    we_listen(sig, child).await;
}

#[tokio::test]
async fn unix_python_listens_rust_connects() {
    let path = socket_path("py-listens");
    let _ = std::fs::remove_file(&path);
    let child = spawn("unix", "listen", path.to_str().unwrap());
    let sig = UnixSignaling::connect(&path, Options::default())
        .await
        .unwrap();
    we_connect(sig, child).await;
}

#[tokio::test]
async fn unix_rust_listens_python_connects() {
    let path = socket_path("rust-listens");
    let listener = UnixSignaling::bind(&path, Options::default())
        .await
        .unwrap();
    let child = spawn("unix", "connect", path.to_str().unwrap());
    let sig = listener.accept().await.unwrap();
    we_listen(sig, child).await;
    assert!(!path.exists(), "our socket file is removed on close");
}
