//! Short pairing codes a person can read aloud, made safe against an
//! offline guess by SPAKE2: the two peers derive the pairing key from the
//! code in one exchange over signaling, which shows an eavesdropper (the
//! relay included) nothing it could test guesses against. Each attempt
//! allows one online guess, by a party that then fails to pair.

use std::time::Duration;

use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::{PairedSignaling, PairingSecret, hex};
use crate::{Error, Result, SignalMessage, Signaling};

/// Digits in a generated code.
const CODE_DIGITS: usize = 12;
/// Fewest digits accepted.
const MIN_DIGITS: usize = 8;
/// Most digits accepted.
const MAX_DIGITS: usize = 32;
/// SPAKE2's identity for both peers (the symmetric variant: no roles).
const IDENTITY: &[u8] = b"mcp-webrtc pairing code v1";
/// Longest pairing message read (an Ed25519 point is 33 bytes here).
const MAX_MESSAGE_HEX: usize = 256;
/// Messages skipped while waiting for the peer's pairing message (relay
/// notices, say) before giving up.
const MAX_SKIPPED: usize = 16;

/// Which side of a pairing with a code this is. The answerer proves it
/// holds the key first: the offerer sends nothing keyed by the code to a
/// peer that has not, so a peer that only guesses learns whether its one
/// guess was right, and the offerer sees the failure too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSide {
    /// The side that sends the offer (`mcp-webrtc serve`, by default).
    Offerer,
    /// The side that answers (`mcp-webrtc connect`).
    Answerer,
}

impl CodeSide {
    fn label(self) -> &'static [u8] {
        match self {
            CodeSide::Offerer => b"offerer",
            CodeSide::Answerer => b"answerer",
        }
    }
    fn other(self) -> CodeSide {
        match self {
            CodeSide::Offerer => CodeSide::Answerer,
            CodeSide::Answerer => CodeSide::Offerer,
        }
    }
}

/// The offerer's word that the answerer's confirmation did not match.
const REFUSED: &str = "refused";

/// The prefix of a key confirmation in a pairing message.
const CONFIRM: &str = "confirm:";

/// The key confirmation of `side`.
fn confirmation(key: &[u8], side: CodeSide) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<sha2::Sha256> as KeyInit>::new(&Default::default()));
    mac.update(b"mcp-webrtc pairing code confirm v1");
    mac.update(&[0]);
    mac.update(side.label());
    format!("{CONFIRM}{}", hex(&mac.finalize().into_bytes()))
}

/// A short code: 12 digits, written in groups of four (`1234-5678-9012`).
/// Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct PairingCode(String);

impl std::fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingCode(..)")
    }
}

impl PairingCode {
    /// 12 random digits from the operating system (about 40 bits).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the system has no source of randomness.
    pub fn generate() -> Result<PairingCode> {
        let mut digits = String::with_capacity(CODE_DIGITS);
        let mut buf = [0u8; 32];
        // Bounded: each pass draws 32 bytes, and 250 of 256 values are taken.
        for _ in 0..64 {
            getrandom::getrandom(&mut buf).map_err(|e| Error::InvalidConfig {
                reason: format!("no randomness for a pairing code: {e}"),
            })?;
            for b in buf {
                if b < 250 && digits.len() < CODE_DIGITS {
                    digits.push(char::from(b'0'.saturating_add(b % 10)));
                }
            }
            if digits.len() == CODE_DIGITS {
                return Ok(PairingCode(digits));
            }
        }
        Err(Error::InvalidConfig {
            reason: "no randomness for a pairing code".into(),
        })
    }

