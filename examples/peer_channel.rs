//! A real WebRTC data channel between two peers in one process.
//!
//! The offerer (the MCP server's role) and the answerer (the client's) meet
//! over an in-process signaling pair, open the `mcp` channel on loopback,
//! exchange a message each way, show the negotiated limits, the set-up time
//! by phase and the selected candidate pair, then close gracefully.
//!
//! Run it with `cargo run --release --example peer_channel`.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;

use mcp_webrtc::rtc::{Error, Incoming, PeerConfig, connect};
use mcp_webrtc::signaling::MemorySignaling;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Loopback only; with no ICE server configured, nothing leaves this host.
    let loopback = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let (server_signaling, client_signaling) = MemorySignaling::pair();
    let (server, client) = tokio::join!(
        connect(
            PeerConfig::offerer().with_bind(loopback.clone()),
            server_signaling
        ),
        connect(PeerConfig::answerer().with_bind(loopback), client_signaling),
    );
    let (server, client) = (server?, client?);

    let info = client.info();
    println!(
        "channel {:?} open, protocol {:?}, messages up to {} bytes",
        info.label, info.protocol, info.max_message_size
    );
    let t = server.timings();
    println!(
        "set-up {:.1} ms: signaling {:.1}, ICE {:.1}, DTLS {:.1}, SCTP+DCEP {:.1}",
        t.total.as_secs_f64() * 1e3,
        t.signaling.as_secs_f64() * 1e3,
        t.ice.as_secs_f64() * 1e3,
        t.dtls.as_secs_f64() * 1e3,
        t.sctp.as_secs_f64() * 1e3,
    );

    server
        .send_text(r#"{"jsonrpc":"2.0","method":"notifications/hello"}"#)
        .await?;
    if let Some(Incoming::Text(text)) = client.recv().await? {
        println!("client got {}", String::from_utf8_lossy(&text));
    }
    client
        .send_text(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)
        .await?;
    if let Some(Incoming::Text(text)) = server.recv().await? {
        println!("server got {}", String::from_utf8_lossy(&text));
    }
    let stats = server.stats().await;
    println!(
        "selected pair {}, {} bytes sent",
        stats.selected_pair.as_deref().unwrap_or("?"),
        stats.bytes_sent
    );

    server.close().await;
    match client.recv().await {
        Ok(None) => println!("client saw a clean end"),
        other => println!("client saw {other:?}"),
    }
    client.close().await;
    Ok(())
}
