//! TURN over TCP for a stack that speaks TURN over UDP only.
//!
//! The `webrtc` crate skips `turn:…?transport=tcp` (webrtc-rs/webrtc#539,
//! #848). For each such server, [`TcpTurnBridge`] listens on a UDP port on
//! 127.0.0.1, and the stack is pointed at it as an ordinary UDP TURN server.
//! Each datagram from the local socket it serves is carried over one TCP connection to
//! the real server, framed as RFC 8656 §6.2.2 says for TCP: STUN messages as
//! they are (their length is in their header), ChannelData messages padded
//! to a multiple of 4 bytes. What comes back is split into the same
//! messages and sent to the local socket as datagrams. The allocation, its
//! relayed address and its permissions are the server's own: the TURN
//! client neither knows nor cares that a bridge is in the middle. The
//! relayed transport stays UDP (RFC 6062 TCP allocations are not needed).
//! What goes to the server is paced ([`PACE_BYTES`]), as coturn drops what
//! piles up for a TCP client (which helps where the other peer is on TCP
//! too: coturn's limit is on the leg to the receiver).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Datagrams queued for one TCP connection before more are dropped (UDP
/// semantics: the stack's SCTP retransmits).
const QUEUE: usize = 4096;
/// Bytes queued for one TCP connection before more are dropped: room for
/// what the pacing below holds back of a burst the size of the stack's
/// receive window (1 MiB), twice over.
const QUEUE_BYTES: usize = 2 * 1024 * 1024;
/// At most this much goes to the server per [`PACE_STEP`]. coturn drops a
/// datagram bound for a TCP client once 32 KiB wait for that connection
/// (`BUFFEREVENT_MAX_UDP_TO_TCP_WRITE`), and a burst that reaches it does
/// so within one pass of its event loop: sent unpaced, 1 MiB lost a burst's
/// tail in most runs on 127.0.0.1, and the stack's SCTP repairs a tail only
/// after its 1 s retransmission timeout (0.2–3.5 s for 1 MiB). At 16 KiB
/// per step no run lost one (8 of 8, 0.15–0.36 s); 24 and 32 KiB lost
/// again. A step starts when the writer is let through after a wait,
/// which ends on tokio's millisecond tick after the deadline, so a busy
/// step lasts about 2 ms: about 8 MB/s at most (5 MiB took 0.76 s in the
/// lab). This helps where the sending peer is ours and on TCP as well;
/// what a peer on UDP sends to ours on TCP meets coturn's limit unpaced.
const PACE_BYTES: usize = 16 * 1024;
/// See [`PACE_BYTES`].
const PACE_STEP: Duration = Duration::from_millis(1);
/// The largest message either way: a STUN or ChannelData header and a
/// 16-bit length, padded.
const MAX_MESSAGE: usize = 65_544;

/// A running bridge; it stops when dropped.
#[derive(Debug)]
pub(crate) struct TcpTurnBridge {
    /// Where the stack sends its TURN datagrams.
    pub(crate) local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TcpTurnBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The 4-byte header of a STUN or ChannelData message: its first byte and
/// the 16-bit length it declares.
fn header(buf: &[u8]) -> Option<(u8, usize)> {
    let [first, _, high, low] = *buf.first_chunk::<4>()?;
    Some((first, usize::from(u16::from_be_bytes([high, low]))))
}

/// `n` rounded up to a multiple of 4 (`n` is at most 65,539).
fn padded(n: usize) -> usize {
    n.div_ceil(4).saturating_mul(4)
}

/// The length of the message at the front of `buf` as it travels over TCP
/// (padding included), once its 4-byte header is there; `Err` for bytes
/// that are neither STUN nor ChannelData.
pub(crate) fn framed_len(buf: &[u8]) -> Option<Result<usize, u8>> {
    let (first, length) = header(buf)?;
    Some(match first >> 6 {
        // STUN: a 20-byte header and a body that is a multiple of 4.
        0 => Ok(length.saturating_add(20)),
        // ChannelData (channel numbers 0x4000..=0x7FFF): padded over TCP.
        1 => Ok(padded(length.saturating_add(4))),
        _ => Err(first),
    })
}

/// A datagram from the stack as it goes over TCP: ChannelData padded to 4;
/// `None` for anything that is neither STUN nor ChannelData.
pub(crate) fn to_stream(datagram: &[u8]) -> Option<Vec<u8>> {
    let len = stream_len(datagram)?;
    let (first, length) = header(datagram)?;
    let body = if first >> 6 == 0 {
        datagram
    } else {
        datagram.get(..length.saturating_add(4))?
    };
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(body);
    out.resize(len, 0);
    Some(out)
}

/// How long [`to_stream`] makes `datagram`, without making it: `None` for
/// anything that is neither STUN nor ChannelData.
pub(crate) fn stream_len(datagram: &[u8]) -> Option<usize> {
    let (first, length) = header(datagram)?;
    match first >> 6 {
        0 if datagram.len() == length.saturating_add(20) => Some(datagram.len()),
        1 if datagram.len() >= length.saturating_add(4) => Some(padded(length.saturating_add(4))),
        _ => None,
    }
}

/// A message read from TCP as it goes to the stack: ChannelData without
/// its padding.
pub(crate) fn to_datagram(message: &[u8]) -> &[u8] {
    match header(message) {
        Some((first, length)) if first >> 6 == 1 => {
            message.get(..length.saturating_add(4)).unwrap_or(message)
        }
        _ => message,
    }
}

/// Spaces what goes to the server: at most [`PACE_BYTES`] per
/// [`PACE_STEP`] (a message larger than that goes alone).
#[derive(Debug)]
pub(crate) struct Pacer {
    step_start: Instant,
    sent: usize,
}

impl Pacer {
    pub(crate) fn new(now: Instant) -> Pacer {
        Pacer {
            step_start: now,
            sent: 0,
        }
    }

