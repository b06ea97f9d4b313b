//! The signaling messages and the dialects they are written in.

use std::fmt;

/// One signaling message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SignalMessage {
    /// An SDP offer.
    Offer(String),
    /// An SDP answer.
    Answer(String),
    /// A trickled ICE candidate.
    Candidate {
        /// The candidate line, starting with `candidate:`.
        candidate: String,
        /// The media id it belongs to (`a=mid`), if known.
        sdp_mid: Option<String>,
        /// The index of the media section it belongs to, if known.
        sdp_mline_index: Option<u16>,
    },
    /// No more candidates will be trickled.
    EndOfCandidates,
    /// A pairing message (SPAKE2, hex), exchanged before the offer by two
    /// peers that pair with a short code (see
    /// [`PairedSignaling::with_code`](crate::PairedSignaling::with_code));
    /// never seen by the peer connection.
    Pairing(String),
    /// The peer is leaving; no more messages follow.
    Bye,
}

impl SignalMessage {
    /// The message's type name, as the dialects write it.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            SignalMessage::Offer(_) => "offer",
            SignalMessage::Answer(_) => "answer",
            SignalMessage::Candidate { .. } => "candidate",
            SignalMessage::EndOfCandidates => "end-of-candidates",
            SignalMessage::Pairing(_) => "pairing",
            SignalMessage::Bye => "bye",
        }
    }
}

/// The JSON shapes signaling messages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// `aiortc.contrib.signaling`: newline-delimited, sorted keys, Python's
    /// separators, candidates as `{"candidate", "id", "label", "type"}`.
    Aiortc,
    /// Browsers and simple-peer: `{type, sdp}` and
    /// `{type: "candidate", candidate: {candidate, sdpMid, sdpMLineIndex}}`.
    W3c,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Aiortc => "aiortc",
            Dialect::W3c => "w3c",
        })
    }
}

impl Dialect {
    /// Encode a message in this dialect (one line, no trailing newline).
    ///
    /// # Errors
    /// [`Error::Unrepresentable`](crate::Error::Unrepresentable) for an
    /// end-of-candidates in the aiortc dialect.
    pub fn encode(self, message: &SignalMessage) -> crate::Result<String> {
        match self {
            Dialect::Aiortc => crate::dialect::aiortc::encode(message),
            Dialect::W3c => Ok(crate::dialect::w3c::encode(message)),
        }
    }

    /// Decode one message in this dialect, refusing input over `limit` bytes.
    ///
    /// # Errors
    /// A typed error naming the dialect and the offending field.
    pub fn decode(self, input: &[u8], limit: usize) -> crate::Result<SignalMessage> {
        if input.len() > limit {
            return Err(crate::Error::MessageTooLarge {
                size: input.len(),
                limit,
            });
        }
        match self {
            Dialect::Aiortc => crate::dialect::aiortc::decode(input),
            Dialect::W3c => crate::dialect::w3c::decode(input),
        }
    }
}
