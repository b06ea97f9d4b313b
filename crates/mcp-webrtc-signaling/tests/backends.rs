//! Every backend over its real transport: loopback TCP, Unix sockets, pipes
//! and channels. Each test is bounded by a timeout.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use mcp_webrtc_signaling::{
    ChannelSignaling, CopyPasteSignaling, Dialect, Error, LineChannelSignaling, MemorySignaling,
    Options, SignalMessage, Signaling, TcpSignaling, UnixSignaling,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(10);

fn offer() -> SignalMessage {
    SignalMessage::Offer("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n".into())
}

fn candidate() -> SignalMessage {
    SignalMessage::Candidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    }
}

/// offer → answer + candidate → bye, both ways, then both ends see the end.
async fn conversation(a: &mut dyn Signaling, b: &mut dyn Signaling) {
    a.send(offer()).await.unwrap();
    assert_eq!(b.recv().await.unwrap(), Some(offer()));
    b.send(SignalMessage::Answer("v=0\r\n".into()))
        .await
        .unwrap();
    b.send(candidate()).await.unwrap();
    assert_eq!(
        a.recv().await.unwrap(),
        Some(SignalMessage::Answer("v=0\r\n".into()))
    );
    assert_eq!(a.recv().await.unwrap(), Some(candidate()));
    a.close().await.unwrap();
    assert_eq!(b.recv().await.unwrap(), None, "bye ends the stream");
    assert_eq!(b.recv().await.unwrap(), None, "and it stays ended");
    assert!(matches!(a.send(offer()).await, Err(Error::Closed)));
    b.close().await.unwrap();
    b.close().await.unwrap();
}

