//! [`Config`]: the framer's limits, sizes and timeouts; [`ChannelInfo`]: what
//! it knows of the channel.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::wire::{DATA_HEADER_LEN, Limits};

/// Limits and sizes of a [`Framer`](crate::Framer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame we send in chunked mode, header included. Messages up
    /// to this size go as one text message. Capped at the channel's limit.
    pub frame_size: usize,
    /// Largest inbound message we accept.
    pub max_message_size: u64,
    /// Inbound chunked messages we reassemble at once.
    pub max_in_flight: u32,
    /// Bytes we reserve for partial inbound messages, over all of them.
    pub max_buffered_bytes: u64,
    /// Outbound message bytes we queue before [`Framer::send`](crate::Framer::send) answers
    /// [`Error::QueueFull`]. A single message is accepted into an empty
    /// queue whatever its size.
    pub max_queued_bytes: u64,
    /// How long a peer that announced chunked framing has to send its HELLO
    /// before messages that need chunking are refused
    /// ([`Error::NoPeerHello`]). Counted from the first time the framer is
    /// given ([`Framer::handle_timeout`](crate::Framer::handle_timeout) or [`Framer::receive_binary`](crate::Framer::receive_binary)).
    pub hello_timeout: Duration,
    /// How long an incomplete inbound message may go without a frame before
    /// it is dropped and its buffer freed ([`Error::PartialTimeout`]).
    pub partial_timeout: Duration,
    /// Benchmarks' negative control: no interleaving.
    pub(crate) fifo: bool,
}

/// The default [`Config::hello_timeout`]: 5 s.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// The default [`Config::partial_timeout`]: 30 s.
pub const DEFAULT_PARTIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// The default frame size: 16 KiB, as RFC 8831 advises when SCTP cannot
/// interleave. See `docs/performance.md` for the measured trade-off.
pub const DEFAULT_FRAME_SIZE: usize = 16 * 1024;

/// The default largest inbound message: 128 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;

impl Default for Config {
    fn default() -> Config {
        Config {
            frame_size: DEFAULT_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_in_flight: 32,
            max_buffered_bytes: 256 * 1024 * 1024,
            max_queued_bytes: 256 * 1024 * 1024,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            partial_timeout: DEFAULT_PARTIAL_TIMEOUT,
            fifo: false,
        }
    }
}

impl Config {
    /// Set [`Config::frame_size`].
    #[must_use]
    pub fn with_frame_size(mut self, bytes: usize) -> Config {
        self.frame_size = bytes;
        self
    }

    /// Set [`Config::max_message_size`].
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: u64) -> Config {
        self.max_message_size = bytes;
        self
    }

    /// Set [`Config::max_in_flight`].
    #[must_use]
    pub fn with_max_in_flight(mut self, messages: u32) -> Config {
        self.max_in_flight = messages;
        self
    }

    /// Set [`Config::max_buffered_bytes`].
    #[must_use]
    pub fn with_max_buffered_bytes(mut self, bytes: u64) -> Config {
        self.max_buffered_bytes = bytes;
        self
    }

    /// Set [`Config::max_queued_bytes`].
    #[must_use]
    pub fn with_max_queued_bytes(mut self, bytes: u64) -> Config {
        self.max_queued_bytes = bytes;
        self
    }

    /// Set [`Config::hello_timeout`].
    #[must_use]
    pub fn with_hello_timeout(mut self, timeout: Duration) -> Config {
        self.hello_timeout = timeout;
        self
    }

    /// Set [`Config::partial_timeout`].
    #[must_use]
    pub fn with_partial_timeout(mut self, timeout: Duration) -> Config {
        self.partial_timeout = timeout;
        self
    }

    /// Send each message whole before the next, instead of interleaving
    /// them: a benchmark's negative control, which shows what interleaving
    /// is worth. No transport should set it.
    #[doc(hidden)]
    #[must_use]
    pub fn with_fifo_scheduling(mut self, fifo: bool) -> Config {
        self.fifo = fifo;
        self
    }

    /// Our receive limits, as announced in our HELLO.
    #[must_use]
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_size: self.max_message_size,
            max_in_flight: self.max_in_flight,
            max_buffered_bytes: self.max_buffered_bytes,
        }
    }

    /// Check that the limits are consistent ([`Framer::new`](crate::Framer::new) does too).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the inconsistency.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidConfig { reason });
        if self.max_message_size == 0 {
            return bad("max_message_size must be at least 1".into());
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1".into());
        }
        if self.frame_size <= DATA_HEADER_LEN {
            return bad(format!(
                "frame_size ({}) must exceed the {DATA_HEADER_LEN}-byte DATA header",
                self.frame_size
            ));
        }
        if self.hello_timeout.is_zero() || self.partial_timeout.is_zero() {
            return bad("hello_timeout and partial_timeout must be positive".into());
        }
        if self.max_buffered_bytes < self.max_message_size {
            return bad(format!(
                "max_buffered_bytes ({}) must be at least max_message_size ({})",
                self.max_buffered_bytes, self.max_message_size
            ));
        }
        Ok(())
    }
}

/// What the transport knows about the open data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel's `protocol` string, as created (offerer) or received
    /// (answerer).
    pub protocol: String,
    /// The largest message the channel carries in our sending direction
    /// (from the SDP `a=max-message-size` exchange), or `None` for no limit.
    pub max_message_size: Option<u64>,
}

impl ChannelInfo {
    /// A channel with the given protocol string and message-size limit.
    #[must_use]
    pub fn new(protocol: impl Into<String>, max_message_size: Option<u64>) -> ChannelInfo {
        ChannelInfo {
            protocol: protocol.into(),
            max_message_size,
        }
    }
}
