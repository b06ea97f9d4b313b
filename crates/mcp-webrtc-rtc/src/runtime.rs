//! The `webrtc` runtime we hand the stack: tokio, with larger UDP socket
//! buffers, shared timer wake-ups, and extra driver passes for TURN.
//!
//! The stack's SCTP has a fixed minimum retransmission timeout of 1 s
//! (`rtc-sctp` `timer.rs`). A burst that overflows a UDP socket's receive
//! buffer (208 KiB by default on Linux) therefore stalls the channel for a
//! second per loss that fast retransmit does not repair, which made
//! throughput low and erratic. Asking for bigger socket buffers removes most
//! of those drops. The kernel caps the request at `net.core.rmem_max` /
//! `wmem_max`.
//!
//! Long timers are also put on a shared grid. A connected peer connection's
//! driver sleeps until its next protocol deadline, and the ICE agent makes
//! that at most 200 ms away (`rtc-ice` 0.21.1 `Agent::get_timeout_interval`),
//! so a process with hundreds of idle sessions would wake thousands of times
//! a second, each at its own instant. Rounding every sleep of
//! [`COALESCE_FROM`] or longer up to the next multiple of [`GRID`] (from one
//! process-wide epoch) lets those sessions share a wake-up. A deadline so
//! rounded runs late by less than [`GRID`]; shorter sleeps (ICE checks during
//! set-up, the driver's own retries) are left exact.
//!
//! And where a connection's packets go through the stack's TURN client, the
//! driver gets two extra passes after each wake-up ([`RelayFlush`]): without
//! them, what the driver handed to the TURN client waited for the next
//! unrelated wake-up, up to a quarter of a second per hop.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// Sleeps at least this long are rounded up onto the shared grid.
pub(crate) const COALESCE_FROM: Duration = Duration::from_millis(100);

/// The spacing of the shared grid: the most a rounded deadline runs late.
pub(crate) const GRID: Duration = Duration::from_millis(25);

/// The instant the grid counts from, the same for every connection.
static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();

/// When a sleep of `duration` from `now` ends: exactly `now + duration` for a
/// short one, else that rounded up to the next multiple of [`GRID`] after
/// `epoch` (itself if it already is one). `None` if that instant cannot be
/// represented (a practically endless sleep).
fn wake_at(
    epoch: tokio::time::Instant,
    now: tokio::time::Instant,
    duration: Duration,
) -> Option<tokio::time::Instant> {
    let due = now.checked_add(duration)?;
    if duration < COALESCE_FROM {
        return Some(due);
    }
    let grid = GRID.as_nanos();
    let into_step = due
        .saturating_duration_since(epoch)
        .as_nanos()
        .checked_rem(grid)?;
    let late = match into_step {
        0 => 0,
        n => grid.checked_sub(n)?,
    };
    // `late` < `GRID`, so it fits a u64 of nanoseconds.
    due.checked_add(Duration::from_nanos(u64::try_from(late).ok()?))
}

/// How many passes of the driver's loop follow each of its wake-ups when
/// [`RelayFlush`] is on: the two a packet needs to leave through the stack's
/// TURN client (see [`RelayFlush`]).
pub(crate) const FOLLOW_UPS: u8 = 2;

tokio::task_local! {
    /// Set while a task the stack spawned is polled: the peer connection's
    /// driver (`webrtc` 0.21.1 spawns nothing else that sleeps; its other
    /// task only opens ICE-TCP connections).
    static IN_DRIVER: ();
}

