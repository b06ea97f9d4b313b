/**
 * Bounded reassembly of chunked messages (`docs/protocol.md` §4.3): limits
 * are checked before memory is reserved, each payload is copied into place
 * once, and a message that stops receiving frames expires.
 */

import type { Limits } from "./wire.js";

/** Why a frame or a message was refused. None ends the session. */
export type ReassemblyErrorKind =
  | "MessageTooLarge"
  | "TooManyInFlight"
  | "BufferLimitExceeded"
  | "TotalMismatch"
  | "DuplicateFrame"
  | "OutOfOrderFrame"
  | "UnknownMessage"
  | "PartialTimeout";

/** A refused frame or message. */
export class ReassemblyError extends Error {
  constructor(
    /** Which rule was broken. */
    readonly kind: ReassemblyErrorKind,
    /** The message id. */
    readonly id: number,
    message: string,
  ) {
    super(message);
    this.name = "ReassemblyError";
  }
}

/** Refused or discarded messages whose later frames are skipped quietly. */
const MAX_SKIPPED = 1024;

interface Partial {
  total: bigint;
  buf: Uint8Array;
  received: number;
  lastMs: number;
}

/** Reassembles the DATA frames of the peer's chunked messages. */
export class Reassembler {
  private readonly partial = new Map<number, Partial>();
  private readonly skipped = new Set<number>();
  private buffered = 0n;

  constructor(
    private readonly limits: Limits,
    private readonly partialTimeoutMs: number,
  ) {}

  /** Bytes reserved for messages in flight. */
  get bufferedBytes(): bigint {
    return this.buffered;
  }

  /** Messages in flight. */
  get inFlight(): number {
    return this.partial.size;
  }

  private skip(id: number): void {
    if (this.skipped.size >= MAX_SKIPPED) {
      const oldest = this.skipped.values().next();
      if (!oldest.done) this.skipped.delete(oldest.value);
    }
    this.skipped.add(id);
  }

  private discard(id: number, kind: ReassemblyErrorKind, message: string): never {
    const p = this.partial.get(id);
    if (p) {
      this.buffered -= p.total;
      this.partial.delete(id);
    }
    this.skip(id);
    throw new ReassemblyError(kind, id, message);
  }

  /**
   * Take one DATA frame; the whole message once its last frame arrives.
   * Throws a {@link ReassemblyError} for a frame that breaks a rule.
   */
  receive(id: number, offset: bigint, total: bigint, payload: Uint8Array, nowMs: number): Uint8Array | null {
    let p = this.partial.get(id);
    if (offset === 0n && !p) {
      this.skipped.delete(id);
      if (total > this.limits.maxMessageSize) {
        this.skip(id);
        throw new ReassemblyError("MessageTooLarge", id, `message ${id} of ${total} bytes > limit ${this.limits.maxMessageSize}`);
      }
      if (this.partial.size >= this.limits.maxInFlight) {
        this.skip(id);
        throw new ReassemblyError("TooManyInFlight", id, `message ${id}: ${this.partial.size} messages in flight already`);
      }
      if (this.buffered + total > this.limits.maxBufferedBytes) {
        this.skip(id);
        throw new ReassemblyError(
          "BufferLimitExceeded",
          id,
          `message ${id} of ${total} bytes: ${this.buffered} buffered, limit ${this.limits.maxBufferedBytes}`,
        );
      }
      p = { total, buf: new Uint8Array(Number(total)), received: 0, lastMs: nowMs };
      this.partial.set(id, p);
      this.buffered += total;
    } else if (!p) {
      if (this.skipped.has(id)) return null;
      throw new ReassemblyError("UnknownMessage", id, `frame at ${offset} of message ${id}, which is not in flight`);
    }
    if (total !== p.total) {
      this.discard(id, "TotalMismatch", `message ${id}: total ${total}, was ${p.total}`);
    }
    const at = BigInt(p.received);
    if (offset < at) {
      this.discard(id, "DuplicateFrame", `message ${id}: frame at ${offset}, ${at} bytes received`);
    }
    if (offset > at) {
      this.discard(id, "OutOfOrderFrame", `message ${id}: frame at ${offset}, ${at} bytes received`);
    }
    p.buf.set(payload, p.received);
    p.received += payload.length;
    p.lastMs = nowMs;
    if (BigInt(p.received) === p.total) {
      this.partial.delete(id);
      this.buffered -= p.total;
      return p.buf;
    }
    return null;
  }

  /** When the oldest message in flight expires, in ms, if any is. */
  nextExpiry(): number | null {
    let next: number | null = null;
    for (const p of this.partial.values()) {
      const at = p.lastMs + this.partialTimeoutMs;
      if (next === null || at < next) next = at;
    }
    return next;
  }

  /** Drop every message that received no frame for the partial timeout. */
  expire(nowMs: number): ReassemblyError[] {
    const errors: ReassemblyError[] = [];
    for (const [id, p] of [...this.partial]) {
      if (nowMs - p.lastMs >= this.partialTimeoutMs) {
        this.partial.delete(id);
        this.buffered -= p.total;
        this.skip(id);
        errors.push(new ReassemblyError("PartialTimeout", id, `message ${id}: no frame for ${this.partialTimeoutMs} ms`));
      }
    }
    return errors;
  }
}
