//! Chunked mode at its edges, through the facade: a peer that announces a
//! lower limit, a large request queued before the peer's HELLO, and a peer
//! that announces chunking and never sends its HELLO. The far side is our
//! rmcp client on a `WebRtcTransport`, or a raw peer connection driving the
//! core framer by hand (so it can hold its HELLO back).
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
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use greeter::Greeter;
use mcp_webrtc::core::{ChannelInfo, Config, Framer, PROTOCOL, Role, Transmit};
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::rtc::{Connection, Incoming, PeerConfig};
use mcp_webrtc::signaling::MemorySignaling;
use mcp_webrtc::{WebRtcTransport, WireMode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn loopback() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 0))]
}

fn args(value: Value) -> serde_json::Map<String, Value> {
    let Value::Object(map) = value else {
        panic!("arguments must be an object")
    };
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_the_limit_the_peer_announced_becomes_an_error_response() {
    let (server_sig, client_sig) = MemorySignaling::pair();
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let transport = WebRtcTransport::builder()
            .bind(loopback())
            .server(server_sig)
            .await
            .unwrap();
        handle_tx.send(transport.handle()).unwrap();
        let running = Greeter::default().serve(transport).await.unwrap();
        let _ = running.waiting().await;
    });
    // The client takes messages of 1 MiB at most, and says so in its HELLO.
    let transport = WebRtcTransport::builder()
        .bind(loopback())
        .max_message_size(1 << 20)
        .client(client_sig)
        .await
        .unwrap();
    let client = ().serve(transport).await.unwrap();
    let server = handle_rx.await.unwrap();
    assert_eq!(server.wire_mode(), WireMode::Chunked);
    assert_eq!(server.max_send_size(), Some(1 << 20));
    let blob = |bytes: u64| {
        client.call_tool(
            CallToolRequestParams::new("blob").with_arguments(args(json!({ "bytes": bytes }))),
        )
    };
    let err = tokio::time::timeout(T, blob(2 << 20))
        .await
        .unwrap()
        .expect_err("a 2 MiB result cannot reach a peer that takes 1 MiB");
    let message = err.to_string();
    assert!(
        message.contains("result too large for this peer:")
            && message.contains("bytes > limit 1048576"),
        "{message}"
    );
    assert_eq!(server.stats().oversize_results_answered, 1);
    // Under the limit, chunked, goes through; the session goes on.
    let ok = tokio::time::timeout(T, blob(900 * 1024))
        .await
        .unwrap()
        .unwrap();
    let body = ok.content[0].as_text().unwrap().text.len();
    assert_eq!(body, 900 * 1024);
    client.cancel().await.unwrap();
}

/// A raw offerer on our protocol string, with a framer of its own whose
/// HELLO it sends only when told to.
struct RawServer {
    conn: Connection,
    framer: Framer,
}

impl RawServer {
    async fn start(sig: MemorySignaling) -> RawServer {
        let conn = mcp_webrtc::rtc::connect(
            PeerConfig::offerer()
                .with_bind(loopback())
                .with_protocol(PROTOCOL),
            sig,
        )
        .await
        .unwrap();
        let channel = ChannelInfo::new(PROTOCOL, Some(conn.info().max_message_size));
        let framer = Framer::new(Role::Offerer, Config::default(), &channel).unwrap();
        RawServer { conn, framer }
    }

    /// The next whole message from the client; HELLOs are taken in but
    /// ours is held back.
    async fn next_message(&mut self) -> Value {
        loop {
            let incoming = tokio::time::timeout(T, self.conn.recv())
                .await
                .expect("the client sends")
                .unwrap()
                .expect("open");
            let done = match incoming {
                Incoming::Text(text) => Some(self.framer.receive_text(text).unwrap()),
                Incoming::Binary(frame) => {
                    self.framer.receive_binary(&frame, Instant::now()).unwrap()
                }
            };
            if let Some(message) = done {
                return serde_json::from_slice(&message).unwrap();
            }
        }
    }

    /// Send what the framer has queued (our HELLO, answers).
    async fn flush(&mut self) {
        while let Some(t) = self.framer.poll_transmit() {
            match t {
                Transmit::Text(text) => self
                    .conn
                    .send_text(std::str::from_utf8(&text).unwrap())
                    .await
                    .unwrap(),
                Transmit::Binary(frame) => self
                    .conn
                    .send_binary(BytesMut::from(&frame.to_bytes()[..]))
                    .await
                    .unwrap(),
            }
        }
    }