/// Extra passes of the driver's loop after each wake-up, for a connection
/// whose traffic goes through the stack's TURN client.
///
/// Each pass of the `webrtc` 0.21.1 driver (`peer_connection/driver.rs`)
/// first takes what the TURN client has queued, then what the connection
/// has to send, and hands packets bound for a relayed candidate to the TURN
/// client, where they wait. Nothing wakes the driver for them: they leave
/// on its next pass, which comes with the next packet or timer (the ICE
/// agent's tick: up to 200 ms, then the grid). A SACK answering data from
/// the relay waits the same way, one pass more. So every hop through TURN
/// cost up to a quarter of a second, and a 1 MiB transfer took 6–45 s over
/// loopback. With this on, each wake-up of the driver is followed by
/// [`FOLLOW_UPS`] passes that only yield, which is what those packets need;
/// an idle connection pays them once per tick.
///
/// The passes are counted from the driver's last real wait, so packets can
/// still wait for the next wake-up when one of the passes is taken by
/// another wake-up (a packet that arrives during it) or ends in a protocol
/// deadline the driver handles without sleeping. A variant that owed all
/// the passes again after such a wake-up (and had three) was measured on
/// 127.0.0.1 and did no better: 1 MiB through TURN over TCP met coturn's
/// drop of datagrams queued for a TCP client past 32 KiB, and the stack's
/// 1 s retransmission timeout, in 11 of 12 runs against 6 of 12, as the
/// quicker passes sent bigger bursts.
#[derive(Debug, Default)]
pub(crate) struct RelayFlush {
    on: AtomicBool,
    owed: AtomicU8,
}

impl RelayFlush {
    /// Turn the extra passes on or off.
    pub(crate) fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// Whether the driver's next sleep should only yield; otherwise (the
    /// driver is about to wait for real) the passes after that wait are
    /// owed.
    fn yield_instead(&self) -> bool {
        if !self.on.load(Ordering::Relaxed) {
            return false;
        }
        let owed = self.owed.load(Ordering::Relaxed);
        if owed > 0 {
            self.owed.store(owed.saturating_sub(1), Ordering::Relaxed);
            true
        } else {
            self.owed.store(FOLLOW_UPS, Ordering::Relaxed);
            false
        }
    }
}

/// Tokio, with the UDP socket buffers set to `buffer` bytes.
#[derive(Debug)]
pub(crate) struct TunedRuntime {
    inner: TokioRuntime,
    buffer: usize,
    relay: Arc<RelayFlush>,
}

impl TunedRuntime {
    pub(crate) fn new(buffer: usize, relay: Arc<RelayFlush>) -> TunedRuntime {
        TunedRuntime {
            inner: TokioRuntime,
            buffer,
            relay,
        }
    }
}

