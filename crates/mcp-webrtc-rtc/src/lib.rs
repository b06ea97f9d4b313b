//! The WebRTC peer connection and ICE driver for MCP over WebRTC.
//!
//! [`connect`] turns any [`Signaling`](mcp_webrtc_signaling::Signaling) into an
//! open, reliable, ordered data channel on the `webrtc` crate (0.21), and
//! returns it as a [`Connection`]: a message pipe with backpressure, size
//! limits from the SDP, the negotiated protocol string, stats, and dead-peer
//! detection.
//!
//! - **No ICE server unless you configure one**: never a public STUN server.
//!   Loopback candidates work, so two peers on one host connect with no
//!   other interface.
//! - **Trickle and non-trickle**: works with libwebrtc and our own peers
//!   (trickle) and with aiortc (all candidates in the SDP).
//! - **Errors name the phase** that failed: signaling, SDP, ICE, DTLS, SCTP
//!   or data channel. A garbage SDP fails at once; a silent peer hits the
//!   handshake timeout.
//! - **Liveness**: the `webrtc` data channel never reports close after ICE
//!   fails, and its `send` keeps returning `Ok`; [`Connection`] watches the
//!   connection state itself and ends with [`Error::PeerGone`] within the
//!   dead-peer timeout.
#![forbid(unsafe_code)]

mod config;
mod error;
mod peer;
mod runtime;
mod sdp;
mod turn_tcp;

pub use config::{IcePolicy, IceServer, PeerConfig, Role};
pub use error::{Error, Phase, Result};
pub use peer::{
    ChannelInfo, Connection, DEFAULT_DRAIN, HandshakeTimings, Incoming, MAX_REMOTE_CANDIDATES,
    Stats, connect,
};
