//! End-to-end pairing: both peers prove they know a shared secret, and bind
//! their SDP (and so their DTLS certificate fingerprints) to it. See
//! [`PairedSignaling`].

mod code;

pub use code::{CodeSide, PairingCode};

use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Error, Result, SignalMessage, Signaling};

/// The attribute that carries the code.
const ATTRIBUTE: &str = "a=mcpw-pairing:";
/// Domain separation for the two codes.
const LABEL: &[u8] = b"mcp-webrtc pairing v1";
/// Bytes of a generated secret.
const SECRET_BYTES: usize = 16;
/// Shortest secret accepted from text, in bytes.
const MIN_SECRET_BYTES: usize = 16;
/// Longest secret accepted from text, in bytes.
const MAX_SECRET_BYTES: usize = 64;

/// A shared pairing secret. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct PairingSecret(Vec<u8>);

impl std::fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingSecret(..)")
    }
}

impl PairingSecret {
    /// 128 random bits from the operating system.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the system has no source of randomness.
    pub fn generate() -> Result<PairingSecret> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::getrandom(&mut bytes).map_err(|e| Error::InvalidConfig {
            reason: format!("no randomness for a pairing secret: {e}"),
        })?;
        Ok(PairingSecret(bytes))
    }

    /// Read a secret written by [`PairingSecret::to_text`]: hexadecimal,
    /// 16 to 64 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming what is wrong (never the secret).
    pub fn parse(text: &str) -> Result<PairingSecret> {
        let text = text.trim();
        let invalid = |reason: &str| Error::InvalidConfig {
            reason: format!("pairing secret: {reason}"),
        };
        if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("expected hexadecimal digits, in pairs"));
        }
        let bytes: Vec<u8> = text
            .as_bytes()
            .chunks(2)
            .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect();
        if bytes.len() < MIN_SECRET_BYTES || bytes.len() > MAX_SECRET_BYTES {
            return Err(invalid(&format!(
                "{} bytes; between {MIN_SECRET_BYTES} and {MAX_SECRET_BYTES} are accepted",
                bytes.len()
            )));
        }
        Ok(PairingSecret(bytes))
    }

    /// The secret as lowercase hexadecimal, to hand to the other peer out
    /// of band (never through the relay).
    #[must_use]
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        self.0.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// The code for one description.
    fn code(&self, kind: &[u8], offer_digest: Option<&[u8; 32]>, body: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        mac.update(LABEL);
        mac.update(&[0]);
        mac.update(kind);
        mac.update(&[0]);
        if let Some(digest) = offer_digest {
            mac.update(digest);
        }
        mac.update(body.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Signaling in which both peers prove knowledge of a [`PairingSecret`] and
/// authenticate their offer and answer with it, binding their SDP (and so
/// their DTLS certificate fingerprints) to it.
///
/// It wraps any backend. Each offer and answer it sends
/// carries an HMAC-SHA-256 of the whole SDP, keyed by the secret, in one
/// extra attribute line at the end (`a=mcpw-pairing:<hex>`); each one it
/// receives must carry a valid one, which it removes before handing the SDP
/// on. The answer's code also covers the offer it answers, so an answer
/// cannot be replayed into another session.
///
/// What this gives, with a secret the relay never sees (see
/// `docs/security.md`):
/// - the relay, or anyone who can rewrite signaling, cannot substitute its
///   own SDP (its own DTLS certificate) on either side: the peer refuses it
///   with [`Error::PairingFailed`] before any ICE or DTLS starts;
/// - DTLS then checks that the certificate the peer presents is the one in
///   the authenticated SDP, so the encrypted channel ends at the peer that
///   knows the secret.
///
/// What it does not do: hide metadata from the relay (it still sees the SDP
/// and candidates: addresses, timing); protect against a peer that knows the
/// secret; or make a low-entropy secret safe against an offline guess by
/// whoever records the signaling. [`PairingSecret::generate`] makes 128
/// random bits. For a short code a person reads aloud, use
/// [`PairedSignaling::with_code`] and a [`PairingCode`]: SPAKE2 derives the
/// key from the code, and shows nothing to test guesses against.
///
/// Candidates, end-of-candidates and bye pass unchanged: a rewritten
/// candidate can at worst stop the connection, since DTLS only completes
/// with the certificate in the authenticated SDP.
pub struct PairedSignaling<S> {
    inner: S,
    secret: PairingSecret,
    /// The digest of the offer sent or received, which the answer's code
    /// covers.
    offer: Option<[u8; 32]>,
}

impl<S> std::fmt::Debug for PairedSignaling<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairedSignaling").finish_non_exhaustive()
    }
}

