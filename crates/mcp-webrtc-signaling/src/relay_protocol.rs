//! The relay's wire protocol, shared by the server ([`relay`](crate::relay))
//! and its clients ([`WebSocketSignaling`](crate::WebSocketSignaling),
//! [`RelayHost`](crate::RelayHost)): paths, close codes, HTTP refusals and
//! the relay's own messages.
//!
//! A refusal before the WebSocket upgrade (a bad token, path or name, a
//! throttled host) is an HTTP error status `S` whose body is the reason; the
//! client reports it as close code `4000 + S`, so a refusal reads the same
//! whether it came before or after the upgrade.

use serde::{Deserialize, Serialize};

/// `/v1/room/<room>`: join a room of two peers.
pub const ROOM_PREFIX: &str = "/v1/room/";
/// `/v1/host/<host>`: register a host name; `/v1/host/<host>/connect`: be a
/// client of it.
pub const HOST_PREFIX: &str = "/v1/host/";
/// The suffix of a host's client path.
pub const CONNECT_SUFFIX: &str = "/connect";

/// The other peer said bye.
pub const CLOSE_BYE: u16 = 1000;
/// The relay is shutting down.
pub const CLOSE_SHUTDOWN: u16 = 1001;
/// A relay error.
pub const CLOSE_INTERNAL: u16 = 1011;
/// Bad room or host name (HTTP 400 before the upgrade).
pub const CLOSE_BAD_NAME: u16 = 4400;
/// Missing or wrong token (HTTP 401 before the upgrade).
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// The room or host belongs to another token.
pub const CLOSE_FORBIDDEN: u16 = 4403;
/// Unknown path, or no such host (HTTP 404 before the upgrade).
pub const CLOSE_NOT_FOUND: u16 = 4404;
/// Idle timeout, or a host that stopped answering pings.
pub const CLOSE_IDLE: u16 = 4408;
/// Room full, or host name taken.
pub const CLOSE_CONFLICT: u16 = 4409;
/// The other peer left without a bye.
pub const CLOSE_PEER_LEFT: u16 = 4410;
/// A budget is spent: the room's messages or bytes, this token's rooms,
/// a host's connection rate (HTTP 429 before the upgrade).
pub const CLOSE_BUDGET: u16 = 4429;
/// Too many rooms, or the host is not answering.
pub const CLOSE_UNAVAILABLE: u16 = 4503;

/// The close code a client reports for an HTTP refusal with `status`.
#[must_use]
pub fn close_code_of_http(status: u16) -> u16 {
    if (400..600).contains(&status) {
        status.saturating_add(4000)
    } else {
        CLOSE_INTERNAL
    }
}

/// What the relay itself sends (the peers' own messages are forwarded
/// verbatim and never parsed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum RelayMessage {
    /// To a host: a client is waiting in `room`; join it.
    Session {
        /// The session's room, `<host>/<id>`.
        room: String,
    },
    /// To a peer: one of its messages was not forwarded, and why.
    Error {
        /// What was wrong.
        reason: String,
    },
}

impl RelayMessage {
    /// As JSON text.
    #[must_use]
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The URL of room `room` at the relay at `base` (`ws://relay:8787`).
#[must_use]
pub fn room_url(base: &str, room: &str) -> String {
    format!("{}{ROOM_PREFIX}{room}", base.trim_end_matches('/'))
}

/// The URL a host registers at.
#[must_use]
pub fn host_url(base: &str, host: &str) -> String {
    format!("{}{HOST_PREFIX}{host}", base.trim_end_matches('/'))
}

/// The URL a client of `host` connects to.
#[must_use]
pub fn client_url(base: &str, host: &str) -> String {
    format!(
        "{}{HOST_PREFIX}{host}{CONNECT_SUFFIX}",
        base.trim_end_matches('/')
    )
}

/// Host names: 1 to 160 characters of `A-Z a-z 0-9 - _ . ~`, leaving room
/// for the session id in `<host>/<id>` room names.
#[must_use]
pub fn valid_host(name: &str) -> bool {
    name.len() <= 160 && !name.contains('/') && valid_room(name)
}

/// Room names: 1 to 200 characters of `A-Z a-z 0-9 - _ . ~ /`, with no
/// empty `/`-separated segment.
#[must_use]
pub fn valid_room(name: &str) -> bool {
    (1..=200).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~/".contains(&b))
        && name.split('/').all(|segment| !segment.is_empty())
}

/// Which endpoint a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `/v1/room/<room>`.
    Room(&'a str),
    /// `/v1/host/<host>`.
    Host(&'a str),
    /// `/v1/host/<host>/connect`.
    Connect(&'a str),
}

impl<'a> Endpoint<'a> {
    /// Read a request path; `None` for an unknown one.
    #[must_use]
    pub fn parse(path: &'a str) -> Option<Endpoint<'a>> {
        if let Some(room) = path.strip_prefix(ROOM_PREFIX) {
            Some(Endpoint::Room(room))
        } else {
            path.strip_prefix(HOST_PREFIX)
                .map(|rest| match rest.strip_suffix(CONNECT_SUFFIX) {
                    Some(host) => Endpoint::Connect(host),
                    None => Endpoint::Host(rest),
                })
        }
    }

    /// Whether its name is well formed.
    #[must_use]
    pub fn valid(&self) -> bool {
        match self {
            Endpoint::Room(room) => valid_room(room),
            Endpoint::Host(host) | Endpoint::Connect(host) => valid_host(host),
        }
    }
}
