//! The CLI's errors: what a person reads, and the exit code.

use std::process::ExitCode;
use std::time::Duration;

use mcp_webrtc::rtc::{Error as RtcError, Phase};
use mcp_webrtc::signaling::Error as SigError;
use mcp_webrtc::signaling::relay_protocol::{CLOSE_NOT_FOUND, CLOSE_UNAUTHORIZED};

/// Exit codes (documented in `docs/cli.md`).
pub(crate) mod code {
    // 0: the session ended cleanly, or the relay was shut down.
    /// Anything not listed below.
    pub(crate) const OTHER: u8 = 1;
    /// Bad command line (clap's own code).
    pub(crate) const USAGE: u8 = 2;
    /// Signaling failed: the relay refused us, or could not be reached.
    pub(crate) const SIGNALING: u8 = 3;
    /// Pairing failed: wrong secret, or altered signaling.
    pub(crate) const PAIRING: u8 = 4;
    /// The WebRTC connection could not be set up (ICE, DTLS, timeout).
    pub(crate) const CONNECTION: u8 = 5;
    /// The peer went away during the session.
    pub(crate) const PEER_GONE: u8 = 6;
    /// The peer refused the session (a server at its session limit).
    pub(crate) const REFUSED: u8 = 7;
    /// The child MCP server could not be started.
    pub(crate) const CHILD: u8 = 8;
    /// Stopped by SIGINT or SIGTERM.
    pub(crate) const INTERRUPTED: u8 = 130;
}

/// An error of the `mcp-webrtc` command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A value on the command line is unusable.
    #[error("{0}")]
    Usage(String),
    /// Setting up or running a session failed.
    #[error("{message}")]
    Session {
        /// What a person reads.
        message: String,
        /// The exit code.
        code: u8,
    },
    /// The child could not be started.
    #[error("cannot start the MCP server `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Stopped by a signal.
    #[error("interrupted")]
    Interrupted,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Usage(_) => code::USAGE,
            CliError::Session { code, .. } => *code,
            CliError::Spawn { .. } => code::CHILD,
            CliError::Interrupted => code::INTERRUPTED,
            CliError::Other(_) => code::OTHER,
        })
    }
}

fn session(code: u8, message: impl Into<String>) -> CliError {
    CliError::Session {
        message: message.into(),
        code,
    }
}

/// Turn a signaling error into what to do next.
pub(crate) fn from_signaling(e: &SigError, what: &str) -> CliError {
    match e {
        SigError::Relay { code, .. } if *code == CLOSE_UNAUTHORIZED => session(
            code::SIGNALING,
            "the relay refused the token: check --token or MCP_WEBRTC_TOKEN",
        ),
        SigError::Relay { code, .. } if *code == CLOSE_NOT_FOUND => session(
            code::SIGNALING,
            format!(
                "the relay has no server named {what}: check the name, and that `mcp-webrtc serve` is running"
            ),
        ),
        SigError::Relay { code, reason } => session(
            code::SIGNALING,
            format!("the relay closed the connection: {reason} (code {code})"),
        ),
        SigError::PairingFailed { reason } => session(
            code::PAIRING,
            format!("pairing failed: wrong secret, or someone altered the signaling ({reason})"),
        ),
        SigError::PeerRefused { reason } => session(
            code::REFUSED,
            format!("the server refused the session: {reason}"),
        ),
        SigError::ConnectFailed { target, .. } => session(
            code::SIGNALING,
            format!("cannot reach the signaling at {target}: {e}"),
        ),
        SigError::Timeout { .. } => session(code::SIGNALING, format!("signaling: {e}")),
        other => session(code::SIGNALING, format!("signaling failed: {other}")),
    }
}

/// Turn a set-up error into what to do next.
pub(crate) fn from_connect(e: &mcp_webrtc::Error, what: &str, timeout: Duration) -> CliError {
    let mcp_webrtc::Error::Connect(rtc) = e else {
        return session(code::CONNECTION, format!("set-up failed: {e}"));
    };
    match rtc {
        RtcError::Signaling(sig) => from_signaling(sig, what),
        RtcError::NoCandidates { .. } => session(
            code::CONNECTION,
            format!("no ICE candidates gathered: check --ice-server ({rtc})"),
        ),
        RtcError::HandshakeTimeout {
            phase: Phase::Signaling,
            ..
        } => session(
            code::CONNECTION,
            format!("the peer did not answer within {} s", timeout.as_secs()),
        ),
        RtcError::HandshakeTimeout {
            phase: Phase::Ice, ..
        } => session(
            code::CONNECTION,
            format!(
                "no network path to the peer within {} s: add a TURN server with --ice-server ({rtc})",
                timeout.as_secs()
            ),
        ),
        RtcError::SignalingEnded => session(
            code::CONNECTION,
            "the peer left the signaling before the connection was set up",
        ),
        other => session(code::CONNECTION, format!("connection failed: {other}")),
    }
}

/// The session ended on its own: how it ended, as an error if it was not
/// clean.
pub(crate) fn from_end(reason: Option<mcp_webrtc::EndReason>) -> Result<(), CliError> {
    use mcp_webrtc::EndReason;
    match reason {
        None | Some(EndReason::Closed | EndReason::PeerClosed) => Ok(()),
        Some(other) => Err(session(
            code::PEER_GONE,
            format!("the session ended: {other}"),
        )),
    }
}
