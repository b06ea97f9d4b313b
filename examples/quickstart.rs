//! Quick start: an MCP server and client in one process, talking over a real
//! WebRTC data channel on loopback.
//!
//! The server offers (as in the Python package), the client answers; an
//! in-process signaling pair carries the offer, answer and candidates. The
//! client lists the tools, calls two, and both sides shut down cleanly.
//!
//! Run it with `cargo run --release --example quickstart`.
#![allow(clippy::print_stdout)]

#[path = "common/greeter.rs"]
mod greeter;

use std::error::Error;
use std::net::SocketAddr;
use std::time::Instant;

use greeter::{Greeter, sha256_hex};
use mcp_webrtc::WebRtcTransport;
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::rmcp::model::{CallToolRequestParams, CallToolResult};
use mcp_webrtc::signaling::MemorySignaling;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let start = Instant::now();
    let (server_signaling, client_signaling) = MemorySignaling::pair();
    // Both peers are in this process: loopback is all they need.
    let loopback = vec![SocketAddr::from(([127, 0, 0, 1], 0))];

    let server = tokio::spawn({
        let builder = WebRtcTransport::builder().bind(loopback.clone());
        async move {
            let transport = builder.server(server_signaling).await?;
            let running = Greeter::default().serve(transport).await?;
            let reason = running.waiting().await?;
            Ok::<_, Box<dyn Error + Send + Sync>>(reason)
        }
    });

    let transport = WebRtcTransport::builder()
        .bind(loopback)
        .client(client_signaling)
        .await?;
    let handle = transport.handle();
    let client = ().serve(transport).await?;
    println!(
        "connected in {:.1} ms ({:?} framing, channel {:?})",
        start.elapsed().as_secs_f64() * 1000.0,
        handle.wire_mode(),
        handle.channel().label,
    );

    let tools = client.list_all_tools().await?;
    println!("tools:");
    for tool in &tools {
        println!(
            "  {:<6} {}",
            tool.name,
            tool.description.as_deref().unwrap_or("")
        );
    }

    let args = serde_json::json!({ "name": "WebRTC" });
    let result = client
        .call_tool(CallToolRequestParams::new("greet").with_arguments(object(args)))
        .await?;
    let text = first_text(&result).ok_or("greet returned no text")?;
    println!("greet -> {text}");

    // A 1 MiB result: four times what the reference packages can carry.
    let args = serde_json::json!({ "bytes": 1 << 20, "seed": 7 });
    let result = client
        .call_tool(CallToolRequestParams::new("blob").with_arguments(object(args)))
        .await?;
    let body = first_text(&result).ok_or("blob returned no text")?;
    let claimed = result
        .content
        .get(1)
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default();
    let intact = claimed == format!("sha256:{}", sha256_hex(body.as_bytes()));
    println!(
        "blob  -> {} bytes, sha256 {}",
        body.len(),
        if intact { "matches" } else { "DOES NOT MATCH" }
    );

    let stats = handle.stats();
    client.cancel().await?;
    let reason = server.await??;
    println!(
        "client sent {} and received {} messages; server session ended: {reason:?}",
        stats.messages_sent, stats.messages_received
    );
    if !intact {
        return Err("the 1 MiB result arrived corrupted".into());
    }
    Ok(())
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn first_text(result: &CallToolResult) -> Option<String> {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
}
