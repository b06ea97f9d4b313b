//! The binary frame layout of chunked mode (`mcp-webrtc/1`).
//!
//! `docs/protocol.md` is the normative description; this module is its
//! implementation, and `tests/vectors/wire-v1.json` holds the test vectors
//! that both are checked against.
//!
//! All integers are big-endian. There are two frame types:
//!
//! ```text
//! DATA  (21-byte header, then payload)
//!   0      1  type = 0x01
//!   1      4  message id (u32)
//!   5      8  offset of this payload within the message (u64)
//!   13     8  total length of the message (u64)
//!   21     …  payload: message bytes [offset, offset + len)
//!
//! HELLO (22 bytes; longer frames are accepted and the rest is ignored)
//!   0      1  type = 0x02
//!   1      1  version = 1
//!   2      8  max message size the sender accepts (u64)
//!   10     4  max messages the sender reassembles at once (u32)
//!   14     8  max bytes the sender buffers for partial messages (u64)
//! ```

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// A binary frame that is malformed in itself, whatever message it belongs
/// to: what [`Frame::parse`] finds. It reaches users as
/// [`Error::Frame`](crate::Error::Frame), the crate's one error hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A binary frame is shorter than its header.
    #[error("truncated {kind} frame header: {len} bytes, need {needed}")]
    TruncatedHeader {
        /// The kind of frame, from its first byte.
        kind: FrameKind,
        /// Bytes received.
        len: usize,
        /// Bytes the header needs.
        needed: usize,
    },
    /// A binary data-channel message is empty.
    #[error("empty binary frame")]
    EmptyFrame,
    /// The first byte of a binary frame is not a known frame type.
    #[error("unknown frame type 0x{frame_type:02x}")]
    UnknownFrameType {
        /// The type byte.
        frame_type: u8,
    },
    /// A HELLO frame announces a protocol version we do not speak.
    #[error("unsupported framing version {version} in HELLO (we speak {supported})")]
    UnsupportedVersion {
        /// The version in the frame.
        version: u8,
        /// The version we speak.
        supported: u8,
    },
    /// A HELLO frame carries a value that cannot be honoured.
    #[error("invalid HELLO: {reason}")]
    InvalidHello {
        /// Which value, and why.
        reason: &'static str,
    },
    /// A DATA frame's header is inconsistent with itself.
    #[error(
        "invalid DATA frame for message {id}: offset {offset} + payload {len} exceeds total {total}"
    )]
    FrameOverrun {
        /// Message id.
        id: u32,
        /// Offset in the frame.
        offset: u64,
        /// Payload length.
        len: u64,
        /// Total length in the frame.
        total: u64,
    },
    /// A DATA frame has no payload.
    #[error("DATA frame for message {id} at offset {offset} has no payload")]
    EmptyPayload {
        /// Message id.
        id: u32,
        /// Offset in the frame.
        offset: u64,
    },
}

type Result<T, E = FrameError> = std::result::Result<T, E>;

/// The data-channel `protocol` string that announces chunked framing.
///
/// The offerer creates the channel with this protocol; an answerer that sees
/// it replies with a HELLO frame. Any other protocol string (including the empty
/// one used by the Python and TypeScript `mcp-webrtc` packages) means plain
/// mode for the whole session.
pub const PROTOCOL: &str = "mcp-webrtc/1";

/// The framing version carried in HELLO frames.
pub const VERSION: u8 = 1;

/// Type byte of a DATA frame.
pub const TYPE_DATA: u8 = 0x01;
/// Type byte of a HELLO frame.
pub const TYPE_HELLO: u8 = 0x02;

/// Length of a DATA frame's header.
pub const DATA_HEADER_LEN: usize = 21;
/// Length of a HELLO frame.
pub const HELLO_LEN: usize = 22;

/// The largest header of any frame type.
const MAX_HEADER_LEN: usize = HELLO_LEN;

/// The two kinds of binary frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A slice of a chunked message.
    Data,
    /// The capability announcement that completes negotiation.
    Hello,
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameKind::Data => "DATA",
            FrameKind::Hello => "HELLO",
        })
    }
}

