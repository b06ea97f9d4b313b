//! Who may connect: tokens (compared by digest, in constant time), where a
//! token is read from, per-address connection counts, and unguessable
//! session ids.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_tungstenite::tungstenite::handshake::server::Request;

/// Which configured token a connection presented: its index, or `None` for
/// an anonymous connection (only with `allow_anonymous`).
pub(super) type TokenId = Option<usize>;

/// The accepted tokens, as SHA-256 digests: comparing digests of a fixed
/// length tells nothing of a token's length, and the tokens themselves are
/// not kept.
pub(super) struct Tokens {
    digests: Vec<[u8; 32]>,
    allow_anonymous: bool,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    pub(super) fn new(tokens: &[String], allow_anonymous: bool) -> Tokens {
        Tokens {
            digests: tokens.iter().map(|t| digest(t)).collect(),
            allow_anonymous,
        }
    }

    /// The token's identity if it is accepted. Every digest is compared, so
    /// the time taken does not tell which one (or whether any) matched.
    pub(super) fn check(&self, token: Option<&str>) -> Option<TokenId> {
        let Some(token) = token else {
            return self.allow_anonymous.then_some(None);
        };
        let offered = digest(token);
        let mut found: Option<usize> = None;
        for (i, d) in self.digests.iter().enumerate() {
            if bool::from(d.ct_eq(&offered)) {
                found = Some(i);
            }
        }
        match found {
            Some(i) => Some(Some(i)),
            None if self.allow_anonymous && self.digests.is_empty() => Some(None),
            None => None,
        }
    }
}

/// The token a request presents: `Authorization: Bearer <token>`, or
/// `?token=<token>` (percent-encoded) for browsers, which cannot set
/// headers on a WebSocket.
pub(super) fn token_of(request: &Request) -> Option<String> {
    if let Some(auth) = request.headers().get("authorization")
        && let Ok(auth) = auth.to_str()
        && let Some(token) = auth.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

/// An unguessable id: 128 bits from the operating system's CSPRNG, in hex;
/// `None` if the random source fails (never a guessable id instead).
pub(super) fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::getrandom(&mut bytes) {
        tracing::error!(error = %e, "the operating system's random source failed");
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Connections open per source address, bounded.
#[derive(Default)]
pub(super) struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address; uncounted on drop.
pub(super) struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// Count a connection from `ip`, unless `limit` are open already.
    pub(super) fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n = n.saturating_add(1);
        Some(IpSlot {
            per_ip: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self
            .per_ip
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
