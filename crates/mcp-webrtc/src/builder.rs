//! [`Builder`]: every option of the transport, and connecting.

use std::net::SocketAddr;
use std::time::Duration;

use mcp_webrtc_core::{Framer, PROTOCOL};
use mcp_webrtc_rtc::{IcePolicy, IceServer, PeerConfig, Role};
use mcp_webrtc_signaling::Signaling;
use rmcp::service::{RoleClient, RoleServer};

use crate::error::{Error, Result};
use crate::transport::{
    MessageChannel, Settings, Shared, WebRtcTransport, new_session_id, start_shared,
};
use std::sync::Arc;
use tracing::Instrument;

/// Options for a [`WebRtcTransport`]; start from [`WebRtcTransport::builder`].
///
/// The defaults match the Python package `mcp-webrtc`: the server offers and
/// creates a reliable, ordered channel labelled `mcp`, the client answers.
/// Unlike it, there is no ICE server unless you add one, the handshake has a
/// 30 s timeout, a dead peer is noticed within 5 s, and between two peers of
/// ours messages of up to 128 MiB go through, chunked and interleaved.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    peer: PeerConfig,
    initiator: Option<bool>,
    chunking: bool,
    framer: mcp_webrtc_core::Config,
    close_timeout: Duration,
    max_pending_replies: usize,
    parse_off_thread: usize,
}

/// The default [`Builder::max_pending_replies`]: 64.
pub const DEFAULT_MAX_PENDING_REPLIES: usize = 64;

/// The default [`Builder::parse_off_thread`]: 1 MiB.
pub const DEFAULT_PARSE_OFF_THREAD: usize = 1024 * 1024;

/// The data channel's send buffer: 256 KiB. Frames waiting there are past
/// the interleaving scheduler, so a small response queues behind all of
/// them; 4 MiB (the peer connection's own default) made the p99 of small
/// calls during a 100 MiB transfer 14 ms, 256 KiB makes it 3 ms for 7% less
/// throughput. See `docs/performance.md`.
pub const DEFAULT_SEND_BUFFER: usize = 256 * 1024;

impl Default for Builder {
    fn default() -> Self {
        Builder {
            peer: PeerConfig::offerer().with_send_buffer_limit(DEFAULT_SEND_BUFFER),
            initiator: None,
            chunking: true,
            framer: mcp_webrtc_core::Config::default(),
            close_timeout: Duration::from_secs(10),
            max_pending_replies: DEFAULT_MAX_PENDING_REPLIES,
            parse_off_thread: DEFAULT_PARSE_OFF_THREAD,
        }
    }
}

impl WebRtcTransport<RoleServer> {
    /// A builder with the defaults, for either role: finish it with
    /// [`Builder::server`] or [`Builder::client`].
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl Builder {
    /// Whether this side sends the offer and creates the data channel.
    /// Default: the server does, the client does not (as the Python
    /// package's `WebRTCParameters.initiator`).
    pub fn initiator(mut self, initiator: bool) -> Self {
        self.initiator = Some(initiator);
        self
    }

    /// The data channel's label, when this side creates it. Default `mcp`.
    /// The answering side accepts any label, as the reference packages do.
    pub fn channel_name(mut self, name: impl Into<String>) -> Self {
        self.peer.label = name.into();
        self
    }

    /// Offer chunked framing to a peer of our own (default `true`). With
    /// `false` the channel is exactly what the reference packages create,
    /// and every message must fit the channel's SDP limit.
    pub fn chunking(mut self, chunking: bool) -> Self {
        self.chunking = chunking;
        self
    }

    /// The largest inbound message we accept (default 128 MiB). A peer of
    /// ours learns it and answers a larger result with an error. Raises the
    /// reassembly budget to match if needed.
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.framer = self.framer.with_max_message_size(bytes);
        if self.framer.max_buffered_bytes < bytes {
            self.framer = self.framer.with_max_buffered_bytes(bytes);
        }
        self
    }

    /// Every framing limit at once (frame size, in-flight messages, buffered
    /// and queued bytes); see [`mcp_webrtc_core::Config`].
    pub fn framing(mut self, config: mcp_webrtc_core::Config) -> Self {
        self.framer = config;
        self
    }

