//! The handshake driver and the open connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mcp_webrtc_core::Transmit;
use mcp_webrtc_signaling::{SignalMessage, Signaling};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceConnectionState, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceErrorEvent, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

use crate::config::{IcePolicy, PeerConfig, Role};
use crate::sdp::{self, MessageSizeLimit};
use crate::{Error, Phase, Result};

/// Events the stack reports during set-up.
enum Event {
    Candidate(RTCIceCandidateInit),
    GatheringComplete,
    DataChannel(Arc<dyn DataChannel>),
    CandidateError(String),
}

/// Receives the stack's callbacks. It never blocks the driver: events go
/// through `try_send` and states through `watch`.
struct Handler {
    events: mpsc::Sender<Event>,
    state: watch::Sender<RTCPeerConnectionState>,
    ice: watch::Sender<RTCIceConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.events.try_send(Event::Candidate(init));
        }
    }
    async fn on_ice_candidate_error(&self, event: RTCPeerConnectionIceErrorEvent) {
        let text = format!(
            "{} answered {} {}",
            event.url, event.error_code, event.error_text
        );
        let _ = self.events.try_send(Event::CandidateError(text));
    }
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.try_send(Event::GatheringComplete);
        }
    }
    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        self.ice.send_replace(state);
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }
    async fn on_data_channel(&self, data_channel: Arc<dyn DataChannel>) {
        let _ = self.events.try_send(Event::DataChannel(data_channel));
    }
}

/// How long each phase of set-up took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HandshakeTimings {
    /// Start until the remote description was applied (signaling round trip,
    /// and gathering in non-trickle mode).
    pub signaling: Duration,
    /// Remote description applied until ICE connected.
    pub ice: Duration,
    /// ICE connected until the peer connection connected (DTLS).
    pub dtls: Duration,
    /// Peer connection connected until the data channel opened (SCTP and
    /// DCEP).
    pub sctp: Duration,
    /// Start until the data channel opened.
    pub total: Duration,
}

/// What the open data channel is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// The channel's label.
    pub label: String,
    /// The channel's protocol string (empty for the reference packages).
    pub protocol: String,
    /// The `a=max-message-size` we advertised.
    pub local_max_message_size: u64,
    /// The peer's `a=max-message-size`: `None` for no limit (`0`); 65536
    /// when absent (RFC 8841).
    pub remote_max_message_size: Option<u64>,
    /// The largest message that can be sent (or received) on this channel:
    /// the stack enforces min(local, remote) both ways.
    pub max_message_size: u64,
}

/// Traffic counters and the selected candidate pair.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// The selected pair, as `local ip:port (type) -> remote ip:port (type)`.
    pub selected_pair: Option<String>,
    /// Bytes sent on the transport.
    pub bytes_sent: u64,
    /// Bytes received on the transport.
    pub bytes_received: u64,
}

/// One inbound data-channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text message (UTF-8 as sent; not checked here).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

/// An open data channel on a live peer connection.
///
/// All methods take `&self`: share it in an `Arc` between a sending and a
/// receiving task. Call [`Connection::close`] when done; dropping it closes
/// the peer connection in the background.
pub struct Connection {
    pc: Arc<dyn PeerConnection>,
    dc: Arc<dyn DataChannel>,
    info: ChannelInfo,
    timings: HandshakeTimings,
    state: watch::Receiver<RTCPeerConnectionState>,
    peer_bye: watch::Receiver<bool>,
    closing: AtomicBool,
    send_timeout: Duration,
    /// `pc.close()` has returned.
    pc_closed: AtomicBool,
    runtime: tokio::runtime::Handle,
    signaling: mpsc::Sender<()>,
    signaling_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.info)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

/// Wait until the peer connection failed (or closed); the reason.
async fn gone(mut state: watch::Receiver<RTCPeerConnectionState>) -> String {
    match state
        .wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
            )
        })
        .await
    {
        Ok(s) if *s == RTCPeerConnectionState::Failed => {
            "the peer stopped answering (ICE failed)".to_owned()
        }
        Ok(_) => "the peer connection closed".to_owned(),
        Err(_) => "the peer connection is gone".to_owned(),
    }
}

impl Connection {
    /// What the channel is: label, protocol, size limits.
    #[must_use]
    pub fn info(&self) -> &ChannelInfo {
        &self.info
    }

    /// How long set-up took, by phase.
    #[must_use]
    pub fn timings(&self) -> HandshakeTimings {
        self.timings
    }

