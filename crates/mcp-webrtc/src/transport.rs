//! The rmcp transport: JSON-RPC messages over one data channel.
//!
//! A background writer task and `receive` share the [`Connection`] and one
//! [`Framer`]:
//! - the **writer** moves messages that [`Transport::send`] queued into the
//!   framer (in call order), and puts the framer's output on the channel,
//!   one frame at a time, under the channel's backpressure;
//! - [`Transport::receive`] reads the data channel itself, feeds each
//!   message to the framer and parses whole ones: when rmcp is busy nothing
//!   is read, and the peer's sends wait (so a slow consumer slows the peer,
//!   not our memory).
//!
//! Bad input never ends the session: a message that is not JSON, not
//! JSON-RPC, not MCP, or a bad frame, is logged, counted, and (for a request
//! whose id we can read) answered with a JSON-RPC error.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use mcp_webrtc_core::wire::Hello;
use mcp_webrtc_core::{Framer, WireMode};
use mcp_webrtc_rtc::{ChannelInfo, Connection, HandshakeTimings, Incoming};
use rmcp::model::{JsonRpcMessage, RequestId};
use rmcp::service::{RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::Value;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// JSON-RPC "Invalid Request".
const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "Internal error": the result exists but cannot be delivered.
const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined: the peer went away before answering.
const PEER_GONE: i64 = -32000;
/// Malformed inbound messages logged at `warn` before switching to `debug`.
const LOUD_MALFORMED: u64 = 10;

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// We closed it.
    Closed,
    /// The peer closed it cleanly (bye, or its side of the channel closed).
    PeerClosed,
    /// The peer stopped answering or its connection failed.
    PeerGone {
        /// What was observed.
        reason: String,
    },
    /// Sending failed (for example the peer stopped reading and a send
    /// timed out).
    SendFailed {
        /// The send error.
        reason: String,
    },
}

impl EndReason {
    fn is_abnormal(&self) -> bool {
        matches!(
            self,
            EndReason::PeerGone { .. } | EndReason::SendFailed { .. }
        )
    }

    fn to_error(&self) -> Error {
        match self {
            EndReason::Closed => Error::Closed {
                reason: "closed by us".into(),
            },
            EndReason::PeerClosed => Error::Closed {
                reason: "closed by the peer".into(),
            },
            EndReason::PeerGone { reason } | EndReason::SendFailed { reason } => Error::PeerGone {
                reason: reason.clone(),
            },
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::Closed => f.write_str("closed by us"),
            EndReason::PeerClosed => f.write_str("closed by the peer"),
            EndReason::PeerGone { reason } => write!(f, "peer gone: {reason}"),
            EndReason::SendFailed { reason } => write!(f, "send failed: {reason}"),
        }
    }
}

/// Counters of one transport. Read them through [`TransportHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// Messages accepted for sending.
    pub messages_sent: u64,
    /// Messages received and handed to rmcp.
    pub messages_received: u64,
    /// Inbound messages or frames dropped as malformed (not JSON, not
    /// JSON-RPC, not MCP, a bad frame, over our size limit).
    pub malformed_received: u64,
    /// Malformed requests answered with a JSON-RPC "Invalid Request" error.
    pub invalid_requests_answered: u64,
    /// Responses too large for the peer, replaced by a JSON-RPC error
    /// ("result too large for this peer").
    pub oversize_results_answered: u64,
    /// Bytes put on the data channel (frame headers included).
    pub bytes_sent: u64,
    /// Bytes taken from the data channel.
    pub bytes_received: u64,
}

#[derive(Debug, Default)]
struct Counters {
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
    malformed_received: AtomicU64,
    invalid_requests_answered: AtomicU64,
    oversize_results_answered: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) -> u64 {
    counter.fetch_add(by, Ordering::Relaxed).saturating_add(by)
}

