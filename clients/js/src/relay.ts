/**
 * The mcp-webrtc relay from a browser or Node: a room (`/v1/room/<room>`),
 * a server's host registration (`/v1/host/<host>`), and a client of a host
 * (`/v1/host/<host>/connect`). Paths, close codes and notices are those of
 * `docs/signaling.md`.
 */

import {
  Inbox,
  SignalingError,
  type SignalMessage,
  type Signaling,
  MAX_SIGNAL_BYTES,
  decodeSignal,
  deliverInto,
  encodeSignal,
  withTimeout,
} from "./signaling.js";

/** The part of the WHATWG `WebSocket` the relay client uses (the browser's, or `ws` in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A `WebSocket` constructor. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** How to reach the relay. */
export interface RelayOptions {
  /** The relay token, sent as `?token=` (browsers cannot set headers on a WebSocket). */
  token?: string | undefined;
  /** The `WebSocket` class; the global one by default (pass `ws`'s in Node 20). */
  WebSocket?: WebSocketConstructor | undefined;
  /** How long the connection may take (10 s). */
  connectTimeoutMs?: number | undefined;
  /** Told of the relay's notices (a message it did not forward) and malformed texts. */
  onNotice?: ((reason: string) => void) | undefined;
}

const OPEN = 1;

function base(url: string): string {
  return url.replace(/\/+$/, "");
}

function validName(name: string, max: number, slash: boolean): boolean {
  return (
    name.length >= 1 &&
    name.length <= max &&
    /^[A-Za-z0-9\-_.~/]+$/.test(name) &&
    (slash || !name.includes("/")) &&
    name.split("/").every((s) => s.length > 0)
  );
}

function checked(name: string, what: "room" | "host"): string {
  const ok = what === "room" ? validName(name, 200, true) : validName(name, 160, false);
  if (!ok) {
    throw new SignalingError(
      "Malformed",
      `${what} name ${JSON.stringify(name)}: 1 to ${what === "room" ? 200 : 160} characters of A-Z a-z 0-9 - _ . ~${what === "room" ? " and / between segments" : ""}`,
    );
  }
  return name;
}

/** `ws://relay/v1/room/<room>` */
export function roomUrl(relay: string, room: string): string {
  return `${base(relay)}/v1/room/${checked(room, "room")}`;
}
/** `ws://relay/v1/host/<host>`: a server's registration. */
export function hostUrl(relay: string, host: string): string {
  return `${base(relay)}/v1/host/${checked(host, "host")}`;
}
/** `ws://relay/v1/host/<host>/connect`: a client of that server. */
export function clientUrl(relay: string, host: string): string {
  return `${hostUrl(relay, host)}/connect`;
}

function withToken(url: string, token: string | undefined): string {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

function describeClose(code: number, reason: string): string {
  const known: Record<number, string> = {
    1001: "the relay is shutting down",
    1006: "the connection was refused or dropped (a wrong token, path or name is refused before the upgrade; browsers do not show the HTTP status)",
    4400: "bad room or host name",
    4401: "unauthorized: missing or wrong token",
    4403: "this session belongs to another token",
    4404: "unknown path, or no such host",
    4408: "idle timeout",
    4409: "room full, or host name taken",
    4410: "the other peer left without a bye",
    4429: "a budget is spent",
    4503: "the relay is full, or the host is not answering",
  };
  const what = reason || known[code] || "closed";
  return `the relay closed the connection (${code}): ${what}`;
}

function textOf(data: unknown): string | null {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return null;
}

function create(url: string, options: RelayOptions): WebSocketLike {
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Ctor) throw new SignalingError("Unsupported", "no WebSocket class: pass `WebSocket` (the `ws` package in Node 20)");
  return new Ctor(withToken(url, options.token));
}

/**
 * Wait (bounded) for the connection to open. The caller's handlers are
 * installed before this, in the same tick as the socket was made, so
 * nothing the relay sends at once (a message it held for us) is missed.
 */
async function opened(ws: WebSocketLike, url: string, options: RelayOptions): Promise<void> {
  const shown = url.replace(/\?.*$/, "");
  const onClose = ws.onclose;
  const open = new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      onClose?.(ev);
      reject(new SignalingError("Relay", `${shown}: ${describeClose(ev.code, ev.reason)}`, ev.code));
    };
  });
  try {
    await withTimeout(open, options.connectTimeoutMs ?? 10_000, `connecting to ${shown}`);
    ws.onclose = onClose;
  } catch (e) {
    ws.close();
    throw e;
  }
}

