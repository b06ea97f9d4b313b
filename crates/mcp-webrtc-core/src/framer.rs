//! The framer: per-channel negotiation, scheduling and reassembly.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::config::{ChannelInfo, Config};
use crate::error::{Error, Result};
use crate::reassembler::Reassembler;
use crate::scheduler::{Rejected, Scheduler, Transmit};
use crate::wire::{BinaryFrame, Frame, Limits, PROTOCOL};

/// Which side of the WebRTC handshake we are. The offerer creates the data
/// channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sent the SDP offer and created the data channel (the MCP server, by
    /// default, as in the Python package).
    Offerer,
    /// Answered the offer and accepted the data channel.
    Answerer,
}

/// How messages travel on the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireMode {
    /// One whole message per text message; nothing larger than the channel's
    /// message-size limit can be sent. What the reference packages speak.
    Plain,
    /// Small messages as text, larger ones as interleaved binary DATA frames.
    Chunked,
}

/// Sans-IO framing state for one data channel: negotiation, the outbound
/// scheduler and the reassembler, driven by plain method calls.
///
/// A transport owns one [`Framer`] per data channel and:
/// - calls [`Framer::send`] with each encoded JSON-RPC message;
/// - sends everything [`Framer::poll_transmit`] yields, in order, as text or
///   binary data-channel messages;
/// - hands every inbound data-channel message to [`Framer::receive_text`] or
///   [`Framer::receive_binary`], and gets whole messages back;
/// - reports each message from [`Framer::poll_rejected`] to its sender.
///
/// # Negotiation
///
/// The offerer creates the channel with protocol [`PROTOCOL`]. An answerer
/// that sees it switches to chunked mode at once and sends a HELLO first.
/// The offerer switches to chunked mode when that HELLO arrives, and answers
/// with its own. Each HELLO carries its sender's receive limits; chunked
/// messages wait until the peer's limits are known. On a channel with any
/// other protocol string both sides stay in plain mode, which is exactly the
/// wire format of the Python and TypeScript `mcp-webrtc` packages.
///
/// # Time
///
/// The framer has no clock, in the manner of quinn-proto and str0m. It
/// learns the time from [`Framer::receive_binary`] and
/// [`Framer::handle_timeout`], and [`Framer::poll_timeout`] says when it next
/// needs [`Framer::handle_timeout`] to be called. Two timers run: the peer's
/// HELLO ([`Config::hello_timeout`], from the first time the framer is
/// given) and each incomplete inbound message ([`Config::partial_timeout`],
/// from its last frame).
#[derive(Debug)]
pub struct Framer {
    role: Role,
    mode: WireMode,
    /// The channel carries our protocol string, so chunked mode may be used.
    negotiable: bool,
    peer_hello: Option<Limits>,
    /// [`Framer::abandon_waiting`] was called.
    hello_abandoned: bool,
    /// The HELLO timer was started (at the first time given).
    hello_armed: bool,
    /// When it expires; `None` if that is past what the clock can hold.
    hello_deadline: Option<Instant>,
    channel_limit: u64,
    config: Config,
    scheduler: Scheduler,
    reassembler: Reassembler,
    rejected: VecDeque<Rejected>,
}

impl Framer {
    /// Framing state for a channel that has just opened.
    ///
    /// An answerer on a [`PROTOCOL`] channel queues its HELLO at once.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for inconsistent limits, or a frame size that
    /// cannot hold a header.
    pub fn new(role: Role, config: Config, channel: &ChannelInfo) -> Result<Framer> {
        config.validate()?;
        // RFC 8841: 0 means no limit.
        let channel_limit = match channel.max_message_size {
            None | Some(0) => u64::MAX,
            Some(n) => n,
        };
        let negotiable = channel.protocol == PROTOCOL;
        // Frames exist only on a negotiable channel; there they must fit
        // the channel.
        let frame_size = if negotiable {
            usize::try_from(channel_limit)
                .unwrap_or(usize::MAX)
                .min(config.frame_size)
        } else {
            config.frame_size
        };
        let mut scheduler = Scheduler::new(frame_size, config.max_queued_bytes)?;
        scheduler.set_fifo(config.fifo);
        let mut framer = Framer {
            role,
            mode: WireMode::Plain,
            negotiable,
            peer_hello: None,
            hello_abandoned: false,
            hello_armed: false,
            hello_deadline: None,
            channel_limit,
            config,
            scheduler,
            reassembler: Reassembler::new(config.limits()),
            rejected: VecDeque::new(),
        };
        if negotiable && role == Role::Answerer {
            framer.mode = WireMode::Chunked;
            framer
                .scheduler
                .push_control(BinaryFrame::hello(&config.limits()));
        }
        Ok(framer)
    }

