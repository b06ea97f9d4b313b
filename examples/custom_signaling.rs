//! Signaling over a link you already have.
//!
//! Two agents already talk over some channel of their own (here an in-process
//! stand-in for an agent-to-agent link that carries JSON envelopes). The
//! `LineChannelSignaling` adapter turns that link into a `Signaling`: the
//! WebRTC offer, answer and candidates travel inside the agents' own
//! envelopes, next to whatever else the link carries.
//!
//! Over that signaling, an MCP server and client set up a real data channel
//! and the client calls a tool.
//!
//! Run it with `cargo run --example custom_signaling`.
#![allow(clippy::print_stdout)]

#[path = "common/greeter.rs"]
mod greeter;

use std::error::Error;
use std::net::SocketAddr;

use futures::{SinkExt, StreamExt, future};
use greeter::Greeter;
use mcp_webrtc::WebRtcTransport;
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::signaling::{Dialect, LineChannelSignaling, Options, Signaling};

/// One end of the agents' link: it carries envelopes like
/// `{"kind": "...", "payload": ...}`.
type Link = (
    futures::channel::mpsc::Sender<serde_json::Value>,
    futures::channel::mpsc::Receiver<serde_json::Value>,
);

fn link() -> (Link, Link) {
    let (a_tx, b_rx) = futures::channel::mpsc::channel(16);
    let (b_tx, a_rx) = futures::channel::mpsc::channel(16);
    ((a_tx, a_rx), (b_tx, b_rx))
}

/// Wrap the link: signaling text goes out in a `webrtc-signal` envelope, and
/// only such envelopes are read back as signaling.
fn signaling_over(link: Link) -> impl Signaling {
    let (tx, rx) = link;
    let sink = tx.with(|text: String| {
        future::ok::<_, futures::channel::mpsc::SendError>(serde_json::json!({
            "kind": "webrtc-signal",
            "payload": text,
        }))
    });
    let stream = rx.filter_map(|envelope| {
        future::ready(match envelope.get("kind").and_then(|k| k.as_str()) {
            Some("webrtc-signal") => envelope
                .get("payload")
                .and_then(|p| p.as_str())
                .map(str::to_owned),
            _ => None, // the link's other traffic
        })
    });
    LineChannelSignaling::new(
        Box::pin(sink),
        Box::pin(stream),
        Dialect::W3c,
        Options::default(),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let (server_link, client_link) = link();
    // Both agents run in this process here: loopback is all they need.
    let loopback = vec![SocketAddr::from(([127, 0, 0, 1], 0))];

    // The MCP server offers (as in the Python package); the client answers.
    let server = tokio::spawn({
        let builder = WebRtcTransport::builder().bind(loopback.clone());
        async move {
            let transport = builder.server(signaling_over(server_link)).await?;
            let running = Greeter::default().serve(transport).await?;
            Ok::<_, Box<dyn Error + Send + Sync>>(running.waiting().await?)
        }
    });
    let transport = WebRtcTransport::builder()
        .bind(loopback)
        .client(signaling_over(client_link))
        .await?;
    println!("data channel open: signaling went over the agents' link");
    let client = ().serve(transport).await?;

    let mut arguments = serde_json::Map::new();
    arguments.insert("name".into(), "agent".into());
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
    println!("server session ended: {:?}", server.await??);
    Ok(())
}
