//! The greeter MCP server over WebRTC, waiting for one client on aiortc-style
//! TCP signaling (as the Python package's `TcpSocketSignaling`).
//!
//! ```text
//! cargo run --example greeter_server -- --signal 127.0.0.1:9999
//! cargo run --example greeter_client -- --signal 127.0.0.1:9999 --name Ada
//! ```
//!
//! The server listens for signaling, offers, and serves until the client
//! leaves. A Python `mcp-webrtc` client works too.
#![allow(clippy::print_stdout)]

#[path = "common/greeter.rs"]
mod greeter;

use std::error::Error;
use std::net::SocketAddr;

use clap::Parser;
use greeter::Greeter;
use mcp_webrtc::WebRtcTransport;
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::signaling::TcpSignaling;

/// Serve the greeter to one MCP client over WebRTC.
#[derive(Debug, Parser)]
struct Args {
    /// Where to wait for the client's signaling connection.
    #[arg(long, default_value = "127.0.0.1:9999")]
    signal: SocketAddr,
    /// Local UDP addresses for WebRTC (repeatable). Default: loopback and
    /// every interface.
    #[arg(long)]
    bind: Vec<SocketAddr>,
    /// Speak exactly the reference packages' wire format (no chunking).
    #[arg(long)]
    plain: bool,
}

/// Our warnings, but only the WebRTC stack's errors (it warns routinely).
const QUIET_STACK: &str = "warn,rtc=error,rtc_dtls=error,rtc_ice=error,rtc_sctp=error,webrtc=error";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| QUIET_STACK.into()),
        )
        .init();
    let args = Args::parse();
    println!("waiting for a client on {}", args.signal);
    let signaling = TcpSignaling::listen(args.signal).await?;
    let mut builder = WebRtcTransport::builder().chunking(!args.plain);
    if !args.bind.is_empty() {
        builder = builder.bind(args.bind);
    }
    let transport = builder.server(signaling).await?;
    let handle = transport.handle();
    println!("connected: channel {:?}", handle.channel().label);
    let running = Greeter::default().serve(transport).await?;
    let reason = running.waiting().await?;
    let stats = handle.stats();
    println!(
        "session over ({reason:?}, {}; {:?} framing): {} messages in, {} out, {} malformed",
        handle
            .end_reason()
            .map_or_else(|| "-".to_owned(), |r| r.to_string()),
        handle.wire_mode(),
        stats.messages_received,
        stats.messages_sent,
        stats.malformed_received
    );
    Ok(())
}
