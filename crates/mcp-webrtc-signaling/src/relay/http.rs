//! The relay's two plain-HTTP endpoints, answered before any WebSocket
//! upgrade: `GET /healthz` (`ok`) and `GET /metrics` (its counters in the
//! Prometheus text format). Neither needs a token; neither shows a room or
//! host name, a token or an address.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::RelayStats;

/// The path of the health check.
pub const HEALTHZ: &str = "/healthz";
/// The path of the metrics.
pub const METRICS: &str = "/metrics";

/// Longest request head read for these endpoints.
const MAX_HEAD: usize = 8 * 1024;

/// Which plain endpoint a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plain {
    Healthz,
    Metrics,
}

/// How long to wait for more of a request line that could still name a
/// plain endpoint.
const PEEK_AGAIN: Duration = Duration::from_millis(20);

/// Look at the request line without consuming it: a request for a plain
/// endpoint, or `None` for anything else (left for the WebSocket upgrade).
/// Waits until `deadline` at most: the same pre-auth deadline as the
/// upgrade's, so a client that stalls here gains no time.
pub(super) async fn plain_request(stream: &TcpStream, deadline: Instant) -> Option<Plain> {
    let mut buf = [0u8; 64];
    // Bounded by the deadline: each pass waits PEEK_AGAIN or returns.
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        let seen = buf.get(..n)?;
        for (path, plain) in [(HEALTHZ, Plain::Healthz), (METRICS, Plain::Metrics)] {
            let line = format!("GET {path} ");
            let query = format!("GET {path}?");
            if seen.starts_with(line.as_bytes()) || seen.starts_with(query.as_bytes()) {
                return Some(plain);
            }
            if line.as_bytes().starts_with(seen) {
                // Could still be one: wait for more.
                tokio::time::sleep(PEEK_AGAIN).await;
                if Instant::now() >= deadline {
                    return None;
                }
                continue;
            }
        }
        let may_be_get = b"GET /".starts_with(seen) || seen.starts_with(b"GET /");
        if seen.len() >= "GET /metrics ".len() || !may_be_get {
            return None;
        }
        tokio::time::sleep(PEEK_AGAIN).await;
        if Instant::now() >= deadline {
            return None;
        }
    }
}

/// The counters in the Prometheus text format.
pub(super) fn metrics_text(stats: &RelayStats) -> String {
    let rows: [(&str, &str, &str, u64); 6] = [
        ("rooms", "gauge", "Rooms open now.", stats.rooms as u64),
        (
            "hosts",
            "gauge",
            "Host names registered now.",
            stats.hosts as u64,
        ),
        (
            "connections",
            "gauge",
            "WebSocket connections open now.",
            stats.connections as u64,
        ),
        (
            "pending_bytes",
            "gauge",
            "Bytes held for peers now.",
            stats.pending_bytes as u64,
        ),
        (
            "forwarded_total",
            "counter",
            "Messages forwarded since start.",
            stats.forwarded,
        ),
        (
            "refused_total",
            "counter",
            "Connections or messages refused since start.",
            stats.refused,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        out.push_str(&format!(
            "# HELP mcp_webrtc_relay_{name} {help}\n# TYPE mcp_webrtc_relay_{name} {kind}\nmcp_webrtc_relay_{name} {value}\n"
        ));
    }
    out
}

/// Read the request head (bounded), answer it, and close, all by
/// `deadline`.
pub(super) async fn answer(
    mut stream: TcpStream,
    plain: Plain,
    stats: RelayStats,
    deadline: Instant,
) {
    let read_head = async {
        let mut head = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        // Bounded: at most MAX_HEAD bytes are read.
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(buf.get(..n)?);
        }
        Some(())
    };
    if !matches!(
        tokio::time::timeout_at(deadline, read_head).await,
        Ok(Some(()))
    ) {
        return;
    }
    let (content_type, body) = match plain {
        Plain::Healthz => ("text/plain; charset=utf-8", "ok\n".to_owned()),
        Plain::Metrics => (
            "text/plain; version=0.0.4; charset=utf-8",
            metrics_text(&stats),
        ),
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout_at(deadline, async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
