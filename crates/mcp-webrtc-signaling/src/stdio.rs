//! Copy-and-paste signaling, like aiortc's `CopyAndPasteSignaling`: each
//! outgoing message is printed as one line of aiortc-dialect JSON for the user
//! to carry to the other side (over a chat, a ticket, anything), and each
//! incoming one is read as a line the user pastes.

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::lines::{Line, LineReader};
use crate::{
    Dialect, Error, Options, Result, SignalMessage, Signaling, StreamState, write_bounded,
};

const SEND_PROMPT: &str = "-- Please send this message to the remote party --\n";
const RECV_PROMPT: &str = "-- Please enter a message from remote party --\n";

/// Copy-and-paste signaling over a reader and a writer (a terminal by
/// default: [`CopyPasteSignaling::stdio`]).
///
/// Prompts and messages go to the writer; pasted lines are read from the
/// reader. Blank lines are skipped. A message works with aiortc's own
/// copy-and-paste signaling on the other side.
#[derive(Debug)]
pub struct CopyPasteSignaling<R, W> {
    reader: LineReader<R>,
    writer: W,
    options: Options,
    state: StreamState,
    closed: bool,
    prompted: bool,
    /// A write failed part-way; nothing more is written.
    broken: bool,
}

impl CopyPasteSignaling<tokio::io::Stdin, tokio::io::Stdout> {
    /// Copy-and-paste over the process's terminal.
    #[must_use]
    pub fn stdio() -> Self {
        CopyPasteSignaling::new(tokio::io::stdin(), tokio::io::stdout(), Options::default())
    }
}

impl<R, W> CopyPasteSignaling<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// Copy-and-paste over `reader` and `writer`.
    pub fn new(reader: R, writer: W, options: Options) -> Self {
        CopyPasteSignaling {
            reader: LineReader::new(reader, options.max_message_size),
            writer,
            options,
            state: StreamState::Open,
            closed: false,
            prompted: false,
            broken: false,
        }
    }

    async fn write(&mut self, text: String) -> Result<()> {
        write_bounded(
            &mut self.writer,
            text.as_bytes(),
            self.options.io_timeout,
            || "write to terminal".into(),
            &mut self.broken,
        )
        .await
    }

    async fn send_message(&mut self, message: &SignalMessage) -> Result<()> {
        let line = Dialect::Aiortc.encode(message)?;
        self.write(format!("{SEND_PROMPT}{line}\n\n")).await
    }
}

impl<R, W> Signaling for CopyPasteSignaling<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.closed {
                return Err(Error::Closed);
            }
            self.send_message(&message).await
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        Box::pin(async move {
            loop {
                if self.state != StreamState::Open || self.closed {
                    return Ok(None);
                }
                if !self.prompted {
                    self.write(RECV_PROMPT.to_owned()).await?;
                    self.prompted = true;
                }
                let line = match self.reader.next_line().await {
                    Ok(line) => line,
                    Err(e @ Error::MessageTooLarge { .. }) => return Err(e),
                    Err(e) => {
                        // The terminal is gone or broken: end, once.
                        self.state = StreamState::Failed;
                        return Err(crate::lines::peer_closed_if_reset(e));
                    }
                };
                match line {
                    Line::Line(line) if line.iter().all(u8::is_ascii_whitespace) => {}
                    Line::Line(line) => {
                        self.prompted = false;
                        let message =
                            Dialect::Aiortc.decode(&line, self.options.max_message_size)?;
                        return self.state.deliver(Some(message));
                    }
                    Line::Eof => return self.state.deliver(None),
                }
            }
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if std::mem::replace(&mut self.closed, true) {
                return Ok(());
            }
            self.send_message(&SignalMessage::Bye).await
        })
    }
}
