//! The untyped message channel: JSON-RPC messages as bytes, unchanged, with
//! the same framing, limits, bad-input handling and end reasons as the rmcp
//! transport. Over real peer connections on loopback.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mcp_webrtc::rtc::{Connection, Incoming, PeerConfig};
use mcp_webrtc::signaling::MemorySignaling;
use mcp_webrtc::{Builder, EndReason, Error, MessageChannel, Role, WireMode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn loopback() -> Builder {
    Builder::default().bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

async fn pair(offerer: Builder, answerer: Builder) -> (MessageChannel, MessageChannel) {
    let (a, b) = MemorySignaling::pair();
    let (x, y) = tokio::join!(
        offerer.message_channel(Role::Offerer, a),
        answerer.message_channel(Role::Answerer, b)
    );
    (x.unwrap(), y.unwrap())
}

async fn next(channel: &mut MessageChannel) -> Option<Bytes> {
    tokio::time::timeout(T, channel.receive())
        .await
        .expect("in time")
}

#[tokio::test]
async fn messages_cross_byte_for_byte_whatever_their_method_fields_or_spacing() {
    let (mut a, mut b) = pair(loopback(), loopback()).await;
    // Nothing here knows this method, these fields, or this protocol
    // version; the spacing and key order are the sender's own.
    let odd = br#"{ "params": {"z": 1, "a": [1, 2.50, "\u00fc"]}, "method" : "x/not-in-any-spec", "jsonrpc":"2.0", "id": "r-1", "_meta": {"protocolVersion": "2099-01-01"} }"#;
    a.send(Bytes::from_static(odd)).await.unwrap();
    assert_eq!(&next(&mut b).await.unwrap()[..], odd);
    // A 5 MiB result crosses chunked (the channel's messages stop at
    // 256 KiB) and arrives whole. Each side keeps a `receive` running: it
    // is what reads the peer's HELLO.
    assert_eq!(b.handle().wire_mode(), WireMode::Chunked);
    let (b_tx, b_handle) = (b.sender(), b.handle());
    let b_reads = tokio::spawn(async move { while b.receive().await.is_some() {} });
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":"r-1","result":{{"blob":"{}"}}}}"#,
        "x".repeat(5 << 20)
    );
    b_tx.send(big.clone()).await.unwrap();
    assert_eq!(next(&mut a).await.unwrap(), big.as_bytes());
    assert_eq!(a.handle().stats().messages_received, 1);
    assert_eq!(b_handle.stats().messages_sent, 1);
    a.close().await;
    tokio::time::timeout(T, b_reads).await.unwrap().unwrap();
}

#[tokio::test]
async fn bytes_that_are_not_one_json_rpc_message_are_refused_by_name() {
    let (a, _b) = pair(loopback(), loopback()).await;
    let cases: [(&[u8], &str); 6] = [
        (b"not json", "JSON"),
        (b"[1,2]", "object"),
        (br#"{"id":1,"method":"m"}"#, "jsonrpc"),
        (br#"{"jsonrpc":"2.0","id":1}"#, "no method, result or error"),
        (
            br#"{"jsonrpc":"2.0","id":{"x":1},"method":"m"}"#,
            "string or a number",
        ),
        (br#"{"jsonrpc":"2.0","id":null,"method":"m"}"#, "no null id"),
    ];
    for (bytes, named) in cases {
        match a.send(Bytes::copy_from_slice(bytes)).await {
            Err(Error::InvalidMessage { reason }) => {
                assert!(reason.contains(named), "{reason:?} should name {named:?}");
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }
    assert_eq!(a.handle().stats().messages_sent, 0);
}

#[tokio::test]
async fn null_results_and_null_error_ids_are_messages_too() {
    let (a, mut b) = pair(loopback(), loopback()).await;
    for message in [
        &br#"{"jsonrpc":"2.0","id":1,"result":null}"#[..],
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
        br#"{"jsonrpc":"2.0","method":"n","params":null}"#,
    ] {
        a.send(Bytes::copy_from_slice(message)).await.unwrap();
        assert_eq!(&next(&mut b).await.unwrap()[..], message);
    }
}

/// A channel of ours as the answerer, and a raw peer that can send anything.
async fn channel_and_raw_peer(builder: Builder) -> (MessageChannel, Connection) {
    let (a, b) = MemorySignaling::pair();
    let raw = PeerConfig::offerer().with_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    let (channel, conn) = tokio::join!(
        builder.message_channel(Role::Answerer, a),
        mcp_webrtc::rtc::connect(raw, b)
    );
    (channel.unwrap(), conn.unwrap())
}

async fn next_text(conn: &Connection) -> Value {
    loop {
        match tokio::time::timeout(T, conn.recv()).await.unwrap().unwrap() {
            Some(Incoming::Text(t)) => return serde_json::from_slice(&t).unwrap(),
            Some(Incoming::Binary(_)) => {}
            None => panic!("channel closed"),
        }
    }
}

#[tokio::test]
async fn malformed_input_is_answered_counted_and_never_handed_over() {
    let (mut channel, raw) = channel_and_raw_peer(loopback()).await;
    raw.send_text(r#"{"jsonrpc":"1.0","id":9,"method":"tools/list"}"#)
        .await
        .unwrap();
    raw.send_text("{not json").await.unwrap();
    raw.send_text(r#"{"jsonrpc":"2.0","method":"ok/after"}"#)
        .await
        .unwrap();
    // Only the good one is handed over, as it was sent.
    assert_eq!(
        &next(&mut channel).await.unwrap()[..],
        br#"{"jsonrpc":"2.0","method":"ok/after"}"#
    );
    let reply = next_text(&raw).await;
    assert_eq!(reply["id"], 9);
    assert_eq!(reply["error"]["code"], -32600);
    assert!(
        reply["error"]["message"].as_str().unwrap().contains("2.0"),
        "{reply}"
    );
    let stats = channel.handle().stats();
    assert_eq!(stats.malformed_received, 2);
    assert_eq!(stats.invalid_requests_answered, 1);
}

#[tokio::test]
async fn toward_a_plain_peer_a_large_result_becomes_an_error_and_a_large_request_is_refused() {
    // The raw peer announces no framing: plain mode, 256 KiB messages.
    let (channel, raw) = channel_and_raw_peer(loopback()).await;
    assert_eq!(channel.handle().wire_mode(), WireMode::Plain);
    let result = format!(
        r#"{{"jsonrpc":"2.0","id":3,"result":{{"t":"{}"}}}}"#,
        "x".repeat(300_000)
    );
    channel.send(result).await.unwrap();
    let reply = next_text(&raw).await;
    assert_eq!(reply["id"], 3);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too large for this peer"),
        "{reply}"
    );
    let request = format!(
        r#"{{"jsonrpc":"2.0","id":4,"method":"m","params":{{"t":"{}"}}}}"#,
        "x".repeat(300_000)
    );
    match channel.send(request).await {
        Err(Error::MessageTooLarge { what, .. }) => assert_eq!(what, "request"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_peer_that_goes_away_ends_receive_after_a_peer_gone_error_per_unanswered_request() {
    // The peer runs on a runtime of its own, on its own thread; shutting
    // that runtime down drops its tasks and sockets mid-flight, as a killed
    // process would, with no goodbye.
    let (sig_a, sig_b) = MemorySignaling::pair();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let channel = runtime
            .block_on(loopback().message_channel(Role::Answerer, sig_b))
            .unwrap();
        let reading = runtime.spawn(async move {
            let mut channel = channel;
            while channel.receive().await.is_some() {}
        });
        ready_tx.send(()).unwrap();
        kill_rx.recv().unwrap();
        runtime.shutdown_background();
        drop(reading);
    });
    let mut a = loopback()
        .dead_peer_timeout(Duration::from_secs(2))
        .message_channel(Role::Offerer, sig_a)
        .await
        .unwrap();
    ready_rx.await.unwrap();
    a.send(r#"{"jsonrpc":"2.0","id":"q1","method":"slow"}"#)
        .await
        .unwrap();
    a.send(r#"{"jsonrpc":"2.0","id":7,"method":"slow"}"#)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill_tx.send(()).unwrap();
    peer.join().unwrap();
    let mut errors = Vec::new();
    while let Some(message) = tokio::time::timeout(Duration::from_secs(20), a.receive())
        .await
        .unwrap()
    {
        errors.push(serde_json::from_slice::<Value>(&message).unwrap());
    }
    // Every request got its error; made-up messages are JSON-RPC too.
    let mut ids: Vec<String> = errors.iter().map(|e| e["id"].to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["\"q1\"", "7"]);
    assert!(errors.iter().all(|e| e["error"]["code"] == json!(-32000)));
    assert!(
        matches!(a.handle().end_reason(), Some(EndReason::PeerGone { .. })),
        "{:?}",
        a.handle().end_reason()
    );
}

#[tokio::test]
async fn a_clean_close_ends_the_other_side_with_peer_closed() {
    let (mut a, mut b) = pair(loopback(), loopback()).await;
    a.send(r#"{"jsonrpc":"2.0","method":"last"}"#)
        .await
        .unwrap();
    a.close().await;
    assert_eq!(
        &next(&mut b).await.unwrap()[..],
        br#"{"jsonrpc":"2.0","method":"last"}"#
    );
    assert!(next(&mut b).await.is_none());
    assert_eq!(b.handle().end_reason(), Some(EndReason::PeerClosed));
}

/// rmcp drops send futures. A message whose send future is dropped while it
/// waits for room in the outbound queue still goes out, whole and exactly
/// once. The queue is small (256 KiB) and the channel's send buffer tiny,
/// so many sends wait and are dropped waiting. Small messages may overtake
/// chunked ones (that is the interleaving), so order is checked within
/// each kind.
#[tokio::test]
async fn sends_whose_futures_are_dropped_while_waiting_arrive_exactly_once() {
    const MESSAGES: usize = 200;
    let small = || {
        loopback()
            .send_buffer_limit(4 * 1024)
            .framing(mcp_webrtc::core::Config::default().with_max_queued_bytes(256 * 1024))
    };
    let (mut a, mut b) = pair(small(), small()).await;
    let tx = a.sender();
    // `a` keeps reading: that is what reads the peer's HELLO.
    let reader = tokio::spawn(async move { while a.receive().await.is_some() {} });
    let message = |n: usize| {
        let pad = if n.is_multiple_of(5) { 100 * 1024 } else { 10 };
        Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","method":"n","params":{{"n":{n},"pad":"{}"}}}}"#,
            "p".repeat(pad)
        ))
    };
    let mut waited = 0;
    for n in 0..MESSAGES {
        // One poll queues the message; a send that must wait for room is
        // then dropped.
        let mut send = std::pin::pin!(tx.send(message(n)));
        if futures::poll!(send.as_mut()).is_pending() {
            waited += 1;
        }
    }
    assert!(waited > 0, "some sends waited for room and were dropped");
    let mut seen = [false; MESSAGES];
    let (mut last_small, mut last_chunked) = (None, None);
    for _ in 0..MESSAGES {
        let got = next(&mut b).await.expect("every message arrives");
        let value: Value = serde_json::from_slice(&got).unwrap();
        let n = usize::try_from(value["params"]["n"].as_u64().unwrap()).unwrap();
        assert_eq!(got, message(n), "message {n} arrived whole");
        assert!(!seen[n], "message {n} arrived twice");
        seen[n] = true;
        let last = if n.is_multiple_of(5) {
            &mut last_chunked
        } else {
            &mut last_small
        };
        assert!(
            last.is_none_or(|l| l < n),
            "message {n} came after {last:?}"
        );
        *last = Some(n);
    }
    // Nothing arrives twice.
    let extra = tokio::time::timeout(Duration::from_millis(500), b.receive()).await;
    assert!(extra.is_err(), "no message after the last: {extra:?}");
    reader.abort();
}

/// A session that ends takes its tasks with it: the writer, the
/// connection's driver and liveness tasks all stop. Two ways to end are
/// tried: one side closes while the other reads to the end, and both sides
/// are dropped without a close while neither reads. A task that missed the
/// end (a writer that never hears of it, say) would keep the session's
/// connection and buffers alive for as long as the process runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_leaves_no_task_behind() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    for close in [true, false] {
        let (mut a, mut b) = pair(loopback(), loopback()).await;
        a.send(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .await
            .unwrap();
        assert!(next(&mut b).await.is_some());
        b.send(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)
            .await
            .unwrap();
        assert!(next(&mut a).await.is_some());
        assert!(metrics.num_alive_tasks() > before);
        if close {
            a.close().await;
            assert!(next(&mut b).await.is_none());
        }
        drop((a, b));
        let deadline = tokio::time::Instant::now() + T;
        // Bounded by the deadline.
        while metrics.num_alive_tasks() > before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} tasks still alive {T:?} after the session ended ({before} before it; \
                 closed: {close})",
                metrics.num_alive_tasks()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
