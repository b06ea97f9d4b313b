//! The greeter MCP server over stdio: the kind of server `mcp-webrtc serve`
//! puts on WebRTC, and the one its tests and benchmark run behind it.
//!
//! ```text
//! cargo build --example stdio_server -p mcp-webrtc-cli
//! mcp-webrtc serve --signal ws://127.0.0.1:8787 -- target/debug/examples/stdio_server
//! ```
//!
//! Tools: `greet`, `echo`, `blob` (a text of any size and its SHA-256) and
//! `sleep` (which logs "sleep cancelled" on stderr when a call is
//! cancelled). Logs go to stderr; stdout carries MCP only.

#[path = "common/greeter.rs"]
mod greeter;

use greeter::Greeter;
use rmcp::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let running = Greeter::default().serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
