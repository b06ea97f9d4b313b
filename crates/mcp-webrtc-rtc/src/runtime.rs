//! The `webrtc` runtime we hand the stack: tokio, with larger UDP socket
//! buffers.
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

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
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

/// Tokio, with the UDP socket buffers set to `buffer` bytes.
#[derive(Debug)]
pub(crate) struct TunedRuntime {
    inner: TokioRuntime,
    buffer: usize,
}

impl TunedRuntime {
    pub(crate) fn new(buffer: usize) -> TunedRuntime {
        TunedRuntime {
            inner: TokioRuntime,
            buffer,
        }
    }
}

impl Runtime for TunedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
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