/** One session's signaling through the relay: a room, or a client's room at a host. */
export class WebSocketSignaling implements Signaling {
  private readonly inbox = new Inbox<SignalMessage>();
  private closed = false;

  private constructor(
    private readonly ws: WebSocketLike,
    private readonly onNotice: (reason: string) => void,
  ) {
    ws.onmessage = (ev) => {
      const text = textOf(ev.data);
      if (text === null) return this.onNotice("a binary signaling message: ignored");
      deliverInto(this.inbox, text, this.onNotice);
    };
    ws.onclose = (ev) => {
      if (ev.code === 1000) this.inbox.finish(null);
      else this.inbox.finish(new SignalingError(ev.code === 4410 ? "PeerClosed" : "Relay", describeClose(ev.code, ev.reason), ev.code));
    };
  }

  /** Join a room, or any relay URL that carries one session (a host's `/connect`). */
  static async connect(url: string, options: RelayOptions = {}): Promise<WebSocketSignaling> {
    const ws = create(url, options);
    const signaling = new WebSocketSignaling(ws, options.onNotice ?? (() => {}));
    await opened(ws, url, options);
    return signaling;
  }

  async send(message: SignalMessage): Promise<void> {
    if (this.closed || this.ws.readyState !== OPEN) throw new SignalingError("Closed", "signaling is closed");
    const text = encodeSignal(message);
    if (text.length > MAX_SIGNAL_BYTES) throw new SignalingError("TooLarge", `a signaling message of ${text.length} characters > ${MAX_SIGNAL_BYTES}`);
    if (this.ws.bufferedAmount > 4 * MAX_SIGNAL_BYTES) throw new SignalingError("TooLarge", "the relay is not taking our signaling messages");
    this.ws.send(text);
  }

  recv(): Promise<SignalMessage | null> {
    return this.inbox.next();
  }

  /** Say bye to the peer and leave the room. Bounded; harmless twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ws.readyState === OPEN) {
      try {
        this.ws.send(encodeSignal({ type: "bye" }));
      } catch {
        // already going
      }
    }
    if (this.ws.readyState === 3) {
      this.inbox.finish(null);
      return;
    }
    const gone = new Promise<void>((resolve) => {
      const prev = this.ws.onclose;
      this.ws.onclose = (ev) => {
        prev?.(ev);
        resolve();
      };
    });
    this.ws.close(1000, "bye");
    await withTimeout(gone, 2_000, "closing the relay connection").catch(() => {});
    this.inbox.finish(null);
  }
}

/**
 * A server's registration at the relay: each client that connects to the
 * host name gets a room of its own, and {@link RelayHost.accept} gives its
 * signaling. Keep `accept` running while registered.
 */
export class RelayHost {
  private readonly sessions = new Inbox<string>(64);
  private closed = false;

  private constructor(
    private readonly ws: WebSocketLike,
    private readonly relay: string,
    private readonly options: RelayOptions,
  ) {
    const notice = options.onNotice ?? (() => {});
    ws.onmessage = (ev) => {
      const text = textOf(ev.data);
      if (text === null) return;
      try {
        const d = decodeSignal(text);
        if (d.kind === "session") {
          this.sessions.push(d.room);
          // Clients arrive faster than accept takes them: end the
          // registration rather than keep a name that accepts no one.
          if (this.sessions.finished) ws.close(1000, "sessions not accepted");
        }
        else if (d.kind === "notice") notice(`the relay: ${d.reason}`);
        else notice(`a ${d.message.type} message on a host registration: ignored`);
      } catch (e) {
        notice((e as Error).message);
      }
    };
    ws.onclose = (ev) => {
      this.sessions.finish(this.closed ? null : new SignalingError("Relay", describeClose(ev.code, ev.reason), ev.code));
    };
  }

  /** Register `host` at the relay. A name another token holds is refused (4409). */
  static async register(relay: string, host: string, options: RelayOptions = {}): Promise<RelayHost> {
    const url = hostUrl(relay, host);
    const ws = create(url, options);
    const registration = new RelayHost(ws, relay, options);
    await opened(ws, url, options);
    return registration;
  }

  /** The next client's signaling; `null` once the registration is closed. */
  async accept(): Promise<WebSocketSignaling | null> {
    const room = await this.sessions.next();
    if (room === null) return null;
    return WebSocketSignaling.connect(roomUrl(this.relay, room), this.options);
  }

  /** End the registration. */
  close(): void {
    this.closed = true;
    this.sessions.finish(null);
    this.ws.close(1000, "bye");
  }
}
