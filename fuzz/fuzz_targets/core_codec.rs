//! JSON-RPC envelope validation never panics, and agrees with a full parse
//! on what is a JSON object.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_webrtc_core::codec;

fuzz_target!(|data: &[u8]| {
    if codec::validate(data).is_ok() {
        let value: serde_json_value::Value = match serde_json_value::from_slice(data) {
            Ok(v) => v,
            Err(e) => panic!("validate accepted what serde_json rejects: {e}"),
        };
        assert_eq!(value.get("jsonrpc").and_then(|v| v.as_str()), Some("2.0"));
    }
});
