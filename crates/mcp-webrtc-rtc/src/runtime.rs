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

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

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
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }
}
