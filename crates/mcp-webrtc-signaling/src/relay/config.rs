//! [`RelayConfig`]: the relay's tokens and limits.

use std::time::Duration;

use crate::{Error, Result};

/// Relay settings. Every limit has a default meant for the open internet;
/// [`RelayConfig::validate`] refuses values that would panic or close
/// everyone at once.
#[derive(Clone)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Accepted tokens. A connection must present one of them.
    pub tokens: Vec<String>,
    /// Accept connections without a token (for tests on loopback only).
    pub allow_anonymous: bool,
    /// Largest message forwarded; larger ones are refused with a notice and
    /// the room goes on. Default 64 KiB.
    pub max_message_size: usize,
    /// Messages a room may forward in all (refused ones count). Default
    /// 1000.
    pub room_message_budget: u32,
    /// Bytes a room may forward in all (refused and binary frames count).
    /// Default 4 MiB.
    pub room_byte_budget: u64,
    /// Messages held for a peer that has not joined yet. Default 64.
    pub max_pending: usize,
    /// Bytes held for one peer: for a peer that has not joined yet (per
    /// room), and queued for a peer that has not read them yet. Default
    /// 256 KiB.
    pub max_pending_bytes: usize,
    /// Bytes held for absent or slow peers over all rooms. Default 64 MiB.
    pub max_total_pending_bytes: usize,
    /// A room peer that sends nothing for this long is closed (pings do not
    /// count). Default 120 s.
    pub idle_timeout: Duration,
    /// The pre-auth timeout: a connection must finish its WebSocket upgrade
    /// (and so present its token) within this. Default 2 s.
    pub handshake_timeout: Duration,
    /// Rooms open at once. Default 10,000.
    pub max_rooms: usize,
    /// Rooms one token may have open at once (it opened them: it was their
    /// first peer). Default 100.
    pub max_rooms_per_token: usize,
    /// Interval of pings on host registrations. Default 20 s.
    pub host_ping_interval: Duration,
    /// Client connections a host accepts per second (`/connect`), with
    /// bursts of twice that. Default 10.
    pub host_connect_rate: u32,
    /// Host names remembered, registered or lapsed, at most. A lapsed name
    /// stays bound to its token. Default 10,000.
    pub max_hosts: usize,
    /// Host names one token may hold, registered or lapsed. Beyond it, the
    /// token's own name that lapsed longest ago is forgotten to make room.
    /// Default 16.
    pub max_hosts_per_token: usize,
    /// WebSocket connections open at once (rooms, hosts, handshakes).
    /// Default 20,000.
    pub max_connections: usize,
    /// Connections open at once from one IP address. Default 32.
    pub max_connections_per_ip: usize,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("allow_anonymous", &self.allow_anonymous)
            .field("max_message_size", &self.max_message_size)
            .field("room_message_budget", &self.room_message_budget)
            .field("room_byte_budget", &self.room_byte_budget)
            .field("max_pending", &self.max_pending)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("max_total_pending_bytes", &self.max_total_pending_bytes)
            .field("idle_timeout", &self.idle_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_rooms", &self.max_rooms)
            .field("max_rooms_per_token", &self.max_rooms_per_token)
            .field("host_connect_rate", &self.host_connect_rate)
            .field("max_hosts", &self.max_hosts)
            .field("max_hosts_per_token", &self.max_hosts_per_token)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .finish_non_exhaustive()
    }
}

/// `with_<field>` setters, in the style of the other configuration types
/// (`PeerConfig`, `Options`, the core `Config`).
macro_rules! setters {
    ($($(#[$doc:meta])* $setter:ident => $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $setter(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }
        )*
    };
}

impl RelayConfig {
    /// A relay that accepts these tokens, with default limits.
    #[must_use]
    pub fn with_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> RelayConfig {
        RelayConfig {
            tokens: tokens.into_iter().map(Into::into).collect(),
            allow_anonymous: false,
            max_message_size: 64 * 1024,
            room_message_budget: 1000,
            room_byte_budget: 4 * 1024 * 1024,
            max_pending: 64,
            max_pending_bytes: 256 * 1024,
            max_total_pending_bytes: 64 * 1024 * 1024,
            idle_timeout: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(2),
            max_rooms: 10_000,
            max_rooms_per_token: 100,
            host_ping_interval: Duration::from_secs(20),
            host_connect_rate: 10,
            max_hosts: 10_000,
            max_hosts_per_token: 16,
            max_connections: 20_000,
            max_connections_per_ip: 32,
        }
    }

    setters! {
        /// Set [`RelayConfig::allow_anonymous`].
        with_allow_anonymous => allow_anonymous: bool,
        /// Set [`RelayConfig::max_message_size`].
        with_max_message_size => max_message_size: usize,
        /// Set [`RelayConfig::room_message_budget`].
        with_room_message_budget => room_message_budget: u32,
        /// Set [`RelayConfig::room_byte_budget`].
        with_room_byte_budget => room_byte_budget: u64,
        /// Set [`RelayConfig::max_pending`].
        with_max_pending => max_pending: usize,
        /// Set [`RelayConfig::max_pending_bytes`].
        with_max_pending_bytes => max_pending_bytes: usize,
        /// Set [`RelayConfig::max_total_pending_bytes`].
        with_max_total_pending_bytes => max_total_pending_bytes: usize,
        /// Set [`RelayConfig::idle_timeout`].
        with_idle_timeout => idle_timeout: Duration,
        /// Set [`RelayConfig::handshake_timeout`].
        with_handshake_timeout => handshake_timeout: Duration,
        /// Set [`RelayConfig::max_rooms`].
        with_max_rooms => max_rooms: usize,
        /// Set [`RelayConfig::max_rooms_per_token`].
        with_max_rooms_per_token => max_rooms_per_token: usize,
        /// Set [`RelayConfig::host_ping_interval`].
        with_host_ping_interval => host_ping_interval: Duration,
        /// Set [`RelayConfig::host_connect_rate`].
        with_host_connect_rate => host_connect_rate: u32,
        /// Set [`RelayConfig::max_hosts`].
        with_max_hosts => max_hosts: usize,
        /// Set [`RelayConfig::max_hosts_per_token`].
        with_max_hosts_per_token => max_hosts_per_token: usize,
        /// Set [`RelayConfig::max_connections`].
        with_max_connections => max_connections: usize,
        /// Set [`RelayConfig::max_connections_per_ip`].
        with_max_connections_per_ip => max_connections_per_ip: usize,
    }

    /// Check the settings ([`RelayServer::bind`](super::RelayServer::bind)
    /// does too).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the value: no token without
    /// anonymous access, an empty token, a timeout under 10 ms, a zero
    /// limit.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidConfig { reason });
        if self.tokens.is_empty() && !self.allow_anonymous {
            return bad("the relay needs at least one token (or allow_anonymous)".into());
        }
        if self.tokens.iter().any(String::is_empty) {
            return bad("empty token".into());
        }
        for (name, value) in [
            ("idle_timeout", self.idle_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("host_ping_interval", self.host_ping_interval),
        ] {
            if value < Duration::from_millis(10) {
                return bad(format!("{name} must be at least 10 ms, not {value:?}"));
            }
        }
        for (name, value) in [
            ("max_message_size", self.max_message_size),
            ("max_rooms", self.max_rooms),
            ("max_rooms_per_token", self.max_rooms_per_token),
            ("max_hosts", self.max_hosts),
            ("max_hosts_per_token", self.max_hosts_per_token),
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("host_connect_rate", self.host_connect_rate as usize),
        ] {
            if value == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        Ok(())
    }
}
