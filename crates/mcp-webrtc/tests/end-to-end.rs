//! MCP sessions between two of our peers over real peer connections on
//! loopback: rmcp server and client, each on a `WebRtcTransport`.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

#[path = "../../../examples/common/greeter.rs"]
mod greeter;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use greeter::{Greeter, blob, sha256_hex};
use mcp_webrtc::rmcp::model::{CallToolRequestParams, CallToolResult};
use mcp_webrtc::rmcp::service::{QuitReason, RunningService};
use mcp_webrtc::rmcp::{RoleClient, ServiceError, ServiceExt};
use mcp_webrtc::signaling::MemorySignaling;
use mcp_webrtc::{Builder, EndReason, TransportHandle, WebRtcTransport, WireMode};
use tokio::task::JoinHandle;

const LIMIT: Duration = Duration::from_secs(60);

fn loopback() -> Builder {
    WebRtcTransport::builder().bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

struct Session {
    client: RunningService<RoleClient, ()>,
    client_handle: TransportHandle,
    server: JoinHandle<QuitReason>,
    server_handle: TransportHandle,
}

async fn session(server: Builder, client: Builder) -> Session {
    let (server_sig, client_sig) = MemorySignaling::pair();
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let transport = server.server(server_sig).await.expect("server transport");
        handle_tx.send(transport.handle()).unwrap();
        let running = Greeter::default()
            .serve(transport)
            .await
            .expect("server init");
        running.waiting().await.expect("server task")
    });
    let transport = tokio::time::timeout(LIMIT, client.client(client_sig))
        .await
        .expect("connect in time")
        .expect("client transport");
    let client_handle = transport.handle();
    let client = tokio::time::timeout(LIMIT, ().serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize");
    let server_handle = handle_rx.await.unwrap();
    Session {
        client,
        client_handle,
        server,
        server_handle,
    }
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    args: serde_json::Value,
) -> Result<CallToolResult, ServiceError> {
    let serde_json::Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    tokio::time::timeout(
        LIMIT,
        client.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args)),
    )
    .await
    .expect("call answered in time")
}

fn text(result: &CallToolResult, index: usize) -> String {
    result.content[index]
        .as_text()
        .expect("text content")
        .text
        .clone()
}

/// Ask for a blob and check it arrived intact: the hash the server
/// computed, the hash of what arrived, and the hash of what was asked for.
async fn check_blob(client: &RunningService<RoleClient, ()>, bytes: usize, seed: u64) {
    let result = call(
        client,
        "blob",
        serde_json::json!({ "bytes": bytes, "seed": seed }),
    )
    .await
    .expect("blob result");
    let body = text(&result, 0);
    assert_eq!(body.len(), bytes);
    let arrived = sha256_hex(body.as_bytes());
    assert_eq!(
        text(&result, 1),
        format!("sha256:{arrived}"),
        "server's hash"
    );
    assert_eq!(arrived, sha256_hex(blob(bytes, seed).as_bytes()), "content");
}

