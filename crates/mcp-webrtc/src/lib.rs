//! The Model Context Protocol over a WebRTC data channel.
//!
//! `mcp-webrtc` carries MCP between a client and a server that cannot reach
//! each other over stdio or HTTP (a browser tab, a laptop behind NAT, a cloud
//! agent and a desktop) over a peer-to-peer, encrypted WebRTC data channel.
//! It speaks the wire format of the Python and TypeScript `mcp-webrtc`
//! packages, and between two peers of its own it carries messages of any size
//! up to a configured bound, chunked and interleaved.
//!
//! Status: the sans-IO framing layer ([`core`]), signaling ([`signaling`])
//! and the peer connection ([`rtc`]) are in place; the rmcp transport
//! follows.
#![forbid(unsafe_code)]

/// The sans-IO framing layer ([`mcp_webrtc_core`]): codec, chunking,
/// reassembly and wire-mode negotiation.
pub use mcp_webrtc_core as core;

/// Signaling ([`mcp_webrtc_signaling`]): the `Signaling` trait, its
/// backends (TCP, Unix, copy-paste, WebSocket, relay) and adapters.
pub use mcp_webrtc_signaling as signaling;

/// The peer connection ([`mcp_webrtc_rtc`]): [`rtc::connect`] opens a data
/// channel over any signaling, with limits, backpressure and liveness.
pub use mcp_webrtc_rtc as rtc;

/// The README's Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
