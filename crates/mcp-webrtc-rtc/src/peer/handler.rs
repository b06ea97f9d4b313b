//! The stack's callbacks, turned into events and states for the handshake.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceConnectionState, RTCIceGatheringState,
    RTCPeerConnectionIceErrorEvent, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
};

/// Events the stack reports during set-up.
pub(super) enum Event {
    Candidate(RTCIceCandidateInit),
    GatheringComplete,
    DataChannel(Arc<dyn DataChannel>),
    CandidateError(String),
}

/// Receives the stack's callbacks. It never blocks the driver: events go
/// through `try_send` and states through `watch`.
pub(super) struct Handler {
    pub(super) events: mpsc::Sender<Event>,
    pub(super) state: watch::Sender<RTCPeerConnectionState>,
    pub(super) ice: watch::Sender<RTCIceConnectionState>,
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
