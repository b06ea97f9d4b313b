//! The few facts we read from session descriptions ourselves.

/// What `a=max-message-size` says in the data (`m=application`) section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageSizeLimit {
    /// No attribute: RFC 8841 says 65536.
    Absent,
    /// `0`: no limit.
    Unlimited,
    /// A limit in bytes.
    Bytes(u64),
}

/// The lines of the first `m=application` section.
fn data_section(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.lines()
        .map(str::trim_end)
        .skip_while(|l| !l.starts_with("m=application"))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("m="))
        .map(|(_, l)| l)
}

/// The data section's `a=max-message-size`.
pub(crate) fn max_message_size(sdp: &str) -> MessageSizeLimit {
    for line in data_section(sdp) {
        if let Some(v) = line.strip_prefix("a=max-message-size:") {
            return match v.trim().parse::<u64>() {
                Ok(0) => MessageSizeLimit::Unlimited,
                Ok(n) => MessageSizeLimit::Bytes(n),
                Err(_) => MessageSizeLimit::Absent,
            };
        }
    }
    MessageSizeLimit::Absent
}

/// The data section's media id and its index among the media sections.
pub(crate) fn data_section_mid(sdp: &str) -> (Option<String>, Option<u16>) {
    let index = sdp
        .lines()
        .filter(|l| l.starts_with("m="))
        .position(|l| l.starts_with("m=application"))
        .and_then(|i| u16::try_from(i).ok());
    let mid = data_section(sdp)
        .find_map(|l| l.strip_prefix("a=mid:"))
        .map(|m| m.trim().to_owned());
    (mid, index)
}

/// A fingerprint in one form: lowercase hex pairs joined by `:`, without the
/// hash name.
pub(crate) fn normalize_fingerprint(fingerprint: &str) -> String {
    let f = fingerprint.trim();
    let f = f
        .split_once(' ')
        .filter(|(algo, _)| algo.eq_ignore_ascii_case("sha-256"))
        .map_or(f, |(_, hex)| hex.trim());
    f.to_ascii_lowercase()
}

/// Every `a=fingerprint:` value in the description, as `(algorithm,
/// normalized hex)`, grouped by level: the session level first, then each
/// media section.
fn fingerprints_by_level(sdp: &str) -> Vec<Vec<(String, String)>> {
    let mut levels = vec![Vec::new()];
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            levels.push(Vec::new());
        } else if let Some(value) = line.strip_prefix("a=fingerprint:")
            && let Some(level) = levels.last_mut()
        {
            let (algorithm, hex) = value.trim().split_once(' ').unwrap_or((value, ""));
            level.push((
                algorithm.to_ascii_lowercase(),
                hex.trim().to_ascii_lowercase(),
            ));
        }
    }
    levels
}

/// Check a pinned SHA-256 fingerprint against the peer's description the
/// way the stack will use it: it takes the *first* fingerprint of the
/// session level and of each media section, so each of those must be the
/// pin, and so must every other sha-256 line. Returns what was found when
/// the check fails.
pub(crate) fn check_fingerprint(sdp: &str, pin: &str) -> Result<(), String> {
    let levels = fingerprints_by_level(sdp);
    let all: Vec<&(String, String)> = levels.iter().flatten().collect();
    let describe = || {
        if all.is_empty() {
            "none".to_owned()
        } else {
            all.iter()
                .map(|(a, h)| format!("{a} {h}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let firsts_ok = levels
        .iter()
        .filter_map(|level| level.first())
        .all(|(a, h)| a == "sha-256" && h == pin);
    let sha256_ok = all
        .iter()
        .filter(|(a, _)| a == "sha-256")
        .all(|(_, h)| h == pin);
    if !all.is_empty() && firsts_ok && sha256_ok {
        Ok(())
    } else {
        Err(describe())
    }
}

/// Whether `fingerprint` (normalized) is 32 colon-separated hex pairs.
pub(crate) fn is_sha256_fingerprint(fingerprint: &str) -> bool {
    let pairs: Vec<&str> = fingerprint.split(':').collect();
    pairs.len() == 32
        && pairs
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Why a description cannot carry a data channel, if it cannot: no
/// `m=application` section, or one rejected with port 0.
pub(crate) fn data_section_problem(sdp: &str) -> Option<&'static str> {
    let Some(m) = sdp
        .lines()
        .map(str::trim_end)
        .find(|l| l.starts_with("m=application"))
    else {
        return Some("it has no data-channel (m=application) section");
    };
    if m.split_whitespace().nth(1) == Some("0") {
        return Some("its data-channel section is rejected (port 0)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB:CD:EF\r\nm=audio 9 UDP 0\r\na=mid:a\r\na=max-message-size:1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:data\r\na=max-message-size:262144\r\n";

    #[test]
    fn reads_the_data_section_only() {
        assert_eq!(max_message_size(SDP), MessageSizeLimit::Bytes(262_144));
        assert_eq!(data_section_mid(SDP), (Some("data".into()), Some(1)));
        assert_eq!(normalize_fingerprint("sha-256 AB:CD:EF"), "ab:cd:ef");
        assert_eq!(normalize_fingerprint("AB:CD:EF"), "ab:cd:ef");
        assert_eq!(data_section_problem(SDP), None);
        assert!(data_section_problem("v=0\r\nm=audio 9 UDP 0\r\n").is_some());
        assert!(
            data_section_problem("m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n").is_some()
        );
    }

    #[test]
    fn a_pinned_fingerprint_must_be_the_one_the_stack_will_use() {
        assert_eq!(check_fingerprint(SDP, "ab:cd:ef"), Ok(()));
        assert!(check_fingerprint(SDP, "00:00").is_err());
        // An attacker's fingerprint first, the expected one second: the
        // stack would use the first, so this must fail.
        let spoof = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 66:66\r\na=fingerprint:sha-256 AB:CD:EF\r\n";
        assert!(check_fingerprint(spoof, "ab:cd:ef").is_err());
        // Session level right, media level wrong.
        let split = "v=0\r\na=fingerprint:sha-256 AB:CD:EF\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 66:66\r\n";
        assert!(check_fingerprint(split, "ab:cd:ef").is_err());
        // aiortc lists sha-256 first, then sha-384 and sha-512: fine.
        let aiortc = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 AB:CD:EF\r\na=fingerprint:sha-384 11:22\r\na=fingerprint:sha-512 33:44\r\n";
        assert_eq!(check_fingerprint(aiortc, "ab:cd:ef"), Ok(()));
        assert_eq!(check_fingerprint("v=0\r\n", "ab:cd:ef"), Err("none".into()));
        assert!(is_sha256_fingerprint(&["ab"; 32].join(":")));
        assert!(!is_sha256_fingerprint("ab:cd"));
    }

    #[test]
    fn absent_and_zero_limits_follow_rfc_8841() {
        let absent = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n";
        assert_eq!(max_message_size(absent), MessageSizeLimit::Absent);
        let zero = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=max-message-size:0\r\n";
        assert_eq!(max_message_size(zero), MessageSizeLimit::Unlimited);
        assert_eq!(max_message_size("v=0\r\n"), MessageSizeLimit::Absent);
    }
}
