/**
 * The MCP TypeScript SDK's `Transport` (`@modelcontextprotocol/sdk` 1.x) over
 * a WebRTC data channel, for either role: pass it to `Client.connect` or
 * `McpServer.connect`. Messages of any size up to the peer's limit travel
 * chunked between mcp-webrtc peers; toward the reference packages the
 * channel stays plain (one JSON text per message, at most 256 KiB).
 */

import { Framer, SendError, type FramerConfig, type Role, type Transmit, type WireMode } from "./framer.js";
import { openPeer, type OpenPeer, type PeerOptions } from "./peer.js";

/**
 * One JSON-RPC message, as the SDK's `JSONRPCMessage` (structurally: this
 * package needs the SDK only for types, so it adds nothing to a bundle).
 */
export type JsonRpcMessage = { jsonrpc: "2.0" } & Record<string, unknown>;

/** What a `Transport` needs, matching `@modelcontextprotocol/sdk/shared/transport.js`. */
export interface TransportLike {
  start(): Promise<void>;
  send(message: JsonRpcMessage): Promise<void>;
  close(): Promise<void>;
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onmessage?: ((message: JsonRpcMessage) => void) | undefined;
  sessionId?: string | undefined;
}

/** Why a session failed or a message was refused. */
export type TransportErrorKind = "NotStarted" | "Closed" | "InvalidMessage" | "MessageTooLarge" | "QueueFull" | "PeerGone" | "Framing";

/** A transport failure that names what went wrong. */
export class TransportError extends Error {
  constructor(
    /** What kind of failure. */
    readonly kind: TransportErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "TransportError";
  }
}

/** Settings of the transport beyond set-up. */
export interface WebRtcTransportOptions extends PeerOptions {
  /** Framer settings (frame size, limits, timers); the Rust core's defaults otherwise. */
  framer?: Partial<FramerConfig>;
  /** ICE "disconnected" this long means the peer is gone: 3.5 s (as the Rust side). */
  deadPeerMs?: number;
  /** How long `close` waits for queued messages to go out: 2 s. */
  closeTimeoutMs?: number;
}

/** Counters, for tests and for people. */
export interface TransportStats {
  messagesSent: number;
  messagesReceived: number;
  invalidMessages: number;
  oversizeResultsAnswered: number;
}

const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const CHANNEL_CAP = 262_144;
/** How long the session keeps reading after the peer's bye (as the Rust side). */
const BYE_GRACE_MS = 300;
/** How long a send may wait for room in the queue. */
const SEND_WAIT_MS = 30_000;

function isResponse(m: JsonRpcMessage): boolean {
  return "id" in m && ("result" in m || "error" in m) && !("method" in m);
}

/** MCP over one WebRTC data channel. */
export class WebRtcTransport implements TransportLike {
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onmessage?: ((message: JsonRpcMessage) => void) | undefined;
  sessionId?: string | undefined;

  /** Counters of this session. */
  readonly stats: TransportStats = { messagesSent: 0, messagesReceived: 0, invalidMessages: 0, oversizeResultsAnswered: 0 };