/// What an outbound message is, as far as error handling cares.
#[derive(Debug, Clone)]
enum Kind {
    Request(Value),
    Response(Value),
    Notification,
    Error,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Request(_) => "request",
            Kind::Response(_) => "result",
            Kind::Notification => "notification",
            Kind::Error => "error response",
        }
    }
}

/// A message waiting for room in the framer's queue.
struct Pending {
    bytes: Bytes,
    kind: Kind,
    done: Option<oneshot::Sender<Result<()>>>,
}

struct Outbound {
    framer: Framer,
    /// Messages the framer's queue had no room for yet, in call order.
    waiting: VecDeque<Pending>,
    /// Requests we sent and the peer has not answered, by JSON id.
    unanswered: HashMap<String, Value>,
}

pub(crate) struct Settings {
    pub(crate) hello_timeout: Duration,
    pub(crate) close_timeout: Duration,
}

struct Shared {
    conn: Connection,
    out: Mutex<Outbound>,
    writer_wake: Notify,
    /// The writer is handing a frame to the channel.
    writing: AtomicBool,
    /// Errors we make up for requests the peer can no longer answer.
    synthetic: Mutex<VecDeque<Value>>,
    synthetic_wake: Notify,
    end: Mutex<Option<EndReason>>,
    counters: Counters,
    cancel: CancellationToken,
    settings: Settings,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn error_response(id: &Value, code: i64, message: String, data: Option<Value>) -> Value {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let (Some(data), Some(map)) = (data, error.as_object_mut()) {
        map.insert("data".into(), data);
    }
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

fn id_value(id: &RequestId) -> Value {
    serde_json::to_value(id).unwrap_or(Value::Null)
}

fn id_key(id: &Value) -> String {
    id.to_string()
}

/// The parts of a message needed to answer it when rmcp cannot parse it.
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    result: Option<serde::de::IgnoredAny>,
}

impl Envelope {
    /// Read the envelope of a JSON object (serde would also read a struct
    /// from an array, so anything else is refused first).
    fn of(bytes: &[u8]) -> Option<Envelope> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
        if *first != b'{' {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }
}

enum Offer {
    Done(Result<()>),
    Full(Bytes, Kind),
}

enum SendOutcome {
    Ready(Result<()>),
    Wait(oneshot::Receiver<Result<()>>),
}

impl Shared {
    fn end_reason(&self) -> Option<EndReason> {
        lock(&self.end).clone()
    }

    /// Queue one encoded message, in call order.
    fn enqueue(&self, bytes: Bytes, kind: Kind) -> SendOutcome {
        if let Some(end) = self.end_reason() {
            return SendOutcome::Ready(Err(end.to_error()));
        }
        let mut out = lock(&self.out);
        if let Kind::Request(id) = &kind {
            out.unanswered.insert(id_key(id), id.clone());
        }
        let outcome = if out.waiting.is_empty() {
            match self.offer(&mut out, bytes, kind) {
                Offer::Done(result) => SendOutcome::Ready(result),
                Offer::Full(bytes, kind) => SendOutcome::Wait(wait_in(&mut out, bytes, kind)),
            }
        } else {
            SendOutcome::Wait(wait_in(&mut out, bytes, kind))
        };
        drop(out);
        self.writer_wake.notify_one();
        outcome
    }

    /// Hand one message to the framer.
    fn offer(&self, out: &mut Outbound, bytes: Bytes, kind: Kind) -> Offer {
        match out.framer.send(bytes.clone()) {
            Ok(()) => {
                bump(&self.counters.messages_sent, 1);
                Offer::Done(Ok(()))
            }
            Err(mcp_webrtc_core::Error::QueueFull { .. }) => Offer::Full(bytes, kind),
            Err(mcp_webrtc_core::Error::MessageTooLarge { size, limit }) => {
                Offer::Done(self.too_large(out, &kind, size, limit))
            }
            Err(e) => {
                if let Kind::Request(id) = &kind {
                    out.unanswered.remove(&id_key(id));
                }
                Offer::Done(Err(Error::Framing(e)))
            }
        }
    }