    /// Our role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current wire mode.
    #[must_use]
    pub fn mode(&self) -> WireMode {
        self.mode
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The peer's receive limits, once its HELLO has arrived.
    #[must_use]
    pub fn peer_limits(&self) -> Option<Limits> {
        self.peer_hello
    }

    /// The largest message [`Framer::send`] accepts right now, if it is
    /// known: the channel limit in plain mode, the peer's announced maximum
    /// in chunked mode.
    #[must_use]
    pub fn max_send_size(&self) -> Option<u64> {
        match self.mode {
            WireMode::Plain => Some(self.channel_limit),
            WireMode::Chunked => self.scheduler.peer_max_message_size(),
        }
    }

    /// Queue one encoded message for sending.
    ///
    /// # Errors
    /// - [`Error::MessageTooLarge`] in plain mode when the message exceeds
    ///   the channel's limit, or in chunked mode when it exceeds the peer's
    ///   announced maximum. Nothing is dropped silently.
    /// - [`Error::InvalidUtf8`] if a message that goes as text is not UTF-8.
    /// - [`Error::EmptyMessage`] and [`Error::QueueFull`].
    pub fn send(&mut self, message: Bytes) -> Result<()> {
        if message.is_empty() {
            return Err(Error::EmptyMessage);
        }
        let size = message.len() as u64;
        let as_text = match self.mode {
            WireMode::Plain => {
                if size > self.channel_limit {
                    return Err(Error::MessageTooLarge {
                        size,
                        limit: self.channel_limit,
                    });
                }
                true
            }
            WireMode::Chunked => {
                if let Some(limit) = self.scheduler.peer_max_message_size()
                    && size > limit
                {
                    return Err(Error::MessageTooLarge { size, limit });
                }
                message.len() <= self.scheduler.frame_size()
            }
        };
        if as_text {
            if let Err(e) = std::str::from_utf8(&message) {
                return Err(Error::InvalidUtf8 {
                    valid_up_to: e.valid_up_to(),
                });
            }
            self.scheduler.push_text(message)
        } else if self.hello_abandoned && self.peer_hello.is_none() {
            Err(Error::NoPeerHello { size })
        } else {
            self.scheduler.push_chunked(message)
        }
    }

    /// The next thing to put on the data channel, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.scheduler.poll_transmit()
    }

    /// A queued message that turned out to be unsendable (it exceeded the
    /// peer's limits, announced after it was queued).
    pub fn poll_rejected(&mut self) -> Option<Rejected> {
        self.rejected.pop_front()
    }

    /// Take an inbound text message: always one whole message.
    ///
    /// The framer does not parse it; run it through
    /// [`codec::decode`](crate::codec::decode) or
    /// [`codec::validate`](crate::codec::validate).
    ///
    /// # Errors
    /// [`Error::EmptyMessage`], or [`Error::MessageTooLarge`] over our
    /// configured maximum.
    pub fn receive_text(&mut self, message: Bytes) -> Result<Bytes> {
        if message.is_empty() {
            return Err(Error::EmptyMessage);
        }
        let size = message.len() as u64;
        if size > self.config.max_message_size {
            return Err(Error::MessageTooLarge {
                size,
                limit: self.config.max_message_size,
            });
        }
        Ok(message)
    }

