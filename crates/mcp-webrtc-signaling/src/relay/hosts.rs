//! Host registrations: a server registers a name and is told of each client
//! that connects to it. A name stays bound to the token that first
//! registered it, also after its registration lapses, and each host's
//! client connections are rate-limited.

use std::collections::HashMap;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::auth::TokenId;
use super::{Shared, Socket, close, send_ws};
use crate::relay_protocol::{
    CLOSE_BUDGET, CLOSE_CONFLICT, CLOSE_IDLE, CLOSE_SHUTDOWN, CLOSE_UNAVAILABLE,
};

/// One connection, in the bucket's units (millionths).
const ONE: u64 = 1_000_000;

/// A token bucket in millionths of a connection: `rate` per second, bursts
/// of twice that. At `rate` per second it gains `rate` millionths each
/// microsecond; time is taken in whole microseconds and the remainder kept,
/// so nothing is lost to rounding at any call rate.
struct Bucket {
    micro: u64,
    at: Instant,
}

impl Bucket {
    fn full(rate: u32) -> Bucket {
        Bucket {
            micro: u64::from(rate).saturating_mul(2 * ONE),
            at: Instant::now(),
        }
    }

    fn take(&mut self, rate: u32) -> bool {
        let now = Instant::now();
        let micros =
            u64::try_from(now.saturating_duration_since(self.at).as_micros()).unwrap_or(u64::MAX);
        // Advance by the whole microseconds used, keeping the remainder.
        self.at = self
            .at
            .checked_add(std::time::Duration::from_micros(micros))
            .unwrap_or(now);
        let capacity = u64::from(rate).saturating_mul(2 * ONE);
        self.micro = self
            .micro
            .saturating_add(micros.saturating_mul(u64::from(rate)))
            .min(capacity);
        if self.micro >= ONE {
            self.micro = self.micro.saturating_sub(ONE);
            true
        } else {
            false
        }
    }
}

struct Host {
    /// The token that registered the name first; only it may register it
    /// again.
    owner: TokenId,
    /// The live registration's notices, if it is registered now.
    control: Option<mpsc::Sender<String>>,
    /// Tells a live registration its name was taken over by its owner.
    since: Instant,
    bucket: Bucket,
}

/// Every host name the relay knows, registered or lapsed.
#[derive(Default)]
pub(super) struct Hosts {
    map: HashMap<String, Host>,
}

impl Hosts {
    /// Registered hosts.
    pub(super) fn registered(&self) -> usize {
        self.map
            .values()
            .filter(|h| h.control.as_ref().is_some_and(|c| !c.is_closed()))
            .count()
    }
}

/// Why a client cannot connect to a host.
pub(super) enum Refused {
    NoSuchHost,
    Throttled,
}

impl Shared {
    /// Admit a client of `host`: the host's notice channel and owner.
    pub(super) fn connect_to(
        &self,
        host: &str,
    ) -> Result<(mpsc::Sender<String>, TokenId), Refused> {
        let mut hosts = self.hosts();
        let Some(h) = hosts.map.get_mut(host) else {
            return Err(Refused::NoSuchHost);
        };
        let Some(control) = h.control.clone().filter(|c| !c.is_closed()) else {
            return Err(Refused::NoSuchHost);
        };
        if !h.bucket.take(self.config.host_connect_rate) {
            return Err(Refused::Throttled);
        }
        Ok((control, h.owner))
    }

    /// Register `host` for `token`.
    fn register(
        &self,
        host: &str,
        token: TokenId,
        control: mpsc::Sender<String>,
    ) -> Result<(), (u16, &'static str)> {
        let mut hosts = self.hosts();
        if let Some(h) = hosts.map.get_mut(host) {
            if h.owner != token {
                return Err((CLOSE_CONFLICT, "host name taken"));
            }
            if h.control.as_ref().is_some_and(|c| !c.is_closed()) {
                return Err((CLOSE_CONFLICT, "host name taken"));
            }
            h.control = Some(control);
            h.since = Instant::now();
            return Ok(());
        }
        let lapsed = |h: &Host| h.control.as_ref().is_none_or(mpsc::Sender::is_closed);
        let mine = hosts.map.values().filter(|h| h.owner == token).count();
        if mine >= self.config.max_hosts_per_token || hosts.map.len() >= self.config.max_hosts {
            // Make room only among this token's own lapsed names (the one
            // that lapsed longest ago): no token can flush another's
            // bindings.
            let oldest = hosts
                .map
                .iter()
                .filter(|(_, h)| h.owner == token && lapsed(h))
                .min_by_key(|(_, h)| h.since)
                .map(|(name, _)| name.clone());
            match oldest {
                Some(name) => {
                    hosts.map.remove(&name);
                }
                None if mine >= self.config.max_hosts_per_token => {
                    return Err((CLOSE_BUDGET, "too many host names for this token"));
                }
                None => return Err((CLOSE_UNAVAILABLE, "too many hosts")),
            }
        }
        hosts.map.insert(
            host.to_owned(),
            Host {
                owner: token,
                control: Some(control),
                since: Instant::now(),
                bucket: Bucket::full(self.config.host_connect_rate),
            },
        );
        Ok(())
    }

    /// The registration whose notices go to `control` ended: the name
    /// lapses, still bound to its token (unless its owner has registered it
    /// again meanwhile).
    fn lapse(&self, host: &str, control: &mpsc::Sender<String>) {
        if let Some(h) = self.hosts().map.get_mut(host)
            && h.control.as_ref().is_some_and(|c| c.same_channel(control))
        {
            h.control = None;
            h.since = Instant::now();
        }
    }
}

/// Session announcements waiting to be written to one host, at most. A
/// client beyond them is refused ("host not answering"). Each is a short
/// line (under 300 bytes), so a full queue holds under 300 KiB; 64, as it
/// was, refused clients of a burst of a hundred that all arrived before the
/// host's writer ran once (the sessions benchmark, 500 clients at once).
const MAX_ANNOUNCEMENTS: usize = 1024;

/// Serve one host registration until it closes, stops answering pings, or
/// the relay stops.
pub(super) async fn run_host(
    mut ws: Socket,
    host: String,
    token: TokenId,
    shared: &Shared,
    mut stopped: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::channel::<String>(MAX_ANNOUNCEMENTS);
    let mine = tx.clone();
    if let Err((code, reason)) = shared.register(&host, token, tx) {
        shared.refuse();
        tracing::info!(host = %host, reason, "relay: host refused");
        close(&mut ws, code, reason).await;
        return;
    }
    tracing::info!(host = %host, "relay: host registered");
    let interval = shared.config.host_ping_interval;
    let mut ping = tokio::time::interval(interval);
    let mut last_seen = Instant::now();
    // Bounded: each pass handles one event; pings end a silent host.
    loop {
        tokio::select! {
            _ = stopped.changed() => {
                close(&mut ws, CLOSE_SHUTDOWN, "relay shutting down").await;
                break;
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > interval.saturating_mul(3) {
                    close(&mut ws, CLOSE_IDLE, "host stopped answering pings").await;
                    break;
                }
                if !send_ws(&mut ws, Message::Ping(Vec::new().into())).await {
                    break;
                }
            }
            out = rx.recv() => match out {
                Some(text) => {
                    if !send_ws(&mut ws, Message::text(text)).await {
                        break;
                    }
                }
                None => break,
            },
            incoming = ws.next() => match incoming {
                None | Some(Err(_) | Ok(Message::Close(_))) => break,
                Some(Ok(_)) => last_seen = Instant::now(),
            },
        }
    }
    shared.lapse(&host, &mine);
    tracing::info!(host = %host, "relay: host left");
}
