/**
 * The sans-IO framer of `docs/protocol.md`, as the Rust core's: plain or
 * chunked mode negotiated from the channel's protocol string and the HELLO
 * exchange, fair round-robin sending of large messages in DATA frames, and
 * bounded reassembly. Timers are driven by the caller
 * ({@link Framer.pollTimeout} / {@link Framer.handleTimeout}); nothing here
 * touches the network or a clock.
 */

import { Reassembler, type ReassemblyError } from "./reassembler.js";
import {
  DATA_HEADER,
  DEFAULT_LIMITS,
  type Limits,
  PROTOCOL,
  encodeData,
  encodeHello,
  parseFrame,
} from "./wire.js";

/** Which side of the data channel this is. */
export type Role = "offerer" | "answerer";

/** The wire mode in use. */
export type WireMode = "plain" | "chunked";

/** One data-channel message to send. */
export type Transmit = { kind: "text"; text: string } | { kind: "binary"; data: Uint8Array };

/** Why an outbound message was refused. */
export type SendErrorKind = "MessageTooLarge" | "NoPeerHello" | "QueueFull";

/** An outbound message the framer cannot send. */
export class SendError extends Error {
  constructor(
    /** Why. */
    readonly kind: SendErrorKind,
    message: string,
    /** The message's size in bytes. */
    readonly size: number = 0,
    /** The limit it exceeded, in bytes (0 when not a size refusal). */
    readonly limit: number = 0,
  ) {
    super(message);
    this.name = "SendError";
  }
}

/** Settings, with the Rust core's defaults. */
export interface FramerConfig {
  /** Largest data-channel message we send (DATA header included). */
  frameSize: number;
  /** What we accept, announced in our HELLO. */
  limits: Limits;
  /** How long to wait for the peer's HELLO before refusing large messages. */
  helloTimeoutMs: number;
  /** How long a partial message may go without a frame. */
  partialTimeoutMs: number;
  /** Outbound bytes queued at most. */
  maxQueuedBytes: number;
}

/** 16 KiB frames, 5 s HELLO timeout, 30 s partial timeout, 64 MiB queue. */
export const DEFAULT_CONFIG: FramerConfig = {
  frameSize: 16 * 1024,
  limits: DEFAULT_LIMITS,
  helloTimeoutMs: 5_000,
  partialTimeoutMs: 30_000,
  maxQueuedBytes: 64 * 1024 * 1024,
};

interface Outgoing {
  id: number;
  bytes: Uint8Array;
  sent: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The framer of one data channel. */
export class Framer {
  readonly role: Role;
  private readonly config: FramerConfig;
  /** The largest message the channel carries toward the peer (SDP). */
  private readonly channelMax: number;
  private readonly offered: boolean;
  private modeNow: WireMode;
  private peer: Limits | null = null;
  private helloDeadline: number | null = null;
  private gaveUpOnHello = false;
  /** Text messages and control frames, in order, ahead of the rotation. */
  private readonly direct: Transmit[] = [];
  /** Large messages waiting for the peer's HELLO. */
  private readonly waiting: Uint8Array[] = [];
  /** The round-robin rotation of chunked messages. */
  private readonly rotation: Outgoing[] = [];
  private readonly rejected: { message: Uint8Array; error: SendError }[] = [];
  private nextId = 0;
  private queued = 0;
  private readonly reassembler: Reassembler;

