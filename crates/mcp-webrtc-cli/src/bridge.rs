//! Newline-delimited JSON on a byte stream, bounded, and the two
//! directions of a bridge between such a stream and a [`MessageChannel`].
//!
//! Messages cross unchanged: a line read is sent as its bytes, a message
//! received is written as its bytes and a newline. The one exception is a
//! raw line break inside a message from the peer (JSON allows it only as
//! whitespace between tokens), which becomes a space, since stdio framing
//! ends a message at each line break.

use bytes::{Bytes, BytesMut};
use mcp_webrtc::{MessageChannel, MessageSender};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder};

/// Bytes read from the stream at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One item of a line-delimited stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line, without its line break (and without a trailing `\r`).
    Text(Bytes),
    /// A line longer than the limit was skipped.
    TooLong,
}

/// Reads lines of at most `max` bytes; never holds more than that (plus
/// one read) in memory.
pub(crate) struct LineReader<R> {
    reader: R,
    buf: BytesMut,
    codec: AnyDelimiterCodec,
    eof: bool,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R, max: usize) -> Self {
        LineReader {
            reader,
            buf: BytesMut::new(),
            codec: AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), max),
            eof: false,
            max,
        }
    }

    /// The longest line taken.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The next non-empty line, `None` at the end of the stream.
    /// Cancel-safe: all state is in `self`.
    ///
    /// # Errors
    /// A read error.
    pub(crate) async fn next(&mut self) -> std::io::Result<Option<Line>> {
        // Bounded: each pass decodes from the buffer or reads once; the
        // stream's end ends it.
        loop {
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buf)
            } else {
                self.codec.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(line)) => {
                    let line = match line.last() {
                        Some(b'\r') => line.slice(..line.len().saturating_sub(1)),
                        _ => line,
                    };
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Ok(Some(Line::Text(line)));
                }
                Ok(None) if self.eof => return Ok(None),
                Ok(None) => {}
                Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                    return Ok(Some(Line::TooLong));
                }
                Err(AnyDelimiterCodecError::Io(e)) => return Err(e),
            }
            self.buf.reserve(READ_CHUNK);
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                self.eof = true;
            }
        }
    }
}

/// Write one message and a newline, and flush.
///
/// # Errors
/// A write error (the other side closed its end, say).
pub(crate) async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &[u8],
) -> std::io::Result<()> {
    if message.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        let flat: Vec<u8> = message
            .iter()
            .map(|b| if matches!(b, b'\n' | b'\r') { b' ' } else { *b })
            .collect();
        writer.write_all(&flat).await?;
    } else {
        writer.write_all(message).await?;
    }
    writer.write_all(b"\n").await?;
    writer.flush().await
}

/// Why one direction of a bridge stopped.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// The stream ended (the child exited, or the host closed our stdin).
    StreamEnded,
    /// Reading the stream failed.
    StreamFailed(std::io::Error),
    /// The session ended.
    SessionEnded,
}

/// Lines from `reader` to the peer, until the stream ends or the session
/// does. A line that is not one JSON-RPC message, or too long, is dropped
/// with a warning naming `from`.
pub(crate) async fn lines_to_peer<R: AsyncRead + Unpin>(
    mut reader: LineReader<R>,
    sender: MessageSender,
    from: &str,
) -> Stopped {
    // Bounded by the stream: each pass takes one line.
    loop {
        let line = match reader.next().await {
            Ok(Some(Line::Text(line))) => line,
            Ok(Some(Line::TooLong)) => {
                tracing::warn!(
                    "dropped a line from {from} longer than {} bytes (see --max-message-size)",
                    reader.max()
                );
                continue;
            }
            Ok(None) => return Stopped::StreamEnded,
            Err(e) => return Stopped::StreamFailed(e),
        };
        match sender.send(line).await {
            Ok(()) => {}
            Err(mcp_webrtc::Error::InvalidMessage { reason }) => {
                tracing::warn!(
                    "dropped a line from {from} that is not a JSON-RPC message: {reason}"
                );
            }
            Err(e @ mcp_webrtc::Error::MessageTooLarge { .. }) => {
                tracing::warn!("dropped a message from {from}: {e}");
            }
            Err(e) => {
                tracing::debug!(error = %e, "the session ended while sending");
                return Stopped::SessionEnded;
            }
        }
    }
}

/// Messages from the peer to `writer`, until the session ends (after the
/// "peer gone" errors for unanswered requests) or the stream is closed.
pub(crate) async fn peer_to_stream<W: AsyncWrite + Unpin>(
    channel: &mut MessageChannel,
    writer: &mut W,
) -> Stopped {
    // Bounded by the session: each pass forwards one message.
    while let Some(message) = channel.receive().await {
        if let Err(e) = write_message(writer, &message).await {
            tracing::debug!(error = %e, "the local end stopped reading");
            return Stopped::StreamFailed(e);
        }
    }
    Stopped::SessionEnded
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(line) = reader.next().await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_trimmed_and_bounded() {
        let text = |s: &str| Line::Text(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(
            lines(b"{\"a\":1}\r\n\n  \n{\"b\":2}", 64).await,
            vec![text("{\"a\":1}"), text("{\"b\":2}")]
        );
        let long = format!("{}\n{{}}\n", "x".repeat(100));
        assert_eq!(
            lines(long.as_bytes(), 10).await,
            vec![Line::TooLong, text("{}")]
        );
    }

    #[tokio::test]
    async fn raw_line_breaks_in_a_message_become_spaces() {
        let mut out = Vec::new();
        write_message(&mut out, b"{\"a\":\n1}").await.unwrap();
        assert_eq!(out, b"{\"a\": 1}\n");
    }
}
