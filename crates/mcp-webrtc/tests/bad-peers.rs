//! A peer that sends garbage, over a real peer connection on loopback.
//! (A peer that dies mid-call: `killed-server.rs`.)
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
use std::time::Duration;

use bytes::BytesMut;
use greeter::Greeter;
use mcp_webrtc::WebRtcTransport;
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::rtc::{Connection, Incoming, PeerConfig};
use mcp_webrtc::signaling::MemorySignaling;
use serde_json::{Value, json};

fn loopback() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 0))]
}

/// The next JSON text message from the server (skipping its binary HELLO).
async fn next_json(conn: &Connection) -> Value {
    loop {
        let incoming = tokio::time::timeout(Duration::from_secs(20), conn.recv())
            .await
            .expect("the server answers")
            .unwrap()
            .expect("the channel is open");
        match incoming {
            Incoming::Text(text) => return serde_json::from_slice(&text).unwrap(),
            Incoming::Binary(_) => continue,
        }
    }
}

/// A HELLO frame, built by hand from `docs/protocol.md`: type 0x02,
/// version 1, then max message size (u64), max in flight (u32) and max
/// buffered bytes (u64), big-endian.
fn hello() -> BytesMut {
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[0x02, 0x01]);
    frame.extend_from_slice(&(1u64 << 20).to_be_bytes());
    frame.extend_from_slice(&8u32.to_be_bytes());
    frame.extend_from_slice(&(8u64 << 20).to_be_bytes());
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_counted_answered_and_survived() {
    let (server_sig, client_sig) = MemorySignaling::pair();
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let transport = WebRtcTransport::builder()
            .bind(loopback())
            .server(server_sig)
            .await
            .unwrap();
        handle_tx.send(transport.handle()).unwrap();
        let running = Greeter::default().serve(transport).await.unwrap();
        running.waiting().await.unwrap()
    });
    // The client is a raw data channel: it can send anything.
    let conn = mcp_webrtc::rtc::connect(PeerConfig::answerer().with_bind(loopback()), client_sig)
        .await
        .unwrap();
    let handle = handle_rx.await.unwrap();

    conn.send_binary(hello()).await.unwrap();
    // 1: not JSON.
    conn.send_text("this is not JSON").await.unwrap();
    // 2: JSON, not an object.
    conn.send_text("[1, 2, 3]").await.unwrap();
    // 3: the wrong JSON-RPC version (a request with an id: answered).
    conn.send_text(r#"{"jsonrpc": "1.0", "id": 1, "method": "ping"}"#)
        .await
        .unwrap();
    // 4: a binary frame of an unknown type.
    conn.send_binary(BytesMut::from(&[0xff, 0, 0][..]))
        .await
        .unwrap();
    // 5: a DATA frame for a message that never started (offset 5 of 10).
    let mut data = BytesMut::new();
    data.extend_from_slice(&[0x01]);
    data.extend_from_slice(&9u32.to_be_bytes());
    data.extend_from_slice(&5u64.to_be_bytes());
    data.extend_from_slice(&10u64.to_be_bytes());
    data.extend_from_slice(b"hello");
    conn.send_binary(data).await.unwrap();
    // 6: JSON-RPC, but not an MCP request (answered: it has an id).
    conn.send_text(r#"{"jsonrpc": "2.0", "id": "x", "method": "no/such/method", "params": 7}"#)
        .await
        .unwrap();

    let error = next_json(&conn).await;
    assert_eq!(error["id"], 1, "{error}");
    assert_eq!(error["error"]["code"], -32600, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"jsonrpc\": \"1.0\""), "{message}");
    let error = next_json(&conn).await;
    assert_eq!(error["id"], "x", "{error}");
    assert_eq!(error["error"]["code"], -32600, "{error}");

    // The session goes on: initialize, then a call.
    let initialize = json!({
        "jsonrpc": "2.0", "id": 10, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}
        }
    });
    conn.send_text(&initialize.to_string()).await.unwrap();
    let reply = next_json(&conn).await;
    assert_eq!(reply["id"], 10, "{reply}");
    assert!(
        reply["result"]["capabilities"]["tools"].is_object(),
        "{reply}"
    );
    conn.send_text(r#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#)
        .await
        .unwrap();
    let call = json!({
        "jsonrpc": "2.0", "id": 11, "method": "tools/call",
        "params": {"name": "greet", "arguments": {"name": "survivor"}}
    });
    conn.send_text(&call.to_string()).await.unwrap();
    let reply = next_json(&conn).await;
    assert_eq!(reply["id"], 11, "{reply}");
    assert_eq!(
        reply["result"]["content"][0]["text"], "Hello, survivor!",
        "{reply}"
    );

    let stats = handle.stats();
    assert_eq!(stats.malformed_received, 6, "{stats:?}");
    assert_eq!(stats.invalid_requests_answered, 2, "{stats:?}");
    assert_eq!(handle.end_reason(), None, "the session is still up");
    conn.close().await;
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
}