impl<S: Signaling> PairedSignaling<S> {
    /// Pair over `inner` with `secret`.
    pub fn new(inner: S, secret: PairingSecret) -> Self {
        PairedSignaling {
            inner,
            secret,
            offer: None,
        }
    }

    /// The backend underneath.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The SDP ending with a line break, so that the attribute is a line of its
/// own; the code covers exactly this.
fn body_of(sdp: String) -> String {
    if sdp.ends_with('\n') {
        sdp
    } else {
        sdp + "\r\n"
    }
}

/// Whether a description carries a pairing code (its peer pairs), valid or
/// not: for a side without a secret, to say so instead of failing later.
#[must_use]
pub fn carries_pairing_code(sdp: &str) -> bool {
    split(sdp).is_some()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    PairingSecret(bytes.to_vec()).to_text()
}

fn digest(body: &str) -> [u8; 32] {
    Sha256::digest(body.as_bytes()).into()
}

/// Split a received description into the body the code covers and the
/// code's hex digits (its last attribute line).
fn split(sdp: &str) -> Option<(&str, &str)> {
    let at = sdp.rfind(ATTRIBUTE)?;
    // The attribute must start a line.
    if at != 0 && !sdp[..at].ends_with('\n') {
        return None;
    }
    let (body, line) = sdp.split_at(at);
    let code = line.get(ATTRIBUTE.len()..)?.trim_end_matches(['\r', '\n']);
    // Nothing may follow the attribute line.
    (!code.contains('\n')).then_some((body, code))
}

fn failed(what: &str, why: &str) -> Error {
    Error::PairingFailed {
        reason: format!("the {what} {why}"),
    }
}

impl<S: Signaling> PairedSignaling<S> {
    fn seal(&mut self, message: SignalMessage) -> Result<SignalMessage> {
        Ok(match message {
            SignalMessage::Offer(sdp) => {
                let body = body_of(sdp);
                let code = self.secret.code(b"offer", None, &body);
                self.offer = Some(digest(&body));
                SignalMessage::Offer(format!("{body}{ATTRIBUTE}{}\r\n", hex(&code)))
            }
            SignalMessage::Answer(sdp) => {
                let Some(offer) = self.offer else {
                    return Err(Error::PairingFailed {
                        reason: "an answer to send, but no offer was received".into(),
                    });
                };
                let body = body_of(sdp);
                let code = self.secret.code(b"answer", Some(&offer), &body);
                SignalMessage::Answer(format!("{body}{ATTRIBUTE}{}\r\n", hex(&code)))
            }
            other => other,
        })
    }

