//! The aiortc dialect decoder never panics, and what it accepts re-encodes
//! to something it accepts again, unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_webrtc_signaling::Dialect;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Dialect::Aiortc.decode(data, 1 << 20)
        && let Ok(text) = Dialect::Aiortc.encode(&message)
    {
        let again = Dialect::Aiortc.decode(text.as_bytes(), 1 << 20).expect("re-decodes");
        assert_eq!(again, message);
    }
});