    /// The `a=max-message-size` we advertise in SDP, at most 262144 (the
    /// `webrtc` crate's cap, and what the reference packages use).
    pub fn sdp_max_message_size(mut self, bytes: u32) -> Self {
        self.peer.max_message_size = bytes;
        self
    }

    /// Add a STUN or TURN server. None by default: never a public STUN
    /// server unless you add one.
    pub fn ice_server(mut self, server: IceServer) -> Self {
        self.peer.ice_servers.push(server);
        self
    }

    /// Which candidates ICE may use (all, or relay only).
    pub fn ice_policy(mut self, policy: IcePolicy) -> Self {
        self.peer.ice_policy = policy;
        self
    }

    /// Send candidates as they are found (default), or all inside the SDP.
    pub fn trickle(mut self, trickle: bool) -> Self {
        self.peer.trickle = trickle;
        self
    }

    /// Refuse a peer whose DTLS certificate has another SHA-256
    /// fingerprint.
    pub fn remote_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.peer.remote_fingerprint = Some(fingerprint.into());
        self
    }

    /// Deadline for the whole set-up, signaling included. Default 30 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.peer.handshake_timeout = timeout;
        self
    }

    /// How soon a silent peer is declared gone. Default 5 s.
    pub fn dead_peer_timeout(mut self, timeout: Duration) -> Self {
        self.peer.dead_peer_timeout = timeout;
        self
    }

    /// How long one frame may wait for room in the channel's send buffer (a
    /// peer that is alive but reads nothing) before the session fails.
    /// Default 30 s.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.peer.send_timeout = timeout;
        self
    }

    /// How long a peer that announced chunked framing has to send its
    /// limits before large messages to it are refused. Default 5 s.
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.framer = self.framer.with_hello_timeout(timeout);
        self
    }

    /// How long an incomplete inbound message may go without a frame before
    /// it is dropped and its memory freed (a peer that starts a large
    /// message and never finishes it). Default 30 s.
    pub fn partial_timeout(mut self, timeout: Duration) -> Self {
        self.framer = self.framer.with_partial_timeout(timeout);
        self
    }

    /// How many replies to malformed requests may wait to go out (default
    /// 64). While that many wait (the peer sends garbage and reads nothing),
    /// nothing more is read from the channel, so the peer's sends stall
    /// instead of our memory growing; replies beyond it are dropped and
    /// counted ([`TransportStats::replies_dropped`](crate::TransportStats)).
    pub fn max_pending_replies(mut self, replies: usize) -> Self {
        self.max_pending_replies = replies;
        self
    }

    /// Inbound messages at least this large (default 1 MiB) are parsed on
    /// a blocking thread, so that a 100 MiB result does not hold an async
    /// worker for the tens of milliseconds its parse takes.
    pub fn parse_off_thread(mut self, bytes: usize) -> Self {
        self.parse_off_thread = bytes;
        self
    }

    /// How long closing waits for queued messages to go out and for the
    /// data channel to drain them. Default 10 s. Closing the channel, the
    /// bye over signaling and closing the connection follow, each bounded,
    /// about 3 s at most in all.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Local UDP addresses to bind. Default `127.0.0.1:0` and `0.0.0.0:0`.
    pub fn bind(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.peer.bind = addrs;
        self
    }

    /// Bytes the data channel may hold unsent before sending waits.
    /// Default [`DEFAULT_SEND_BUFFER`] (256 KiB): larger buffers add a
    /// little throughput and make small messages wait longer behind large
    /// ones.
    pub fn send_buffer_limit(mut self, bytes: usize) -> Self {
        self.peer.send_buffer_limit = bytes;
        self
    }

    /// UDP socket buffer size to ask the kernel for. Default 4 MiB.
    pub fn udp_buffer_size(mut self, bytes: usize) -> Self {
        self.peer.udp_buffer_size = bytes;
        self
    }

    /// Replace every peer-connection option at once (the role is still
    /// chosen by [`Builder::initiator`]).
    pub fn peer_config(mut self, config: PeerConfig) -> Self {
        self.peer = config;
        self
    }

    /// Connect as the MCP server, over `signaling`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`], or [`Error::Connect`] naming the set-up
    /// phase that failed.
    pub async fn server(
        self,
        signaling: impl Signaling + 'static,
    ) -> Result<WebRtcTransport<RoleServer>> {
        let shared = self.connect(true, signaling).await?;
        Ok(WebRtcTransport::from_shared(shared))
    }

    /// Connect as the MCP client, over `signaling`.
    ///
    /// # Errors
    /// As [`Builder::server`].
    pub async fn client(
        self,
        signaling: impl Signaling + 'static,
    ) -> Result<WebRtcTransport<RoleClient>> {
        let shared = self.connect(false, signaling).await?;
        Ok(WebRtcTransport::from_shared(shared))
    }

    /// Connect over `signaling` as `role` and open an untyped
    /// [`MessageChannel`]: JSON-RPC messages as bytes, forwarded unchanged
    /// (for bridges, and for protocols other than MCP). The role says who
    /// offers; [`Builder::initiator`] is not used. The reference packages'
    /// servers offer.
    ///
    /// # Errors
    /// As [`Builder::server`].
    pub async fn message_channel(
        self,
        role: Role,
        signaling: impl Signaling + 'static,
    ) -> Result<MessageChannel> {
        let offer = role == Role::Offerer;
        let shared = self.initiator(offer).connect(offer, signaling).await?;
        Ok(MessageChannel::from_shared(shared))
    }

    async fn connect(
        self,
        server: bool,
        signaling: impl Signaling + 'static,
    ) -> Result<Arc<Shared>> {
        let role = if self.initiator.unwrap_or(server) {
            Role::Offerer
        } else {
            Role::Answerer
        };
        let mut peer = self.peer;
        peer.role = role;
        peer.protocol = if self.chunking {
            PROTOCOL.to_owned()
        } else {
            String::new()
        };
        let invalid = |reason: String| Error::InvalidConfig { reason };
        peer.validate().map_err(|e| invalid(e.to_string()))?;
        self.framer.validate().map_err(|e| invalid(e.to_string()))?;
        if self.max_pending_replies == 0 {
            return Err(invalid("max_pending_replies must be at least 1".into()));
        }
        let session_id = new_session_id();
        let span = tracing::info_span!("mcp-webrtc", session = %session_id);
        let conn = mcp_webrtc_rtc::connect(peer, signaling)
            .instrument(span.clone())
            .await
            .map_err(Error::Connect)?;
        let info = conn.info();
        // The framer sees the channel as core describes it.
        let channel =
            mcp_webrtc_core::ChannelInfo::new(info.protocol.clone(), Some(info.max_message_size));
        let framer_role = match role {
            Role::Offerer => mcp_webrtc_core::Role::Offerer,
            Role::Answerer => mcp_webrtc_core::Role::Answerer,
        };
        let framer =
            Framer::new(framer_role, self.framer, &channel).map_err(|e| invalid(e.to_string()))?;
        span.in_scope(|| {
            tracing::debug!(?role, mode = ?framer.mode(), ?info, "MCP transport open");
        });
        Ok(start_shared(
            conn,
            framer,
            Settings {
                close_timeout: self.close_timeout,
                max_pending_replies: self.max_pending_replies,
                parse_off_thread: self.parse_off_thread,
            },
            span,
            session_id,
        ))
    }
}

/// Connect as an MCP server with the defaults: offer, create the channel
/// `mcp`, wait for the client over `signaling`. As the Python package's
/// `webrtc_server_transport`.
///
/// # Errors
/// As [`Builder::server`].
pub async fn webrtc_server_transport(
    signaling: impl Signaling + 'static,
) -> Result<WebRtcTransport<RoleServer>> {
    Builder::default().server(signaling).await
}

/// Connect as an MCP client with the defaults: answer the server's offer
/// over `signaling`. As the Python package's `webrtc_client_transport`.
///
/// # Errors
/// As [`Builder::server`].
pub async fn webrtc_client_transport(
    signaling: impl Signaling + 'static,
) -> Result<WebRtcTransport<RoleClient>> {
    Builder::default().client(signaling).await
}
