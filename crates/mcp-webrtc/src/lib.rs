//! The Model Context Protocol over a WebRTC data channel, as an
//! [rmcp](https://docs.rs/rmcp) transport.
//!
//! `mcp-webrtc` carries MCP between a client and a server that cannot reach
//! each other over stdio or HTTP (a browser tab, a laptop behind NAT, a cloud
//! agent and a desktop) over a peer-to-peer, encrypted WebRTC data channel.
//! Any channel both sides already share carries the signaling (see
//! [`signaling`]).
//!
//! ```no_run
//! # async fn demo(server: impl rmcp::ServerHandler) -> Result<(), Box<dyn std::error::Error>> {
//! use mcp_webrtc::signaling::TcpSignaling;
//! use mcp_webrtc::webrtc_server_transport;
//! use rmcp::ServiceExt;
//!
//! // The server offers and waits for the client on 127.0.0.1:9999.
//! let signaling = TcpSignaling::listen("127.0.0.1:9999").await?;
//! let transport = webrtc_server_transport(signaling).await?;
//! server.serve(transport).await?.waiting().await?;
//! # Ok(()) }
//! ```
//!
//! - **Drop-in for the reference packages.** It speaks the wire format of
//!   the Python and TypeScript `mcp-webrtc` packages: the server offers and
//!   creates a reliable, ordered channel labelled `mcp`, and each JSON-RPC
//!   message is one text message. aiortc's TCP and Unix signaling work as is.
//! - **Messages of any size** up to a bound (default 128 MiB) between two
//!   peers of ours: framing is negotiated, large messages are chunked and
//!   interleaved, so a small call never waits behind a large result. To a
//!   reference peer, a result over its 256 KiB limit becomes a JSON-RPC
//!   error ("result too large for this peer") instead of a dead session.
//! - **Robust.** A malformed message is logged, counted and (if it is a
//!   request) answered with an error; the session goes on. A dead peer is
//!   noticed within 5 s and every pending call fails with "peer gone".
//!   Memory stays within configured bounds.
//!
//! Watch a session through [`WebRtcTransport::handle`]: counters, the wire
//! mode, and why it ended.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `signaling-tcp` | yes | aiortc-dialect TCP signaling, as the Python package's `TcpSocketSignaling` |
//! | `signaling-unix` | yes | aiortc-dialect Unix-socket signaling (Unix platforms only) |
//! | `signaling-copy-paste` | yes | copy-and-paste signaling over a terminal |
//! | `signaling-websocket` | no | the WebSocket signaling client (W3C dialect) and `RelayHost` |
//! | `relay` | no | the WebSocket signaling relay server |
#![forbid(unsafe_code)]

mod builder;
mod error;
mod transport;

pub use builder::{
    Builder, DEFAULT_MAX_PENDING_REPLIES, DEFAULT_PARSE_OFF_THREAD, DEFAULT_SEND_BUFFER,
    webrtc_client_transport, webrtc_server_transport,
};
pub use error::{Error, Result};
pub use transport::{
    EndReason, MessageChannel, MessageSender, TransportHandle, TransportStats, WebRtcTransport,
};

pub use mcp_webrtc_core::WireMode;
pub use mcp_webrtc_rtc::{IcePolicy, IceServer, Role};

/// The sans-IO framing layer ([`mcp_webrtc_core`]): codec, chunking,
/// reassembly and wire-mode negotiation.
pub use mcp_webrtc_core as core;

/// Signaling ([`mcp_webrtc_signaling`]): the `Signaling` trait, its
/// backends (TCP, Unix, copy-paste, WebSocket, relay) and adapters.
pub use mcp_webrtc_signaling as signaling;

/// The peer connection ([`mcp_webrtc_rtc`]): [`rtc::connect`] opens a data
/// channel over any signaling, with limits, backpressure and liveness.
pub use mcp_webrtc_rtc as rtc;

/// The MCP SDK this transport plugs into, re-exported so that its version
/// always matches.
pub use rmcp;

/// The README's Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