async fn shut_down(s: Session) {
    s.client.cancel().await.unwrap();
    let reason = tokio::time::timeout(LIMIT, s.server)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(reason, QuitReason::Closed), "{reason:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_tools_and_calls_one() {
    let s = session(loopback(), loopback()).await;
    let tools = s.client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["blob", "echo", "greet", "sleep"]);
    let result = call(&s.client, "greet", serde_json::json!({ "name": "Ada" }))
        .await
        .unwrap();
    assert_eq!(text(&result, 0), "Hello, Ada!");
    // Our two peers negotiated chunked framing.
    assert_eq!(s.client_handle.wire_mode(), WireMode::Chunked);
    assert_eq!(s.server_handle.wire_mode(), WireMode::Chunked);
    assert_eq!(s.client_handle.channel().label, "mcp");
    shut_down(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_of_10_and_100_mib_arrive_intact() {
    let s = session(loopback(), loopback()).await;
    check_blob(&s.client, 10 << 20, 1).await;
    check_blob(&s.client, 100 << 20, 2).await;
    // And the session goes on.
    let result = call(
        &s.client,
        "echo",
        serde_json::json!({ "text": "still here" }),
    )
    .await
    .unwrap();
    assert_eq!(text(&result, 0), "still here");
    assert_eq!(s.client_handle.stats().malformed_received, 0);
    shut_down(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_are_each_answered_correctly() {
    let s = session(loopback(), loopback()).await;
    let client = Arc::new(s.client);
    let calls = (0..1000).map(|i| {
        let client = Arc::clone(&client);
        async move {
            let result = call(
                &client,
                "echo",
                serde_json::json!({ "text": format!("call {i}") }),
            )
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
            (i, text(&result, 0))
        }
    });
    let answers = futures::future::join_all(calls).await;
    assert_eq!(answers.len(), 1000);
    for (i, answer) in answers {
        assert_eq!(
            answer,
            format!("call {i}"),
            "response matched to its request"
        );
    }
    let client = Arc::try_unwrap(client).expect("no other owner");
    shut_down(Session { client, ..s }).await;
}

/// Ask for a `bytes`-byte blob (checked when it arrives) in the background,
/// and return once its first 4 MiB are on the wire.
async fn start_bulk(
    client: &Arc<RunningService<RoleClient, ()>>,
    server: &TransportHandle,
    base: u64,
    bytes: u64,
    seed: u64,
) -> JoinHandle<()> {
    let bulk = tokio::spawn({
        let client = Arc::clone(client);
        async move { check_blob(&client, bytes as usize, seed).await }
    });
    let started = tokio::time::Instant::now();
    while server.stats().bytes_sent < base + (4 << 20) {
        assert!(started.elapsed() < LIMIT, "the bulk result never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bulk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_calls_complete_while_100_mib_streams() {
    const BULK: u64 = 100 << 20;
    let s = session(loopback(), loopback()).await;
    let client = Arc::new(s.client);
    let base = s.server_handle.stats().bytes_sent;
    let bulk = start_bulk(&client, &s.server_handle, base, BULK, 3).await;
    // Small calls whose answer arrived before the server had sent the whole
    // bulk result: they overtook it (without interleaving, none could).
    let mut overtook = 0;
    let mut completed = 0;
    while !bulk.is_finished() && completed < 200 {
        let result = call(&client, "echo", serde_json::json!({ "text": "small" }))
            .await
            .unwrap();
        assert_eq!(text(&result, 0), "small");
        completed += 1;
        if s.server_handle.stats().bytes_sent < base + BULK {
            overtook += 1;
        }
    }
    bulk.await.unwrap();
    assert!(
        overtook > 0,
        "no small call overtook the 100 MiB result ({completed} completed after it)"
    );
    let client = Arc::try_unwrap(client).expect("no other owner");
    shut_down(Session { client, ..s }).await;
}

/// How much of a bulk result each small call waits behind: the bytes the
/// client took from the channel between sending a small call and getting its
/// answer, while a 100 MiB result streams. Interleaving keeps it to about
/// the data channel's send buffer (256 KiB) plus what is in flight; a FIFO
/// scheduler makes it the rest of the bulk result, and a 64 MiB send buffer
/// up to 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_call_waits_behind_little_of_a_bulk_result() {
    const BULK: u64 = 100 << 20;
    let s = session(loopback(), loopback()).await;
    let client = Arc::new(s.client);
    let base = s.server_handle.stats().bytes_sent;
    let bulk = start_bulk(&client, &s.server_handle, base, BULK, 5).await;
    let mut waits = Vec::new();
    while !bulk.is_finished() && waits.len() < 100 {
        let before = s.client_handle.stats().bytes_received;
        let result = call(&client, "echo", serde_json::json!({ "text": "small" }))
            .await
            .unwrap();
        let after = s.client_handle.stats().bytes_received;
        assert_eq!(text(&result, 0), "small");
        // Only calls answered while the bulk result was still arriving.
        if after < base + BULK {
            waits.push(after - before);
        }
    }
    bulk.await.unwrap();
    assert!(
        waits.len() >= 5,
        "too few calls during the transfer: {waits:?}"
    );
    waits.sort_unstable();
    let median = waits[waits.len() / 2];
    assert!(
        median < 8 << 20,
        "a small call waited behind {median} bytes of the bulk result (median of {})",
        waits.len()
    );
    let client = Arc::try_unwrap(client).expect("no other owner");
    shut_down(Session { client, ..s }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_is_no_longer_remembered_as_unanswered() {
    let s = session(loopback(), loopback()).await;
    // rmcp cancels a call whose future is dropped: here, by a timeout.
    let slow = CallToolRequestParams::new("sleep".to_owned()).with_arguments(
        serde_json::json!({ "ms": 10_000 })
            .as_object()
            .unwrap()
            .clone(),
    );
    let gave_up = tokio::time::timeout(Duration::from_millis(300), s.client.call_tool(slow)).await;
    assert!(gave_up.is_err(), "the call was still running");
    // Its notifications/cancelled went out, and the transport forgot it.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while s.client_handle.stats().unanswered_requests != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            s.client_handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Requests in flight are remembered until answered.
    check_blob(&s.client, 1024, 1).await;
    assert_eq!(s.client_handle.stats().unanswered_requests, 0);
    shut_down(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_shutdown_ends_the_server_session_cleanly() {
    let s = session(loopback(), loopback()).await;
    call(&s.client, "greet", serde_json::json!({ "name": "x" }))
        .await
        .unwrap();
    let server_handle = s.server_handle.clone();
    let client_handle = s.client_handle.clone();
    shut_down(s).await;
    assert_eq!(server_handle.end_reason(), Some(EndReason::PeerClosed));
    assert_eq!(client_handle.end_reason(), Some(EndReason::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_ends_the_client_session_cleanly() {
    let (server_sig, client_sig) = MemorySignaling::pair();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let transport = loopback().server(server_sig).await.unwrap();
        let handle = transport.handle();
        let running = Greeter::default().serve(transport).await.unwrap();
        stop_rx.await.unwrap();
        let reason = running.cancel().await.unwrap();
        (reason, handle)
    });
    let transport = loopback().client(client_sig).await.unwrap();
    let client_handle = transport.handle();
    let client = ().serve(transport).await.unwrap();
    call(&client, "greet", serde_json::json!({ "name": "x" }))
        .await
        .unwrap();
    stop_tx.send(()).unwrap();
    let (reason, server_handle) = server.await.unwrap();
    assert!(matches!(reason, QuitReason::Cancelled), "{reason:?}");
    // The client's session ends by itself, cleanly, without a dead-peer wait.
    let reason = tokio::time::timeout(Duration::from_secs(4), client.waiting())
        .await
        .expect("the client noticed the server left")
        .unwrap();
    assert!(matches!(reason, QuitReason::Closed), "{reason:?}");
    assert_eq!(client_handle.end_reason(), Some(EndReason::PeerClosed));
    assert_eq!(server_handle.end_reason(), Some(EndReason::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_result_to_a_plain_peer_becomes_an_error_response() {
    // A server without chunking speaks exactly the reference wire format:
    // every message must fit the channel's 262144-byte SDP limit.
    let s = session(loopback().chunking(false), loopback()).await;
    assert_eq!(s.client_handle.wire_mode(), WireMode::Plain);
    assert_eq!(s.server_handle.max_send_size(), Some(262_144));
    let err = call(&s.client, "blob", serde_json::json!({ "bytes": 300_000 }))
        .await
        .expect_err("an oversize result cannot be delivered");
    let message = err.to_string();
    assert!(
        message.contains("result too large for this peer:")
            && message.contains("bytes > limit 262144"),
        "{message}"
    );
    assert_eq!(s.server_handle.stats().oversize_results_answered, 1);
    // Just under the limit goes through, and the session goes on.
    check_blob(&s.client, 200 * 1024, 4).await;
    shut_down(s).await;
}