    /// Answer `initialize` in plain text, before any HELLO of ours.
    async fn answer_initialize(&mut self) {
        let init = self.next_message().await;
        assert_eq!(init["method"], "initialize", "{init}");
        let reply = json!({
            "jsonrpc": "2.0", "id": init["id"],
            "result": {
                "protocolVersion": init["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "raw", "version": "0"}
            }
        });
        self.conn.send_text(&reply.to_string()).await.unwrap();
        let initialized = self.next_message().await;
        assert_eq!(initialized["method"], "notifications/initialized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_queued_before_the_peers_hello_goes_out_once_it_comes() {
    let (server_sig, client_sig) = MemorySignaling::pair();
    let server = tokio::spawn(async move {
        let mut server = RawServer::start(server_sig).await;
        server.answer_initialize().await;
        // Let the client queue its large call while our HELLO is held back.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let nothing = tokio::time::timeout(Duration::from_millis(10), server.conn.recv()).await;
        assert!(
            nothing.is_err(),
            "the large call waited for our HELLO: {nothing:?}"
        );
        server.flush().await; // our HELLO now
        let call = server.next_message().await;
        assert_eq!(call["method"], "tools/call", "{call}");
        let text = call["params"]["arguments"]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        let reply = json!({
            "jsonrpc": "2.0", "id": call["id"],
            "result": {"content": [{"type": "text", "text": format!("got {}", text.len())}]}
        });
        server.framer.send(Bytes::from(reply.to_string())).unwrap();
        server.flush().await;
        server
    });
    let transport = WebRtcTransport::builder()
        .bind(loopback())
        .client(client_sig)
        .await
        .unwrap();
    let handle = transport.handle();
    let client = tokio::time::timeout(T, ().serve(transport))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        handle.wire_mode(),
        WireMode::Chunked,
        "the answerer chunks at once"
    );
    assert_eq!(handle.peer_limits(), None, "no HELLO from the server yet");
    let big = "q".repeat(300_000); // over one data-channel message
    let result = tokio::time::timeout(
        T,
        client.call_tool(
            CallToolRequestParams::new("echo").with_arguments(args(json!({ "text": big }))),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(result.content[0].as_text().unwrap().text, "got 300000");
    assert!(handle.peer_limits().is_some());
    let _server = server.await.unwrap();
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_sends_its_hello_gets_small_calls_and_refuses_large_ones_clearly() {
    let (server_sig, client_sig) = MemorySignaling::pair();
    let server = tokio::spawn(async move {
        let mut server = RawServer::start(server_sig).await;
        server.answer_initialize().await;
        // Answer small calls in plain text; never send a HELLO.
        loop {
            let call = server.next_message().await;
            let reply = json!({
                "jsonrpc": "2.0", "id": call["id"],
                "result": {"content": [{"type": "text", "text": "small ok"}]}
            });
            server.conn.send_text(&reply.to_string()).await.unwrap();
        }
    });
    let transport = WebRtcTransport::builder()
        .bind(loopback())
        .hello_timeout(Duration::from_millis(300))
        .client(client_sig)
        .await
        .unwrap();
    let client = tokio::time::timeout(T, ().serve(transport))
        .await
        .unwrap()
        .unwrap();
    let call = |text: String| {
        client.call_tool(
            CallToolRequestParams::new("echo").with_arguments(args(json!({ "text": text }))),
        )
    };
    // Queued before the timeout: handed back with the reason when it passes.
    let err = tokio::time::timeout(T, call("w".repeat(300_000)))
        .await
        .unwrap()
        .expect_err("no HELLO: a message that needs chunking cannot go");
    let message = err.to_string();
    assert!(
        message.contains("request not sent") && message.contains("no HELLO from the peer"),
        "{message}"
    );
    // After it: refused at once, same words.
    let err = tokio::time::timeout(T, call("w".repeat(300_000)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("no HELLO from the peer"), "{err}");
    // Small calls still go, as text.
    let ok = tokio::time::timeout(T, call("tiny".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.content[0].as_text().unwrap().text, "small ok");
    server.abort();
    client.cancel().await.unwrap();
}
