//! The handshake state machine: descriptions, candidates and states until
//! the data channel opens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_webrtc_signaling::{SignalMessage, Signaling};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCIceConnectionState, RTCPeerConnectionState,
    RTCSessionDescription,
};

use super::handler::Event;
use crate::config::{IcePolicy, PeerConfig, Role};
use crate::sdp::{self};
use crate::{Error, Phase, Result};

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

/// Wake the stack's driver so that packets queued while handling an event go
/// out now rather than at its next 200 ms tick (see `docs/performance.md`).
/// Messages kept from before the channel's open event, at most.
const MAX_EARLY_MESSAGES: usize = 64;

async fn wake(pc: &Arc<dyn PeerConnection>) {
    let configuration = pc.get_configuration().await;
    let _ = pc.set_configuration(configuration).await;
}

pub(super) struct Handshake<'a> {
    pub(super) config: &'a PeerConfig,
    pub(super) sig: Box<dyn Signaling>,
    pub(super) pc: Arc<dyn PeerConnection>,
    pub(super) events: mpsc::Receiver<Event>,
    pub(super) state: watch::Receiver<RTCPeerConnectionState>,
    pub(super) ice: watch::Receiver<RTCIceConnectionState>,
    pub(super) phase: Phase,
    pub(super) dc: Option<Arc<dyn DataChannel>>,
    /// Signaling is still worth reading.
    pub(super) signaling_open: bool,
    pub(super) remote_set: bool,
    pub(super) local_sent: bool,
    pub(super) gathering_complete: bool,
    pub(super) local_candidates: usize,
    /// Our candidates found before our description went out.
    pub(super) unsent_candidates: Vec<RTCIceCandidateInit>,
    /// The peer's candidates received before its description.
    pub(super) early_candidates: Vec<RTCIceCandidateInit>,
    /// The peer's candidates, counted against their limit.
    pub(super) remote_budget: Arc<CandidateBudget>,
    pub(super) candidate_errors: Vec<String>,
    /// Messages that came before the channel's open event.
    pub(super) early_messages: Vec<crate::Incoming>,
    /// Media id and index of our data section, for outgoing candidates.
    pub(super) mid: (Option<String>, Option<u16>),
    pub(super) start: Instant,
    /// When our local description was set (gathering starts then).
    pub(super) gathering_since: Option<Instant>,
    pub(super) at_remote: Option<Instant>,
    pub(super) at_ice: Option<Instant>,
    pub(super) at_connected: Option<Instant>,
}

/// How long gathering may go without finding a single candidate.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on our own candidates queued, and error notes, during set-up.
const MAX_CANDIDATES: usize = 256;

/// Remote candidates taken from the peer, at most, over the whole session
/// (set-up and after): each one makes candidate pairs that ICE checks. A
/// host with many interfaces and a TURN server offers a few dozen.
pub const MAX_REMOTE_CANDIDATES: u64 = 64;

/// Counts the peer's candidates against [`MAX_REMOTE_CANDIDATES`], during
/// set-up and after it.
#[derive(Debug, Default)]
pub(super) struct CandidateBudget {
    taken: AtomicU64,
    ignored: AtomicU64,
}

impl CandidateBudget {
    /// Whether one more remote candidate may be used; counts it either way.
    pub(super) fn take(&self) -> bool {
        let taken = self.taken.fetch_add(1, Ordering::Relaxed);
        if taken < MAX_REMOTE_CANDIDATES {
            return true;
        }
        self.taken.store(MAX_REMOTE_CANDIDATES, Ordering::Relaxed);
        let n = self.ignored.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            tracing::warn!(
                limit = MAX_REMOTE_CANDIDATES,
                "the peer sent more candidates than the limit; ignoring the rest"
            );
        }
        false
    }

    /// (candidates used, candidates ignored).
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.taken.load(Ordering::Relaxed),
            self.ignored.load(Ordering::Relaxed),
        )
    }
}

impl Handshake<'_> {
    pub(super) async fn send_description(&mut self) -> Result<()> {
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

    /// Both descriptions are in: signaling has done its essential part.
    fn exchanged(&self) -> bool {
        self.remote_set && self.local_sent
    }

    /// Send a message that only helps (a candidate, end of candidates).
    /// After the exchange, lost signaling is not an error: the peer may
    /// already be reachable, and ICE finds the rest (peer-reflexive
    /// candidates).
    async fn send_extra(&mut self, message: SignalMessage) -> Result<()> {
        if self.exchanged() && !self.signaling_open {
            return Ok(());
        }
        match self.sig.send(message).await {
            Ok(()) => Ok(()),
            // A message the dialect cannot carry (aiortc's has no
            // end-of-candidates) says nothing about the channel: taking it
            // for a loss stopped us reading the peer's candidates, and on
            // loopback both sides could end with none ("no candidate pair
            // worked").
            Err(e @ mcp_webrtc_signaling::Error::Unrepresentable { .. }) => Err(e.into()),
            Err(e) if self.exchanged() && !e.is_per_message() => {
                tracing::debug!(error = %e, "signaling lost after the exchange; going on");
                self.signaling_open = false;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn send_candidate(&mut self, init: RTCIceCandidateInit) -> Result<()> {
        let (mid, index) = self.mid.clone();
        self.send_extra(SignalMessage::Candidate {
            candidate: init.candidate,
            sdp_mid: mid.or(init.sdp_mid.filter(|m| !m.is_empty())),
            sdp_mline_index: index.or(init.sdp_mline_index),
        })
        .await
    }

    async fn send_end_of_candidates(&mut self) -> Result<()> {
        if !self.config.trickle {
            return Ok(());
        }
        match self.send_extra(SignalMessage::EndOfCandidates).await {
            // aiortc's dialect has no end-of-candidates; the SDP says enough.
            Ok(()) | Err(Error::Signaling(mcp_webrtc_signaling::Error::Unrepresentable { .. })) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn no_candidates(&self) -> Error {
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
                if !self.remote_budget.take() {
                    return Ok(());
                }
                if self.remote_set {
                    self.add_remote_candidate(init).await;
                } else {
                    self.early_candidates.push(init);
                }
            }
            SignalMessage::Pairing(_) => {
                tracing::warn!("ignoring a pairing message: pair with PairedSignaling::with_code");
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
    pub(super) async fn run(&mut self, deadline: Instant) -> Result<Arc<dyn DataChannel>> {
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
                    Ok(None) if self.exchanged() => self.signaling_open = false,
                    Ok(None) => return Err(Error::SignalingEnded),
                    Err(e) if e.is_per_message() => {
                        tracing::warn!(error = %e, "ignoring a bad signaling message");
                    }
                    Err(e) if self.exchanged() => {
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
                        // A message may come before the open event (the
                        // peer's first message stands for the DCEP ACK, RFC
                        // 8832, when the ACK is late): it is the peer's
                        // HELLO, say, and must not be lost. Kept, bounded,
                        // for the connection to deliver first.
                        Some(DataChannelEvent::OnMessage(m)) => {
                            if self.early_messages.len() < MAX_EARLY_MESSAGES {
                                self.early_messages.push(super::connection::incoming(m));
                            } else {
                                tracing::warn!("more than {MAX_EARLY_MESSAGES} messages before the channel opened; dropped");
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
