//! The greeter's MCP client over WebRTC: connects to `greeter_server`'s
//! signaling, answers its offer, lists the tools and calls `greet`.
//!
//! ```text
//! cargo run --example greeter_server -- --signal 127.0.0.1:9999
//! cargo run --example greeter_client -- --signal 127.0.0.1:9999 --name Ada
//! ```
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use mcp_webrtc::WebRtcTransport;
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::signaling::{Options, TcpSignaling};

/// Call the greeter over WebRTC.
#[derive(Debug, Parser)]
struct Args {
    /// The server's signaling address.
    #[arg(long, default_value = "127.0.0.1:9999")]
    signal: SocketAddr,
    /// Who to greet.
    #[arg(long, default_value = "world")]
    name: String,
    /// Local UDP addresses for WebRTC (repeatable). Default: loopback and
    /// every interface.
    #[arg(long)]
    bind: Vec<SocketAddr>,
    /// How long to keep trying to reach the server's signaling, in seconds.
    #[arg(long, default_value_t = 30)]
    wait: u64,
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
    let start = Instant::now();
    let mut options = Options::default();
    options.connect_timeout = Duration::from_secs(args.wait);
    let signaling = TcpSignaling::connect(args.signal, options).await?;
    let mut builder = WebRtcTransport::builder();
    if !args.bind.is_empty() {
        builder = builder.bind(args.bind);
    }
    let transport = builder.client(signaling).await?;
    let client = ().serve(transport).await?;
    println!(
        "initialized in {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    let tools = client.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    println!("tools: {}", names.join(", "));
    let mut arguments = serde_json::Map::new();
    arguments.insert("name".into(), args.name.into());
    let result = client
        .call_tool(CallToolRequestParams::new("greet").with_arguments(arguments))
        .await?;
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .ok_or("greet returned no text")?;
    println!("greet -> {text}");
    client.cancel().await?;
    Ok(())
}