    /// Account for `len` bytes about to go at `now`: `None` to send them
    /// now, or the instant to wait for first (then call again).
    pub(crate) fn admit(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let next = self.step_start.checked_add(PACE_STEP)?;
        if now >= next {
            self.step_start = now;
            self.sent = 0;
        } else if self.sent > 0 && self.sent.saturating_add(len) > PACE_BYTES {
            return Some(next);
        }
        self.sent = self.sent.saturating_add(len);
        None
    }
}

impl TcpTurnBridge {
    /// Bridge to `server` (host:port, resolved now). Each TCP connection is
    /// opened on the first datagram from a local socket, within
    /// `connect_timeout`.
    /// Its UDP socket gets `buffer` bytes each way, as the stack's own
    /// sockets do: with the default (208 KiB) a burst from the stack
    /// overflows it, and the losses slow SCTP to a crawl.
    pub(crate) async fn start(
        server: &str,
        connect_timeout: Duration,
        buffer: usize,
    ) -> std::io::Result<TcpTurnBridge> {
        let target = tokio::net::lookup_host(server)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{server}: no address")))?;
        let udp = UdpSocket::bind(("127.0.0.1", 0)).await?;
        let tune = socket2::SockRef::from(&udp);
        if let Err(e) = tune
            .set_recv_buffer_size(buffer)
            .and_then(|()| tune.set_send_buffer_size(buffer))
        {
            tracing::debug!(error = %e, "TURN/TCP bridge: could not enlarge the UDP buffers");
        }
        let udp = Arc::new(udp);
        let local = udp.local_addr()?;
        let task = tokio::spawn(run(udp, target, connect_timeout));
        Ok(TcpTurnBridge { local, task })
    }
}

/// One local socket is served: the first that sends (until its TCP
/// connection ends). The stack runs a TURN client on each of its sockets,
/// and every one of them can reach 127.0.0.1; two allocations through one
/// bridge stalled the data in the network lab, while one relay candidate is
/// all a relay path needs. The others get no answer, so no relay candidate
/// from this server.
async fn run(udp: Arc<UdpSocket>, target: SocketAddr, connect_timeout: Duration) {
    let mut served: Option<(SocketAddr, mpsc::Sender<Queued>)> = None;
    let budget = Arc::new(Semaphore::new(QUEUE_BYTES));
    let mut buf = vec![0u8; MAX_MESSAGE];
    // Bounded by the socket: each pass takes one datagram.
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else {
            return;
        };
        let datagram = buf.get(..n).unwrap_or_default();
        let Some(len) = stream_len(datagram) else {
            tracing::debug!(%from, n, "TURN/TCP bridge: not STUN or ChannelData; dropped");
            continue;
        };
        if served.as_ref().is_some_and(|(_, tx)| tx.is_closed()) {
            served = None;
        }
        let tx = match &served {
            Some((source, tx)) if *source == from => tx.clone(),
            Some(_) => continue,
            None => {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(connection(
                    Arc::clone(&udp),
                    from,
                    target,
                    connect_timeout,
                    rx,
                ));
                served = Some((from, tx.clone()));
                tx
            }
        };
        // The budget first, then the copy.
        let Some(permit) = u32::try_from(len)
            .ok()
            .and_then(|n| Arc::clone(&budget).try_acquire_many_owned(n).ok())
        else {
            tracing::debug!(%from, "TURN/TCP bridge: queue full (bytes); datagram dropped");
            continue;
        };
        let Some(framed) = to_stream(datagram) else {
            continue;
        };
        if tx.try_send((framed, permit)).is_err() {
            tracing::debug!(%from, "TURN/TCP bridge: queue full; datagram dropped");
        }
    }
}