    /// A message over the peer's limit: a response becomes a JSON-RPC error
    /// to its request; anything else fails its send.
    fn too_large(&self, out: &mut Outbound, kind: &Kind, size: u64, limit: u64) -> Result<()> {
        match kind {
            Kind::Response(id) => {
                let message =
                    format!("result too large for this peer: {size} bytes > limit {limit}");
                tracing::warn!(%id, size, limit, "{message}; answering with an error");
                let reply = error_response(
                    id,
                    INTERNAL_ERROR,
                    message,
                    Some(serde_json::json!({ "size": size, "limit": limit })),
                );
                self.push_control(out, reply);
                bump(&self.counters.oversize_results_answered, 1);
                Ok(())
            }
            other => {
                if let Kind::Request(id) = other {
                    out.unanswered.remove(&id_key(id));
                }
                Err(Error::MessageTooLarge {
                    what: other.name(),
                    size,
                    limit,
                })
            }
        }
    }

    /// Queue a message we make up (an error response) ahead of waiting ones.
    fn push_control(&self, out: &mut Outbound, message: Value) {
        let bytes = match serde_json::to_vec(&message) {
            Ok(v) => Bytes::from(v),
            Err(e) => {
                tracing::error!(error = %e, "could not encode an error response");
                return;
            }
        };
        match out.framer.send(bytes.clone()) {
            Ok(()) => {}
            Err(mcp_webrtc_core::Error::QueueFull { .. }) => out.waiting.push_front(Pending {
                bytes,
                kind: Kind::Error,
                done: None,
            }),
            Err(e) => tracing::warn!(error = %e, "could not queue an error response"),
        }
        self.writer_wake.notify_one();
    }

    /// Move waiting messages into the framer while it has room, and deal
    /// with what it handed back.
    fn refill(&self, out: &mut Outbound) {
        // Bounded: each pass takes one message off `waiting` or stops;
        // `push_control` adds at most one per message taken.
        while let Some(pending) = out.waiting.pop_front() {
            let Pending { bytes, kind, done } = pending;
            match self.offer(out, bytes, kind) {
                Offer::Done(result) => {
                    if let Some(done) = done {
                        let _ = done.send(result);
                    }
                }
                Offer::Full(bytes, kind) => {
                    out.waiting.push_front(Pending { bytes, kind, done });
                    break;
                }
            }
        }
        while let Some(rejected) = out.framer.poll_rejected() {
            self.rejected(out, &rejected.message, &rejected.error);
        }
    }

    /// A message the framer accepted, then could not send (the peer's
    /// limits, learnt later, are lower; or its HELLO never came).
    fn rejected(&self, out: &mut Outbound, message: &[u8], error: &mcp_webrtc_core::Error) {
        let envelope = Envelope::of(message);
        let id = envelope.as_ref().and_then(|e| e.id.clone());
        let size = message.len() as u64;
        let limit = match error {
            mcp_webrtc_core::Error::MessageTooLarge { limit, .. } => Some(*limit),
            _ => None,
        };
        let is_request = envelope.as_ref().is_some_and(|e| e.method.is_some());
        let is_result = envelope.as_ref().is_some_and(|e| e.result.is_some());
        match (id, limit) {
            (Some(id), Some(limit)) if is_result => {
                self.too_large(out, &Kind::Response(id), size, limit).ok();
            }
            (Some(id), _) if is_request => {
                // Fail the caller's request with the reason.
                out.unanswered.remove(&id_key(&id));
                let text = format!("request not sent: {error}");
                tracing::warn!(%id, "{text}");
                lock(&self.synthetic).push_back(error_response(&id, INTERNAL_ERROR, text, None));
                self.synthetic_wake.notify_one();
            }
            (Some(id), _) if is_result => {
                let reply = error_response(
                    &id,
                    INTERNAL_ERROR,
                    format!("result not sent: {error}"),
                    None,
                );
                self.push_control(out, reply);
            }
            _ => tracing::warn!(size, %error, "dropped an outbound message the peer cannot take"),
        }
    }