  private peer: OpenPeer | null = null;
  private framer: Framer | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private disconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private poll: ReturnType<typeof setTimeout> | undefined;
  private ended = false;
  /** Sends in call order: each waits for the one before it. */
  private sending: Promise<void> = Promise.resolve();
  /** Woken when the framer's queue shrinks. */
  private room: (() => void)[] = [];
  /** A bye arrived: the session ends after a short grace. */
  private byeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly options: WebRtcTransportOptions) {}

  /** The wire mode in use (`plain` until the HELLO exchange, or for good toward the references). */
  get mode(): WireMode | null {
    return this.framer?.mode ?? null;
  }

  /** The role this side plays on the channel. */
  get role(): Role {
    return this.options.role;
  }

  /** Open the channel (the SDK calls this from `connect`). Rejects with a `ConnectError`. */
  async start(): Promise<void> {
    if (this.peer) throw new TransportError("Closed", "start called twice");
    let peer: OpenPeer;
    try {
      peer = await openPeer(this.options);
    } catch (e) {
      await this.options.signaling.close().catch(() => {});
      throw e;
    }
    if (this.ended) {
      // closed while the set-up ran
      peer.pc.close();
      throw new TransportError("Closed", "the transport was closed during set-up");
    }
    this.peer = peer;
    const limit = Math.min(peer.maxMessageSize === null ? 65536 : peer.maxMessageSize === 0 ? CHANNEL_CAP : peer.maxMessageSize, CHANNEL_CAP);
    const sctp = (peer.pc as { sctp?: { maxMessageSize?: number } | null }).sctp;
    const channelMax = sctp?.maxMessageSize && sctp.maxMessageSize > 0 ? Math.min(limit, sctp.maxMessageSize) : limit;
    const frameSize = Math.min(this.options.framer?.frameSize ?? 16 * 1024, channelMax);
    this.framer = new Framer(this.options.role, peer.channel.protocol, channelMax, Date.now(), { ...this.options.framer, frameSize });
    const ch = peer.channel;
    ch.bufferedAmountLowThreshold = LOW_WATER;
    ch.onbufferedamountlow = () => this.flush();
    ch.onmessage = (ev: MessageEvent) => this.receive(ev.data);
    // The peer closing its channel is a clean end (a Rust peer closes it before its bye).
    ch.onclose = () => this.end(null);
    peer.pc.oniceconnectionstatechange = () => this.iceState();
    peer.pc.onconnectionstatechange = () => {
      const s = peer.pc.connectionState;
      if (s === "failed" || s === "closed") this.end(new TransportError("PeerGone", `the peer connection is ${s}`));
    };
    void peer.signalingDone.then((why) => {
      // A bye ends the session, after a grace for what is still arriving;
      // lost signaling is not a bye (the channel lives on).
      if (why === "bye" && !this.ended) this.byeTimer = setTimeout(() => this.end(null), BYE_GRACE_MS);
    });
    this.flush();
  }

  private iceState(): void {
    const pc = this.peer?.pc;
    if (!pc) return;
    const s = pc.iceConnectionState;
    if (s === "disconnected") {
      if (this.disconnectTimer === undefined) {
        const ms = this.options.deadPeerMs ?? 3_500;
        this.disconnectTimer = setTimeout(() => this.end(new TransportError("PeerGone", `the peer is gone: no answer to ICE checks for ${ms} ms`)), ms);
      }
    } else {
      clearTimeout(this.disconnectTimer);
      this.disconnectTimer = undefined;
      if (s === "failed" || s === "closed") this.end(new TransportError("PeerGone", `ICE ${s}`));
    }
  }

  private report(error: Error): void {
    this.onerror?.(error);
  }

  private receive(data: unknown): void {
    const framer = this.framer;
    if (!framer || this.ended) return;
    let text: string | null;
    try {
      if (typeof data === "string") text = framer.receiveText(data);
      else if (data instanceof ArrayBuffer) text = framer.receiveBinary(new Uint8Array(data), Date.now());
      else if (ArrayBuffer.isView(data)) text = framer.receiveBinary(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), Date.now());
      else text = null;
    } catch (e) {
      this.stats.invalidMessages += 1;
      this.report(new TransportError("Framing", (e as Error).message));
      this.flush();
      return;
    }
    this.flush();
    if (text === null) return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (e) {
      this.stats.invalidMessages += 1;
      this.report(new TransportError("InvalidMessage", `a message from the peer is not JSON: ${(e as Error).message}`));
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message) || (message as { jsonrpc?: unknown }).jsonrpc !== "2.0") {
      this.stats.invalidMessages += 1;
      this.report(new TransportError("InvalidMessage", "a message from the peer is not a JSON-RPC 2.0 object"));
      return;
    }
    this.stats.messagesReceived += 1;
    this.onmessage?.(message as JsonRpcMessage);
  }

  /** Hand the framer's frames to the channel while it has room; then arm the timer. */
  private flush(): void {
    const framer = this.framer;
    const ch = this.peer?.channel;
    if (!framer || !ch || this.ended) return;
    for (;;) {
      const rejected = framer.pollRejected();
      if (!rejected) break;
      this.refused(rejected.message, rejected.error);
    }
    let more = false;
    while (ch.readyState === "open") {
      if (ch.bufferedAmount >= HIGH_WATER) {
        more = true;
        break;
      }
      const t: Transmit | null = framer.pollTransmit();
      if (!t) break;
      if (t.kind === "text") ch.send(t.text);
      else ch.send(t.data as Uint8Array<ArrayBuffer>);
    }
    // `bufferedamountlow` wakes us; a poll too, for bindings that never fire it.
    clearTimeout(this.poll);
    if (more) this.poll = setTimeout(() => this.flush(), 20);
    clearTimeout(this.timer);
    const due = framer.pollTimeout();
    if (due !== null) {
      this.timer = setTimeout(() => {
        for (const e of framer.handleTimeout(Date.now())) this.report(new TransportError("Framing", e.message));
        this.flush();
      }, Math.max(0, due - Date.now()));
    }
    for (const wake of this.room.splice(0)) wake();
  }

  /**
   * A message the framer gave back once it knew the peer's limits (or that
   * no HELLO came): a response becomes the "result too large" error to its
   * request, our own request is answered locally with an error so its caller
   * does not wait for ever, a notification is reported.
   */
  private refused(bytes: Uint8Array, error: SendError): void {
    let message: JsonRpcMessage | null = null;
    try {
      message = JSON.parse(new TextDecoder().decode(bytes)) as JsonRpcMessage;
    } catch {
      // our own JSON: cannot happen
    }
    if (message && isResponse(message)) {
      this.answerTooLarge(message, error);
    } else if (message && "id" in message && "method" in message) {
      this.report(new TransportError("MessageTooLarge", `request ${JSON.stringify(message.id)} not sent: ${error.message}`));
      this.onmessage?.({ jsonrpc: "2.0", id: message.id, error: { code: -32603, message: `request not sent: ${error.message}` } });
    } else {
      this.report(new TransportError("MessageTooLarge", `notification not sent: ${error.message}`));
    }
  }

  private answerTooLarge(message: JsonRpcMessage, error: SendError): void {
    this.framer?.send(
      JSON.stringify({
        jsonrpc: "2.0",
        id: message.id,
        error: { code: -32603, message: `result too large for this peer: ${error.size} bytes > limit ${error.limit}`, data: { size: error.size, limit: error.limit } },
      }),
      true,
    );
    this.stats.oversizeResultsAnswered += 1;
  }

  /** Resolves when the queue shrinks, the session ends, or `ms` pass. */
  private waitForRoom(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.room.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Send one message. A response too large for the peer becomes a JSON-RPC
   * error to its request ("result too large for this peer"), as on the Rust
   * side; a request or notification that is too large rejects.
   */
  async send(message: JsonRpcMessage): Promise<void> {
    const mine = this.sending.then(() => this.sendNow(message));
    this.sending = mine.catch(() => {});
    return mine;
  }

  private async sendNow(message: JsonRpcMessage): Promise<void> {
    const framer = this.framer;
    if (!framer) throw new TransportError("NotStarted", "send before start");
    const text = JSON.stringify(message);
    const deadline = Date.now() + SEND_WAIT_MS;
    for (;;) {
      if (this.ended) throw new TransportError("Closed", "the session is closed");
      try {
        framer.send(text);
        break;
      } catch (e) {
        if (!(e instanceof SendError)) throw e;
        if (e.kind === "QueueFull") {
          const left = deadline - Date.now();
          if (left <= 0) throw new TransportError("QueueFull", `no room to send within ${SEND_WAIT_MS} ms: ${e.message}`);
          await this.waitForRoom(left);
          continue;
        }
        if (e.kind === "MessageTooLarge" && isResponse(message)) {
          this.answerTooLarge(message, e);
          break;
        }
        throw new TransportError("MessageTooLarge", e.message);
      }
    }
    this.stats.messagesSent += 1;
    this.flush();
  }

  /**
   * Close, as the Rust side does: let what is queued go out (bounded by
   * `closeTimeoutMs`), close the channel and give that a moment, then say
   * bye over signaling and close the peer connection. Harmless twice.
   */
  async close(): Promise<void> {
    if (this.ended) return;
    const framer = this.framer;
    const ch = this.peer?.channel;
    if (framer && ch) {
      const until = Date.now() + (this.options.closeTimeoutMs ?? 2_000);
      // Bounded by the deadline; 10 ms steps.
      while (!this.ended && ch.readyState === "open" && (framer.queuedBytes > 0 || ch.bufferedAmount > 0) && Date.now() < until) {
        this.flush();
        await new Promise((r) => setTimeout(r, 10));
      }
      if (!this.ended && ch.readyState === "open") {
        const closed = new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 500);
          ch.addEventListener("close", () => {
            clearTimeout(timer);
            resolve();
          });
        });
        ch.onclose = null;
        ch.close();
        await closed;
      }
    }
    this.end(null);
  }

  private end(error: TransportError | null): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    clearTimeout(this.poll);
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.byeTimer);
    for (const wake of this.room.splice(0)) wake();
    if (error) this.report(error);
    const peer = this.peer;
    const signaling = this.options.signaling;
    if (peer) {
      peer.channel.onclose = null;
      peer.channel.onmessage = null;
      peer.pc.onconnectionstatechange = null;
      peer.pc.oniceconnectionstatechange = null;
    }
    // The bye goes out (bounded by the signaling's own close) before the
    // peer connection closes.
    void signaling
      .close()
      .catch(() => {})
      .finally(() => {
        if (peer) {
          try {
            peer.channel.close();
          } catch {
            // already closed
          }
          peer.pc.close();
        }
      });
    this.onclose?.();
  }
}
