//! The crate's single error type.

use std::time::Duration;

use crate::Dialect;

/// Everything that can go wrong while signaling.
///
/// Decoding errors ([`Error::InvalidJson`], [`Error::UnknownType`],
/// [`Error::MissingField`], [`Error::WrongFieldType`],
/// [`Error::MessageTooLarge`]) concern one message: the stream stays usable
/// and the next `recv` reads the next message. The others end the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A message is not valid JSON (or not UTF-8).
    #[error("{dialect} signaling: message is not valid JSON: {reason}")]
    InvalidJson {
        /// The dialect being decoded.
        dialect: Dialect,
        /// What the parser reported.
        reason: String,
    },
    /// A message's `type` is not one this dialect knows.
    #[error("{dialect} signaling: unknown message type {found}")]
    UnknownType {
        /// The dialect being decoded.
        dialect: Dialect,
        /// The `type` value, as JSON (truncated).
        found: String,
    },
    /// A required field is absent.
    #[error("{dialect} signaling: {message_type} message has no `{field}`")]
    MissingField {
        /// The dialect being decoded.
        dialect: Dialect,
        /// The message type.
        message_type: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("{dialect} signaling: `{field}` must be {expected}, found {found}")]
    WrongFieldType {
        /// The dialect being decoded.
        dialect: Dialect,
        /// The offending field.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A message (or line) is larger than the configured limit.
    #[error("signaling message too large: {size} bytes > limit {limit} bytes")]
    MessageTooLarge {
        /// Its size so far, in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A message cannot be expressed in this dialect (aiortc has no
    /// end-of-candidates: sending one would crash the peer).
    #[error("{dialect} signaling cannot carry {what}")]
    Unrepresentable {
        /// The dialect.
        dialect: Dialect,
        /// What cannot be sent.
        what: &'static str,
    },
    /// The peer closed the connection without saying bye.
    #[error("signaling peer closed the connection without a bye")]
    PeerClosed,
    /// `send` after `close`, or after an earlier send failed part-way (the
    /// stream may hold half a message, so nothing more is written).
    #[error("signaling channel is closed")]
    Closed,
    /// An operation did not finish in time.
    #[error("signaling {operation} timed out after {after:?}")]
    Timeout {
        /// What timed out (`connect to 127.0.0.1:1234`, `accept`, `send`, …).
        operation: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// Connecting failed for good (retries exhausted before the deadline).
    #[error(
        "signaling connect to {target} failed after {attempts} attempts in {after:?}: {last_error}"
    )]
    ConnectFailed {
        /// Where we tried to connect.
        target: String,
        /// How many attempts were made.
        attempts: u32,
        /// How long we tried.
        after: Duration,
        /// The last attempt's error.
        last_error: String,
    },
    /// A Unix socket path is in use by a live listener.
    #[error("signaling socket {path} is in use by another listener")]
    AddressInUse {
        /// The path.
        path: String,
    },
    /// An I/O error.
    #[error("signaling {operation}: {source}")]
    Io {
        /// What we were doing.
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The WebSocket layer failed (handshake, TLS, protocol).
    #[error("websocket signaling: {reason}")]
    WebSocket {
        /// What went wrong.
        reason: String,
    },
    /// The relay refused or ended the session, with its close code and reason.
    #[error("relay closed the session: {reason} (code {code})")]
    Relay {
        /// The WebSocket close code.
        code: u16,
        /// The relay's reason.
        reason: String,
    },
    /// The relay reported a problem with one of our messages (the session
    /// goes on).
    #[error("relay refused a message: {reason}")]
    RelayNotice {
        /// The relay's reason.
        reason: String,
    },
    /// Pairing failed: the peer's offer or answer does not carry a valid
    /// code for the pairing secret (see [`PairedSignaling`](crate::PairedSignaling)).
    #[error("pairing failed: {reason}")]
    PairingFailed {
        /// Which description, and what was wrong with it.
        reason: String,
    },
    /// The peer refused the session before it started (a server at its
    /// session limit, say), with its reason.
    #[error("the peer refused the session: {reason}")]
    PeerRefused {
        /// The peer's reason.
        reason: String,
    },
    /// The user's channel (see [`ChannelSignaling`](crate::ChannelSignaling))
    /// failed.
    #[error("signaling channel failed: {reason}")]
    Channel {
        /// The channel's error.
        reason: String,
    },
    /// A configuration value is unusable.
    #[error("invalid signaling configuration: {reason}")]
    InvalidConfig {
        /// Which value, and why.
        reason: String,
    },
}

impl Error {
    /// Whether this error concerns one message only, so that the stream can
    /// be read on.
    #[must_use]
    pub fn is_per_message(&self) -> bool {
        matches!(
            self,
            Error::InvalidJson { .. }
                | Error::UnknownType { .. }
                | Error::MissingField { .. }
                | Error::WrongFieldType { .. }
                | Error::MessageTooLarge { .. }
                | Error::RelayNotice { .. }
        )
    }

    pub(crate) fn io(operation: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { operation, source }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
