//! The greeter MCP server over WebRTC, for one client, with aiortc-style
//! signaling over TCP or a Unix socket (as the Python package's
//! `TcpSocketSignaling` and `UnixSocketSignaling`).
//!
//! ```text
//! cargo run --example greeter_server -- --signal 127.0.0.1:9999
//! cargo run --example greeter_client -- --signal 127.0.0.1:9999 --name Ada
//! ```
//!
//! The server offers (and so listens for signaling) and serves until the
//! client leaves; a Python `mcp-webrtc` client works too. It prints how the
//! session ended (`END …`) and exits 0 when it ended cleanly, 3 when the
//! peer went away.
#![allow(clippy::print_stdout)]

#[path = "common/greeter.rs"]
mod greeter;
#[path = "common/signal.rs"]
mod signal;

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use greeter::Greeter;
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::{EndReason, WebRtcTransport};

/// Serve the greeter to one MCP client over WebRTC.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    signal: signal::SignalArgs,
    /// Local UDP addresses for WebRTC (repeatable). Default: loopback and
    /// every interface.
    #[arg(long)]
    bind: Vec<SocketAddr>,
    /// Speak exactly the reference packages' wire format (no chunking).
    #[arg(long)]
    plain: bool,
    /// Let the client offer (the Python package's `initiator=False`).
    #[arg(long)]
    answer: bool,
}

/// Our warnings, but only the WebRTC stack's errors (it warns routinely).
const QUIET_STACK: &str = "warn,rtc=error,rtc_dtls=error,rtc_ice=error,rtc_sctp=error,webrtc=error";

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| QUIET_STACK.into()),
        )
        .init();
    let args = Args::parse();
    let signaling = signal::signaling(&args.signal, !args.answer).await?;
    let mut builder = WebRtcTransport::builder()
        .chunking(!args.plain)
        .initiator(!args.answer);
    if !args.bind.is_empty() {
        builder = builder.bind(args.bind);
    }
    let transport = builder.server(signaling).await?;
    let handle = transport.handle();
    println!("connected: channel {:?}", handle.channel().label);
    let running = Greeter::default().serve(transport).await?;
    let reason = running.waiting().await?;
    let ended = Instant::now();
    let stats = handle.stats();
    let end = handle.end_reason();
    println!(
        "session over ({reason:?}; {:?} framing): {} messages in, {} out, {} malformed, {} oversize results answered",
        handle.wire_mode(),
        stats.messages_received,
        stats.messages_sent,
        stats.malformed_received,
        stats.oversize_results_answered,
    );
    println!(
        "END {} ({} ms ago)",
        end.as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string),
        ended.elapsed().as_millis()
    );
    Ok(match end {
        Some(EndReason::PeerGone { .. } | EndReason::SendFailed { .. }) => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    })
}
