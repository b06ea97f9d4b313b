//! Signaling over a link you already have.
//!
//! Two agents already talk over some channel of their own (here an in-process
//! stand-in for an agent-to-agent link that carries JSON envelopes). The
//! `LineChannelSignaling` adapter turns that link into a `Signaling`: the
//! WebRTC offer, answer and candidates travel inside the agents' own
//! envelopes, next to whatever else the link carries.
//!
//! Run it with `cargo run --example custom_signaling`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use futures::{SinkExt, StreamExt, future};
use mcp_webrtc::signaling::{
    Dialect, Error, LineChannelSignaling, Options, SignalMessage, Signaling,
};

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
async fn main() -> Result<(), Error> {
    let (server_link, client_link) = link();
    let mut server = signaling_over(server_link);
    let mut client = signaling_over(client_link);

    // The MCP server offers (as in the Python package); the client answers.
    server
        .send(SignalMessage::Offer(
            "v=0\r\n(the server's SDP offer)\r\n".into(),
        ))
        .await?;
    let Some(SignalMessage::Offer(sdp)) = client.recv().await? else {
        panic!("expected an offer");
    };
    println!(
        "client got the offer over the agents' link: {:?}",
        sdp.lines().nth(1)
    );
    client
        .send(SignalMessage::Answer(
            "v=0\r\n(the client's SDP answer)\r\n".into(),
        ))
        .await?;
    client.send(SignalMessage::EndOfCandidates).await?;
    let answer = server.recv().await?;
    let end = server.recv().await?;
    println!("server got {answer:?} and {end:?}");
    server.close().await?;
    assert_eq!(client.recv().await?, None, "bye ends the client's stream");
    println!("signaling done; the data channel would now carry MCP peer to peer");
    Ok(())
}
