/**
 * Signaling in the `w3c` dialect of `docs/signaling.md`: the browser's
 * `RTCSessionDescriptionInit` / `RTCIceCandidateInit` shapes, as simple-peer
 * and the Rust `WebSocketSignaling` write them. A {@link Signaling} carries
 * one session's messages; {@link WebSocketSignaling} carries them through the
 * mcp-webrtc relay, {@link ChannelSignaling} through a channel the page
 * already has.
 */

/** One candidate, as `RTCIceCandidateInit`. */
export interface CandidateInit {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
}

/** One signaling message. */
export type SignalMessage =
  | { type: "offer"; sdp: string }
  | { type: "answer"; sdp: string }
  | { type: "candidate"; candidate: CandidateInit }
  | { type: "end-of-candidates" }
  | { type: "bye" }
  | { type: "pairing"; data: string }
  | { type: "refused"; reason: string };

/** Why signaling failed. */
export type SignalingErrorKind =
  | "Closed"
  | "PeerClosed"
  | "Relay"
  | "Timeout"
  | "Malformed"
  | "TooLarge"
  | "Refused"
  | "PairingFailed"
  | "Unsupported";

/** A signaling failure that names what went wrong. */
export class SignalingError extends Error {
  constructor(
    /** What kind of failure. */
    readonly kind: SignalingErrorKind,
    message: string,
    /** The relay's close code, for `Relay`. */
    readonly code?: number,
  ) {
    super(message);
    this.name = "SignalingError";
  }
}

/**
 * One session's signaling. `recv` gives the next message; `null` once the
 * peer said bye or closed cleanly (and ever after); it rejects once when the
 * channel is lost without a bye, then gives `null`.
 */
export interface Signaling {
  send(message: SignalMessage): Promise<void>;
  recv(): Promise<SignalMessage | null>;
  close(): Promise<void>;
}

/** The largest signaling message read or written (as the Rust backends). */
export const MAX_SIGNAL_BYTES = 1024 * 1024;
/** Messages held unread at most before the channel is failed. */
export const MAX_UNREAD = 256;

/** Encode one message as the `w3c` dialect's JSON text. */
export function encodeSignal(message: SignalMessage): string {
  switch (message.type) {
    case "offer":
    case "answer":
      return JSON.stringify({ type: message.type, sdp: message.sdp });
    case "candidate": {
      const c: Record<string, unknown> = { candidate: message.candidate.candidate };
      if (message.candidate.sdpMid != null) c.sdpMid = message.candidate.sdpMid;
      if (message.candidate.sdpMLineIndex != null) c.sdpMLineIndex = message.candidate.sdpMLineIndex;
      return JSON.stringify({ type: "candidate", candidate: c });
    }
    case "end-of-candidates":
      return JSON.stringify({ type: "candidate", candidate: { candidate: "" } });
    case "bye":
      return JSON.stringify({ type: "bye" });
    case "pairing":
      return JSON.stringify({ type: "pairing", data: message.data });
    case "refused":
      return JSON.stringify({ type: "refused", reason: message.reason });
  }
}

/** What one received text is: a message, a notice from the relay, or nothing we use. */
export type Decoded =
  | { kind: "message"; message: SignalMessage }
  | { kind: "notice"; reason: string }
  | { kind: "session"; room: string };

function field(obj: Record<string, unknown>, name: string, what: string): string {
  const v = obj[name];
  if (typeof v !== "string") throw new SignalingError("Malformed", `w3c signaling: ${what} message has no string \`${name}\``);
  return v;
}