    /// A malformed inbound message: log, count, and answer it if it is a
    /// request whose id we can read.
    fn malformed(&self, bytes: &[u8], why: &str) {
        let n = bump(&self.counters.malformed_received, 1);
        if n <= LOUD_MALFORMED {
            tracing::warn!(
                size = bytes.len(),
                count = n,
                "dropped a malformed message: {why}"
            );
        } else {
            tracing::debug!(
                size = bytes.len(),
                count = n,
                "dropped a malformed message: {why}"
            );
        }
        let Some(envelope) = Envelope::of(bytes) else {
            return;
        };
        let Some(id) = envelope.id.filter(|id| id.is_string() || id.is_number()) else {
            return;
        };
        if envelope.method.is_none() {
            return;
        }
        let reply = error_response(
            &id,
            INVALID_REQUEST,
            format!("invalid request: {why}"),
            None,
        );
        self.push_control(&mut lock(&self.out), reply);
        bump(&self.counters.invalid_requests_answered, 1);
    }

    /// End the session (once): fail waiting sends, make up errors for
    /// unanswered requests if the peer went away, stop both tasks.
    fn finish(&self, reason: EndReason) {
        {
            let mut end = lock(&self.end);
            if end.is_some() {
                drop(end);
                self.cancel.cancel();
                return;
            }
            *end = Some(reason.clone());
        }
        match &reason {
            EndReason::Closed | EndReason::PeerClosed => tracing::debug!(%reason, "session ended"),
            _ => tracing::warn!(%reason, "session ended"),
        }
        let (waiting, unanswered) = {
            let mut out = lock(&self.out);
            (
                std::mem::take(&mut out.waiting),
                std::mem::take(&mut out.unanswered),
            )
        };
        for pending in waiting {
            if let Some(done) = pending.done {
                let _ = done.send(Err(reason.to_error()));
            }
        }
        if reason.is_abnormal() {
            let mut synthetic = lock(&self.synthetic);
            for id in unanswered.values() {
                synthetic.push_back(error_response(id, PEER_GONE, reason.to_string(), None));
            }
        }
        self.synthetic_wake.notify_one();
        self.cancel.cancel();
        self.writer_wake.notify_one();
    }

