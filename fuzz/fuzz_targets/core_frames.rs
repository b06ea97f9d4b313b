//! A negotiated receiver fed arbitrary binary frames never panics and never
//! holds more than its bounds. The input is split into frames at 0xFF bytes.
#![no_main]
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mcp_webrtc_core::{ChannelInfo, Config, Framer, PROTOCOL, Role, Transmit};

fuzz_target!(|data: &[u8]| {
    let config = Config::default()
        .with_max_message_size(1 << 16)
        .with_max_buffered_bytes(1 << 17)
        .with_max_in_flight(4);
    let channel = ChannelInfo::new(PROTOCOL, None);
    let mut offerer = Framer::new(Role::Offerer, config, &channel).expect("config");
    let mut answerer = Framer::new(Role::Answerer, config, &channel).expect("config");
    while let Some(Transmit::Binary(hello)) = answerer.poll_transmit() {
        let _ = offerer.receive_binary(&hello.to_bytes(), Instant::now());
    }
    for frame in data.split(|&b| b == 0xFF) {
        let _ = offerer.receive_binary(frame, Instant::now());
        assert!(offerer.in_flight() <= 4);
        assert!(offerer.buffered_bytes() <= 1 << 17);
        let _ = offerer.receive_text(bytes::Bytes::copy_from_slice(frame));
    }
});
