//! The framer's timers under simulated time: the peer's HELLO and
//! incomplete inbound messages. No clock is read; every instant is made up.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::negotiated;
use mcp_webrtc_core::wire::DataHeader;
use mcp_webrtc_core::{ChannelInfo, Config, Error, Framer, PROTOCOL, Role};

fn data(id: u32, offset: u64, total: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = DataHeader { id, offset, total }.encode().to_vec();
    v.extend_from_slice(payload);
    v
}

const S: Duration = Duration::from_secs(1);

#[test]
fn a_stalled_partial_message_expires_and_frees_its_buffer() {
    let config = Config::default().with_partial_timeout(30 * S);
    let (_tx, mut rx) = negotiated(config);
    let t0 = Instant::now();
    assert_eq!(rx.poll_timeout(), None, "no timer before a partial message");

    // The first frame of a 1 MB message reserves its buffer.
    assert_eq!(
        rx.receive_binary(&data(7, 0, 1_000_000, b"{"), t0),
        Ok(None)
    );
    assert_eq!(rx.buffered_bytes(), 1_000_000);
    assert_eq!(rx.poll_timeout(), Some(t0 + 30 * S));

    // Progress restarts the message's timer.
    let t1 = t0 + 20 * S;
    assert_eq!(
        rx.receive_binary(&data(7, 1, 1_000_000, b"x"), t1),
        Ok(None)
    );
    assert_eq!(rx.poll_timeout(), Some(t1 + 30 * S));
    assert!(
        rx.handle_timeout(t0 + 40 * S).is_empty(),
        "still making progress"
    );
    assert_eq!(rx.in_flight(), 1);

    // No frame for 30 s: dropped, with a typed error naming it.
    let errors = rx.handle_timeout(t1 + 30 * S);
    assert_eq!(
        errors,
        vec![Error::PartialTimeout {
            id: 7,
            received: 2,
            total: 1_000_000,
            after: 30 * S,
        }]
    );
    assert_eq!(rx.in_flight(), 0);
    assert_eq!(rx.buffered_bytes(), 0, "the buffer is freed");
    assert_eq!(rx.poll_timeout(), None);

    // Its late frames are skipped quietly, up to its last.
    let late = t1 + 31 * S;
    assert_eq!(
        rx.receive_binary(&data(7, 2, 1_000_000, b"x"), late),
        Ok(None)
    );
    assert_eq!(rx.in_flight(), 0, "a late frame does not revive it");
    // A new message goes through afterwards.
    assert_eq!(rx.receive_binary(&data(8, 0, 2, b"{"), late), Ok(None));
    assert_eq!(
        rx.receive_binary(&data(8, 1, 2, b"}"), late),
        Ok(Some(Bytes::from_static(b"{}")))
    );
}

#[test]
fn only_the_stalled_message_expires() {
    let config = Config::default().with_partial_timeout(10 * S);
    let (_tx, mut rx) = negotiated(config);
    let t0 = Instant::now();
    rx.receive_binary(&data(1, 0, 100, b"{"), t0).unwrap();
    rx.receive_binary(&data(2, 0, 100, b"{"), t0 + 5 * S)
        .unwrap();
    let errors = rx.handle_timeout(t0 + 10 * S);
    assert_eq!(errors.len(), 1);
    assert!(matches!(errors[0], Error::PartialTimeout { id: 1, .. }));
    assert_eq!(rx.in_flight(), 1);
    assert_eq!(rx.buffered_bytes(), 100);
    assert_eq!(rx.poll_timeout(), Some(t0 + 15 * S));
}

#[test]
fn the_hello_timer_runs_from_the_first_time_given() {
    let config = Config::default().with_hello_timeout(5 * S);
    let channel = ChannelInfo::new(PROTOCOL, None);
    let mut a = Framer::new(Role::Answerer, config, &channel).unwrap();
    assert_eq!(a.poll_timeout(), None, "no time given yet");
    let t0 = Instant::now();
    assert!(a.handle_timeout(t0).is_empty());
    assert_eq!(a.poll_timeout(), Some(t0 + 5 * S));

    let big = Bytes::from(vec![b'x'; 100_000]);
    a.send(big.clone()).unwrap();
    assert!(a.handle_timeout(t0 + 4 * S).is_empty());
    assert!(a.poll_rejected().is_none(), "still waiting for the HELLO");

    a.handle_timeout(t0 + 5 * S);
    let rejected = a.poll_rejected().unwrap();
    assert_eq!(rejected.message, big);
    assert_eq!(rejected.error, Error::NoPeerHello { size: 100_000 });
    assert_eq!(a.send(big), Err(Error::NoPeerHello { size: 100_000 }));
    assert_eq!(a.poll_timeout(), None, "the HELLO timer is done");
}

#[test]
fn a_hello_in_time_stops_the_timer() {
    let config = Config::default().with_hello_timeout(5 * S);
    let (mut offerer, mut answerer) = negotiated(config);
    let t0 = Instant::now();
    answerer.handle_timeout(t0);
    offerer.handle_timeout(t0);
    assert_eq!(answerer.poll_timeout(), None, "the HELLO arrived");
    answerer.handle_timeout(t0 + 60 * S);
    let big = Bytes::from(vec![b'x'; 100_000]);
    answerer.send(big).unwrap();
    assert!(answerer.poll_rejected().is_none());
    let got = common::deliver_all(&mut answerer, &mut offerer).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), 100_000);
}

#[test]
fn zero_timeouts_are_refused() {
    assert!(matches!(
        Config::default()
            .with_partial_timeout(Duration::ZERO)
            .validate(),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        Config::default()
            .with_hello_timeout(Duration::ZERO)
            .validate(),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn a_timeout_past_what_the_clock_holds_means_never_not_now() {
    let config = Config::default()
        .with_partial_timeout(Duration::MAX)
        .with_hello_timeout(Duration::MAX);
    let channel = ChannelInfo::new(PROTOCOL, None);
    let mut a = Framer::new(Role::Answerer, config, &channel).unwrap();
    let t0 = Instant::now();
    assert!(a.handle_timeout(t0).is_empty());
    assert_eq!(
        a.poll_timeout(),
        None,
        "no HELLO deadline the clock can hold"
    );
    assert!(
        a.awaiting_hello(),
        "and the HELLO is still awaited, not given up"
    );
    let (_tx, mut rx) = negotiated(config);
    rx.receive_binary(&data(1, 0, 100, b"{"), t0).unwrap();
    assert_eq!(rx.poll_timeout(), None, "no expiry the clock can hold");
    assert!(rx.handle_timeout(t0 + 3600 * S).is_empty());
    assert_eq!(rx.in_flight(), 1);
}
