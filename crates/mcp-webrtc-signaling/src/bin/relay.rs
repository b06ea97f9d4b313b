//! `mcp-webrtc-relay`: a WebSocket signaling relay for MCP over WebRTC.
//!
//! ```text
//! MCP_WEBRTC_RELAY_TOKENS=token1,token2 mcp-webrtc-relay --listen 0.0.0.0:8787
//! ```
//!
//! Put it behind a TLS-terminating proxy (or on a private network) so clients
//! use `wss://`. Logs go to stderr; `RUST_LOG=debug` for more. Tokens and SDP
//! are never logged.
#![forbid(unsafe_code)]

use std::time::Duration;

use clap::Parser;
use mcp_webrtc_signaling::relay::{RelayConfig, RelayServer};

/// WebSocket signaling relay for MCP over WebRTC.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: String,
    /// Comma-separated accepted tokens (prefer the environment variable, so
    /// they do not show in the process list).
    #[arg(
        long,
        env = "MCP_WEBRTC_RELAY_TOKENS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    tokens: Vec<String>,
    /// Largest message forwarded, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_message_size: usize,
    /// Messages a room may forward in all.
    #[arg(long, default_value_t = 1000)]
    room_message_budget: u32,
    /// Seconds a room peer may stay silent before it is closed.
    #[arg(long, default_value_t = 120)]
    idle_timeout: u64,
    /// Rooms open at once.
    #[arg(long, default_value_t = 10_000)]
    max_rooms: usize,
    /// Rooms one token may have open at once.
    #[arg(long, default_value_t = 100)]
    max_rooms_per_token: usize,
    /// Connections open at once from one IP address.
    #[arg(long, default_value_t = 32)]
    max_connections_per_ip: usize,
    /// Client connections per second a host accepts (bursts of twice that).
    #[arg(long, default_value_t = 10)]
    host_connect_rate: u32,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = RelayConfig::with_tokens(args.tokens.into_iter().filter(|t| !t.is_empty()))
        .with_max_message_size(args.max_message_size)
        .with_room_message_budget(args.room_message_budget)
        .with_idle_timeout(Duration::from_secs(args.idle_timeout))
        .with_max_rooms(args.max_rooms)
        .with_max_rooms_per_token(args.max_rooms_per_token)
        .with_max_connections_per_ip(args.max_connections_per_ip)
        .with_host_connect_rate(args.host_connect_rate);
    let relay = match RelayServer::bind(args.listen.as_str(), config).await {
        Ok(relay) => relay,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    relay.shutdown().await;
    std::process::ExitCode::SUCCESS
}