    /// Take an inbound binary message. Returns the message it completes, if
    /// any. A HELLO completes negotiation and yields nothing.
    ///
    /// # Errors
    /// A typed error naming what was wrong. The frame is dropped; the
    /// session can go on.
    pub fn receive_binary(&mut self, frame: &[u8], now: Instant) -> Result<Option<Bytes>> {
        self.arm(now);
        if !self.negotiable {
            return Err(Error::NotNegotiated {
                first_byte: frame.first().copied(),
            });
        }
        let first_byte = frame.first().copied();
        let frame = Frame::parse(frame)?;
        match frame {
            Frame::Hello(hello) => {
                self.on_hello(hello)?;
                Ok(None)
            }
            Frame::Data { header, payload } => {
                if self.mode != WireMode::Chunked {
                    return Err(Error::NotNegotiated { first_byte });
                }
                self.reassembler.receive(header, payload, now)
            }
        }
    }

    fn on_hello(&mut self, hello: Limits) -> Result<()> {
        if self.peer_hello.is_some() {
            return Err(Error::UnexpectedHello {
                reason: "a second HELLO on the same channel",
            });
        }
        self.peer_hello = Some(hello);
        if self.role == Role::Offerer {
            self.mode = WireMode::Chunked;
            self.scheduler
                .push_control(BinaryFrame::hello(&self.config.limits()));
        }
        self.rejected.extend(self.scheduler.set_peer_limits(hello));
        Ok(())
    }

    /// Whether messages that need chunking wait for the peer's HELLO: it
    /// announced chunked framing, its HELLO has not come, and the framer has
    /// not given up on it.
    #[must_use]
    pub fn awaiting_hello(&self) -> bool {
        self.mode == WireMode::Chunked && self.peer_hello.is_none() && !self.hello_abandoned
    }

    /// Start the HELLO timer the first time the framer learns the time.
    fn arm(&mut self, now: Instant) {
        if !self.hello_armed {
            self.hello_armed = true;
            // A timeout the clock cannot hold is, in effect, never.
            self.hello_deadline = now.checked_add(self.config.hello_timeout);
        }
    }

    /// When [`Framer::handle_timeout`] must next be called: the HELLO
    /// deadline while it is awaited, or the expiry of the oldest incomplete
    /// inbound message. `None` when no timer runs (or, for the HELLO timer,
    /// before the framer was first given the time: call
    /// [`Framer::handle_timeout`] once when the channel opens).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hello = self.hello_deadline.filter(|_| self.awaiting_hello());
        let partial = self.reassembler.next_expiry(self.config.partial_timeout);
        match (hello, partial) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fire the timers that are due at `now`:
    /// - no HELLO by its deadline: as [`Framer::abandon_waiting`] (the
    ///   messages that waited come back through [`Framer::poll_rejected`]);
    /// - an incomplete inbound message whose last frame is
    ///   [`Config::partial_timeout`] old is dropped, its buffer freed; the
    ///   returned errors ([`Error::PartialTimeout`], one per message, at most
    ///   [`Config::max_in_flight`]) say which.
    ///
    /// The first call also starts the HELLO timer.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Error> {
        self.arm(now);
        if self.awaiting_hello() && self.hello_deadline.is_some_and(|d| now >= d) {
            self.abandon_waiting();
        }
        self.reassembler.expire(now, self.config.partial_timeout)
    }

    /// Give up on the peer's HELLO: hand every message that waits for the
    /// peer's limits back through [`Framer::poll_rejected`] with
    /// [`Error::NoPeerHello`], and refuse such messages from now on (small
    /// messages still go as text).
    ///
    /// [`Framer::handle_timeout`] calls this when [`Config::hello_timeout`]
    /// passes; call it yourself to give up sooner. Does nothing once the
    /// HELLO has arrived.
    pub fn abandon_waiting(&mut self) {
        if self.peer_hello.is_some() {
            return;
        }
        self.hello_abandoned = true;
        for message in self.scheduler.take_waiting() {
            let size = message.len() as u64;
            self.rejected.push_back(Rejected {
                message,
                error: Error::NoPeerHello { size },
            });
        }
    }

    /// Bytes of outbound message data not yet emitted.
    #[must_use]
    pub fn queued_bytes(&self) -> u64 {
        self.scheduler.queued_bytes()
    }

    /// Whether nothing is left to emit.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.scheduler.is_idle()
    }

    /// Inbound chunked messages being reassembled.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.reassembler.in_flight()
    }

    /// Bytes reserved for inbound partial messages.
    #[must_use]
    pub fn buffered_bytes(&self) -> u64 {
        self.reassembler.buffered_bytes()
    }
}