async fn tcp_pair() -> (TcpSignaling, TcpSignaling) {
    let listener = TcpSignaling::bind("127.0.0.1:0", Options::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(
        listener.accept(),
        TcpSignaling::connect(addr, Options::default())
    );
    (a.unwrap(), b.unwrap())
}

#[tokio::test]
async fn memory_pair_converses_and_ends_with_bye() {
    tokio::time::timeout(T, async {
        let (mut a, mut b) = MemorySignaling::pair();
        conversation(&mut a, &mut b).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn memory_peer_dropped_without_bye_is_an_error_once() {
    tokio::time::timeout(T, async {
        let (a, mut b) = MemorySignaling::pair();
        drop(a);
        assert!(matches!(b.recv().await, Err(Error::PeerClosed)));
        assert_eq!(b.recv().await.unwrap(), None);
        assert!(matches!(b.send(offer()).await, Err(Error::PeerClosed)));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn memory_recv_is_cancel_safe() {
    tokio::time::timeout(T, async {
        let (mut a, mut b) = MemorySignaling::pair();
        // A recv that is cancelled before anything arrives loses nothing.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), b.recv())
                .await
                .is_err()
        );
        a.send(offer()).await.unwrap();
        assert_eq!(b.recv().await.unwrap(), Some(offer()));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn boxed_signaling_is_a_signaling() {
    tokio::time::timeout(T, async {
        let (a, b) = MemorySignaling::pair();
        let mut a: Box<dyn Signaling> = Box::new(a);
        let mut b: Box<dyn Signaling> = Box::new(b);
        conversation(&mut a, &mut b).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn tcp_converses_over_loopback() {
    tokio::time::timeout(T, async {
        let (mut a, mut b) = tcp_pair().await;
        assert!(a.peer_addr().unwrap().ip().is_loopback());
        conversation(&mut a, &mut b).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn tcp_writes_aiortc_lines_on_the_wire() {
    tokio::time::timeout(T, async {
        let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = raw.local_addr().unwrap();
        let (accepted, sig) = tokio::join!(raw.accept(), TcpSignaling::connect(addr, Options::default()));
        let (stream, _) = accepted.unwrap();
        let mut sig = sig.unwrap();
        sig.send(candidate()).await.unwrap();
        sig.close().await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            r#"{"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", "id": "0", "label": 0, "type": "candidate"}"#
        );
        assert_eq!(lines.next_line().await.unwrap().unwrap(), r#"{"type": "bye"}"#);
        assert_eq!(lines.next_line().await.unwrap(), None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn tcp_connect_retries_until_the_listener_appears() {
    tokio::time::timeout(T, async {
        // Reserve a free port, release it, and listen on it only later.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let late = tokio::spawn({
            let addr = addr.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                TcpSignaling::listen(addr.as_str()).await.unwrap()
            }
        });
        let mut b = TcpSignaling::connect(addr.as_str(), Options::default())
            .await
            .unwrap();
        let mut a = late.await.unwrap();
        conversation(&mut a, &mut b).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn tcp_connect_gives_up_at_its_deadline() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = Options::default().with_connect_timeout(Duration::from_millis(400));
    let start = Instant::now();
    let e = TcpSignaling::connect(format!("127.0.0.1:{port}"), options)
        .await
        .unwrap_err();
    let took = start.elapsed();
    match &e {
        Error::ConnectFailed {
            target, attempts, ..
        } => {
            assert_eq!(target, &format!("127.0.0.1:{port}"));
            assert!(*attempts >= 3, "{e}");
        }
        other => panic!("{other}"),
    }
    assert!(took < Duration::from_secs(2), "gave up after {took:?}");
}

#[tokio::test]
async fn tcp_accept_has_a_deadline() {
    let options = Options::default().with_connect_timeout(Duration::from_millis(200));
    let listener = TcpSignaling::bind("127.0.0.1:0", options).await.unwrap();
    let e = listener.accept().await.unwrap_err();
    assert!(
        matches!(&e, Error::Timeout { operation, .. } if operation.starts_with("accept")),
        "{e}"
    );
}

#[tokio::test]
async fn tcp_bad_lines_are_reported_and_the_stream_reads_on() {
    tokio::time::timeout(T, async {
        let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = raw.local_addr().unwrap();
        let options = Options::default().with_max_message_size(1024);
        let (accepted, sig) = tokio::join!(raw.accept(), TcpSignaling::connect(addr, options));
        let (mut stream, _) = accepted.unwrap();
        let mut sig = sig.unwrap();
        let long = "x".repeat(5000);
        let mut input =
            format!("not json\n{{\"type\": \"renegotiate\"}}\n\n{long}\n{{\"type\": \"offer\"}}\n")
                .into_bytes();
        input.extend_from_slice(b"\xff\n");
        input.extend_from_slice(
            format!(
                "{}\n{{\"type\": \"bye\"}}\n",
                Dialect::Aiortc.encode(&offer()).unwrap()
            )
            .as_bytes(),
        );
        stream.write_all(&input).await.unwrap();
        let e = sig.recv().await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidJson {
                    dialect: Dialect::Aiortc,
                    ..
                }
            ),
            "{e}"
        );
        let e = sig.recv().await.unwrap_err();
        assert!(matches!(e, Error::UnknownType { .. }), "{e}");
        let e = sig.recv().await.unwrap_err();
        assert!(
            matches!(e, Error::MessageTooLarge { limit: 1024, .. }),
            "{e}"
        );
        let e = sig.recv().await.unwrap_err();
        assert!(matches!(e, Error::MissingField { field: "sdp", .. }), "{e}");
        let e = sig.recv().await.unwrap_err();
        assert!(e.is_per_message(), "{e}");
        assert_eq!(sig.recv().await.unwrap(), Some(offer()));
        assert_eq!(sig.recv().await.unwrap(), None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_line_of_exactly_the_limit_is_taken_whatever_its_line_ending() {
    tokio::time::timeout(T, async {
        const LIMIT: usize = 300;
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut sig = mcp_webrtc_signaling::LineSignaling::new(
            ours,
            Dialect::Aiortc,
            Options::default().with_max_message_size(LIMIT),
        );
        // An offer whose line is `len` bytes long, without its ending.
        let sized = |len: usize| {
            let bare = Dialect::Aiortc
                .encode(&SignalMessage::Offer(String::new()))
                .unwrap();
            let sdp = "v".repeat(len - bare.len());
            let line = Dialect::Aiortc
                .encode(&SignalMessage::Offer(sdp.clone()))
                .unwrap();
            assert_eq!(line.len(), len);
            (line, SignalMessage::Offer(sdp))
        };
        let (exact, exact_offer) = sized(LIMIT);
        let (over, _) = sized(LIMIT + 1);
        let input = format!("{exact}\r\n{exact}\n{over}\r\n{over}\n{exact}\n");
        theirs.write_all(input.as_bytes()).await.unwrap();
        assert_eq!(sig.recv().await.unwrap(), Some(exact_offer.clone()), "CRLF");
        assert_eq!(sig.recv().await.unwrap(), Some(exact_offer.clone()), "LF");
        for ending in ["CRLF", "LF"] {
            let e = sig.recv().await.unwrap_err();
            assert!(
                matches!(e, Error::MessageTooLarge { size, limit: LIMIT } if size > LIMIT),
                "{ending}: {e}"
            );
        }
        assert_eq!(sig.recv().await.unwrap(), Some(exact_offer), "reads on");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn tcp_peer_that_vanishes_without_bye_ends_the_stream_with_an_error() {
    tokio::time::timeout(T, async {
        let (a, mut b) = tcp_pair().await;
        drop(a);
        let e = b.recv().await.unwrap_err();
        assert!(matches!(e, Error::PeerClosed), "{e}");
        // No busy loop: the stream is over, and says so at once.
        for _ in 0..1000 {
            assert_eq!(b.recv().await.unwrap(), None);
        }
        // Closing toward a vanished peer still returns.
        b.close().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn tcp_recv_is_cancel_safe_mid_line() {
    tokio::time::timeout(T, async {
        let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = raw.local_addr().unwrap();
        let (accepted, sig) = tokio::join!(
            raw.accept(),
            TcpSignaling::connect(addr, Options::default())
        );
        let (mut stream, _) = accepted.unwrap();
        let mut sig = sig.unwrap();
        let line = Dialect::Aiortc.encode(&offer()).unwrap();
        let (first, second) = line.split_at(10);
        stream.write_all(first.as_bytes()).await.unwrap();
        // Cancel a recv that has read half a line.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), sig.recv())
                .await
                .is_err()
        );
        stream
            .write_all(format!("{second}\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(sig.recv().await.unwrap(), Some(offer()));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn unix_converses_and_cleans_up_its_socket_file() {
    tokio::time::timeout(T, async {
        let dir = tempdir();
        let path = dir.join("sig.sock");
        let listener = UnixSignaling::bind(&path, Options::default())
            .await
            .unwrap();
        assert!(path.exists());
        let (a, b) = tokio::join!(
            listener.accept(),
            UnixSignaling::connect(&path, Options::default())
        );
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        conversation(&mut a, &mut b).await;
        assert!(!path.exists(), "the listener removes its socket on close");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn unix_replaces_a_stale_socket_but_not_a_live_one_or_a_file() {
    tokio::time::timeout(T, async {
        let dir = tempdir();
        let path = dir.join("stale.sock");
        // A socket file whose listener is gone (as after a crash).
        let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(std_listener);
        assert!(path.exists());
        let live = UnixSignaling::bind(&path, Options::default())
            .await
            .unwrap();
        // Now a live listener holds it.
        let e = UnixSignaling::bind(&path, Options::default())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AddressInUse { .. }), "{e}");
        drop(live);
        assert!(!path.exists(), "dropping the listener removes the file");
        // A regular file is never deleted.
        let file = dir.join("not-a-socket");
        std::fs::write(&file, b"keep me").unwrap();
        let e = UnixSignaling::bind(&file, Options::default())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AddressInUse { .. }), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn unix_connect_retries_until_the_listener_appears() {
    tokio::time::timeout(T, async {
        let dir = tempdir();
        let path = dir.join("late.sock");
        let late = tokio::spawn({
            let path = path.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                UnixSignaling::listen(&path).await.unwrap()
            }
        });
        let mut b = UnixSignaling::connect(&path, Options::default())
            .await
            .unwrap();
        let mut a = late.await.unwrap();
        conversation(&mut a, &mut b).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn copy_paste_prints_and_reads_aiortc_lines() {
    tokio::time::timeout(T, async {
        let (user_in, sig_in) = tokio::io::duplex(4096);
        let (sig_out, user_out) = tokio::io::duplex(4096);
        let mut sig = CopyPasteSignaling::new(sig_in, sig_out, Options::default());
        let mut user_in = user_in;
        let mut screen = BufReader::new(user_out).lines();

        sig.send(offer()).await.unwrap();
        assert_eq!(
            screen.next_line().await.unwrap().unwrap(),
            "-- Please send this message to the remote party --"
        );
        let printed = screen.next_line().await.unwrap().unwrap();
        assert_eq!(
            Dialect::Aiortc.decode(printed.as_bytes(), 1 << 20).unwrap(),
            offer()
        );
        assert_eq!(screen.next_line().await.unwrap().unwrap(), "");

        // The user pastes the answer (with stray blank lines around it).
        let answer = Dialect::Aiortc
            .encode(&SignalMessage::Answer("v=0\r\n".into()))
            .unwrap();
        user_in
            .write_all(format!("\n\n{answer}\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(
            sig.recv().await.unwrap(),
            Some(SignalMessage::Answer("v=0\r\n".into()))
        );
        assert_eq!(
            screen.next_line().await.unwrap().unwrap(),
            "-- Please enter a message from remote party --"
        );
        // A garbled paste is reported; the next one works.
        user_in
            .write_all(b"{\"type\": \"answ\n{\"type\": \"bye\"}\n")
            .await
            .unwrap();
        assert!(sig.recv().await.unwrap_err().is_per_message());
        assert_eq!(sig.recv().await.unwrap(), None);
        // The user closes the terminal: the stream ends with an error, once.
        let (sig_in, _) = tokio::io::duplex(16);
        let mut sig2 = CopyPasteSignaling::new(sig_in, tokio::io::sink(), Options::default());
        assert!(matches!(sig2.recv().await, Err(Error::PeerClosed)));
        assert_eq!(sig2.recv().await.unwrap(), None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn channel_adapter_carries_signaling_over_a_users_link() {
    tokio::time::timeout(T, async {
        let (a_tx, b_rx) = futures::channel::mpsc::channel::<SignalMessage>(8);
        let (b_tx, a_rx) = futures::channel::mpsc::channel::<SignalMessage>(8);
        let mut a = ChannelSignaling::new(a_tx, a_rx);
        let mut b = ChannelSignaling::new(b_tx, b_rx);
        conversation(&mut a, &mut b).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn line_channel_adapter_speaks_a_dialect_over_strings() {
    tokio::time::timeout(T, async {
        let (a_tx, mut wire) = futures::channel::mpsc::channel::<String>(8);
        let (mut inject, a_rx) = futures::channel::mpsc::channel::<String>(8);
        let mut a = LineChannelSignaling::new(a_tx, a_rx, Dialect::W3c, Options::default());
        a.send(candidate()).await.unwrap();
        let text = wire.next().await.unwrap();
        assert!(text.contains("\"sdpMLineIndex\":0"), "{text}");
        use futures::SinkExt;
        inject.send("garbage".into()).await.unwrap();
        inject
            .send(r#"{"type":"answer","sdp":"v=0"}"#.into())
            .await
            .unwrap();
        assert!(a.recv().await.unwrap_err().is_per_message());
        assert_eq!(
            a.recv().await.unwrap(),
            Some(SignalMessage::Answer("v=0".into()))
        );
        drop(inject);
        assert!(matches!(a.recv().await, Err(Error::PeerClosed)));
        assert_eq!(a.recv().await.unwrap(), None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_stream_that_goes_quiet_mid_handshake_does_not_spin() {
    // A peer that connects and then says nothing: recv simply waits (the
    // caller's handshake timeout bounds it) without burning CPU.
    let (_a, mut b) = tcp_pair().await;
    let start = Instant::now();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b.recv())
            .await
            .is_err()
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn tcp_stream_accepts_raw_client() {
    // A plain TCP client that speaks aiortc's dialect by hand.
    tokio::time::timeout(T, async {
        let listener = TcpSignaling::bind("127.0.0.1:0", Options::default())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"{\"sdp\": \"v=0\\r\\n\", \"type\": \"offer\"}\n{\"type\": \"bye\"}\n")
                .await
                .unwrap();
            s
        });
        let mut sig = listener.accept().await.unwrap();
        assert_eq!(
            sig.recv().await.unwrap(),
            Some(SignalMessage::Offer("v=0\r\n".into()))
        );
        assert_eq!(sig.recv().await.unwrap(), None);
        drop(client.await.unwrap());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn unix_bind_leaves_a_live_one_shot_listener_alone() {
    tokio::time::timeout(T, async {
        let dir = tempdir();
        let path = dir.join("live.sock");
        let listener = UnixSignaling::bind(&path, Options::default())
            .await
            .unwrap();
        let accepting = tokio::spawn(listener.accept());
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A second bind must notice the live listener without connecting to
        // it (a probe would be taken as the one peer).
        let e = UnixSignaling::bind(&path, Options::default())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AddressInUse { .. }), "{e}");
        assert!(
            !accepting.is_finished(),
            "the listener is still waiting for its peer"
        );
        let mut b = UnixSignaling::connect(&path, Options::default())
            .await
            .unwrap();
        let mut a = accepting.await.unwrap().unwrap();
        conversation(&mut a, &mut b).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_send_that_timed_out_part_way_poisons_the_writer() {
    tokio::time::timeout(T, async {
        // A peer that never reads, behind a 64-byte pipe.
        let (ours, _theirs) = tokio::io::duplex(64);
        let options = Options::default().with_io_timeout(Duration::from_millis(100));
        let mut sig = mcp_webrtc_signaling::LineSignaling::new(ours, Dialect::Aiortc, options);
        let e = sig
            .send(SignalMessage::Offer("x".repeat(1000)))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        // Half a line may be out: nothing more is appended to it.
        assert!(matches!(sig.send(offer()).await, Err(Error::Closed)));
        // close skips the bye and still returns promptly.
        let start = Instant::now();
        sig.close().await.ok();
        assert!(start.elapsed() < Duration::from_secs(1));
    })
    .await
    .unwrap();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mcp-webrtc-sig-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
