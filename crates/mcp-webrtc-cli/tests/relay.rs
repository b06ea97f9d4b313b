//! `mcp-webrtc relay`: its health check, metrics, start-up errors and
//! graceful shutdown.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::{LIMIT, Proc, Relay, Serve, stdio_server};

/// One plain HTTP/1.1 GET; the whole response.
fn get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn healthz_answers_and_metrics_count_what_the_relay_holds() {
    let relay = Relay::start();
    let health = get(&relay.addr(), "/healthz");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
    let server = stdio_server();
    let serve = Serve::start(
        &relay,
        &["--name", &support::unique("metrics")],
        &[server.to_str().unwrap()],
    );
    let metrics = get(&relay.addr(), "/metrics");
    assert!(
        metrics.contains("content-type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE mcp_webrtc_relay_hosts gauge\nmcp_webrtc_relay_hosts 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE mcp_webrtc_relay_refused_total counter\n"),
        "{metrics}"
    );
    // Nothing in it names a host or a token.
    assert!(!metrics.contains("metrics-"), "{metrics}");
    assert!(!metrics.contains(support::TOKEN), "{metrics}");
    drop(serve);
}

#[test]
fn sigterm_shuts_the_relay_down_gracefully() {
    let mut relay = Relay::start();
    let status = relay.proc.stop().expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
    relay.proc.stderr.expect("shutting down", LIMIT);
}

#[test]
fn a_relay_without_tokens_refuses_to_start_and_says_what_to_do() {
    let mut cmd = std::process::Command::new(support::bin());
    cmd.args(["relay", "--listen", "127.0.0.1:0"])
        .env_remove("MCP_WEBRTC_RELAY_TOKENS");
    let mut relay = Proc::spawn("relay", cmd);
    let status = relay.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(2));
    relay.stderr.expect("give --token-file FILE", LIMIT);
}