    fn check_usable(&self) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if *self.peer_bye.borrow() {
            return Err(Error::PeerGone {
                reason: "the peer said bye".into(),
            });
        }
        if *self.state.borrow() == RTCPeerConnectionState::Failed {
            return Err(Error::PeerGone {
                reason: "the peer stopped answering (ICE failed)".into(),
            });
        }
        Ok(())
    }

    fn check_size(&self, size: usize) -> Result<()> {
        let limit = usize::try_from(self.info.max_message_size).unwrap_or(usize::MAX);
        if size > limit {
            return Err(Error::MessageTooLarge { size, limit });
        }
        Ok(())
    }

    fn map_send_error(&self, e: webrtc::error::Error, size: usize) -> Error {
        match e {
            webrtc::error::Error::ErrOutboundPacketTooLarge => Error::MessageTooLarge {
                size,
                limit: usize::try_from(self.info.max_message_size).unwrap_or(usize::MAX),
            },
            webrtc::error::Error::ErrDataChannelClosed
            | webrtc::error::Error::ErrConnectionClosed
                if self.closing.load(Ordering::Acquire) =>
            {
                Error::Closed
            }
            webrtc::error::Error::ErrDataChannelClosed
            | webrtc::error::Error::ErrConnectionClosed => Error::PeerGone {
                reason: "the data channel closed".into(),
            },
            other => Error::WebRtc {
                phase: Phase::DataChannel,
                source: other,
            },
        }
    }

    /// Send one text message. Waits while the send buffer is full, and fails
    /// fast if the peer is gone.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] (naming the size and the limit),
    /// [`Error::PeerGone`], [`Error::Closed`].
    pub async fn send_text(&self, text: &str) -> Result<()> {
        self.check_usable()?;
        self.check_size(text.len())?;
        tokio::select! {
            r = self.dc.send_text(text) => r.map_err(|e| self.map_send_error(e, text.len())),
            reason = gone(self.state.clone()) => Err(Error::PeerGone { reason }),
            () = tokio::time::sleep(self.send_timeout) => Err(Error::SendTimeout { after: self.send_timeout }),
        }
    }

    /// Send one binary message, as [`Connection::send_text`].
    ///
    /// # Errors
    /// As [`Connection::send_text`].
    pub async fn send_binary(&self, data: BytesMut) -> Result<()> {
        self.check_usable()?;
        let size = data.len();
        self.check_size(size)?;
        tokio::select! {
            r = self.dc.send(data) => r.map_err(|e| self.map_send_error(e, size)),
            reason = gone(self.state.clone()) => Err(Error::PeerGone { reason }),
            () = tokio::time::sleep(self.send_timeout) => Err(Error::SendTimeout { after: self.send_timeout }),
        }
    }

    /// Send what the framer produced: text as a text message, a frame as one
    /// binary message (one copy, into the channel's buffer).
    ///
    /// # Errors
    /// As [`Connection::send_text`]; a text transmit that is not UTF-8 is
    /// [`Error::InvalidConfig`] (the framer never produces one).
    pub async fn send_transmit(&self, transmit: Transmit) -> Result<()> {
        match transmit {
            Transmit::Text(bytes) => {
                let text = std::str::from_utf8(&bytes).map_err(|e| Error::InvalidConfig {
                    reason: format!("text message is not UTF-8: {e}"),
                })?;
                self.send_text(text).await
            }
            Transmit::Binary(frame) => {
                let mut buf = BytesMut::with_capacity(frame.len());
                frame.write_to(&mut buf);
                self.send_binary(buf).await
            }
        }
    }

    /// The next inbound message; `Ok(None)` once the peer closed the channel
    /// or said bye. Cancel-safe.
    ///
    /// # Errors
    /// [`Error::PeerGone`] when the peer stops answering, within the
    /// dead-peer timeout of the loss.
    pub async fn recv(&self) -> Result<Option<Incoming>> {
        let mut bye = self.peer_bye.clone();
        loop {
            tokio::select! {
                biased;
                event = self.dc.poll() => match event {
                    Some(DataChannelEvent::OnMessage(m)) => return Ok(Some(incoming(m))),
                    Some(DataChannelEvent::OnClose) => {
                        return if self.closing.load(Ordering::Acquire) {
                            Err(Error::Closed)
                        } else {
                            Ok(None)
                        };
                    }
                    // The stack's driver stopped without a state change.
                    None => {
                        return Err(if self.closing.load(Ordering::Acquire) {
                            Error::Closed
                        } else {
                            Error::PeerGone {
                                reason: "the connection's driver stopped".into(),
                            }
                        });
                    }
                    Some(_) => {}
                },
                reason = gone(self.state.clone()) => {
                    return if self.closing.load(Ordering::Acquire) {
                        Err(Error::Closed)
                    } else {
                        Err(Error::PeerGone { reason })
                    };
                }
                true = async { bye.wait_for(|b| *b).await.is_ok() } => {
                    // The peer said bye. It closes its channel after its
                    // data, so drain briefly in case the bye overtook them.
                    return match tokio::time::timeout(BYE_GRACE, self.next_message()).await {
                        Ok(Some(message)) => Ok(Some(message)),
                        Ok(None) | Err(_) => Ok(None),
                    };
                }
            }
        }
    }

    /// The next message, or `None` when the channel ends.
    async fn next_message(&self) -> Option<Incoming> {
        loop {
            match self.dc.poll().await {
                Some(DataChannelEvent::OnMessage(m)) => return Some(incoming(m)),
                Some(DataChannelEvent::OnClose) | None => return None,
                Some(_) => {}
            }
        }
    }

    /// Bytes queued in the channel and not yet acknowledged by the peer.
    pub async fn outstanding_bytes(&self) -> usize {
        self.dc.outstanding_bytes().await.unwrap_or(0)
    }

    /// Traffic counters and the selected candidate pair.
    pub async fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        let report = self
            .pc
            .get_stats(
                std::time::Instant::now(),
                webrtc::peer_connection::StatsSelector::None,
            )
            .await;
        if let Some(t) = report.transport() {
            stats.bytes_sent = t.bytes_sent;
            stats.bytes_received = t.bytes_received;
        }
        if let Some(sctp) = self.pc.sctp().await
            && let Ok(Some(pair)) = sctp
                .transport()
                .ice_transport()
                .get_selected_candidate_pair()
                .await
        {
            let l = pair.local();
            let r = pair.remote();
            stats.selected_pair = Some(format!(
                "{}:{} ({}) -> {}:{} ({})",
                l.address, l.port, l.typ, r.address, r.port, r.typ
            ));
        }
        stats
    }

    /// Close gracefully: let queued messages go out, close the channel (the
    /// peer sees a clean end after the last message), say bye over
    /// signaling, and close the peer connection. Bounded (about 4 s at
    /// most); calling it twice is harmless, and cancelling it still closes
    /// the connection (in the background).
    pub async fn close(&self) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        // 1. Let what was sent drain, unless the peer is gone.
        let draining = Instant::now();
        while draining.elapsed() < Duration::from_secs(1)
            && *self.state.borrow() == RTCPeerConnectionState::Connected
            && self.dc.outstanding_bytes().await.unwrap_or(0) > 0
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // 2. Close the channel, and give the close a moment to go out.
        let _ = tokio::time::timeout(Duration::from_millis(500), self.dc.close()).await;
        let closing = Instant::now();
        while closing.elapsed() < Duration::from_millis(300)
            && !matches!(
                self.dc.ready_state().await,
                Ok(webrtc::data_channel::RTCDataChannelState::Closed) | Err(_)
            )
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // 3. Bye over signaling (the signaling task bounds it).
        let _ = self.signaling.try_send(());
        let task = self
            .signaling_task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        // 4. The peer connection.
        close_pc(&self.pc).await;
        self.pc_closed.store(true, Ordering::Release);
    }
}