/** Decode one text in the `w3c` dialect; throws a `Malformed` or `TooLarge` `SignalingError`. */
export function decodeSignal(text: string): Decoded {
  if (text.length > MAX_SIGNAL_BYTES) {
    throw new SignalingError("TooLarge", `w3c signaling: a message of ${text.length} characters > the limit ${MAX_SIGNAL_BYTES}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new SignalingError("Malformed", `w3c signaling: not JSON (${(e as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SignalingError("Malformed", "w3c signaling: a message must be a JSON object");
  }
  const obj = value as Record<string, unknown>;
  const type = obj.type;
  switch (type) {
    case "offer":
    case "answer":
      return { kind: "message", message: { type, sdp: field(obj, "sdp", type) } };
    case "candidate": {
      const c = obj.candidate;
      if (c === null || c === undefined) return { kind: "message", message: { type: "end-of-candidates" } };
      if (typeof c !== "object" || Array.isArray(c)) throw new SignalingError("Malformed", "w3c signaling: candidate message has no object `candidate`");
      const init = c as Record<string, unknown>;
      const line = field(init, "candidate", "candidate");
      if (line === "") return { kind: "message", message: { type: "end-of-candidates" } };
      const mid = init.sdpMid;
      const index = init.sdpMLineIndex;
      if (mid != null && typeof mid !== "string") throw new SignalingError("Malformed", "w3c signaling: candidate `sdpMid` must be a string");
      if (index != null && (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index > 65535)) {
        throw new SignalingError("Malformed", "w3c signaling: candidate `sdpMLineIndex` must be an integer 0..65535");
      }
      return { kind: "message", message: { type: "candidate", candidate: { candidate: line, sdpMid: mid ?? null, sdpMLineIndex: index ?? null } } };
    }
    case "bye":
      return { kind: "message", message: { type: "bye" } };
    case "pairing":
      return { kind: "message", message: { type: "pairing", data: field(obj, "data", "pairing") } };
    case "refused":
      return { kind: "message", message: { type: "refused", reason: typeof obj.reason === "string" ? obj.reason : "no reason given" } };
    case "error":
      return { kind: "notice", reason: typeof obj.reason === "string" ? obj.reason : "no reason given" };
    case "session":
      return { kind: "session", room: field(obj, "room", "session") };
    default:
      throw new SignalingError("Malformed", `w3c signaling: unknown message type ${JSON.stringify(type)}`);
  }
}

/**
 * A bounded queue of received messages with one reader, shared by the
 * backends: it keeps the `recv` rules (null after a bye, one error on loss).
 */
export class Inbox<T> {
  private readonly items: T[] = [];
  private waiter: ((v: void) => void) | null = null;
  private end: { error: Error | null } | null = null;
  private reported = false;

  constructor(private readonly limit: number = MAX_UNREAD) {}

  /** Queue one item; past the limit the inbox fails (the reader is not keeping up). */
  push(item: T): void {
    if (this.end) return;
    if (this.items.length >= this.limit) {
      this.finish(new SignalingError("TooLarge", `more than ${this.limit} signaling messages arrived unread`));
      return;
    }
    this.items.push(item);
    this.wake();
  }

  /** No more items: cleanly (`null`) or with an error reported once. */
  finish(error: Error | null): void {
    if (this.end) return;
    this.end = { error };
    this.wake();
  }

  get finished(): boolean {
    return this.end !== null;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** The next item; `null` at the end (after one rejection if it ended with an error). */
  async next(): Promise<T | null> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) return item;
      if (this.end) {
        if (this.end.error && !this.reported) {
          this.reported = true;
          throw this.end.error;
        }
        return null;
      }
      if (this.waiter) throw new SignalingError("Closed", "recv called while another recv is waiting");
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }
}

/** Rejects after `ms` with a `Timeout` error naming `what`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SignalingError("Timeout", `${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Decode one received text into `inbox`: a bye ends it; the relay's notices,
 * texts that are not messages, and malformed ones go to `onNotice`.
 */
export function deliverInto(inbox: Inbox<SignalMessage>, text: string, onNotice: (reason: string) => void): void {
  try {
    const d = decodeSignal(text);
    if (d.kind === "message") {
      if (d.message.type === "bye") inbox.finish(null);
      else inbox.push(d.message);
    } else if (d.kind === "notice") {
      onNotice(`the relay: ${d.reason}`);
    } else {
      onNotice("a session notice on a session's own signaling: ignored");
    }
  } catch (e) {
    onNotice((e as Error).message);
  }
}

/**
 * The adapter for a channel the page already has (a chat, an agent link, a
 * `BroadcastChannel`, a WebSocket of its own): give it a function that sends
 * one text, and hand it each received text with {@link ChannelSignaling.deliver}.
 */
export class ChannelSignaling implements Signaling {
  private readonly inbox = new Inbox<SignalMessage>();
  private closed = false;

  /**
   * @param sendText carries one message's text to the peer
   * @param onNotice told of texts that are not messages (malformed, unknown types)
   */
  constructor(
    private readonly sendText: (text: string) => void | Promise<void>,
    private readonly onNotice: (reason: string) => void = () => {},
  ) {}

  /** One text from the peer. */
  deliver(text: string): void {
    deliverInto(this.inbox, text, this.onNotice);
  }

  /** The channel is gone without a bye. */
  lost(reason: string): void {
    this.inbox.finish(new SignalingError("PeerClosed", reason));
  }

  async send(message: SignalMessage): Promise<void> {
    if (this.closed) throw new SignalingError("Closed", "send after close");
    await this.sendText(encodeSignal(message));
  }

  recv(): Promise<SignalMessage | null> {
    return this.inbox.next();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await withTimeout(Promise.resolve(this.sendText(encodeSignal({ type: "bye" }))), 2_000, "signaling bye");
    } catch {
      // the channel may already be gone: closing is best effort
    }
    this.inbox.finish(null);
  }
}
