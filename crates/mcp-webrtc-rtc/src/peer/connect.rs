//! [`connect`]: build the peer connection and run the handshake.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use mcp_webrtc_signaling::Signaling;

use crate::runtime::RelayFlush;
use crate::turn_tcp::TcpTurnBridge;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use webrtc::data_channel::RTCDataChannelInit;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCIceCandidateType,
    RTCIceConnectionState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionState,
    SettingEngineBuilder,
};

use super::connection::{ChannelInfo, Connection, close_pc, selected_pair, signaling_after_open};
use super::handler::Handler;
use super::handshake::{CandidateBudget, Handshake, HandshakeTimings};
use crate::config::{IcePolicy, PeerConfig, Role};
use crate::sdp::{self, MessageSizeLimit};
use crate::{Error, Phase, Result};

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

/// Whether the selected pair's local candidate is a relayed one; `None` if
/// no pair is known.
async fn local_candidate_is_relayed(pc: &Arc<dyn PeerConnection>) -> Option<bool> {
    let pair = selected_pair(pc).await?;
    Some(pair.local().typ == RTCIceCandidateType::Relay)
}

/// Whether any of the servers (as the stack takes them: TURN over TCP is a
/// `turn:` URL of a bridge by then) can give a relayed candidate.
fn may_relay(servers: &[RTCIceServer]) -> bool {
    servers
        .iter()
        .flat_map(|server| &server.urls)
        .any(|url| url.starts_with("turn:"))
}

/// The ICE servers as the stack takes them: each `turn:…?transport=tcp`
/// becomes a UDP TURN server on a bridge of ours on 127.0.0.1, which
/// carries it over TCP to the real server (see `turn_tcp`). The bridges
/// live as long as the connection.
async fn ice_servers(config: &PeerConfig) -> Result<(Vec<RTCIceServer>, Vec<TcpTurnBridge>)> {
    let mut servers = Vec::new();
    let mut bridges = Vec::new();
    for server in &config.ice_servers {
        let mut urls = Vec::new();
        for url in &server.urls {
            match PeerConfig::tcp_turn_target(url) {
                Some(target) => {
                    let bridge = TcpTurnBridge::start(
                        &target,
                        config.handshake_timeout,
                        config.udp_buffer_size,
                    )
                    .await
                    .map_err(|e| Error::InvalidConfig {
                        reason: format!("TURN server {url}: {e}"),
                    })?;
                    urls.push(format!("turn:{}", bridge.local));
                    bridges.push(bridge);
                }
                None => urls.push(url.split('?').next().unwrap_or(url).to_owned()),
            }
        }
        servers.push(RTCIceServer {
            urls,
            username: server.username.clone(),
            credential: server.credential.clone(),
        });
    }
    Ok((servers, bridges))
}

fn build_config(
    config: &PeerConfig,
    servers: Vec<RTCIceServer>,
) -> webrtc::peer_connection::RTCConfiguration {
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

/// Connectivity checks sent to one candidate pair before it is given up.
const MAX_CHECKS: u16 = 500;

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
    let relay_only = config.ice_policy == IcePolicy::Relay;
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_timeouts(Some(disconnected), Some(failed), Some(keepalive))
        // 10 ms between checks, so a pair that answers is found at once;
        // 500 attempts, so a pair is given up only after 5 s without an
        // answer. The stack's default (1.4 s) failed set-ups on loopback
        // when both processes were starved of CPU for that long (debug
        // builds, many peers on two cores); a peer that is there answers
        // well within 5 s. Liveness after set-up uses the ICE timeouts
        // above, not this.
        .with_ice_connection_attempts(Some(Duration::from_millis(10)), Some(MAX_CHECKS))
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        // The stack waits 2 s before it takes a pair with a relayed
        // candidate (500 ms for a server-reflexive one), in case a direct
        // pair comes. In relay-only mode none can: every local candidate is
        // relayed, so the wait only delayed set-up by 2 s. Both are zero
        // there, so that a pair to the peer's reflexive address is not
        // passed over for one through two relays while it waits.
        .with_relay_acceptance_min_wait(relay_only.then_some(Duration::ZERO))
        .with_srflx_acceptance_min_wait(relay_only.then_some(Duration::ZERO))
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(config.max_message_size))
        .build();
    let (servers, turn_bridges) = ice_servers(config).await?;
    // Until a pair is chosen, any TURN server may carry the connection
    // (set-up's DTLS and SCTP packets included).
    let relay_flush = Arc::new(RelayFlush::default());
    relay_flush.set(may_relay(&servers));
    let builder = PeerConnectionBuilder::new()
        .with_configuration(build_config(config, servers))
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(config.bind.clone())
        .with_data_channel_send_buffer_limit(config.send_buffer_limit)
        .with_runtime(Arc::new(crate::runtime::TunedRuntime::new(
            config.udp_buffer_size,
            Arc::clone(&relay_flush),
        )));
    let pc = build_pc(builder).await?;
    let mut guard = PcGuard {
        pc: Some(Arc::clone(&pc)),
        runtime: runtime.clone(),
    };

    let remote_budget = Arc::new(CandidateBudget::default());
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
        remote_budget: Arc::clone(&remote_budget),
        candidate_errors: Vec::new(),
        early_messages: Vec::new(),
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
    // Only a relayed local candidate sends through the stack's TURN client.
    if let Some(relayed) = local_candidate_is_relayed(&pc).await {
        relay_flush.set(relayed);
    }

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
        Arc::clone(&remote_budget),
        // Signaling lost (or ended) during set-up is not read again: a
        // backend answers `Ok(None)` after reporting a loss, and that must
        // not pass for the peer's bye.
        hs.signaling_open,
    ));
    let (lost_tx, lost) = watch::channel(None);
    let liveness_task = runtime.spawn(super::connection::watch_liveness(
        hs.state.clone(),
        hs.ice.clone(),
        config.dead_peer_grace(),
        lost_tx,
    ));
    Ok(Connection {
        pc,
        dc,
        remote_budget,
        info,
        timings,
        state: hs.state,
        lost,
        liveness_task,
        peer_bye,
        closing: AtomicBool::new(false),
        send_timeout: config.send_timeout,
        pc_closed: AtomicBool::new(false),
        runtime,
        signaling: close_tx,
        signaling_task: std::sync::Mutex::new(Some(task)),
        _turn_bridges: turn_bridges,
        early_left: AtomicBool::new(!hs.early_messages.is_empty()),
        early: std::sync::Mutex::new(hs.early_messages.into()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::IceServer;

    #[tokio::test]
    async fn the_turn_flush_is_wanted_for_any_turn_server_and_only_then() {
        let none = PeerConfig::offerer();
        let stun = PeerConfig::offerer().with_ice_server(IceServer::stun("stun:127.0.0.1:3478"));
        let turn = stun
            .clone()
            .with_ice_server(IceServer::turn("turn:127.0.0.1:3478", "u", "p"));
        let over_tcp = PeerConfig::offerer().with_ice_server(IceServer::turn(
            "turn:127.0.0.1:3478?transport=tcp",
            "u",
            "p",
        ));
        for (config, wanted) in [(none, false), (stun, false), (turn, true), (over_tcp, true)] {
            let (servers, _bridges) = ice_servers(&config).await.unwrap();
            assert_eq!(may_relay(&servers), wanted, "{:?}", config.ice_servers);
        }
    }
}