    fn open(&mut self, message: SignalMessage) -> Result<SignalMessage> {
        let (what, sdp) = match &message {
            SignalMessage::Offer(sdp) => ("offer", sdp),
            SignalMessage::Answer(sdp) => ("answer", sdp),
            SignalMessage::Pairing(_) => {
                return Err(Error::PairingFailed {
                    reason: "the peer pairs with a short code: give the code rather than a secret"
                        .into(),
                });
            }
            _ => return Ok(message),
        };
        let Some((body, code)) = split(sdp) else {
            return Err(failed(
                what,
                "carries no pairing code: the peer has no pairing secret, or someone altered the signaling",
            ));
        };
        let expected = if what == "offer" {
            self.secret.code(b"offer", None, body)
        } else {
            let Some(offer) = self.offer else {
                return Err(failed(what, "came before any offer was sent"));
            };
            self.secret.code(b"answer", Some(&offer), body)
        };
        if !bool::from(hex(&expected).as_bytes().ct_eq(code.as_bytes())) {
            return Err(failed(
                what,
                "does not match the pairing secret: wrong secret, or someone altered the signaling",
            ));
        }
        let body = body.to_owned();
        Ok(if what == "offer" {
            self.offer = Some(digest(&body));
            SignalMessage::Offer(body)
        } else {
            SignalMessage::Answer(body)
        })
    }
}

impl<S: Signaling> Signaling for PairedSignaling<S> {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let sealed = self.seal(message)?;
            self.inner.send(sealed).await
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        Box::pin(async move {
            match self.inner.recv().await? {
                Some(message) => self.open(message).map(Some),
                None => Ok(None),
            }
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pair() -> (
        PairedSignaling<crate::MemorySignaling>,
        PairedSignaling<crate::MemorySignaling>,
    ) {
        let (a, b) = crate::MemorySignaling::pair();
        let secret = PairingSecret::generate().unwrap();
        (
            PairedSignaling::new(a, secret.clone()),
            PairedSignaling::new(b, secret),
        )
    }

    #[tokio::test]
    async fn an_offer_and_answer_pass_and_arrive_unchanged() {
        let (mut a, mut b) = pair();
        let offer = "v=0\r\na=fingerprint:sha-256 AA\r\n".to_owned();
        a.send(SignalMessage::Offer(offer.clone())).await.unwrap();
        assert_eq!(b.recv().await.unwrap(), Some(SignalMessage::Offer(offer)));
        let answer = "v=0\r\na=fingerprint:sha-256 BB".to_owned();
        b.send(SignalMessage::Answer(answer.clone())).await.unwrap();
        assert_eq!(
            a.recv().await.unwrap(),
            Some(SignalMessage::Answer(format!("{answer}\r\n")))
        );
    }

    /// The same vector is asserted by `clients/js/test/signaling.test.mjs`;
    /// the codes were computed with Python's `hmac` module.
    #[tokio::test]
    async fn codes_match_a_known_answer_shared_with_the_typescript_package() {
        let (a, b) = crate::MemorySignaling::pair();
        let secret = PairingSecret::parse("000102030405060708090a0b0c0d0e0f").unwrap();
        let (mut a, mut b) = (
            PairedSignaling::new(a, secret.clone()),
            PairedSignaling::new(b, secret),
        );
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n";
        a.send(SignalMessage::Offer(offer.into())).await.unwrap();
        let Some(SignalMessage::Offer(sent)) = b.inner.recv().await.unwrap() else {
            panic!("no offer");
        };
        assert_eq!(
            sent,
            format!(
                "{offer}a=mcpw-pairing:2af4d98ccead5b6cd6de898a617f2807c84c1ddeb83d1da0d4aaad4f715e859d\r\n"
            )
        );
        b.open(SignalMessage::Offer(sent)).unwrap();
        let answer = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n";
        b.send(SignalMessage::Answer(answer.into())).await.unwrap();
        let Some(SignalMessage::Answer(sent)) = a.inner.recv().await.unwrap() else {
            panic!("no answer");
        };
        assert_eq!(
            sent,
            format!(
                "{answer}a=mcpw-pairing:0ad50d686861395e6272aca8e787c22dbb5ed460a9ce63c55b95413434d241c7\r\n"
            )
        );
    }

    #[tokio::test]
    async fn a_wrong_secret_or_a_rewritten_description_is_refused() {
        let (a, b) = crate::MemorySignaling::pair();
        let mut a = PairedSignaling::new(a, PairingSecret::generate().unwrap());
        let mut b = PairedSignaling::new(b, PairingSecret::generate().unwrap());
        a.send(SignalMessage::Offer("v=0\r\n".into()))
            .await
            .unwrap();
        let e = b.recv().await.unwrap_err();
        assert!(e.to_string().contains("wrong secret"), "{e}");
        assert!(!e.is_per_message());
    }

    #[test]
    fn split_takes_only_a_final_attribute_line() {
        assert_eq!(
            split("v=0\r\na=mcpw-pairing:ab\r\n"),
            Some(("v=0\r\n", "ab"))
        );
        assert_eq!(split("v=0\r\nx a=mcpw-pairing:ab\r\n"), None);
        assert_eq!(split("v=0\r\na=mcpw-pairing:ab\r\na=x\r\n"), None);
        assert_eq!(split("v=0\r\n"), None);
    }

    #[test]
    fn secrets_round_trip_as_text_and_bad_text_is_refused() {
        let s = PairingSecret::generate().unwrap();
        assert_eq!(PairingSecret::parse(&s.to_text()).unwrap().0, s.0);
        assert!(PairingSecret::parse("abc").is_err());
        assert!(PairingSecret::parse("zz").is_err());
        assert!(PairingSecret::parse("00ff").is_err());
        assert_eq!(format!("{s:?}"), "PairingSecret(..)");
    }
}
