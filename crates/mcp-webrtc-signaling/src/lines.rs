//! Newline-delimited signaling over any byte stream (what aiortc's TCP and
//! Unix socket signaling speak).

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder};

use crate::{
    Dialect, Error, Options, Result, SignalMessage, Signaling, StreamState, deadline, write_bounded,
};

/// A bounded, cancel-safe line reader: tokio-util's newline codec (with a
/// maximum length, so the buffer holds at most the limit plus one read)
/// over our own read loop. Not `FramedRead`: after a decoding error it ends the stream once,
/// and an over-long line must be one bad message, not the end of signaling.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    reader: R,
    buf: BytesMut,
    codec: AnyDelimiterCodec,
    limit: usize,
}

/// What the reader produced.
pub(crate) enum Line {
    Line(Bytes),
    /// End of stream (an unterminated last line is dropped).
    Eof,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R, limit: usize) -> LineReader<R> {
        LineReader {
            reader,
            buf: BytesMut::with_capacity(4096),
            // One more byte than the limit, for the `\r` of a `\r\n` ending.
            codec: AnyDelimiterCodec::new_with_max_length(
                b"\n".to_vec(),
                Vec::new(),
                limit.saturating_add(1),
            ),
            limit,
        }
    }

    /// The next line, without its `\n` (or `\r\n`). Cancel-safe: all state
    /// lives in `self`, and the only await is `read_buf`, which either reads
    /// into the buffer or does nothing.
    pub(crate) async fn next_line(&mut self) -> Result<Line> {
        // Bounded: each pass decodes from the buffer or reads more; the
        // codec never lets the buffer grow past the limit.
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(mut line)) => {
                    if line.last() == Some(&b'\r') {
                        line.truncate(line.len().saturating_sub(1));
                    }
                    if line.len() > self.limit {
                        return Err(Error::MessageTooLarge {
                            size: line.len(),
                            limit: self.limit,
                        });
                    }
                    return Ok(Line::Line(line));
                }
                Ok(None) => {}
                // The codec skips the rest of the line by itself.
                Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                    return Err(Error::MessageTooLarge {
                        size: self.buf.len(),
                        limit: self.limit,
                    });
                }
                Err(AnyDelimiterCodecError::Io(e)) => {
                    return Err(Error::Io {
                        operation: "read",
                        source: e,
                    });
                }
            }
            let n = self
                .reader
                .read_buf(&mut self.buf)
                .await
                .map_err(Error::io("read"))?;
            if n == 0 {
                return Ok(Line::Eof);
            }
        }
    }
}

/// aiortc-style signaling over any byte stream: one JSON message per line.
///
/// [`TcpSignaling`](crate::TcpSignaling) and
/// [`UnixSignaling`](crate::UnixSignaling) are this over their sockets; use it
/// directly for any other stream (a serial line, a pipe, an SSH channel).
pub struct LineSignaling<S> {
    reader: LineReader<ReadHalf<S>>,
    writer: WriteHalf<S>,
    dialect: Dialect,
    options: Options,
    state: StreamState,
    closed: bool,
    /// A write failed part-way; nothing more is written.
    broken: bool,
}

impl<S> std::fmt::Debug for LineSignaling<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineSignaling")
            .field("dialect", &self.dialect)
            .field("state", &self.state)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> LineSignaling<S> {
    /// Signaling over `stream`, one message per line in `dialect`.
    pub fn new(stream: S, dialect: Dialect, options: Options) -> LineSignaling<S> {
        let (read, write) = tokio::io::split(stream);
        LineSignaling {
            reader: LineReader::new(read, options.max_message_size),
            writer: write,
            dialect,
            options,
            state: StreamState::Open,
            closed: false,
            broken: false,
        }
    }

    async fn write_line(&mut self, message: &SignalMessage) -> Result<()> {
        let mut line = self.dialect.encode(message)?;
        if line.len() > self.options.max_message_size {
            return Err(Error::MessageTooLarge {
                size: line.len(),
                limit: self.options.max_message_size,
            });
        }
        line.push('\n');
        let kind = message.type_name();
        write_bounded(
            &mut self.writer,
            line.as_bytes(),
            self.options.io_timeout,
            || format!("send of a {kind} message"),
            &mut self.broken,
        )
        .await
        .map_err(peer_closed_if_reset)
    }

    async fn recv_inner(&mut self) -> Result<Option<SignalMessage>> {
        loop {
            match self.state {
                StreamState::Open => {}
                StreamState::Ended | StreamState::Failed => return Ok(None),
            }
            if self.closed {
                return Ok(None);
            }
            match self.reader.next_line().await {
                Ok(Line::Line(line)) => {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let message = self.dialect.decode(&line, self.options.max_message_size)?;
                    return self.state.deliver(Some(message));
                }
                Ok(Line::Eof) => return self.state.deliver(None),
                Err(e @ Error::MessageTooLarge { .. }) => return Err(e),
                Err(e) => {
                    self.state = StreamState::Failed;
                    return Err(peer_closed_if_reset(e));
                }
            }
        }
    }

    async fn close_inner(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let timeout = self.options.io_timeout;
        // One deadline for the bye and the shutdown together.
        let result = deadline(timeout, || "close".into(), async {
            let bye = if self.broken {
                Ok(())
            } else {
                self.write_line(&SignalMessage::Bye).await
            };
            let shut = self.writer.shutdown().await.map_err(Error::io("shutdown"));
            bye.and(shut)
        })
        .await;
        // A peer that already left makes both fail; closing still succeeded.
        match result {
            Err(e) if self.state == StreamState::Open && !is_gone(&e) => Err(e),
            _ => Ok(()),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Signaling for LineSignaling<S> {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.closed {
                return Err(Error::Closed);
            }
            self.write_line(&message).await
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        Box::pin(self.recv_inner())
    }

    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.close_inner())
    }
}

/// Whether an error means the peer's end is gone (reset, broken pipe, EOF).
pub(crate) fn is_gone(e: &Error) -> bool {
    match e {
        Error::PeerClosed => true,
        Error::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::NotConnected
        ),
        _ => false,
    }
}

/// A reset or broken connection is the peer going away: [`Error::PeerClosed`].
pub(crate) fn peer_closed_if_reset(e: Error) -> Error {
    if is_gone(&e) { Error::PeerClosed } else { e }
}