    /// Read a code as a person types it: digits, with any dashes or spaces.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming what is wrong (never the code).
    pub fn parse(text: &str) -> Result<PairingCode> {
        let digits: String = text.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::InvalidConfig {
                reason: "pairing code: only digits, dashes and spaces".into(),
            });
        }
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "pairing code: {} digits; between {MIN_DIGITS} and {MAX_DIGITS} are accepted",
                    digits.len()
                ),
            });
        }
        Ok(PairingCode(digits))
    }

    /// The code in groups of four digits.
    #[must_use]
    pub fn to_text(&self) -> String {
        let groups: Vec<&str> = self
            .0
            .as_bytes()
            .chunks(4)
            .filter_map(|g| std::str::from_utf8(g).ok())
            .collect();
        groups.join("-")
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() > MAX_MESSAGE_HEX || !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

fn failed(reason: &str) -> Error {
    Error::PairingFailed {
        reason: reason.to_owned(),
    }
}

/// Read the peer's next pairing message, skipping at most `MAX_SKIPPED`
/// per-message errors (relay notices, say).
async fn next_pairing<S: Signaling>(inner: &mut S) -> Result<String> {
    // Bounded: at most MAX_SKIPPED per-message errors are read past.
    for _ in 0..MAX_SKIPPED {
        match inner.recv().await {
            Ok(Some(SignalMessage::Pairing(data))) => return Ok(data),
            Ok(Some(SignalMessage::Offer(_) | SignalMessage::Answer(_))) => {
                return Err(failed(
                    "the peer sent its description without a pairing code: it has none, or someone altered the signaling",
                ));
            }
            Ok(Some(other)) => {
                return Err(failed(&format!(
                    "expected the peer's pairing message, got a {}",
                    other.type_name()
                )));
            }
            Ok(None) => return Err(failed("the peer left before pairing")),
            Err(e) if e.is_per_message() => {
                tracing::debug!(error = %e, "skipping a bad message while pairing");
            }
            Err(e) => return Err(e),
        }
    }
    Err(failed("no pairing message from the peer"))
}

impl<S: Signaling> PairedSignaling<S> {
    /// Pair with a short code: run SPAKE2 with the peer over `inner` (each
    /// side sends one `pairing` message and reads the other's), confirm the
    /// key (the answerer first), then authenticate the offer and answer with
    /// it, as [`PairedSignaling::new`] does with a secret. Call it on both
    /// sides before the peer connection starts; it takes at most `timeout`.
    ///
    /// Only the W3C dialect (WebSocket, the relay, channel adapters)
    /// carries pairing messages.
    ///
    /// # Errors
    /// [`Error::PairingFailed`] for a wrong code (on both sides), a peer
    /// that sends anything else first, an invalid pairing message, or a
    /// peer that leaves; [`Error::Timeout`]; the backend's errors.
    pub async fn with_code(
        mut inner: S,
        code: &PairingCode,
        side: CodeSide,
        timeout: Duration,
    ) -> Result<Self> {
        let (state, outbound) = Spake2::<Ed25519Group>::start_symmetric(
            &Password::new(code.0.as_bytes()),
            &Identity::new(IDENTITY),
        );
        let exchange = async {
            inner.send(SignalMessage::Pairing(hex(&outbound))).await?;
            let peer = next_pairing(&mut inner).await?;
            let peer = unhex(&peer)
                .ok_or_else(|| failed("the peer's pairing message is not valid hex"))?;
            let key = state
                .finish(&peer)
                .map_err(|e| failed(&format!("the peer's pairing message is invalid: {e:?}")))?;
            let mine = confirmation(&key, side);
            let theirs = confirmation(&key, side.other());
            let wrong = || {
                failed(
                    "the peer's key confirmation does not match: a wrong pairing code, or someone altered the signaling",
                )
            };
            let check = |got: &str| -> Result<()> {
                use subtle::ConstantTimeEq;
                if got == REFUSED {
                    return Err(wrong());
                }
                if bool::from(got.as_bytes().ct_eq(theirs.as_bytes())) {
                    Ok(())
                } else {
                    Err(wrong())
                }
            };
            match side {
                CodeSide::Answerer => {
                    inner.send(SignalMessage::Pairing(mine)).await?;
                    check(&next_pairing(&mut inner).await?)?;
                }
                CodeSide::Offerer => {
                    if let Err(e) = check(&next_pairing(&mut inner).await?) {
                        // Say so (nothing keyed), so that a person who
                        // mistyped the code reads why.
                        let _ = inner.send(SignalMessage::Pairing(REFUSED.into())).await;
                        return Err(e);
                    }
                    inner.send(SignalMessage::Pairing(mine)).await?;
                }
            }
            Ok(key)
        };
        let key: Vec<u8> =
            crate::deadline(timeout, || "pairing with the code".to_owned(), exchange).await?;
        Ok(PairedSignaling::new(inner, PairingSecret(key)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn codes_are_twelve_digits_in_groups_and_parse_back() {
        let code = PairingCode::generate().unwrap();
        let text = code.to_text();
        assert_eq!(text.len(), 14, "{text}");
        assert_eq!(text.matches('-').count(), 2);
        assert_eq!(PairingCode::parse(&text).unwrap().0, code.0);
        assert_eq!(
            PairingCode::parse("1234 5678-9012").unwrap().0,
            "123456789012"
        );
        assert!(PairingCode::parse("1234").is_err());
        assert!(PairingCode::parse("1234-abcd-9012").is_err());
        assert_eq!(format!("{code:?}"), "PairingCode(..)");
    }

    async fn offer_through(a_code: &str, b_code: &str) -> Result<Option<SignalMessage>> {
        let (a, b) = crate::MemorySignaling::pair();
        let (a_code, b_code) = (PairingCode::parse(a_code)?, PairingCode::parse(b_code)?);
        let t = Duration::from_secs(5);
        let (a, b) = tokio::join!(
            PairedSignaling::with_code(a, &a_code, CodeSide::Offerer, t),
            PairedSignaling::with_code(b, &b_code, CodeSide::Answerer, t)
        );
        let (mut a, mut b) = (a?, b?);
        a.send(SignalMessage::Offer("v=0\r\n".into())).await?;
        b.recv().await
    }

    #[tokio::test]
    async fn the_same_code_pairs_and_a_different_one_fails() {
        let ok = offer_through("1111-2222-3333", "1111 2222 3333")
            .await
            .unwrap();
        assert_eq!(ok, Some(SignalMessage::Offer("v=0\r\n".into())));
        let e = offer_through("1111-2222-3333", "1111-2222-3334")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("a wrong pairing code"), "{e}");
    }

    #[tokio::test]
    async fn a_wrong_code_fails_on_both_sides() {
        let (a, b) = crate::MemorySignaling::pair();
        let t = Duration::from_secs(5);
        let right = PairingCode::parse("1111-2222-3333").unwrap();
        let wrong = PairingCode::parse("1111-2222-3334").unwrap();
        let (offerer, answerer) = tokio::join!(
            PairedSignaling::with_code(a, &right, CodeSide::Offerer, t),
            PairedSignaling::with_code(b, &wrong, CodeSide::Answerer, t)
        );
        // The offerer sees the answerer's confirmation fail, and tells it.
        for e in [offerer.unwrap_err(), answerer.unwrap_err()] {
            assert!(e.to_string().contains("a wrong pairing code"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_peer_that_skips_pairing_is_refused() {
        let (a, mut b) = crate::MemorySignaling::pair();
        let code = PairingCode::parse("1111-2222-3333").unwrap();
        b.send(SignalMessage::Offer("v=0\r\n".into()))
            .await
            .unwrap();
        let e = PairedSignaling::with_code(a, &code, CodeSide::Offerer, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("without a pairing code"), "{e}");
    }
}