fn incoming(m: webrtc::data_channel::RTCDataChannelMessage) -> Incoming {
    let data = m.data.freeze();
    if m.is_string {
        Incoming::Text(data)
    } else {
        Incoming::Binary(data)
    }
}

/// How long `recv` keeps reading after the peer's bye.
const BYE_GRACE: Duration = Duration::from_millis(300);

impl Drop for Connection {
    fn drop(&mut self) {
        if self.pc_closed.load(Ordering::Acquire) {
            return;
        }
        // Not closed (or a close was cancelled): the stack's driver would
        // run on with its sockets, so close it in the background.
        self.closing.store(true, Ordering::Release);
        let _ = self.signaling.try_send(());
        let pc = Arc::clone(&self.pc);
        self.runtime.spawn(async move { close_pc(&pc).await });
    }
}

/// Close a peer connection, bounded by [`PC_CLOSE_TIMEOUT`]. Its driver
/// task (and with it the sockets) ends only through a close, so a failed
/// close is logged rather than ignored silently.
async fn close_pc(pc: &Arc<dyn PeerConnection>) {
    match tokio::time::timeout(PC_CLOSE_TIMEOUT, pc.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "closing the peer connection failed"),
        Err(_) => tracing::warn!(
            after = ?PC_CLOSE_TIMEOUT,
            "closing the peer connection timed out"
        ),
    }
}