    /// Nothing left to put on the channel.
    fn flushed(&self) -> bool {
        let out = lock(&self.out);
        out.waiting.is_empty() && out.framer.is_idle() && !self.writing.load(Ordering::Acquire)
    }
}

fn wait_in(out: &mut Outbound, bytes: Bytes, kind: Kind) -> oneshot::Receiver<Result<()>> {
    let (tx, rx) = oneshot::channel();
    out.waiting.push_back(Pending {
        bytes,
        kind,
        done: Some(tx),
    });
    rx
}

fn end_of(error: mcp_webrtc_rtc::Error) -> EndReason {
    match error {
        mcp_webrtc_rtc::Error::Closed => EndReason::Closed,
        mcp_webrtc_rtc::Error::PeerGone { reason } => EndReason::PeerGone { reason },
        other => EndReason::PeerGone {
            reason: other.to_string(),
        },
    }
}

async fn write_loop(shared: Arc<Shared>) {
    let hello_deadline = Instant::now()
        .checked_add(shared.settings.hello_timeout)
        .unwrap_or_else(Instant::now);
    let mut hello_given_up = false;
    loop {
        let (transmit, awaiting_hello) = {
            let mut out = lock(&shared.out);
            shared.refill(&mut out);
            let transmit = out.framer.poll_transmit();
            if transmit.is_some() {
                shared.writing.store(true, Ordering::Release);
            }
            let awaiting = !hello_given_up
                && out.framer.mode() == WireMode::Chunked
                && out.framer.peer_limits().is_none();
            (transmit, awaiting)
        };
        let Some(transmit) = transmit else {
            tokio::select! {
                () = shared.writer_wake.notified() => {}
                () = shared.cancel.cancelled() => return,
                () = tokio::time::sleep_until(hello_deadline), if awaiting_hello => {
                    tracing::warn!(
                        after = ?shared.settings.hello_timeout,
                        "the peer announced chunked framing but sent no HELLO; large messages will be refused"
                    );
                    lock(&shared.out).framer.abandon_waiting();
                    hello_given_up = true;
                }
            }
            continue;
        };
        let len = transmit.len() as u64;
        let sent = tokio::select! {
            sent = shared.conn.send_transmit(transmit) => sent,
            () = shared.cancel.cancelled() => return,
        };
        shared.writing.store(false, Ordering::Release);
        match sent {
            Ok(()) => {
                bump(&shared.counters.bytes_sent, len);
            }
            Err(mcp_webrtc_rtc::Error::MessageTooLarge { size, limit }) => {
                // The framer keeps frames within the channel limit, so this
                // means the stack's limit is below what the SDP said.
                tracing::error!(
                    size,
                    limit,
                    "the data channel refused a message as too large"
                );
            }
            Err(e) => {
                let reason = match e {
                    mcp_webrtc_rtc::Error::SendTimeout { .. } => EndReason::SendFailed {
                        reason: e.to_string(),
                    },
                    other => end_of(other),
                };
                shared.finish(reason);
                return;
            }
        }
    }
}

/// What one inbound data-channel message amounted to.
enum Step<M> {
    /// A whole, parsed message.
    Message(M),
    /// Nothing to hand over (a frame of a larger message, a HELLO, or a
    /// malformed message already dealt with).
    Nothing,
    /// The channel ended.
    End(EndReason),
}

impl Shared {
    /// Take one inbound data-channel message through the framer and the
    /// parser. Synchronous, so `receive` stays cancel-safe.
    fn take<R: ServiceRole>(
        &self,
        incoming: mcp_webrtc_rtc::Result<Option<Incoming>>,
    ) -> Step<RxJsonRpcMessage<R>> {
        let message = match incoming {
            Ok(Some(Incoming::Text(bytes))) => {
                bump(&self.counters.bytes_received, bytes.len() as u64);
                lock(&self.out).framer.receive_text(bytes).map(Some)
            }
            Ok(Some(Incoming::Binary(bytes))) => {
                bump(&self.counters.bytes_received, bytes.len() as u64);
                let result = lock(&self.out).framer.receive_binary(&bytes);
                // A HELLO may have queued ours, or released waiting messages.
                self.writer_wake.notify_one();
                result
            }
            Ok(None) => return Step::End(EndReason::PeerClosed),
            Err(e) => return Step::End(end_of(e)),
        };
        let bytes = match message {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Step::Nothing,
            Err(e) => {
                self.malformed(&[], &format!("bad frame: {e}"));
                return Step::Nothing;
            }
        };
        let parsed = match serde_json::from_slice::<RxJsonRpcMessage<R>>(&bytes) {
            Ok(parsed) => parsed,
            Err(e) => {
                let why = match mcp_webrtc_core::codec::validate(&bytes) {
                    Err(not_jsonrpc) => not_jsonrpc.to_string(),
                    Ok(()) => format!("not an MCP message: {e}"),
                };
                self.malformed(&bytes, &why);
                return Step::Nothing;
            }
        };
        bump(&self.counters.messages_received, 1);
        let answered = match &parsed {
            JsonRpcMessage::Response(r) => Some(&r.id),
            JsonRpcMessage::Error(e) => e.id.as_ref(),
            _ => None,
        };
        if let Some(id) = answered {
            lock(&self.out).unanswered.remove(&id_key(&id_value(id)));
        }
        Step::Message(parsed)
    }
}

/// An MCP transport over a WebRTC data channel, for rmcp.
///
/// Made by [`webrtc_server_transport`](crate::webrtc_server_transport),
/// [`webrtc_client_transport`](crate::webrtc_client_transport) or
/// [`WebRtcTransport::builder`]; hand it to rmcp's `serve`. `R` is
/// [`rmcp::RoleServer`] or [`rmcp::RoleClient`].
pub struct WebRtcTransport<R: ServiceRole> {
    shared: Arc<Shared>,
    /// The session has ended: hand over made-up errors, then `None`.
    done: bool,
    _role: PhantomData<fn() -> R>,
}

impl<R: ServiceRole> std::fmt::Debug for WebRtcTransport<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcTransport")
            .field("channel", self.shared.conn.info())
            .field("end", &self.shared.end_reason())
            .finish_non_exhaustive()
    }
}

