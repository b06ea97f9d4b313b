//! Sans-IO framing for the Model Context Protocol over WebRTC data channels.
//!
//! This crate turns JSON-RPC messages into data-channel messages and back. It
//! does no I/O and has no async runtime: a transport drives it with plain
//! method calls, which keeps every behaviour deterministic and testable. The
//! `mcp-webrtc` crate drives it over a real `webrtc` data channel; depend on
//! this crate directly only to build a transport of your own.
//!
//! - [`codec`]: one JSON-RPC message ↔ bytes, with envelope validation.
//! - [`Framer`]: negotiation of the wire mode, the outbound scheduler and
//!   the inbound reassembler for one channel, and their timers.
//! - [`wire`]: the binary frame layout of chunked mode.
//!
//! # Wire modes
//!
//! In [`WireMode::Plain`] each message is one text message, exactly as the
//! Python and TypeScript `mcp-webrtc` packages send them. In
//! [`WireMode::Chunked`], used only between peers that both announced it,
//! messages larger than a frame are split into binary DATA frames that are
//! interleaved fairly, so a small message never waits behind a large one.
//! `docs/protocol.md` in the repository specifies both.
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use mcp_webrtc_core::{ChannelInfo, Config, Framer, Role, Transmit, WireMode, PROTOCOL};
//!
//! # fn main() -> Result<(), mcp_webrtc_core::Error> {
//! let channel = ChannelInfo::new(PROTOCOL, Some(262_144));
//! let mut server = Framer::new(Role::Offerer, Config::default(), &channel)?;
//! let mut client = Framer::new(Role::Answerer, Config::default(), &channel)?;
//!
//! // Deliver everything one side has queued to the other side.
//! fn pump(from: &mut Framer, to: &mut Framer) -> Result<Vec<Bytes>, mcp_webrtc_core::Error> {
//!     let mut delivered = Vec::new();
//!     while let Some(t) = from.poll_transmit() {
//!         match t {
//!             Transmit::Text(text) => delivered.push(to.receive_text(text)?),
//!             Transmit::Binary(frame) => {
//!                 delivered.extend(to.receive_binary(&frame.to_bytes(), Instant::now())?);
//!             }
//!         }
//!     }
//!     Ok(delivered)
//! }
//!
//! pump(&mut client, &mut server)?; // the answerer's HELLO
//! pump(&mut server, &mut client)?; // the offerer's HELLO
//! assert_eq!(server.mode(), WireMode::Chunked);
//!
//! // A 1 MiB result: four times the reference packages' limit.
//! let big = format!(r#"{{"jsonrpc":"2.0","id":1,"result":"{}"}}"#, "x".repeat(1 << 20));
//! server.send(mcp_webrtc_core::codec::encode(&serde_json::from_str::<serde_json::Value>(&big).unwrap())?)?;
//! let got = pump(&mut server, &mut client)?;
//! assert_eq!(got.len(), 1);
//! mcp_webrtc_core::codec::validate(&got[0])?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod codec;
mod config;
mod error;
mod framer;
mod reassembler;
mod scheduler;
pub mod wire;

pub use config::{
    ChannelInfo, Config, DEFAULT_FRAME_SIZE, DEFAULT_HELLO_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PARTIAL_TIMEOUT,
};
pub use error::{Error, Result};
pub use framer::{Framer, Role, WireMode};
// The framer's parts, public for tests and benchmarks only: use `Framer`.
#[doc(hidden)]
pub use reassembler::Reassembler;
#[doc(hidden)]
pub use scheduler::Scheduler;
pub use scheduler::{Rejected, Transmit};
pub use wire::{BinaryFrame, Limits, PROTOCOL};
