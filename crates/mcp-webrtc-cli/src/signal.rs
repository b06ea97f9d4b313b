//! `--signal` and pairing URLs: which signaling backend, where, and the
//! pairing secret.

use futures::future::BoxFuture;
use mcp_webrtc::signaling::{
    CodeSide, Options, PairedSignaling, PairingCode, PairingSecret, SignalMessage, Signaling,
    WebSocketOptions, WebSocketSignaling,
};

use crate::error::{CliError, from_signaling};

/// The URL scheme `serve` prints for a relay reached with `ws://`.
pub(crate) const SCHEME: &str = "mcpw://";
/// The same, for `wss://`.
pub(crate) const SCHEME_TLS: &str = "mcpws://";

/// Where signaling goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spec {
    /// A relay: its base URL (`ws://host:port`), and a room path on it if
    /// one was given (`/v1/room/…`).
    Relay { base: String, room: Option<String> },
    /// aiortc-dialect TCP signaling.
    Tcp(String),
    /// aiortc-dialect Unix-socket signaling.
    Unix(String),
    /// Copy and paste.
    Stdio,
}

impl Spec {
    pub(crate) fn parse(spec: &str) -> Result<Spec, CliError> {
        let bad = |why: &str| CliError::Usage(format!("--signal {spec}: {why}"));
        if spec == "stdio" {
            return Ok(Spec::Stdio);
        }
        if let Some(path) = spec.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("no socket path"));
            }
            return Ok(Spec::Unix(path.to_owned()));
        }
        if let Some(addr) = spec.strip_prefix("tcp://") {
            if !addr.contains(':') {
                return Err(bad("expected tcp://HOST:PORT"));
            }
            return Ok(Spec::Tcp(addr.trim_end_matches('/').to_owned()));
        }
        for scheme in ["ws://", "wss://"] {
            if let Some(rest) = spec.strip_prefix(scheme) {
                let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                if authority.is_empty() {
                    return Err(bad("no host"));
                }
                let base = format!("{scheme}{authority}");
                let room = (!path.is_empty()).then(|| format!("/{path}"));
                return Ok(Spec::Relay { base, room });
            }
        }
        Err(bad(
            "expected ws://HOST:PORT, wss://HOST:PORT, tcp://HOST:PORT, unix:PATH or stdio",
        ))
    }
}

/// A parsed `mcpw://RELAY/NAME#SECRET`.
#[derive(Debug)]
pub(crate) struct PairingUrl {
    /// `ws://RELAY` or `wss://RELAY`.
    pub(crate) base: String,
    /// The server's name at the relay.
    pub(crate) name: String,
    /// The secret, if the URL has one.
    pub(crate) secret: Option<PairingSecret>,
}

impl PairingUrl {
    pub(crate) fn parse(url: &str) -> Result<PairingUrl, CliError> {
        let bad =
            |why: &str| CliError::Usage(format!("{why}: expected mcpw://RELAY:PORT/NAME#SECRET"));
        let (ws, rest) = if let Some(rest) = url.strip_prefix(SCHEME) {
            ("ws://", rest)
        } else if let Some(rest) = url.strip_prefix(SCHEME_TLS) {
            ("wss://", rest)
        } else {
            return Err(bad("not a pairing URL"));
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let Some((authority, name)) = rest.split_once('/') else {
            return Err(bad("no server name"));
        };
        let name = name.trim_end_matches('/');
        if authority.is_empty() || name.is_empty() {
            return Err(bad("no relay or no server name"));
        }
        if !mcp_webrtc::signaling::relay_protocol::valid_host(name) {
            return Err(bad("the server name has characters a relay does not allow"));
        }
        let secret = match fragment {
            Some(text) => Some(PairingSecret::parse(text).map_err(|e| {
                CliError::Usage(format!("{url_redacted}: {e}", url_redacted = redact(url)))
            })?),
            None => None,
        };
        Ok(PairingUrl {
            base: format!("{ws}{authority}"),
            name: name.to_owned(),
            secret,
        })
    }
}

/// A pairing URL with its secret hidden, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once('#') {
        Some((head, _)) => format!("{head}#…"),
        None => url.to_owned(),
    }
}

/// The line `serve` prints for the other side.
pub(crate) fn pairing_url(base: &str, name: &str, secret: Option<&PairingSecret>) -> String {
    let (scheme, authority) = match base.strip_prefix("wss://") {
        Some(authority) => (SCHEME_TLS, authority),
        None => (SCHEME, base.strip_prefix("ws://").unwrap_or(base)),
    };
    match secret {
        Some(secret) => format!("{scheme}{authority}/{name}#{}", secret.to_text()),
        None => format!("{scheme}{authority}/{name}"),
    }
}

/// WebSocket options with the token.
pub(crate) fn ws_options(token: Option<&str>, timeout: std::time::Duration) -> WebSocketOptions {
    let options =
        WebSocketOptions::default().with_options(Options::default().with_connect_timeout(timeout));
    match token {
        Some(token) => options.with_token(token),
        None => options,
    }
}