impl<R: ServiceRole> WebRtcTransport<R> {
    pub(crate) fn start(conn: Connection, framer: Framer, settings: Settings) -> Self {
        let shared = Arc::new(Shared {
            conn,
            out: Mutex::new(Outbound {
                framer,
                waiting: VecDeque::new(),
                unanswered: HashMap::new(),
            }),
            writer_wake: Notify::new(),
            writing: AtomicBool::new(false),
            synthetic: Mutex::new(VecDeque::new()),
            synthetic_wake: Notify::new(),
            end: Mutex::new(None),
            counters: Counters::default(),
            cancel: CancellationToken::new(),
            settings,
        });
        tokio::spawn(write_loop(Arc::clone(&shared)));
        WebRtcTransport {
            shared,
            done: false,
            _role: PhantomData,
        }
    }

    /// A handle for watching the session (stats, end reason, wire mode)
    /// after the transport has been handed to rmcp.
    #[must_use]
    pub fn handle(&self) -> TransportHandle {
        TransportHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    fn pop_synthetic(&self) -> Option<RxJsonRpcMessage<R>> {
        // Bounded by the queue's length; every entry is one we built.
        while let Some(value) = lock(&self.shared.synthetic).pop_front() {
            match serde_json::from_value(value) {
                Ok(message) => return Some(message),
                Err(e) => tracing::error!(error = %e, "a made-up error response did not parse"),
            }
        }
        None
    }
}

impl<R: ServiceRole> Transport<R> for WebRtcTransport<R> {
    type Error = Error;

    fn name() -> std::borrow::Cow<'static, str> {
        "WebRtcTransport".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<R>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let kind = match &item {
            JsonRpcMessage::Request(r) => Kind::Request(id_value(&r.id)),
            JsonRpcMessage::Response(r) => Kind::Response(id_value(&r.id)),
            JsonRpcMessage::Notification(_) => Kind::Notification,
            JsonRpcMessage::Error(_) => Kind::Error,
        };
        // Encoded and queued now, so messages go out in the order of the
        // calls, whatever order the futures are polled in.
        let outcome = match serde_json::to_vec(&item) {
            Ok(bytes) => self.shared.enqueue(Bytes::from(bytes), kind),
            Err(e) => SendOutcome::Ready(Err(Error::Encode(e))),
        };
        async move {
            match outcome {
                SendOutcome::Ready(result) => result,
                SendOutcome::Wait(done) => done.await.unwrap_or_else(|_| {
                    Err(Error::Closed {
                        reason: "the transport was dropped".into(),
                    })
                }),
            }
        }
    }