/// The receive limits a peer announces in its HELLO frame, and that we
/// enforce on our own inbound side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// The largest message, in bytes, that the sender of the HELLO accepts.
    pub max_message_size: u64,
    /// How many chunked messages the sender of the HELLO reassembles at once.
    pub max_in_flight: u32,
    /// How many bytes the sender of the HELLO buffers for partial messages,
    /// summed over all messages in flight.
    pub max_buffered_bytes: u64,
}

impl Limits {
    /// Encode this HELLO as a complete binary frame.
    #[must_use]
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        let mut w = &mut out[..];
        w.put_u8(TYPE_HELLO);
        w.put_u8(VERSION);
        w.put_u64(self.max_message_size);
        w.put_u32(self.max_in_flight);
        w.put_u64(self.max_buffered_bytes);
        out
    }

    /// Check that a peer could honour these limits at all.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_message_size == 0 {
            return Err(FrameError::InvalidHello {
                reason: "max message size is 0",
            });
        }
        if self.max_in_flight == 0 {
            return Err(FrameError::InvalidHello {
                reason: "max messages in flight is 0",
            });
        }
        if self.max_buffered_bytes == 0 {
            return Err(FrameError::InvalidHello {
                reason: "max buffered bytes is 0",
            });
        }
        Ok(())
    }
}

/// The fixed header of a DATA frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataHeader {
    /// Message id, chosen by the sender, unique among its messages in flight.
    pub id: u32,
    /// Offset of this frame's payload within the message.
    pub offset: u64,
    /// Total length of the message.
    pub total: u64,
}

impl DataHeader {
    /// Encode the header.
    #[must_use]
    pub fn encode(&self) -> [u8; DATA_HEADER_LEN] {
        let mut out = [0u8; DATA_HEADER_LEN];
        let mut w = &mut out[..];
        w.put_u8(TYPE_DATA);
        w.put_u32(self.id);
        w.put_u64(self.offset);
        w.put_u64(self.total);
        out
    }
}

/// A parsed binary frame, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A DATA frame.
    Data {
        /// Its header.
        header: DataHeader,
        /// Its payload.
        payload: &'a [u8],
    },
    /// A HELLO frame.
    Hello(Limits),
}

