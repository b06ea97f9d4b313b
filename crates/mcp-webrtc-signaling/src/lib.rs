//! Signaling for MCP over WebRTC: how two peers exchange their SDP offer and
//! answer and their ICE candidates before the data channel opens.
//!
//! This crate will hold the `Signaling` trait and its backends: aiortc's
//! newline-delimited JSON over TCP and Unix sockets, a WebSocket client and
//! relay server in the browser (W3C) dialect, copy-and-paste over a
//! terminal, and an adapter for any `Sink` + `Stream` a user already has.
//!
//! Status: not yet implemented; see `docs/architecture.md` for where it fits.
#![forbid(unsafe_code)]
