//! An in-process pair of signaling ends, event-driven (no polling).

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::{Error, Result, SignalMessage, Signaling, StreamState, deadline};

/// Messages one end may have queued for the other.
const CAPACITY: usize = 64;

/// One end of an in-process signaling pair. See [`MemorySignaling::pair`].
#[derive(Debug)]
pub struct MemorySignaling {
    tx: Option<mpsc::Sender<SignalMessage>>,
    rx: mpsc::Receiver<SignalMessage>,
    state: StreamState,
    io_timeout: Duration,
}

impl MemorySignaling {
    /// Two connected ends: what one sends, the other receives.
    #[must_use]
    pub fn pair() -> (MemorySignaling, MemorySignaling) {
        let (a_tx, b_rx) = mpsc::channel(CAPACITY);
        let (b_tx, a_rx) = mpsc::channel(CAPACITY);
        let io_timeout = crate::Options::default().io_timeout;
        (
            MemorySignaling {
                tx: Some(a_tx),
                rx: a_rx,
                state: StreamState::Open,
                io_timeout,
            },
            MemorySignaling {
                tx: Some(b_tx),
                rx: b_rx,
                state: StreamState::Open,
                io_timeout,
            },
        )
    }
}

impl Signaling for MemorySignaling {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let tx = self.tx.as_ref().ok_or(Error::Closed)?;
            let kind = message.type_name();
            deadline(
                self.io_timeout,
                || format!("send of a {kind} message (peer not reading)"),
                async move { tx.send(message).await.map_err(|_| Error::PeerClosed) },
            )
            .await
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        Box::pin(async move {
            if self.state != StreamState::Open {
                return Ok(None);
            }
            // mpsc::Receiver::recv is cancel-safe.
            let read = self.rx.recv().await;
            self.state.deliver(read)
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if let Some(tx) = self.tx.take() {
                // Bounded: a peer that does not read within the I/O timeout
                // sees the channel close instead of the bye.
                let _ = tokio::time::timeout(self.io_timeout, tx.send(SignalMessage::Bye)).await;
            }
            Ok(())
        })
    }
}