impl Runtime for TunedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(Box::pin(IN_DRIVER.scope((), future)))
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner
            .spawn_reactor(reactor_pool_size, Box::pin(IN_DRIVER.scope((), future)))
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let tune = socket2::SockRef::from(&socket);
        if let Err(e) = tune.set_recv_buffer_size(self.buffer) {
            tracing::debug!(error = %e, "could not enlarge the UDP receive buffer");
        }
        if let Err(e) = tune.set_send_buffer_size(self.buffer) {
            tracing::debug!(error = %e, "could not enlarge the UDP send buffer");
        }
        self.inner.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future);
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        // Only the driver's own sleeps: a sender waiting for room in the
        // send buffer sleeps here too.
        if IN_DRIVER.try_with(|()| ()).is_ok() && self.relay.yield_instead() {
            return Box::pin(tokio::task::yield_now());
        }
        let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
        match wake_at(epoch, tokio::time::Instant::now(), duration) {
            Some(deadline) => Box::pin(tokio::time::sleep_until(deadline)),
            None => self.inner.sleep(duration),
        }
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    use super::*;

    #[test]
    fn a_long_sleep_ends_on_the_grid_and_less_than_one_step_late() {
        let epoch = tokio::time::Instant::now();
        for offset_us in [0_u64, 1, 999, 12_345, 24_999, 25_000, 25_001, 1_234_567] {
            let now = epoch + Duration::from_micros(offset_us);
            for duration in [
                COALESCE_FROM,
                Duration::from_millis(200),
                Duration::from_secs(3),
            ] {
                let deadline = wake_at(epoch, now, duration).unwrap();
                let due = now + duration;
                assert!(deadline >= due, "{offset_us} us, {duration:?}: early");
                assert!(
                    deadline - due < GRID,
                    "{offset_us} us, {duration:?}: a step late"
                );
                let since = (deadline - epoch).as_nanos();
                assert_eq!(
                    since % GRID.as_nanos(),
                    0,
                    "{offset_us} us, {duration:?}: off the grid"
                );
            }
        }
    }

    /// Polls `sleep` twice: whether it finished on the first poll, or on
    /// the second, or neither (a real wait).
    fn polls_to_finish(mut sleep: Pin<Box<dyn Future<Output = ()> + Send>>) -> Option<u8> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        (1..=2).find(|_| sleep.as_mut().poll(&mut cx).is_ready())
    }

    #[test]
    fn with_the_relay_flush_on_each_real_wait_is_followed_by_passes_that_only_yield() {
        let flush = RelayFlush::default();
        assert!(!flush.yield_instead(), "off: a real wait");
        assert!(!flush.yield_instead(), "off: every sleep waits");
        flush.set(true);
        let pattern: Vec<bool> = (0..7).map(|_| flush.yield_instead()).collect();
        assert_eq!(
            pattern,
            [false, true, true, false, true, true, false],
            "a wait, then {FOLLOW_UPS} yields, again and again"
        );
        flush.set(false);
        assert!(!flush.yield_instead());
    }

    #[tokio::test]
    async fn only_the_stacks_own_tasks_get_the_extra_passes() {
        let flush = Arc::new(RelayFlush::default());
        flush.set(true);
        let runtime = Arc::new(TunedRuntime::new(0, Arc::clone(&flush)));
        let hour = Duration::from_secs(3600);
        // A sender waiting for room in the send buffer sleeps in its own
        // task: always a real wait.
        for _ in 0..4 {
            assert_eq!(polls_to_finish(runtime.sleep(hour)), None);
        }
        // The driver: a real wait, then passes that yield (done on the
        // second poll), then a real wait again.
        assert_eq!(
            sleeps_of_a_stack_task(&runtime, 4).await,
            [None, Some(2), Some(2), None]
        );
        // Off (a pair that is not relayed): the driver waits for real.
        flush.set(false);
        assert_eq!(
            sleeps_of_a_stack_task(&runtime, 3).await,
            [None, None, None]
        );
    }

    /// `n` one-hour sleeps in a task spawned as the stack spawns its
    /// driver, each polled as [`polls_to_finish`] does.
    async fn sleeps_of_a_stack_task(runtime: &Arc<TunedRuntime>, n: usize) -> Vec<Option<u8>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inside = Arc::clone(runtime);
        let _task = runtime.spawn(Box::pin(async move {
            let seen: Vec<Option<u8>> = (0..n)
                .map(|_| polls_to_finish(inside.sleep(Duration::from_secs(3600))))
                .collect();
            let _ = tx.send(seen);
        }));
        rx.await.unwrap()
    }

    #[test]
    fn an_endless_sleep_is_not_put_on_the_grid() {
        let epoch = tokio::time::Instant::now();
        assert_eq!(wake_at(epoch, epoch, Duration::MAX), None);
    }

    #[test]
    fn deadlines_a_few_milliseconds_apart_share_one_wake_up() {
        let epoch = tokio::time::Instant::now();
        let first = wake_at(
            epoch,
            epoch + Duration::from_millis(1),
            Duration::from_millis(200),
        )
        .unwrap();
        let second = wake_at(
            epoch,
            epoch + Duration::from_millis(19),
            Duration::from_millis(200),
        )
        .unwrap();
        assert_eq!(first, second);
        let next = wake_at(
            epoch,
            epoch + Duration::from_millis(26),
            Duration::from_millis(200),
        )
        .unwrap();
        assert_eq!(next - first, GRID);
    }

    #[test]
    fn a_short_sleep_is_left_exact() {
        let epoch = tokio::time::Instant::now();
        let now = epoch + Duration::from_micros(1_234);
        for duration in [
            Duration::ZERO,
            Duration::from_millis(7),
            COALESCE_FROM - Duration::from_nanos(1),
        ] {
            assert_eq!(
                wake_at(epoch, now, duration),
                Some(now + duration),
                "{duration:?}"
            );
        }
    }
}
