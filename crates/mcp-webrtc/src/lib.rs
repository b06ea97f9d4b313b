//! The Model Context Protocol over a WebRTC data channel.
//!
//! `mcp-webrtc` carries MCP between a client and a server that cannot reach
//! each other over stdio or HTTP (a browser tab, a laptop behind NAT, a cloud
//! agent and a desktop) over a peer-to-peer, encrypted WebRTC data channel.
//! It speaks the wire format of the Python and TypeScript `mcp-webrtc`
//! packages, and between two peers of its own it carries messages of any size
//! up to a configured bound, chunked and interleaved.
//!
//! Status: the sans-IO framing layer is in place and re-exported as
//! [`core`]; the rmcp transport, the peer connection and signaling follow.
#![forbid(unsafe_code)]

/// The sans-IO framing layer ([`mcp_webrtc_core`]): codec, chunking,
/// reassembly and wire-mode negotiation.
pub use mcp_webrtc_core as core;