    /// Cancel-safe: rmcp races it in `select!`. Reads the data channel
    /// itself (no reader task in between): the only await is the channel's
    /// own cancel-safe `recv`, and what follows it is synchronous.
    async fn receive(&mut self) -> Option<RxJsonRpcMessage<R>> {
        // Bounded: each pass returns, marks the session done (once), or
        // waits for the channel or a wake-up.
        loop {
            if let Some(message) = self.pop_synthetic() {
                return Some(message);
            }
            if self.done {
                return None;
            }
            let incoming = tokio::select! {
                incoming = self.shared.conn.recv() => incoming,
                () = self.shared.cancel.cancelled() => {
                    // Ended elsewhere (a failed send, or closed).
                    self.shared.finish(EndReason::Closed);
                    self.done = true;
                    continue;
                }
                () = self.shared.synthetic_wake.notified() => continue,
            };
            match self.shared.take::<R>(incoming) {
                Step::Message(message) => return Some(message),
                Step::Nothing => {}
                Step::End(reason) => {
                    self.shared.finish(reason);
                    self.done = true;
                }
            }
        }
    }

    /// Let queued messages go out (within the close timeout), then close the
    /// channel and say bye: the peer's session ends cleanly.
    async fn close(&mut self) -> Result<()> {
        let deadline = Instant::now()
            .checked_add(self.shared.settings.close_timeout)
            .unwrap_or_else(Instant::now);
        // Bounded by the deadline.
        while self.shared.end_reason().is_none()
            && !self.shared.flushed()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.shared.finish(EndReason::Closed);
        self.shared.conn.close().await;
        Ok(())
    }
}

impl<R: ServiceRole> Drop for WebRtcTransport<R> {
    fn drop(&mut self) {
        self.shared.finish(EndReason::Closed);
        // The handle may keep `Shared` (and so the connection) alive: close
        // the connection now rather than when the last handle goes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(&self.shared);
            runtime.spawn(async move { shared.conn.close().await });
        }
    }
}

/// Watches a transport after it has been handed to rmcp. Cheap to clone.
#[derive(Clone)]
pub struct TransportHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TransportHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportHandle")
            .field("stats", &self.stats())
            .field("end", &self.end_reason())
            .finish()
    }
}

impl TransportHandle {
    /// The transport's counters.
    #[must_use]
    pub fn stats(&self) -> TransportStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransportStats {
            messages_sent: get(&c.messages_sent),
            messages_received: get(&c.messages_received),
            malformed_received: get(&c.malformed_received),
            invalid_requests_answered: get(&c.invalid_requests_answered),
            oversize_results_answered: get(&c.oversize_results_answered),
            bytes_sent: get(&c.bytes_sent),
            bytes_received: get(&c.bytes_received),
        }
    }

    /// Why the session ended, once it has.
    #[must_use]
    pub fn end_reason(&self) -> Option<EndReason> {
        self.shared.end_reason()
    }

    /// Wait until the session ends, at most `timeout`; the reason, or
    /// `None` if it is still running.
    pub async fn ended(&self, timeout: Duration) -> Option<EndReason> {
        let _ = tokio::time::timeout(timeout, self.shared.cancel.cancelled()).await;
        self.end_reason()
    }

    /// Plain (one text message per JSON-RPC message, as the reference
    /// packages) or chunked (negotiated with a peer of our own).
    #[must_use]
    pub fn wire_mode(&self) -> WireMode {
        lock(&self.shared.out).framer.mode()
    }

    /// The peer's receive limits, once its HELLO arrived (chunked mode).
    #[must_use]
    pub fn peer_limits(&self) -> Option<Hello> {
        lock(&self.shared.out).framer.peer_limits()
    }

    /// The largest message we can send right now, if known.
    #[must_use]
    pub fn max_send_size(&self) -> Option<u64> {
        lock(&self.shared.out).framer.max_send_size()
    }

    /// The data channel: label, protocol, SDP size limits.
    #[must_use]
    pub fn channel(&self) -> ChannelInfo {
        self.shared.conn.info().clone()
    }

    /// How long set-up took, by phase.
    #[must_use]
    pub fn timings(&self) -> HandshakeTimings {
        self.shared.conn.timings()
    }

    /// Traffic counters of the peer connection and its selected candidate
    /// pair.
    pub async fn connection_stats(&self) -> mcp_webrtc_rtc::Stats {
        self.shared.conn.stats().await
    }
}
