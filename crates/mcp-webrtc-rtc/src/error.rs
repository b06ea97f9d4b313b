//! The crate's single error type.

use std::fmt;
use std::time::Duration;

/// The phase of connection set-up an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Exchanging the offer, answer and candidates.
    Signaling,
    /// Parsing or applying a session description.
    Sdp,
    /// Gathering candidates and finding a working pair.
    Ice,
    /// The DTLS handshake (encryption and peer authentication).
    Dtls,
    /// The SCTP association over DTLS.
    Sctp,
    /// Opening the data channel (DCEP), or using it.
    DataChannel,
}

/// What a timeout in `phase` most often means.
fn timeout_hint(phase: Phase) -> &'static str {
    match phase {
        Phase::Signaling => ": the peer did not answer over signaling",
        Phase::Ice => ": no candidate pair answered (check the ICE servers and the network)",
        // The stack refuses a certificate that does not match the SDP's
        // fingerprint by never completing the handshake.
        Phase::Dtls => {
            ": the peer's certificate was refused or never came (does it match the fingerprint in its SDP? someone may have altered the signaling)"
        }
        Phase::Sdp | Phase::Sctp | Phase::DataChannel => "",
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Signaling => "signaling",
            Phase::Sdp => "SDP",
            Phase::Ice => "ICE",
            Phase::Dtls => "DTLS",
            Phase::Sctp => "SCTP",
            Phase::DataChannel => "data channel",
        })
    }
}

/// Everything that can go wrong setting up or using a peer connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The signaling channel failed.
    #[error(transparent)]
    Signaling(#[from] mcp_webrtc_signaling::Error),
    /// The peer's signaling ended (bye or close) before the channel opened.
    #[error("signaling: the peer left before the data channel opened")]
    SignalingEnded,
    /// A session description could not be parsed or applied.
    #[error("SDP: {reason}")]
    Sdp {
        /// What was wrong.
        reason: String,
    },
    /// A signaling message that makes no sense at this point (a second offer,
    /// an answer to an answerer, …).
    #[error("signaling: unexpected {got} during {phase}: {reason}")]
    UnexpectedSignal {
        /// The message type received.
        got: &'static str,
        /// The phase we were in.
        phase: Phase,
        /// Why it cannot be handled.
        reason: &'static str,
    },
    /// ICE found no working candidate pair.
    #[error("ICE failed: {reason}; ICE servers tried: {}", servers_list(.servers))]
    Ice {
        /// What happened.
        reason: String,
        /// The configured ICE server URLs (credentials omitted).
        servers: Vec<String>,
    },
    /// Gathering produced no local candidate at all.
    #[error("ICE gathered no {what} candidates (policy {policy}); ICE servers tried: {}{}; check the TURN credentials and that the servers are reachable", servers_list(.servers), errors_list(.errors))]
    NoCandidates {
        /// "relay" or "local".
        what: &'static str,
        /// The ICE transport policy.
        policy: &'static str,
        /// The configured ICE server URLs.
        servers: Vec<String>,
        /// What the ICE servers answered, if anything.
        errors: Vec<String>,
    },
    /// A send waited longer than `PeerConfig::send_timeout` for room: the
    /// peer is alive but not reading.
    #[error("send timed out after {after:?}: the peer is not reading")]
    SendTimeout {
        /// The timeout.
        after: Duration,
    },
    /// The peer's DTLS certificate fingerprint is not the one expected.
    #[error("DTLS: remote fingerprint mismatch: expected {expected}, the peer offered {found}")]
    FingerprintMismatch {
        /// The configured fingerprint.
        expected: String,
        /// What the peer's SDP announced (or "none").
        found: String,
    },
    /// Set-up did not finish within the handshake timeout.
    #[error("handshake timed out after {after:?} during {phase}{}", timeout_hint(*phase))]
    HandshakeTimeout {
        /// The phase set-up was in.
        phase: Phase,
        /// The timeout.
        after: Duration,
    },
    /// The peer stopped answering (process died, network path lost).
    #[error("peer gone: {reason}")]
    PeerGone {
        /// What was observed.
        reason: String,
    },
    /// A message is larger than the channel can carry.
    #[error("message too large for the data channel: {size} bytes > limit {limit} bytes")]
    MessageTooLarge {
        /// The message size.
        size: usize,
        /// The limit (min of both sides' `max-message-size`).
        limit: usize,
    },
    /// The connection was closed locally.
    #[error("connection closed")]
    Closed,
    /// A configuration value is unusable.
    #[error("invalid peer configuration: {reason}")]
    InvalidConfig {
        /// Which value, and why.
        reason: String,
    },
    /// The WebRTC stack reported an error.
    #[error("{phase}: {source}")]
    WebRtc {
        /// The phase it happened in.
        phase: Phase,
        /// The stack's error.
        #[source]
        source: webrtc::error::Error,
    },
}

fn errors_list(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" (they answered: {})", errors.join("; "))
    }
}

fn servers_list(servers: &[String]) -> String {
    if servers.is_empty() {
        "none configured".to_owned()
    } else {
        servers.join(", ")
    }
}

impl Error {
    /// The phase this error belongs to, where it has one.
    #[must_use]
    pub fn phase(&self) -> Option<Phase> {
        Some(match self {
            Error::Signaling(_) | Error::SignalingEnded | Error::UnexpectedSignal { .. } => {
                Phase::Signaling
            }
            Error::Sdp { .. } => Phase::Sdp,
            Error::Ice { .. } | Error::NoCandidates { .. } => Phase::Ice,
            Error::FingerprintMismatch { .. } => Phase::Dtls,
            Error::HandshakeTimeout { phase, .. } | Error::WebRtc { phase, .. } => *phase,
            Error::MessageTooLarge { .. } | Error::SendTimeout { .. } => Phase::DataChannel,
            Error::PeerGone { .. } | Error::Closed | Error::InvalidConfig { .. } => return None,
        })
    }

    pub(crate) fn webrtc(phase: Phase) -> impl FnOnce(webrtc::error::Error) -> Error {
        move |source| Error::WebRtc { phase, source }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
