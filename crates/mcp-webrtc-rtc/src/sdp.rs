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

/// Every `a=fingerprint:sha-256 …` value in the description, normalized.
pub(crate) fn fingerprints(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))
        .filter(|v| {
            v.len() > 8
                && v.get(..8)
                    .is_some_and(|a| a.eq_ignore_ascii_case("sha-256 "))
        })
        .map(normalize_fingerprint)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB:CD:EF\r\nm=audio 9 UDP 0\r\na=mid:a\r\na=max-message-size:1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:data\r\na=max-message-size:262144\r\n";

    #[test]
    fn reads_the_data_section_only() {
        assert_eq!(max_message_size(SDP), MessageSizeLimit::Bytes(262_144));
        assert_eq!(data_section_mid(SDP), (Some("data".into()), Some(1)));
        assert_eq!(fingerprints(SDP), vec!["ab:cd:ef".to_owned()]);
        assert_eq!(normalize_fingerprint("sha-256 AB:CD:EF"), "ab:cd:ef");
        assert_eq!(normalize_fingerprint("AB:CD:EF"), "ab:cd:ef");
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
