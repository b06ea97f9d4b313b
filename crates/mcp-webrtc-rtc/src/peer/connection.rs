//! The open connection: a data channel as a message pipe, liveness, and
//! a bounded graceful close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mcp_webrtc_signaling::{SignalMessage, Signaling};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCIceConnectionState, RTCPeerConnectionState,
};

use super::handshake::{CandidateBudget, HandshakeTimings};
use crate::{Error, Phase, Result};

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
    /// Remote ICE candidates used, set-up and after
    /// (at most [`MAX_REMOTE_CANDIDATES`](crate::MAX_REMOTE_CANDIDATES)).
    pub remote_candidates: u64,
    /// Remote ICE candidates ignored: the peer sent more than the limit.
    pub remote_candidates_ignored: u64,
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
    pub(super) pc: Arc<dyn PeerConnection>,
    pub(super) dc: Arc<dyn DataChannel>,
    /// The peer's candidates, counted against their limit.
    pub(super) remote_budget: Arc<CandidateBudget>,
    pub(super) info: ChannelInfo,
    pub(super) timings: HandshakeTimings,
    pub(super) state: watch::Receiver<RTCPeerConnectionState>,
    /// Why the peer is gone, once it is (sticky): set by the liveness task,
    /// which watches the peer connection and ICE for the whole session.
    pub(super) lost: watch::Receiver<Option<String>>,
    pub(super) liveness_task: tokio::task::JoinHandle<()>,
    pub(super) peer_bye: watch::Receiver<bool>,
    pub(super) closing: AtomicBool,
    pub(super) send_timeout: Duration,
    /// `pc.close()` has returned.
    pub(super) pc_closed: AtomicBool,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) signaling: mpsc::Sender<()>,
    pub(super) signaling_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// TURN-over-TCP bridges this connection's relay candidates go through.
    pub(super) _turn_bridges: Vec<crate::turn_tcp::TcpTurnBridge>,
    /// Messages that came before the open event, delivered first.
    pub(super) early: std::sync::Mutex<std::collections::VecDeque<Incoming>>,
    /// Whether `early` may hold any: `recv` takes no lock once it is empty.
    pub(super) early_left: AtomicBool,
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
async fn pc_gone(mut state: watch::Receiver<RTCPeerConnectionState>) -> String {
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

/// Wait until ICE has stayed disconnected (or failed) for `grace`.
async fn ice_lost(mut ice: watch::Receiver<RTCIceConnectionState>, grace: Duration) {
    use RTCIceConnectionState as S;
    // Bounded by the connection: each pass waits for a loss, then for the
    // peer to come back within the grace.
    loop {
        if ice
            .wait_for(|s| matches!(s, S::Disconnected | S::Failed))
            .await
            .is_err()
        {
            return std::future::pending().await;
        }
        // The guard `wait_for` returns is dropped inside, so that the
        // future stays `Send`.
        let back = async {
            ice.wait_for(|s| matches!(s, S::Connected | S::Completed))
                .await
                .is_ok()
        };
        match tokio::time::timeout(grace, back).await {
            Err(_) => return,
            Ok(true) => {}
            Ok(false) => return std::future::pending().await,
        }
    }
}

/// The liveness task: one future for the whole session, so that the grace
/// runs from when ICE lost the peer, however often callers wait on it.
pub(super) async fn watch_liveness(
    state: watch::Receiver<RTCPeerConnectionState>,
    ice: watch::Receiver<RTCIceConnectionState>,
    grace: Duration,
    lost: watch::Sender<Option<String>>,
) {
    let reason = gone(state, ice, grace).await;
    let _ = lost.send(Some(reason));
}

/// Wait until the peer is gone: the peer connection failed or closed, or
/// ICE stayed disconnected past the grace; the reason.
async fn gone(
    state: watch::Receiver<RTCPeerConnectionState>,
    ice: watch::Receiver<RTCIceConnectionState>,
    grace: Duration,
) -> String {
    tokio::select! {
        reason = pc_gone(state) => reason,
        () = ice_lost(ice, grace) => "the peer stopped answering (ICE disconnected)".to_owned(),
    }
}

impl Connection {
    /// The error for a loss: `Closed` if we are closing.
    fn gone_error(&self, reason: String) -> Error {
        if self.closing.load(Ordering::Acquire) {
            Error::Closed
        } else {
            Error::PeerGone { reason }
        }
    }

    /// Wait until the liveness task finds the peer gone; why.
    async fn gone(&self) -> String {
        let mut lost = self.lost.clone();
        match lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the peer connection is gone".to_owned(),
        }
    }

    /// What the channel is: label, protocol, size limits.
    #[must_use]
    pub fn info(&self) -> &ChannelInfo {
        &self.info
    }

    /// The `webrtc` crate's data channel under this connection: for
    /// measuring this layer against the bare stack (the hot-path benchmark
    /// does), and for what this layer does not wrap. Sending or polling on
    /// it directly bypasses this layer's size checks, send timeout, liveness
    /// and early-message queue; mixing both on one channel reorders
    /// messages.
    #[must_use]
    pub fn data_channel(&self) -> &Arc<dyn DataChannel> {
        &self.dc
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
        if let Some(reason) = self.lost.borrow().clone() {
            return Err(Error::PeerGone { reason });
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
            // The send first: when the buffer has room it is done at once,
            // and the liveness wait and the timer are never polled (nor
            // registered, nor taken out again).
            biased;
            r = self.dc.send_text(text) => r.map_err(|e| self.map_send_error(e, text.len())),
            reason = self.gone() => Err(self.gone_error(reason)),
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
            // The send first: when the buffer has room it is done at once,
            // and the liveness wait and the timer are never polled (nor
            // registered, nor taken out again).
            biased;
            r = self.dc.send(data) => r.map_err(|e| self.map_send_error(e, size)),
            reason = self.gone() => Err(self.gone_error(reason)),
            () = tokio::time::sleep(self.send_timeout) => Err(Error::SendTimeout { after: self.send_timeout }),
        }
    }

    /// The next inbound message; `Ok(None)` once the peer closed the channel
    /// or said bye. Cancel-safe.
    ///
    /// # Errors
    /// [`Error::PeerGone`] when the peer stops answering, within the
    /// dead-peer timeout of the loss.
    pub async fn recv(&self) -> Result<Option<Incoming>> {
        if let Some(message) = self.take_early() {
            return Ok(Some(message));
        }
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
                // A bye is checked before the loss it causes, so that a
                // peer that said bye ends the stream cleanly.
                true = async { bye.wait_for(|b| *b).await.is_ok() } => {
                    // The peer said bye. It closes its channel after its
                    // data, so drain briefly in case the bye overtook them.
                    return match tokio::time::timeout(BYE_GRACE, self.next_message()).await {
                        Ok(Some(message)) => Ok(Some(message)),
                        Ok(None) | Err(_) => Ok(None),
                    };
                }
                reason = self.gone() => return Err(self.gone_error(reason)),
            }
        }
    }

    fn take_early(&self) -> Option<Incoming> {
        if !self.early_left.load(Ordering::Acquire) {
            return None;
        }
        let mut early = self
            .early
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let message = early.pop_front();
        if early.is_empty() {
            self.early_left.store(false, Ordering::Release);
        }
        message
    }

    /// The next message, or `None` when the channel ends.
    async fn next_message(&self) -> Option<Incoming> {
        if let Some(message) = self.take_early() {
            return Some(message);
        }
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
        (stats.remote_candidates, stats.remote_candidates_ignored) = self.remote_budget.counts();
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
        if let Some(pair) = selected_pair(&self.pc).await {
            let l = pair.local();
            let r = pair.remote();
            stats.selected_pair = Some(format!(
                "{}:{} ({}) -> {}:{} ({})",
                l.address, l.port, l.typ, r.address, r.port, r.typ
            ));
        }
        stats
    }

    /// Close gracefully: let queued messages go out (for at most
    /// [`DEFAULT_DRAIN`]), close the channel (the peer sees a clean end after
    /// the last message), say bye over signaling, and close the peer
    /// connection. Bounded (about 4 s at most); calling it twice is
    /// harmless, and cancelling it still closes the connection (in the
    /// background).
    pub async fn close(&self) {
        self.close_within(DEFAULT_DRAIN).await;
    }

    /// As [`Connection::close`], letting queued messages drain for at most
    /// `drain` (a slow link may need longer than the default to take what
    /// the send buffer holds). The steps after the drain stay bounded as in
    /// [`Connection::close`].
    pub async fn close_within(&self, drain: Duration) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        // 1. Let what was sent drain, unless the peer is gone.
        let draining = Instant::now();
        while draining.elapsed() < drain
            && *self.state.borrow() == RTCPeerConnectionState::Connected
            && self.lost.borrow().is_none()
            && self.dc.outstanding_bytes().await.unwrap_or(0) > 0
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // 2. Close the channel, and give the close a moment to go out; a
        // peer that is gone will never acknowledge it, so then don't wait.
        let gone = self.lost.borrow().is_some();
        let (close_for, settle_for) = if gone {
            (Duration::from_millis(50), Duration::ZERO)
        } else {
            (Duration::from_millis(500), Duration::from_millis(300))
        };
        let _ = tokio::time::timeout(close_for, self.dc.close()).await;
        let closing = Instant::now();
        while closing.elapsed() < settle_for
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