/// A framed message on its way to the server, with the share of
/// [`QUEUE_BYTES`] it holds until written.
type Queued = (Vec<u8>, OwnedSemaphorePermit);

/// One local socket's TCP connection to the server.
async fn connection(
    udp: Arc<UdpSocket>,
    source: SocketAddr,
    target: SocketAddr,
    connect_timeout: Duration,
    mut rx: mpsc::Receiver<Queued>,
) {
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(%target, error = %e, "TURN over TCP: cannot connect to the server");
            return;
        }
        Err(_) => {
            tracing::warn!(%target, after = ?connect_timeout, "TURN over TCP: connecting to the server timed out");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let writer = async move {
        let mut pacer = Pacer::new(Instant::now());
        // Bounded by the channel: it ends when the bridge drops its sender.
        // The pacing wait is at most one step, and happens once per message.
        while let Some((message, _permit)) = rx.recv().await {
            if let Some(until) = pacer.admit(Instant::now(), message.len()) {
                tokio::time::sleep_until(until).await;
                let _ = pacer.admit(Instant::now(), message.len());
            }
            if write.write_all(&message).await.is_err() {
                return;
            }
        }
    };
    let reader = async move {
        let mut buf: Vec<u8> = Vec::with_capacity(MAX_MESSAGE);
        let mut chunk = vec![0u8; 64 * 1024];
        // Bounded by the stream: it ends at EOF or an error.
        loop {
            // Every whole message in the buffer goes out first.
            while let Some(len) = framed_len(&buf) {
                let Ok(len) = len else {
                    tracing::warn!(%target, "TURN over TCP: the server sent neither STUN nor ChannelData; closing");
                    return;
                };
                let Some(message) = buf.get(..len) else {
                    break;
                };
                let _ = udp.send_to(to_datagram(message), source).await;
                buf.drain(..len);
            }
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stun_passes_as_is_and_channel_data_is_padded_over_tcp() {
        // A STUN binding request header with an empty body.
        let stun = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42]
            .iter()
            .copied()
            .chain([0u8; 12])
            .collect::<Vec<_>>();
        assert_eq!(to_stream(&stun).unwrap(), stun);
        assert_eq!(framed_len(&stun), Some(Ok(20)));
        // ChannelData 0x4000 with 5 bytes: 9 on UDP, 12 over TCP.
        let data = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5];
        let framed = to_stream(&data).unwrap();
        assert_eq!(framed, [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(framed_len(&framed), Some(Ok(12)));
        assert_eq!(to_datagram(&framed), &data);
        // The budget is taken for what the copy holds: no more, no less.
        for datagram in [
            &stun[..],
            &data[..],
            &[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4, 9, 9][..],
        ] {
            let framed = to_stream(datagram).unwrap();
            assert_eq!(stream_len(datagram), Some(framed.len()));
            assert_eq!(framed.capacity(), framed.len());
        }
        assert_eq!(
            stream_len(&[0x40, 0x00, 0x00, 0x05, 1, 2]),
            None,
            "shorter than it says"
        );
    }

    #[test]
    fn the_pacer_lets_16_kib_through_per_step() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0);
        let datagram = 1_200;
        let mut sent = 0;
        while pacer.admit(t0, datagram).is_none() {
            sent += datagram;
            assert!(sent <= PACE_BYTES, "{sent} bytes in one step");
        }
        assert!(
            sent > PACE_BYTES - datagram,
            "only {sent} bytes in one step"
        );
        // Held until the next step, then let through.
        assert_eq!(pacer.admit(t0, datagram), Some(t0 + PACE_STEP));
        assert_eq!(pacer.admit(t0 + PACE_STEP, datagram), None);
        // A message larger than a step's share still goes, alone.
        let mut fresh = Pacer::new(t0);
        assert_eq!(fresh.admit(t0, 60_000), None);
        assert_eq!(fresh.admit(t0, 1), Some(t0 + PACE_STEP));
    }

    #[test]
    fn anything_else_is_refused_and_partial_headers_wait() {
        assert_eq!(to_stream(&[0xC0, 0, 0, 0]), None);
        assert_eq!(to_stream(&[0x00, 0x01, 0x00, 0x08]), None); // STUN shorter than it says
        assert_eq!(framed_len(&[0x00, 0x01]), None);
        assert_eq!(framed_len(&[0x80, 0, 0, 0]), Some(Err(0x80)));
    }
}
