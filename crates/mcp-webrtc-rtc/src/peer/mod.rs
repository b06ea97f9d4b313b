//! The peer connection: the handshake driver and the open connection.
//!
//! - [`handler`]: the stack's callbacks, as events and watched states;
//! - [`handshake`]: the set-up state machine, until the channel opens;
//! - [`connect`](mod@connect): building the peer connection and running the handshake;
//! - [`connection`]: the open channel as a message pipe, liveness, close.

mod connect;
mod connection;
mod handler;
mod handshake;

pub use connect::connect;
pub use connection::DEFAULT_DRAIN;
pub use connection::{ChannelInfo, Connection, Incoming, Stats};
pub use handshake::{HandshakeTimings, MAX_REMOTE_CANDIDATES};