pub(super) fn incoming(m: webrtc::data_channel::RTCDataChannelMessage) -> Incoming {
    let data = m.data.freeze();
    if m.is_string {
        Incoming::Text(data)
    } else {
        Incoming::Binary(data)
    }
}

/// How long [`Connection::close`] lets queued messages drain.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(1);

/// How long `recv` keeps reading after the peer's bye.
const BYE_GRACE: Duration = Duration::from_millis(300);

impl Drop for Connection {
    fn drop(&mut self) {
        self.liveness_task.abort();
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
pub(super) async fn close_pc(pc: &Arc<dyn PeerConnection>) {
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

/// After set-up: apply late candidates, notice the peer's bye, and say ours
/// on close. Losing signaling does not end the session.
pub(super) async fn signaling_after_open(
    mut sig: Box<dyn Signaling>,
    pc: Weak<dyn PeerConnection>,
    mut close: mpsc::Receiver<()>,
    bye: watch::Sender<bool>,
    budget: Arc<CandidateBudget>,
    mut reading: bool,
) {
    loop {
        tokio::select! {
            _ = close.recv() => {
                let _ = tokio::time::timeout(Duration::from_millis(800), sig.close()).await;
                return;
            }
            message = sig.recv(), if reading => match message {
                Ok(Some(SignalMessage::Candidate { candidate, sdp_mid, sdp_mline_index })) => {
                    if !budget.take() {
                        continue;
                    }
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

/// The ICE agent's selected candidate pair, once there is one.
pub(super) async fn selected_pair(
    pc: &Arc<dyn PeerConnection>,
) -> Option<rtc::peer_connection::transport::RTCIceCandidatePair> {
    pc.sctp()
        .await?
        .transport()
        .ice_transport()
        .get_selected_candidate_pair()
        .await
        .ok()?
}