/// How long closing a peer connection may take.
const PC_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Closes a peer connection that set-up did not hand over (set-up failed or
/// its future was dropped), so that its driver and sockets do not live on.
struct PcGuard {
    pc: Option<Arc<dyn PeerConnection>>,
    runtime: tokio::runtime::Handle,
}

impl PcGuard {
    fn defuse(&mut self) {
        self.pc = None;
    }
}

impl Drop for PcGuard {
    fn drop(&mut self) {
        if let Some(pc) = self.pc.take() {
            self.runtime.spawn(async move { close_pc(&pc).await });
        }
    }
}

/// After set-up: apply late candidates, notice the peer's bye, and say ours
/// on close. Losing signaling does not end the session.
async fn signaling_after_open(
    mut sig: Box<dyn Signaling>,
    pc: Weak<dyn PeerConnection>,
    mut close: mpsc::Receiver<()>,
    bye: watch::Sender<bool>,
) {
    let mut reading = true;
    loop {
        tokio::select! {
            _ = close.recv() => {
                let _ = tokio::time::timeout(Duration::from_millis(800), sig.close()).await;
                return;
            }
            message = sig.recv(), if reading => match message {
                Ok(Some(SignalMessage::Candidate { candidate, sdp_mid, sdp_mline_index })) => {
                    if let Some(pc) = pc.upgrade() {
                        let init = RTCIceCandidateInit {
                            candidate,
                            sdp_mid,
                            sdp_mline_index,
                            ..Default::default()
                        };
                        if let Err(e) = pc.add_ice_candidate(init).await {
                            tracing::debug!(error = %e, "late remote candidate refused");
                        }
                    }
                }
                Ok(Some(other)) => {
                    tracing::debug!(kind = other.type_name(), "ignoring signaling after open");
                }
                Ok(None) => {
                    bye.send_replace(true);
                    reading = false;
                }
                Err(e) if e.is_per_message() => {
                    tracing::debug!(error = %e, "bad signaling message after open");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "signaling ended after open; the session goes on");
                    reading = false;
                }
            },
        }
    }
}

/// Wake the stack's driver so that packets queued while handling an event go
/// out now rather than at its next 200 ms tick (see `docs/performance.md`).
async fn wake(pc: &Arc<dyn PeerConnection>) {
    let configuration = pc.get_configuration().await;
    let _ = pc.set_configuration(configuration).await;
}

struct Handshake<'a> {
    config: &'a PeerConfig,
    sig: Box<dyn Signaling>,
    pc: Arc<dyn PeerConnection>,
    events: mpsc::Receiver<Event>,
    state: watch::Receiver<RTCPeerConnectionState>,
    ice: watch::Receiver<RTCIceConnectionState>,
    phase: Phase,
    dc: Option<Arc<dyn DataChannel>>,
    /// Signaling is still worth reading.
    signaling_open: bool,
    remote_set: bool,
    local_sent: bool,
    gathering_complete: bool,
    local_candidates: usize,
    /// Our candidates found before our description went out.
    unsent_candidates: Vec<RTCIceCandidateInit>,
    /// The peer's candidates received before its description.
    early_candidates: Vec<RTCIceCandidateInit>,
    candidate_errors: Vec<String>,
    /// Media id and index of our data section, for outgoing candidates.
    mid: (Option<String>, Option<u16>),
    start: Instant,
    /// When our local description was set (gathering starts then).
    gathering_since: Option<Instant>,
    at_remote: Option<Instant>,
    at_ice: Option<Instant>,
    at_connected: Option<Instant>,
}

/// How long gathering may go without finding a single candidate.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on queued candidates and error notes during set-up.
const MAX_CANDIDATES: usize = 256;

