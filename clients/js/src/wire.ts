/**
 * The binary frames of `docs/protocol.md` (chunked mode, `mcp-webrtc/1`):
 * DATA and HELLO, parsed and encoded byte for byte. All integers are
 * unsigned big-endian; 64-bit fields are `bigint`.
 */

/** The data channel's protocol string that offers chunked mode. */
export const PROTOCOL = "mcp-webrtc/1";

/** Frame type bytes. */
export const DATA = 0x01;
export const HELLO = 0x02;
/** Bytes before a DATA frame's payload. */
export const DATA_HEADER = 21;
/** Bytes of a version-1 HELLO (more may follow and are ignored). */
export const HELLO_SIZE = 22;
/** The HELLO version this implementation speaks. */
export const HELLO_VERSION = 1;

const U64_MAX = (1n << 64n) - 1n;

/** Why a frame was refused, as the Rust core names it. */
export type FrameErrorKind =
  | "EmptyFrame"
  | "UnknownFrameType"
  | "TruncatedHeader"
  | "EmptyPayload"
  | "FrameOverrun"
  | "UnsupportedVersion"
  | "InvalidHello";

/** A frame that does not follow the layout. It concerns that frame only. */
export class FrameError extends Error {
  constructor(
    /** Which rule the frame broke. */
    readonly kind: FrameErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "FrameError";
  }
}

/** The receive limits a side announces in its HELLO. */
export interface Limits {
  /** Largest message (total) accepted. */
  maxMessageSize: bigint;
  /** Chunked messages reassembled at once. */
  maxInFlight: number;
  /** Sum of the totals of the messages in flight. */
  maxBufferedBytes: bigint;
}

/** The defaults of the Rust core (128 MiB, 32, 256 MiB). */
export const DEFAULT_LIMITS: Limits = {
  maxMessageSize: 128n << 20n,
  maxInFlight: 32,
  maxBufferedBytes: 256n << 20n,
};

/** One parsed binary frame. */
export type Frame =
  | { type: "data"; id: number; offset: bigint; total: bigint; payload: Uint8Array }
  | { type: "hello"; limits: Limits };

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Parse one binary data-channel message as a frame. */
export function parseFrame(bytes: Uint8Array): Frame {
  if (bytes.length === 0) {
    throw new FrameError("EmptyFrame", "empty binary message");
  }
  const kind = bytes[0];
  if (kind === DATA) {
    if (bytes.length < DATA_HEADER) {
      throw new FrameError(
        "TruncatedHeader",
        `DATA frame of ${bytes.length} bytes: the header alone is ${DATA_HEADER}`,
      );
    }
    const v = view(bytes);
    const id = v.getUint32(1);
    const offset = v.getBigUint64(5);
    const total = v.getBigUint64(13);
    const payload = bytes.subarray(DATA_HEADER);
    if (payload.length === 0) {
      throw new FrameError("EmptyPayload", `DATA frame of message ${id} has no payload`);
    }
    const end = offset + BigInt(payload.length);
    if (end > U64_MAX || end > total) {
      throw new FrameError(
        "FrameOverrun",
        `DATA frame of message ${id} runs past its total: ${offset} + ${payload.length} > ${total}`,
      );
    }
    return { type: "data", id, offset, total, payload };
  }
  if (kind === HELLO) {
    if (bytes.length < HELLO_SIZE) {
      throw new FrameError(
        "TruncatedHeader",
        `HELLO of ${bytes.length} bytes: it takes ${HELLO_SIZE}`,
      );
    }
    const v = view(bytes);
    const version = v.getUint8(1);
    if (version !== HELLO_VERSION) {
      throw new FrameError("UnsupportedVersion", `HELLO version ${version}; this side speaks 1`);
    }
    const limits: Limits = {
      maxMessageSize: v.getBigUint64(2),
      maxInFlight: v.getUint32(10),
      maxBufferedBytes: v.getBigUint64(14),
    };
    if (limits.maxMessageSize === 0n || limits.maxInFlight === 0 || limits.maxBufferedBytes === 0n) {
      throw new FrameError("InvalidHello", "a HELLO limit of 0: each must be at least 1");
    }
    return { type: "hello", limits };
  }
  throw new FrameError(
    "UnknownFrameType",
    `unknown frame type 0x${(kind ?? 0).toString(16).padStart(2, "0")}`,
  );
}

/** A DATA frame. */
export function encodeData(id: number, offset: bigint, total: bigint, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(DATA_HEADER + payload.length);
  const v = view(out);
  v.setUint8(0, DATA);
  v.setUint32(1, id >>> 0);
  v.setBigUint64(5, offset);
  v.setBigUint64(13, total);
  out.set(payload, DATA_HEADER);
  return out;
}

/** A version-1 HELLO. */
export function encodeHello(limits: Limits): Uint8Array {
  const out = new Uint8Array(HELLO_SIZE);
  const v = view(out);
  v.setUint8(0, HELLO);
  v.setUint8(1, HELLO_VERSION);
  v.setBigUint64(2, limits.maxMessageSize);
  v.setUint32(10, limits.maxInFlight);
  v.setBigUint64(14, limits.maxBufferedBytes);
  return out;
}