impl<'a> Frame<'a> {
    /// Parse one binary data-channel message.
    ///
    /// This checks the layout only: a DATA frame whose payload overruns its
    /// total, or that carries no payload, is an error here; whether it fits
    /// the message it belongs to is the reassembler's business.
    pub fn parse(buf: &'a [u8]) -> Result<Frame<'a>> {
        let Some((&frame_type, rest)) = buf.split_first() else {
            return Err(FrameError::EmptyFrame);
        };
        match frame_type {
            TYPE_DATA => {
                let truncated = || FrameError::TruncatedHeader {
                    kind: FrameKind::Data,
                    len: buf.len(),
                    needed: DATA_HEADER_LEN,
                };
                let (id, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
                let (offset, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
                let (total, payload) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
                let header = DataHeader {
                    id: u32::from_be_bytes(*id),
                    offset: u64::from_be_bytes(*offset),
                    total: u64::from_be_bytes(*total),
                };
                let len = payload.len() as u64;
                if len == 0 {
                    return Err(FrameError::EmptyPayload {
                        id: header.id,
                        offset: header.offset,
                    });
                }
                if header
                    .offset
                    .checked_add(len)
                    .is_none_or(|end| end > header.total)
                {
                    return Err(FrameError::FrameOverrun {
                        id: header.id,
                        offset: header.offset,
                        len,
                        total: header.total,
                    });
                }
                Ok(Frame::Data { header, payload })
            }
            TYPE_HELLO => {
                let truncated = || FrameError::TruncatedHeader {
                    kind: FrameKind::Hello,
                    len: buf.len(),
                    needed: HELLO_LEN,
                };
                let (&version, rest) = rest.split_first().ok_or_else(truncated)?;
                if version != VERSION {
                    return Err(FrameError::UnsupportedVersion {
                        version,
                        supported: VERSION,
                    });
                }
                let (msg, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
                let (in_flight, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
                let (buffered, _ignored) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
                let hello = Limits {
                    max_message_size: u64::from_be_bytes(*msg),
                    max_in_flight: u32::from_be_bytes(*in_flight),
                    max_buffered_bytes: u64::from_be_bytes(*buffered),
                };
                hello.validate()?;
                Ok(Frame::Hello(hello))
            }
            other => Err(FrameError::UnknownFrameType { frame_type: other }),
        }
    }

    /// The kind of this frame.
    #[must_use]
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Data { .. } => FrameKind::Data,
            Frame::Hello(_) => FrameKind::Hello,
        }
    }
}

/// An outbound binary frame: a small inline header and a payload that is a
/// zero-copy slice of the message it belongs to.
///
/// Transports that can send a header and a body separately use [`header`]
/// and [`payload`]; others call [`write_to`] or [`to_bytes`], which make the
/// one copy into a contiguous buffer that such a transport needs anyway.
///
/// [`header`]: BinaryFrame::header
/// [`payload`]: BinaryFrame::payload
/// [`write_to`]: BinaryFrame::write_to
/// [`to_bytes`]: BinaryFrame::to_bytes
#[derive(Clone, PartialEq, Eq)]
pub struct BinaryFrame {
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    payload: Bytes,
}

impl BinaryFrame {
    pub(crate) fn data(header: DataHeader, payload: Bytes) -> BinaryFrame {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let (head, _) = buf.split_at_mut(DATA_HEADER_LEN);
        head.copy_from_slice(&header.encode());
        BinaryFrame {
            header: buf,
            header_len: DATA_HEADER_LEN,
            payload,
        }
    }

    pub(crate) fn hello(hello: &Limits) -> BinaryFrame {
        BinaryFrame {
            header: hello.encode(),
            header_len: HELLO_LEN,
            payload: Bytes::new(),
        }
    }

    /// The frame's header bytes.
    #[must_use]
    pub fn header(&self) -> &[u8] {
        self.header.get(..self.header_len).unwrap_or(&self.header)
    }

    /// The frame's payload, a slice of the original message (empty for HELLO).
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The kind of this frame.
    #[must_use]
    pub fn kind(&self) -> FrameKind {
        if self.header[0] == TYPE_HELLO {
            FrameKind::Hello
        } else {
            FrameKind::Data
        }
    }

    /// Total length on the wire: header plus payload.
    #[must_use]
    pub fn len(&self) -> usize {
        self.header_len.saturating_add(self.payload.len())
    }

    /// Always false: every frame has a header.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Append the whole frame to `buf`.
    pub fn write_to(&self, buf: &mut impl BufMut) {
        buf.put_slice(self.header());
        buf.put_slice(&self.payload);
    }

    /// The whole frame as one contiguous buffer (one copy).
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.len());
        self.write_to(&mut buf);
        buf.freeze()
    }
}

impl fmt::Debug for BinaryFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Frame::parse(self.header()) {
            Ok(Frame::Hello(hello)) => f.debug_tuple("BinaryFrame::Hello").field(&hello).finish(),
            _ => {
                // A DATA header alone does not parse (no payload), so decode
                // the fields directly.
                let mut d = f.debug_struct("BinaryFrame::Data");
                if let Some((_, rest)) = self.header().split_first()
                    && let Some((id, rest)) = rest.split_first_chunk::<4>()
                    && let Some((offset, rest)) = rest.split_first_chunk::<8>()
                    && let Some((total, _)) = rest.split_first_chunk::<8>()
                {
                    d.field("id", &u32::from_be_bytes(*id))
                        .field("offset", &u64::from_be_bytes(*offset))
                        .field("total", &u64::from_be_bytes(*total));
                }
                d.field("payload_len", &self.payload.len()).finish()
            }
        }
    }
}
