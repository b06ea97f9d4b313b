//! Peers that misbehave: one that sends garbage, one that dies mid-call.
//! Real peer connections on loopback, and a real second process.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

#[path = "../../../examples/common/greeter.rs"]
mod greeter;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use greeter::Greeter;
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::rtc::{Connection, Incoming, PeerConfig};
use mcp_webrtc::signaling::{MemorySignaling, Options, TcpSignaling};
use mcp_webrtc::{EndReason, WebRtcTransport};
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

/// Run by `a_killed_server_fails_pending_and_new_calls_fast` as a separate
/// process (ignored otherwise): a greeter server on TCP signaling that
/// prints its port and serves until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of a_killed_server_fails_pending_and_new_calls_fast"]
async fn greeter_server_process() {
    let listener = TcpSignaling::bind("127.0.0.1:0", Options::default())
        .await
        .unwrap();
    println!("PORT {}", listener.local_addr().unwrap().port());
    let signaling = listener.accept().await.unwrap();
    let transport = WebRtcTransport::builder()
        .bind(loopback())
        .server(signaling)
        .await
        .unwrap();
    let running = Greeter::default().serve(transport).await.unwrap();
    running.waiting().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_pending_and_new_calls_fast() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "greeter_server_process",
            "--ignored",
            "--nocapture",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("PORT ")
                    .map(|p| p.parse::<u16>().unwrap())
            })
    })
    .await
    .unwrap()
    .expect("the server process printed its port");

    let dead_peer_timeout = Duration::from_secs(5);
    let signaling =
        TcpSignaling::connect(SocketAddr::from(([127, 0, 0, 1], port)), Options::default())
            .await
            .unwrap();
    let transport = WebRtcTransport::builder()
        .bind(loopback())
        .dead_peer_timeout(dead_peer_timeout)
        .client(signaling)
        .await
        .unwrap();
    let handle = transport.handle();
    let client = ().serve(transport).await.unwrap();
    let call = |name: &str, args: Value| {
        let Value::Object(args) = args else { panic!() };
        client.call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
    };
    let greeting = call("greet", json!({"name": "x"})).await.unwrap();
    assert_eq!(greeting.content[0].as_text().unwrap().text, "Hello, x!");

    // A call the server will never answer, then SIGKILL.
    let pending = tokio::spawn({
        let peer = client.peer().clone();
        async move {
            peer.call_tool(
                CallToolRequestParams::new("sleep")
                    .with_arguments(json!({"ms": 60_000}).as_object().unwrap().clone()),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    child.wait().unwrap();

    // Scheduling slack on a loaded machine, beyond the timeout itself.
    let bound = dead_peer_timeout + Duration::from_millis(1500);
    let pending = tokio::time::timeout(bound, pending)
        .await
        .expect("the pending call failed within the dead-peer timeout")
        .unwrap();
    let error = pending
        .expect_err("a dead server cannot answer")
        .to_string();
    assert!(error.contains("peer gone"), "{error}");
    println!("pending call failed after {:?}: {error}", killed.elapsed());

    // New calls fail at once, without hanging.
    let new_call =
        tokio::time::timeout(Duration::from_secs(2), call("greet", json!({"name": "y"})))
            .await
            .expect("a new call fails fast");
    assert!(new_call.is_err());
    assert!(
        matches!(handle.end_reason(), Some(EndReason::PeerGone { .. })),
        "{:?}",
        handle.end_reason()
    );
}