impl Handshake<'_> {
    async fn send_description(&mut self) -> Result<()> {
        let Some(local) = self.pc.local_description().await else {
            return Err(Error::Sdp {
                reason: "no local description to send".into(),
            });
        };
        self.mid = sdp::data_section_mid(&local.sdp);
        let message = match self.config.role {
            Role::Offerer => SignalMessage::Offer(local.sdp),
            Role::Answerer => SignalMessage::Answer(local.sdp),
        };
        self.sig.send(message).await?;
        self.local_sent = true;
        for c in std::mem::take(&mut self.unsent_candidates) {
            self.send_candidate(c).await?;
        }
        if self.gathering_complete {
            self.send_end_of_candidates().await?;
        }
        Ok(())
    }

    async fn send_candidate(&mut self, init: RTCIceCandidateInit) -> Result<()> {
        let (mid, index) = self.mid.clone();
        self.sig
            .send(SignalMessage::Candidate {
                candidate: init.candidate,
                sdp_mid: mid.or(init.sdp_mid.filter(|m| !m.is_empty())),
                sdp_mline_index: index.or(init.sdp_mline_index),
            })
            .await?;
        Ok(())
    }

    async fn send_end_of_candidates(&mut self) -> Result<()> {
        if !self.config.trickle {
            return Ok(());
        }
        match self.sig.send(SignalMessage::EndOfCandidates).await {
            // aiortc's dialect has no end-of-candidates; the SDP says enough.
            Ok(()) | Err(mcp_webrtc_signaling::Error::Unrepresentable { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn no_candidates(&self) -> Error {
        Error::NoCandidates {
            what: if self.config.ice_policy == IcePolicy::Relay {
                "relay"
            } else {
                "local"
            },
            policy: self.config.ice_policy.name(),
            servers: self.config.server_urls(),
            errors: self.candidate_errors.clone(),
        }
    }

    fn check_fingerprint(&self, remote_sdp: &str) -> Result<()> {
        let Some(expected) = &self.config.remote_fingerprint else {
            return Ok(());
        };
        let want = sdp::normalize_fingerprint(expected);
        sdp::check_fingerprint(remote_sdp, &want).map_err(|found| Error::FingerprintMismatch {
            expected: want,
            found,
        })
    }

    fn check_data_section(remote_sdp: &str) -> Result<()> {
        match sdp::data_section_problem(remote_sdp) {
            None => Ok(()),
            Some(problem) => Err(Error::Sdp {
                reason: format!("the peer's description cannot carry a data channel: {problem}"),
            }),
        }
    }

    async fn apply_remote(&mut self, description: RTCSessionDescription) -> Result<()> {
        self.pc
            .set_remote_description(description)
            .await
            .map_err(|e| Error::Sdp {
                reason: format!("the peer's description was refused: {e}"),
            })?;
        self.remote_set = true;
        self.at_remote = Some(Instant::now());
        self.phase = Phase::Ice;
        for c in std::mem::take(&mut self.early_candidates) {
            self.add_remote_candidate(c).await;
        }
        Ok(())
    }

    async fn add_remote_candidate(&mut self, init: RTCIceCandidateInit) {
        if let Err(e) = self.pc.add_ice_candidate(init).await {
            tracing::debug!(error = %e, "remote candidate refused");
        }
        wake(&self.pc).await;
    }

    async fn on_signal(&mut self, message: SignalMessage) -> Result<()> {
        match message {
            SignalMessage::Offer(sdp) => {
                if self.config.role == Role::Offerer {
                    return Err(Error::UnexpectedSignal {
                        got: "offer",
                        phase: self.phase,
                        reason: "both sides are offerers",
                    });
                }
                if self.remote_set {
                    return Err(Error::UnexpectedSignal {
                        got: "offer",
                        phase: self.phase,
                        reason: "a second offer (renegotiation is not supported)",
                    });
                }
                self.check_fingerprint(&sdp)?;
                let offer = RTCSessionDescription::offer(sdp.clone()).map_err(|e| Error::Sdp {
                    reason: format!("the offer does not parse: {e}"),
                })?;
                Self::check_data_section(&sdp)?;
                self.apply_remote(offer).await?;
                let answer = self.pc.create_answer(None).await.map_err(|e| Error::Sdp {
                    reason: format!("cannot answer this offer: {e}"),
                })?;
                self.pc
                    .set_local_description(answer)
                    .await
                    .map_err(Error::webrtc(Phase::Sdp))?;
                self.gathering_since = Some(Instant::now());
                if self.config.trickle || self.gathering_complete {
                    self.send_description().await?;
                }
            }
            SignalMessage::Answer(sdp) => {
                if self.config.role == Role::Answerer {
                    return Err(Error::UnexpectedSignal {
                        got: "answer",
                        phase: self.phase,
                        reason: "both sides are answerers",
                    });
                }
                if self.remote_set {
                    return Err(Error::UnexpectedSignal {
                        got: "answer",
                        phase: self.phase,
                        reason: "a second answer",
                    });
                }
                self.check_fingerprint(&sdp)?;
                let answer =
                    RTCSessionDescription::answer(sdp.clone()).map_err(|e| Error::Sdp {
                        reason: format!("the answer does not parse: {e}"),
                    })?;
                Self::check_data_section(&sdp)?;
                self.apply_remote(answer).await?;
            }
            SignalMessage::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                let init = RTCIceCandidateInit {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                    ..Default::default()
                };
                if self.remote_set {
                    self.add_remote_candidate(init).await;
                } else if self.early_candidates.len() < MAX_CANDIDATES {
                    self.early_candidates.push(init);
                }
            }
            SignalMessage::EndOfCandidates | SignalMessage::Bye => {}
        }
        Ok(())
    }

    async fn on_event(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Candidate(init) => {
                self.local_candidates = self.local_candidates.saturating_add(1);
                if self.config.trickle {
                    if self.local_sent {
                        self.send_candidate(init).await?;
                    } else if self.unsent_candidates.len() < MAX_CANDIDATES {
                        self.unsent_candidates.push(init);
                    }
                }
            }
            Event::GatheringComplete => {
                self.gathering_complete = true;
                if self.local_candidates == 0 {
                    return Err(self.no_candidates());
                }
                let ready = self.pc.local_description().await.is_some();
                if !self.local_sent && ready && !self.config.trickle {
                    self.send_description().await?;
                } else if self.local_sent {
                    self.send_end_of_candidates().await?;
                }
            }
            Event::DataChannel(dc) => {
                if self.dc.is_none() {
                    self.dc = Some(dc);
                } else {
                    tracing::debug!("ignoring a further data channel from the peer");
                }
            }
            Event::CandidateError(text) => {
                if self.candidate_errors.len() < 16 {
                    self.candidate_errors.push(text);
                }
            }
        }
        Ok(())
    }

    fn on_state(&mut self) -> Result<()> {
        let ice = *self.ice.borrow_and_update();
        if matches!(
            ice,
            RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
        ) && self.at_ice.is_none()
        {
            self.at_ice = Some(Instant::now());
            self.phase = Phase::Dtls;
        }
        let state = *self.state.borrow_and_update();
        match state {
            RTCPeerConnectionState::Connected if self.at_connected.is_none() => {
                self.at_connected = Some(Instant::now());
                self.phase = Phase::Sctp;
            }
            RTCPeerConnectionState::Failed => {
                let ice_failed = matches!(
                    *self.ice.borrow(),
                    RTCIceConnectionState::Failed
                        | RTCIceConnectionState::Disconnected
                        | RTCIceConnectionState::Checking
                        | RTCIceConnectionState::New
                );
                return Err(if ice_failed && self.at_ice.is_none() {
                    let mut reason = "no candidate pair worked".to_owned();
                    if !self.candidate_errors.is_empty() {
                        reason.push_str(&format!(" ({})", self.candidate_errors.join("; ")));
                    }
                    Error::Ice {
                        reason,
                        servers: self.config.server_urls(),
                    }
                } else if self.at_connected.is_none() {
                    Error::WebRtc {
                        phase: Phase::Dtls,
                        source: webrtc::error::Error::Other(
                            "the DTLS handshake failed (certificate or fingerprint refused?)"
                                .into(),
                        ),
                    }
                } else {
                    Error::WebRtc {
                        phase: Phase::Sctp,
                        source: webrtc::error::Error::Other(
                            "the connection failed before the data channel opened".into(),
                        ),
                    }
                });
            }
            RTCPeerConnectionState::Closed => {
                return Err(Error::WebRtc {
                    phase: self.phase,
                    source: webrtc::error::Error::ErrConnectionClosed,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Run set-up until the data channel is open.
    async fn run(&mut self, deadline: Instant) -> Result<Arc<dyn DataChannel>> {
        // Waking the driver every 2 ms once the remote description is in
        // closes the stack's idle gaps (DTLS flight, SCTP INIT, DCEP OPEN);
        // bounded to 2,000 wakes.
        let mut ticker = tokio::time::interval(Duration::from_millis(2));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut wakes = 0u32;
        loop {
            // With no candidate at all this long after gathering started (a
            // relay-only policy with a TURN server that is down or refuses
            // our credentials fails silently), say so, naming the servers.
            let gather_deadline = self
                .gathering_since
                .and_then(|since| since.checked_add(GATHER_TIMEOUT))
                .unwrap_or(deadline)
                .min(deadline);
            let gathering = self.gathering_since.is_some() && self.local_candidates == 0;
            if let Some(dc) = &self.dc {
                // The offerer waits for OnOpen; the answerer's channel
                // arrives open.
                if self.config.role == Role::Answerer {
                    return Ok(Arc::clone(dc));
                }
            }
            let dc = self.dc.clone();
            let wake_now = self.remote_set && wakes < 2_000;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    if self.gathering_since.is_some() && self.local_candidates == 0 {
                        return Err(self.no_candidates());
                    }
                    return Err(Error::HandshakeTimeout {
                        phase: self.phase,
                        after: self.config.handshake_timeout,
                    });
                }
                _ = tokio::time::sleep_until(gather_deadline), if gathering => {
                    return Err(self.no_candidates());
                }
                event = self.events.recv() => {
                    if let Some(event) = event {
                        self.on_event(event).await?;
                    }
                }
                message = self.sig.recv(), if self.signaling_open => match message {
                    Ok(Some(m)) => self.on_signal(m).await?,
                    // Once both descriptions are in, signaling has done its
                    // part: a peer that says bye or drops it now (its side
                    // may already be open) means no more candidates.
                    Ok(None) if self.remote_set && self.local_sent => self.signaling_open = false,
                    Ok(None) => return Err(Error::SignalingEnded),
                    Err(e) if e.is_per_message() => {
                        tracing::warn!(error = %e, "ignoring a bad signaling message");
                    }
                    Err(e) if self.remote_set && self.local_sent => {
                        tracing::debug!(error = %e, "signaling lost after the exchange; going on");
                        self.signaling_open = false;
                    }
                    Err(e) => return Err(e.into()),
                },
                Ok(()) = self.state.changed() => self.on_state()?,
                Ok(()) = self.ice.changed() => self.on_state()?,
                event = async { match &dc { Some(dc) => dc.poll().await, None => std::future::pending().await } } => {
                    match event {
                        Some(DataChannelEvent::OnOpen) => {
                            if let Some(dc) = dc {
                                return Ok(dc);
                            }
                        }
                        Some(DataChannelEvent::OnClose) | None => {
                            return Err(Error::WebRtc {
                                phase: Phase::DataChannel,
                                source: webrtc::error::Error::ErrDataChannelClosed,
                            });
                        }
                        Some(_) => {}
                    }
                }
                _ = ticker.tick(), if wake_now => {
                    wakes = wakes.saturating_add(1);
                    wake(&self.pc).await;
                }
            }
        }
    }
}

fn build_config(config: &PeerConfig) -> webrtc::peer_connection::RTCConfiguration {
    let servers = config
        .ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: s.credential.clone(),
        })
        .collect();
    RTCConfigurationBuilder::new()
        .with_ice_servers(servers)
        .with_ice_transport_policy(match config.ice_policy {
            IcePolicy::All => RTCIceTransportPolicy::All,
            IcePolicy::Relay => RTCIceTransportPolicy::Relay,
        })
        .build()
}

/// Build the peer connection on its own task. `build` spawns the driver
/// (which owns the sockets) before it returns, and a driver ends only through
/// `close`: were `connect` cancelled in the middle of `build`, the connection
/// would be lost with its driver still running. On its own task the build
/// always finishes, and a connection nobody is waiting for any more is closed.
async fn build_pc(
    builder: PeerConnectionBuilder<std::net::SocketAddr>,
) -> Result<Arc<dyn PeerConnection>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let built = builder
            .build()
            .await
            .map(|pc| Arc::new(pc) as Arc<dyn PeerConnection>);
        if let Err(Ok(pc)) = tx.send(built) {
            close_pc(&pc).await;
        }
    });
    match rx.await {
        Ok(built) => built.map_err(Error::webrtc(Phase::Ice)),
        // The build task was dropped: the runtime is shutting down.
        Err(_) => Err(Error::Closed),
    }
}

