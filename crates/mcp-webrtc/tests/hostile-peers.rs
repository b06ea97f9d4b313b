//! A hostile peer cannot grow our memory: a flood of malformed requests from
//! a peer that reads nothing, a large message started and never finished,
//! JSON nested past any sane depth. Each over a real peer connection on
//! loopback, against the greeter server on our transport; the peer is a raw
//! data channel that can send anything.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

#[path = "../../../examples/common/greeter.rs"]
mod greeter;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use greeter::Greeter;
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::rtc::{Connection, Incoming, PeerConfig};
use mcp_webrtc::signaling::MemorySignaling;
use mcp_webrtc::{Builder, TransportHandle, WebRtcTransport};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn loopback() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 0))]
}

/// Our greeter server on `builder`, and a raw peer connected to it.
async fn server_and_raw_peer(builder: Builder) -> (TransportHandle, Connection) {
    let (server_sig, client_sig) = MemorySignaling::pair();
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let transport = builder.bind(loopback()).server(server_sig).await.unwrap();
        handle_tx.send(transport.handle()).unwrap();
        let running = Greeter::default().serve(transport).await.unwrap();
        let _ = running.waiting().await;
    });
    let conn = tokio::time::timeout(
        T,
        mcp_webrtc::rtc::connect(PeerConfig::answerer().with_bind(loopback()), client_sig),
    )
    .await
    .unwrap()
    .unwrap();
    (handle_rx.await.unwrap(), conn)
}

/// A HELLO frame by hand (`docs/protocol.md`): we accept 128 MiB messages.
fn hello() -> BytesMut {
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[0x02, 0x01]);
    frame.extend_from_slice(&(128u64 << 20).to_be_bytes());
    frame.extend_from_slice(&8u32.to_be_bytes());
    frame.extend_from_slice(&(256u64 << 20).to_be_bytes());
    frame
}

/// A DATA frame by hand: type 0x01, id, offset, total, payload.
fn data(id: u32, offset: u64, total: u64, payload: &[u8]) -> BytesMut {
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[0x01]);
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&offset.to_be_bytes());
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The next JSON text message from the server (skipping binary frames).
async fn next_json(conn: &Connection) -> Value {
    loop {
        let incoming = tokio::time::timeout(T, conn.recv())
            .await
            .expect("the server answers")
            .unwrap()
            .expect("the channel is open");
        if let Incoming::Text(text) = incoming {
            return serde_json::from_slice(&text).unwrap();
        }
    }
}

/// Initialize and call `greet`: the session works.
async fn session_works(conn: &Connection, id: u64) {
    let initialize = json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}
        }
    });
    conn.send_text(&initialize.to_string()).await.unwrap();
    let reply = next_json(conn).await;
    assert_eq!(reply["id"], id, "{reply}");
    assert!(reply["result"]["capabilities"].is_object(), "{reply}");
    conn.send_text(r#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#)
        .await
        .unwrap();
    let call = json!({
        "jsonrpc": "2.0", "id": id + 1, "method": "tools/call",
        "params": {"name": "greet", "arguments": {"name": "survivor"}}
    });
    conn.send_text(&call.to_string()).await.unwrap();
    let reply = next_json(conn).await;
    assert_eq!(reply["id"], id + 1, "{reply}");
    assert_eq!(reply["result"]["content"][0]["text"], "Hello, survivor!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_from_a_peer_that_reads_nothing_stay_bounded() {
    const FLOOD: u64 = 20_000;
    let (handle, conn) = server_and_raw_peer(WebRtcTransport::builder()).await;
    let conn = Arc::new(conn);
    conn.send_binary(hello()).await.unwrap();

    // Flood from another task: its sends stall once we stop reading.
    let flooder = {
        let conn = Arc::clone(&conn);
        tokio::spawn(async move {
            for id in 0..FLOOD {
                let bad = format!(r#"{{"jsonrpc": "1.0", "id": {id}, "method": "ping"}}"#);
                conn.send_text(&bad).await.unwrap();
            }
        })
    };
    // While the peer reads nothing, watch what waits to go out.
    let (mut max_queued, mut max_pending) = (0, 0);
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let stats = handle.stats();
        max_queued = max_queued.max(stats.queued_bytes);
        max_pending = max_pending.max(stats.pending_replies);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stalled = handle.stats();
    assert!(
        stalled.malformed_received < FLOOD,
        "reading stopped while replies backed up: {stalled:?}"
    );
    assert!(max_pending <= 64, "pending replies {max_pending} > 64");
    // 64 KiB in the framer plus 64 pending replies of about 100 bytes.
    assert!(
        max_queued <= 96 * 1024,
        "{max_queued} bytes queued for a peer that reads nothing: {stalled:?}"
    );

    // The peer reads again: every malformed request gets its answer, and
    // the session goes on.
    let mut answered = 0u64;
    while answered < FLOOD {
        let reply = next_json(&conn).await;
        assert_eq!(reply["error"]["code"], -32600, "{reply}");
        answered += 1;
    }
    tokio::time::timeout(T, flooder).await.unwrap().unwrap();
    session_works(&conn, 1_000_000).await;
    let stats = handle.stats();
    assert_eq!(stats.malformed_received, FLOOD, "{stats:?}");
    assert_eq!(stats.invalid_requests_answered, FLOOD, "{stats:?}");
    assert_eq!(stats.replies_dropped, 0, "{stats:?}");
    assert_eq!(handle.end_reason(), None, "{stats:?}");
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_started_and_never_finished_expires() {
    let builder = WebRtcTransport::builder().partial_timeout(Duration::from_millis(800));
    let (handle, conn) = server_and_raw_peer(builder).await;
    conn.send_binary(hello()).await.unwrap();
    // The first frame of a 100 MB message: the server reserves its buffer.
    conn.send_binary(data(1, 0, 100_000_000, b"{"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + T;
    let saw_buffer = Arc::new(AtomicBool::new(false));
    loop {
        let stats = handle.stats();
        if stats.buffered_bytes == 100_000_000 {
            saw_buffer.store(true, Ordering::SeqCst);
        }
        if stats.partial_messages_expired == 1 {
            assert_eq!(stats.buffered_bytes, 0, "the buffer is freed: {stats:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(saw_buffer.load(Ordering::SeqCst), "the buffer was reserved");
    // Its late frames are skipped; the session goes on.
    conn.send_binary(data(1, 1, 100_000_000, b"x"))
        .await
        .unwrap();
    session_works(&conn, 1).await;
    let stats = handle.stats();
    assert_eq!(stats.partial_messages_expired, 1, "{stats:?}");
    assert_eq!(handle.end_reason(), None);
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_past_the_depth_limit_is_refused_and_the_session_goes_on() {
    let (handle, conn) = server_and_raw_peer(WebRtcTransport::builder()).await;
    // 50,000 levels: far past serde_json's 128, in 100 KB of text.
    let deep = format!(
        r#"{{"jsonrpc": "2.0", "id": 5, "method": "ping", "params": {}{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    conn.send_text(&deep).await.unwrap();
    // Answered, naming the limit, without a stack overflow.
    let reply = next_json(&conn).await;
    assert_eq!(reply["id"], 5, "{reply}");
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("recursion limit exceeded"), "{message}");
    session_works(&conn, 1).await;
    let stats = handle.stats();
    assert_eq!(stats.malformed_received, 1, "{stats:?}");
    assert_eq!(stats.invalid_requests_answered, 1, "{stats:?}");
    assert_eq!(handle.end_reason(), None);
    conn.close().await;
}