  /**
   * @param role who created the channel
   * @param protocol the channel's protocol string
   * @param channelMaxMessageSize `a=max-message-size` toward the peer
   *   (`null`: 65536; `0`: no limit)
   * @param nowMs the caller's clock, for the HELLO timer
   */
  constructor(role: Role, protocol: string, channelMaxMessageSize: number | null, nowMs: number, config: Partial<FramerConfig> = {}) {
    this.role = role;
    this.config = { ...DEFAULT_CONFIG, ...config };
    this.channelMax = channelMaxMessageSize === null ? 65536 : channelMaxMessageSize === 0 ? Number.MAX_SAFE_INTEGER : channelMaxMessageSize;
    if (this.config.frameSize <= DATA_HEADER || this.config.frameSize > this.channelMax) {
      throw new RangeError(`frame size ${this.config.frameSize}: it must exceed ${DATA_HEADER} and fit the channel's ${this.channelMax}`);
    }
    this.offered = protocol === PROTOCOL;
    this.reassembler = new Reassembler(this.config.limits, this.config.partialTimeoutMs);
    if (this.offered && role === "answerer") {
      // The answerer sends its HELLO first and is in chunked mode at once.
      this.modeNow = "chunked";
      this.direct.push({ kind: "binary", data: encodeHello(this.config.limits) });
    } else {
      this.modeNow = "plain";
    }
    if (this.offered) this.helloDeadline = nowMs + this.config.helloTimeoutMs;
  }

  /** The wire mode now. */
  get mode(): WireMode {
    return this.modeNow;
  }

  /** The peer's HELLO limits, once known. */
  get peerLimits(): Limits | null {
    return this.peer;
  }

  /** Whether a HELLO from the peer is still awaited. */
  get awaitingHello(): boolean {
    return this.offered && this.peer === null && !this.gaveUpOnHello;
  }

  /** Largest message the peer accepts in chunked mode. */
  private peerMax(): bigint {
    if (!this.peer) return 0n;
    return this.peer.maxMessageSize < this.peer.maxBufferedBytes ? this.peer.maxMessageSize : this.peer.maxBufferedBytes;
  }

  /**
   * Queue one message (the UTF-8 JSON of one JSON-RPC message). An empty
   * queue takes any one message, as the Rust core's does; `force` skips
   * the queue limit (for the small error replies a transport makes up).
   */
  send(message: string | Uint8Array, force = false): void {
    const bytes = typeof message === "string" ? encoder.encode(message) : message;
    if (!force && this.queued > 0 && this.queued + bytes.length > this.config.maxQueuedBytes) {
      throw new SendError("QueueFull", `${this.queued} bytes queued; the limit is ${this.config.maxQueuedBytes}`);
    }
    const asText = this.modeNow === "chunked" ? bytes.length <= this.config.frameSize : bytes.length <= this.channelMax;
    if (asText) {
      this.direct.push({ kind: "text", text: typeof message === "string" ? message : decoder.decode(bytes) });
      this.queued += bytes.length;
      return;
    }
    if (this.peer) {
      if (BigInt(bytes.length) > this.peerMax()) {
        throw new SendError("MessageTooLarge", `message of ${bytes.length} bytes > the peer's limit ${this.peerMax()}`, bytes.length, Number(this.peerMax()));
      }
      this.enqueueChunked(bytes);
      return;
    }
    if (this.awaitingHello) {
      this.waiting.push(bytes);
      this.queued += bytes.length;
      return;
    }
    const reason = this.gaveUpOnHello ? "no HELLO from the peer" : "the peer does not speak chunked framing";
    throw new SendError(
      this.gaveUpOnHello ? "NoPeerHello" : "MessageTooLarge",
      `message of ${bytes.length} bytes > the channel's limit ${this.channelMax} (${reason})`,
      bytes.length,
      this.channelMax,
    );
  }

  private enqueueChunked(bytes: Uint8Array): void {
    this.rotation.push({ id: this.nextId, bytes, sent: 0 });
    this.nextId = (this.nextId + 1) >>> 0;
    this.queued += bytes.length;
  }

  /** Messages the framer gave back (the peer's HELLO never came, or its limits are smaller). */
  pollRejected(): { message: Uint8Array; error: SendError } | null {
    return this.rejected.shift() ?? null;
  }

  /** Bytes of messages queued and not yet handed out. */
  get queuedBytes(): number {
    return this.queued;
  }