/// Set up a peer connection over `signaling` and open the data channel.
///
/// The offerer creates the channel (label and protocol from the config); the
/// answerer accepts the first channel the peer opens, whatever its label.
/// Works with trickling peers and with non-trickle ones (aiortc).
///
/// # Errors
/// An error naming the phase that failed: signaling, SDP (a garbage
/// description fails at once), ICE (with the ICE servers tried), DTLS
/// (including a fingerprint mismatch), SCTP or data channel; or
/// [`Error::HandshakeTimeout`] with the phase reached.
pub async fn connect(
    config: PeerConfig,
    signaling: impl Signaling + 'static,
) -> Result<Connection> {
    config.validate()?;
    let config = &config;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::InvalidConfig {
        reason: "connect must run inside a tokio runtime".into(),
    })?;
    let start = Instant::now();
    // validate() keeps the timeout sane; a value too large for the clock
    // is refused rather than wrapped.
    let deadline =
        start
            .checked_add(config.handshake_timeout)
            .ok_or_else(|| Error::InvalidConfig {
                reason: "handshake_timeout is too large".into(),
            })?;
    let (events_tx, events) = mpsc::channel(1024);
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let (ice_tx, ice) = watch::channel(RTCIceConnectionState::New);
    let handler = Arc::new(Handler {
        events: events_tx,
        state: state_tx,
        ice: ice_tx,
    });
    let (disconnected, failed, keepalive) = config.ice_timeouts();
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_timeouts(Some(disconnected), Some(failed), Some(keepalive))
        // 10 ms between checks, 140 attempts: the default 1.4 s per pair.
        .with_ice_connection_attempts(Some(Duration::from_millis(10)), Some(140))
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(config.max_message_size))
        .build();
    let builder = PeerConnectionBuilder::new()
        .with_configuration(build_config(config))
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(config.bind.clone())
        .with_data_channel_send_buffer_limit(config.send_buffer_limit)
        .with_runtime(Arc::new(crate::runtime::TunedRuntime::new(
            config.udp_buffer_size,
        )));
    let pc = build_pc(builder).await?;
    let mut guard = PcGuard {
        pc: Some(Arc::clone(&pc)),
        runtime: runtime.clone(),
    };

    let mut hs = Handshake {
        config,
        sig: Box::new(signaling),
        pc: Arc::clone(&pc),
        events,
        state,
        ice,
        phase: Phase::Signaling,
        dc: None,
        signaling_open: true,
        remote_set: false,
        local_sent: false,
        gathering_complete: false,
        local_candidates: 0,
        unsent_candidates: Vec::new(),
        early_candidates: Vec::new(),
        candidate_errors: Vec::new(),
        mid: (None, None),
        start,
        gathering_since: None,
        at_remote: None,
        at_ice: None,
        at_connected: None,
    };

    let setup = async {
        if config.role == Role::Offerer {
            let init = RTCDataChannelInit {
                ordered: true,
                protocol: config.protocol.clone(),
                ..Default::default()
            };
            let dc = pc
                .create_data_channel(&config.label, Some(init))
                .await
                .map_err(Error::webrtc(Phase::DataChannel))?;
            hs.dc = Some(dc);
            let offer = pc
                .create_offer(None)
                .await
                .map_err(Error::webrtc(Phase::Sdp))?;
            pc.set_local_description(offer)
                .await
                .map_err(Error::webrtc(Phase::Sdp))?;
            hs.gathering_since = Some(Instant::now());
            if config.trickle {
                hs.send_description().await?;
            }
        }
        hs.run(deadline).await
    };
    // The deadline covers everything, signaling sends included.
    let result = match tokio::time::timeout_at(deadline, setup).await {
        Ok(result) => result,
        Err(_) if hs.gathering_since.is_some() && hs.local_candidates == 0 => {
            Err(hs.no_candidates())
        }
        Err(_) => Err(Error::HandshakeTimeout {
            phase: hs.phase,
            after: config.handshake_timeout,
        }),
    };

    let dc = match result {
        Ok(dc) => dc,
        Err(e) => {
            let _ = tokio::time::timeout(Duration::from_millis(800), hs.sig.close()).await;
            close_pc(&pc).await;
            guard.defuse();
            return Err(e);
        }
    };
    let opened = Instant::now();

    let remote_sdp = pc
        .remote_description()
        .await
        .map(|d| d.sdp)
        .unwrap_or_default();
    let remote_max = match sdp::max_message_size(&remote_sdp) {
        MessageSizeLimit::Absent => Some(65_536),
        MessageSizeLimit::Unlimited => None,
        MessageSizeLimit::Bytes(n) => Some(n),
    };
    let local_max = u64::from(config.max_message_size);
    let effective = match pc.sctp().await {
        Some(sctp) => sctp
            .max_message_size()
            .await
            .map(u64::from)
            .unwrap_or(local_max),
        None => local_max,
    };
    let info = ChannelInfo {
        label: dc.label().await.unwrap_or_default(),
        protocol: dc.protocol().await.unwrap_or_default(),
        local_max_message_size: local_max,
        remote_max_message_size: remote_max,
        max_message_size: effective.min(remote_max.unwrap_or(u64::MAX)).min(local_max),
    };
    let at_remote = hs.at_remote.unwrap_or(opened);
    let at_ice = hs.at_ice.unwrap_or(at_remote);
    let at_connected = hs.at_connected.unwrap_or(at_ice);
    let timings = HandshakeTimings {
        signaling: at_remote.saturating_duration_since(hs.start),
        ice: at_ice.saturating_duration_since(at_remote),
        dtls: at_connected.saturating_duration_since(at_ice),
        sctp: opened.saturating_duration_since(at_connected),
        total: opened.saturating_duration_since(hs.start),
    };
    tracing::debug!(?timings, ?info, "data channel open");

    guard.defuse();
    let (close_tx, close_rx) = mpsc::channel(1);
    let (bye_tx, peer_bye) = watch::channel(false);
    let task = tokio::spawn(signaling_after_open(
        hs.sig,
        Arc::downgrade(&pc),
        close_rx,
        bye_tx,
    ));
    Ok(Connection {
        pc,
        dc,
        info,
        timings,
        state: hs.state,
        peer_bye,
        closing: AtomicBool::new(false),
        send_timeout: config.send_timeout,
        pc_closed: AtomicBool::new(false),
        runtime,
        signaling: close_tx,
        signaling_task: std::sync::Mutex::new(Some(task)),
    })
}