/// Join a relay room (or a host's client room) as one session.
pub(crate) async fn join(
    url: &str,
    what: &str,
    options: WebSocketOptions,
) -> Result<WebSocketSignaling, CliError> {
    WebSocketSignaling::connect(url, options)
        .await
        .map_err(|e| from_signaling(&e, what))
}

/// Signaling without pairing that says so when the peer pairs: its
/// descriptions carry a pairing code, or it starts a code exchange. Without
/// this, the pairing side refuses us and we only see the connection fail.
struct Unpaired(Box<dyn Signaling>);

impl Signaling for Unpaired {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, mcp_webrtc::signaling::Result<()>> {
        self.0.send(message)
    }

    fn recv(&mut self) -> BoxFuture<'_, mcp_webrtc::signaling::Result<Option<SignalMessage>>> {
        Box::pin(async move {
            let message = self.0.recv().await?;
            let pairs = match &message {
                Some(SignalMessage::Offer(sdp) | SignalMessage::Answer(sdp)) => {
                    mcp_webrtc::signaling::carries_pairing_code(sdp)
                }
                Some(SignalMessage::Pairing(_)) => true,
                _ => false,
            };
            if pairs {
                return Err(mcp_webrtc::signaling::Error::PairingFailed {
                    reason: "the peer pairs and we have no secret: give the line `mcp-webrtc serve` printed (its secret or --code)".into(),
                });
            }
            Ok(message)
        })
    }

    fn close(&mut self) -> BoxFuture<'_, mcp_webrtc::signaling::Result<()>> {
        self.0.close()
    }
}

/// The pairing side of a WebRTC role: the answerer confirms a code first.
fn code_side(role: mcp_webrtc::Role) -> CodeSide {
    match role {
        mcp_webrtc::Role::Offerer => CodeSide::Offerer,
        mcp_webrtc::Role::Answerer => CodeSide::Answerer,
    }
}

/// How a session pairs.
#[derive(Debug, Clone)]
pub(crate) enum Pairing {
    /// Not at all (`--no-pairing`, or aiortc signaling without a secret).
    Off,
    /// With a shared secret.
    Secret(PairingSecret),
    /// With a short code, through SPAKE2.
    Code(PairingCode),
}

/// Wrap `signaling` in pairing; with a code this runs the SPAKE2 exchange
/// with the peer first (within `timeout`).
pub(crate) async fn paired(
    signaling: Box<dyn Signaling>,
    pairing: &Pairing,
    role: mcp_webrtc::Role,
    what: &str,
    timeout: std::time::Duration,
) -> Result<Box<dyn Signaling>, CliError> {
    Ok(match pairing {
        Pairing::Off => Box::new(Unpaired(signaling)),
        Pairing::Secret(secret) => Box::new(PairedSignaling::new(signaling, secret.clone())),
        Pairing::Code(code) => Box::new(
            PairedSignaling::with_code(signaling, code, code_side(role), timeout)
                .await
                .map_err(|e| from_signaling(&e, what))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!(
            Spec::parse("ws://127.0.0.1:8787").unwrap(),
            Spec::Relay {
                base: "ws://127.0.0.1:8787".into(),
                room: None
            }
        );
        assert_eq!(
            Spec::parse("wss://r.example/v1/room/a").unwrap(),
            Spec::Relay {
                base: "wss://r.example".into(),
                room: Some("/v1/room/a".into())
            }
        );
        assert_eq!(
            Spec::parse("tcp://127.0.0.1:9").unwrap(),
            Spec::Tcp("127.0.0.1:9".into())
        );
        assert_eq!(
            Spec::parse("unix:/tmp/s").unwrap(),
            Spec::Unix("/tmp/s".into())
        );
        assert_eq!(Spec::parse("stdio").unwrap(), Spec::Stdio);
        let e = Spec::parse("http://x").unwrap_err().to_string();
        assert!(e.contains("expected ws://"), "{e}");
        assert!(Spec::parse("tcp://nohost").is_err());
    }

    #[test]
    fn pairing_urls_round_trip_and_keep_the_secret_out_of_errors() {
        let secret = PairingSecret::generate().unwrap();
        let url = pairing_url("ws://127.0.0.1:8787", "desk", Some(&secret));
        let parsed = PairingUrl::parse(&url).unwrap();
        assert_eq!(parsed.base, "ws://127.0.0.1:8787");
        assert_eq!(parsed.name, "desk");
        assert_eq!(parsed.secret.unwrap().to_text(), secret.to_text());
        let tls = PairingUrl::parse("mcpws://r.example/desk").unwrap();
        assert_eq!(tls.base, "wss://r.example");
        assert!(tls.secret.is_none());
        let e = PairingUrl::parse("mcpw://r/desk#00112233")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("00112233"), "{e}");
        assert!(PairingUrl::parse("mcpw://r").is_err());
        assert!(PairingUrl::parse("http://r/desk").is_err());
    }
}