  /**
   * The next data-channel message to send, or `null`. Control frames and
   * text messages first; then one frame of the message at the front of the
   * rotation, which then goes to the back.
   */
  pollTransmit(): Transmit | null {
    const next = this.direct.shift();
    if (next) {
      if (next.kind === "text") this.queued -= encoder.encode(next.text).length;
      return next;
    }
    if (!this.peer) return null;
    const inFlight = this.rotation.filter((m) => m.sent > 0);
    const buffered = inFlight.reduce((sum, m) => sum + BigInt(m.bytes.length), 0n);
    // Bounded by the rotation's length: each pass looks at one message.
    for (let i = 0; i < this.rotation.length; i += 1) {
      const m = this.rotation[0];
      if (!m) return null;
      const starting = m.sent === 0;
      const fits = !starting || (inFlight.length < this.peer.maxInFlight && buffered + BigInt(m.bytes.length) <= this.peer.maxBufferedBytes);
      this.rotation.shift();
      if (!fits) {
        this.rotation.push(m);
        continue;
      }
      const room = this.config.frameSize - DATA_HEADER;
      const end = Math.min(m.sent + room, m.bytes.length);
      const frame = encodeData(m.id, BigInt(m.sent), BigInt(m.bytes.length), m.bytes.subarray(m.sent, end));
      this.queued -= end - m.sent;
      m.sent = end;
      if (m.sent < m.bytes.length) this.rotation.push(m);
      return { kind: "binary", data: frame };
    }
    return null;
  }

  /** A text message from the peer: always one whole message. */
  receiveText(text: string): string {
    return text;
  }

  /**
   * A binary message from the peer: a HELLO (`null`), a DATA frame (the
   * whole message once its last frame arrives, else `null`). Throws a
   * `FrameError`, `ReassemblyError` or an `Error` naming the problem; none
   * ends the session.
   */
  receiveBinary(data: Uint8Array, nowMs: number): string | null {
    if (!this.offered) {
      throw new Error(`a binary message (first byte 0x${(data[0] ?? 0).toString(16)}) on a plain channel: chunked framing was not negotiated (NotNegotiated)`);
    }
    const frame = parseFrame(data);
    if (frame.type === "hello") {
      if (this.peer) throw new Error("a second HELLO (UnexpectedHello)");
      this.peer = frame.limits;
      this.helloDeadline = null;
      if (this.role === "offerer") {
        this.modeNow = "chunked";
        this.direct.unshift({ kind: "binary", data: encodeHello(this.config.limits) });
      }
      for (const bytes of this.waiting.splice(0)) {
        this.queued -= bytes.length;
        if (BigInt(bytes.length) > this.peerMax()) {
          this.rejected.push({ message: bytes, error: new SendError("MessageTooLarge", `message of ${bytes.length} bytes > the peer's limit ${this.peerMax()}`, bytes.length, Number(this.peerMax())) });
        } else {
          this.enqueueChunked(bytes);
        }
      }
      return null;
    }
    if (!this.peer && this.role === "offerer") {
      throw new Error("a DATA frame before the peer's HELLO (NotNegotiated)");
    }
    const whole = this.reassembler.receive(frame.id, frame.offset, frame.total, frame.payload, nowMs);
    return whole ? decoder.decode(whole) : null;
  }

  /** When {@link Framer.handleTimeout} should next be called, if ever. */
  pollTimeout(): number | null {
    const expiry = this.reassembler.nextExpiry();
    const hello = this.awaitingHello ? this.helloDeadline : null;
    if (expiry === null) return hello;
    if (hello === null) return expiry;
    return Math.min(expiry, hello);
  }

  /** Fire due timers: expired partial messages, and a HELLO that never came. */
  handleTimeout(nowMs: number): ReassemblyError[] {
    if (this.awaitingHello && this.helloDeadline !== null && nowMs >= this.helloDeadline) {
      this.gaveUpOnHello = true;
      for (const bytes of this.waiting.splice(0)) {
        this.queued -= bytes.length;
        this.rejected.push({ message: bytes, error: new SendError("NoPeerHello", "message not sent: no HELLO from the peer") });
      }
    }
    return this.reassembler.expire(nowMs);
  }
}
