//! An rmcp client that reaches an MCP server through the mcp-webrtc relay:
//! a server's host name (as `mcp-webrtc serve` registers, or a browser page
//! that serves tools), or a room. It lists the tools, calls one with JSON
//! arguments, and prints both as JSON lines (`TOOLS …`, `RESULT …`), with
//! the set-up and the call's time in milliseconds (`SETUP_MS`, `CALL_MS`).
//!
//! ```sh
//! cargo run --example relay_client --features signaling-websocket -- \
//!     --relay ws://127.0.0.1:8787 --name page-demo --token T \
//!     --call reverse --args '{"text":"hello"}'
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::rmcp::{RoleClient, ServiceExt};
use mcp_webrtc::signaling::relay_protocol::{client_url, room_url};
use mcp_webrtc::signaling::{
    PairedSignaling, PairingSecret, Signaling, WebSocketOptions, WebSocketSignaling,
};
use mcp_webrtc::{IcePolicy, IceServer, WebRtcTransport};

#[derive(Debug, Parser)]
struct Args {
    /// The relay: ws://HOST:PORT.
    #[arg(long)]
    relay: String,
    /// The server's host name at the relay.
    #[arg(long, conflicts_with = "room", required_unless_present = "room")]
    name: Option<String>,
    /// A room to join instead (the server offers there).
    #[arg(long)]
    room: Option<String>,
    /// The relay token.
    #[arg(long, env = "MCP_WEBRTC_TOKEN")]
    token: Option<String>,
    /// The pairing secret (hex), if the server pairs.
    #[arg(long, env = "MCP_WEBRTC_SECRET")]
    secret: Option<String>,
    /// The tool to call.
    #[arg(long)]
    call: Option<String>,
    /// Its arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Local UDP addresses for WebRTC (repeatable). Default: every interface.
    #[arg(long)]
    bind: Vec<SocketAddr>,
    /// Give up on the set-up after this many seconds.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
    /// A STUN or TURN server (repeatable): stun:HOST:PORT, turn:HOST:PORT,
    /// turn:HOST:PORT?transport=tcp. None by default.
    #[arg(long)]
    ice_server: Vec<String>,
    /// The TURN username.
    #[arg(long, default_value = "")]
    turn_username: String,
    /// The TURN credential.
    #[arg(long, default_value = "")]
    turn_credential: String,
    /// Relay candidates only (through TURN).
    #[arg(long)]
    relay_only: bool,
    /// Give up on the MCP part (initialize, the tool list, the call) after
    /// this many seconds.
    #[arg(long, default_value_t = 120)]
    call_timeout: u64,
}

async fn run(args: Args) -> Result<(), Box<dyn Error + Send + Sync>> {
    // Checked before anything connects.
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&args.args)
        .map_err(|e| format!("--args must be a JSON object: {e}"))?;
    let url = match (&args.name, &args.room) {
        (Some(name), _) => client_url(&args.relay, name),
        (None, Some(room)) => room_url(&args.relay, room),
        (None, None) => return Err("give --name or --room".into()),
    };
    let mut options = WebSocketOptions::default();
    if let Some(token) = &args.token {
        options = options.with_token(token.clone());
    }
    let ws = WebSocketSignaling::connect(&url, options).await?;
    let signaling: Box<dyn Signaling> = match &args.secret {
        Some(secret) => Box::new(PairedSignaling::new(ws, PairingSecret::parse(secret)?)),
        None => Box::new(ws),
    };
    let mut builder =
        WebRtcTransport::builder().handshake_timeout(Duration::from_secs(args.timeout));
    if !args.bind.is_empty() {
        builder = builder.bind(args.bind.clone());
    }
    for url in &args.ice_server {
        builder = builder.ice_server(if url.starts_with("turn") {
            IceServer::turn(
                url.clone(),
                args.turn_username.clone(),
                args.turn_credential.clone(),
            )
        } else {
            IceServer::stun(url.clone())
        });
    }
    if args.relay_only {
        builder = builder.ice_policy(IcePolicy::Relay);
    }
    let transport = builder.client(signaling).await?;
    let limit = Duration::from_secs(args.call_timeout);
    tokio::time::timeout(limit, session(transport, args))
        .await
        .map_err(|_| format!("no answer within --call-timeout {} s", limit.as_secs()))?
}

async fn session(
    transport: WebRtcTransport<RoleClient>,
    args: Args,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let arguments: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&args.args)?;
    let handle = transport.handle();
    let client = ().serve(transport).await?;
    let tools = client.list_all_tools().await?;
    println!("TOOLS {}", serde_json::to_string(&tools)?);
    println!("MODE {:?}", handle.wire_mode());
    println!("SETUP_MS {}", handle.timings().total.as_millis());
    let pair = handle.connection_stats().await.selected_pair;
    println!("PAIR {}", pair.as_deref().unwrap_or("none"));
    if let Some(tool) = args.call {
        let asked = std::time::Instant::now();
        let result = client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
            .await?;
        println!("CALL_MS {}", asked.elapsed().as_millis());
        println!("RESULT {}", serde_json::to_string(&result)?);
    }
    client.cancel().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // RUST_LOG=… prints the stack's log on stderr.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay_client: {e}");
            ExitCode::FAILURE
        }
    }
}
