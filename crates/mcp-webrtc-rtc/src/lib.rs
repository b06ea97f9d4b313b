//! The WebRTC peer connection and ICE driver for MCP over WebRTC.
//!
//! This crate will turn a signaling channel into an open, reliable, ordered
//! data channel on the `webrtc` crate: handshake (trickle and non-trickle),
//! message-size limits from the SDP, backpressure, and dead-peer detection.
//!
//! Status: not yet implemented; see `docs/architecture.md` for where it fits.
#![forbid(unsafe_code)]
