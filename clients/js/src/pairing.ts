/**
 * End-to-end pairing with a shared secret (`docs/security.md`), as the Rust
 * `PairedSignaling::new`: each offer and answer ends with
 * `a=mcpw-pairing:<HMAC-SHA-256>`, keyed by the secret, over
 * `"mcp-webrtc pairing v1" 0 kind 0 [SHA-256 of the offer] SDP`. A relay that
 * rewrites a description (its DTLS fingerprint, say) is caught before any
 * MCP message flows. Short codes (SPAKE2) are not implemented here.
 */

import { SignalingError, type SignalMessage, type Signaling } from "./signaling.js";

const ATTRIBUTE = "a=mcpw-pairing:";
const LABEL = new TextEncoder().encode("mcp-webrtc pairing v1");

function subtle(): SubtleCrypto {
  const s = (globalThis as { crypto?: Crypto }).crypto?.subtle;
  if (!s) throw new SignalingError("Unsupported", "pairing needs WebCrypto (a secure context: https or localhost)");
  return s;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Parse a secret as `mcp-webrtc serve` prints it: hex, 16 to 64 bytes. */
export function parseSecret(text: string): Uint8Array<ArrayBuffer> {
  const t = text.trim();
  if (t.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(t)) {
    throw new SignalingError("Malformed", "pairing secret: expected hexadecimal digits, in pairs");
  }
  const bytes = new Uint8Array(t.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = Number.parseInt(t.slice(2 * i, 2 * i + 2), 16);
  if (bytes.length < 16 || bytes.length > 64) {
    throw new SignalingError("Malformed", `pairing secret: ${bytes.length} bytes; between 16 and 64 are accepted`);
  }
  return bytes;
}

/** A fresh 128-bit secret, as hex. */
export function generateSecret(): string {
  const bytes = new Uint8Array(16);
  (globalThis as { crypto: Crypto }).crypto.getRandomValues(bytes);
  return hex(bytes);
}

/** Where an `mcpw://RELAY:PORT/NAME#SECRET` line points (`mcpws://` for `wss://`). */
export interface PairingUrl {
  /** `ws://RELAY:PORT` or `wss://…` */
  relay: string;
  /** The server's host name at the relay. */
  name: string;
  /** The secret from the fragment, if any (it never reaches the relay). */
  secret: string | null;
}

/** Read the line `mcp-webrtc serve` prints. */
export function parsePairingUrl(url: string): PairingUrl {
  const m = /^(mcpws?):\/\/([^/#?]+)\/([^/#?]+)\/?(?:(#)(.*))?$/.exec(url.trim());
  // Never echo the fragment: it is the secret.
  const shown = JSON.stringify(url.trim().replace(/#.*$/, "#…"));
  if (!m || !m[1] || !m[2] || !m[3]) {
    throw new SignalingError("Malformed", `${shown} is not an mcpw://RELAY:PORT/NAME#SECRET URL`);
  }
  if (m[4] && !m[5]) throw new SignalingError("Malformed", `${shown}: the secret after # is empty`);
  if (m[5]) parseSecret(m[5]);
  return { relay: `${m[1] === "mcpws" ? "wss" : "ws"}://${m[2]}`, name: m[3], secret: m[5] ? m[5] : null };
}

function bodyOf(sdp: string): string {
  return sdp.endsWith("\n") ? sdp : `${sdp}\r\n`;
}

/** Split a received description into the body the code covers and the code (its last line). */
function split(sdp: string): [string, string] | null {
  const at = sdp.lastIndexOf(ATTRIBUTE);
  if (at < 0) return null;
  if (at !== 0 && !sdp.slice(0, at).endsWith("\n")) return null;
  const code = sdp.slice(at + ATTRIBUTE.length).replace(/[\r\n]+$/, "");
  if (code.includes("\n")) return null;
  return [sdp.slice(0, at), code];
}

/** Whether a description carries a pairing code (its peer pairs). */
export function carriesPairingCode(sdp: string): boolean {
  return split(sdp) !== null;
}

/** Equal strings, compared in time that depends only on their lengths. */
function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i += 1) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  return diff === 0;
}

/** Wraps any {@link Signaling}: both peers must hold the same secret. */
export class PairedSignaling implements Signaling {
  private offerDigest: Uint8Array | null = null;
  private readonly key: Promise<CryptoKey>;

  /** @param secret the hex secret (as printed in the `#…` fragment) */
  constructor(
    private readonly inner: Signaling,
    secret: string,
  ) {
    const bytes = parseSecret(secret);
    this.key = subtle().importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  }

  private async code(kind: "offer" | "answer", body: string): Promise<string> {
    const digest = kind === "answer" ? this.offerDigest : null;
    const bodyBytes = new TextEncoder().encode(body);
    const kindBytes = new TextEncoder().encode(kind);
    const parts = [LABEL, new Uint8Array([0]), kindBytes, new Uint8Array([0]), digest ?? new Uint8Array(0), bodyBytes];
    const total = parts.reduce((n, p) => n + p.length, 0);
    const input = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      input.set(p, at);
      at += p.length;
    }
    return hex(new Uint8Array(await subtle().sign("HMAC", await this.key, input)));
  }

  private async digest(body: string): Promise<Uint8Array> {
    return new Uint8Array(await subtle().digest("SHA-256", new TextEncoder().encode(body)));
  }

  async send(message: SignalMessage): Promise<void> {
    if (message.type === "offer") {
      const body = bodyOf(message.sdp);
      const code = await this.code("offer", body);
      this.offerDigest = await this.digest(body);
      return this.inner.send({ type: "offer", sdp: `${body}${ATTRIBUTE}${code}\r\n` });
    }
    if (message.type === "answer") {
      if (!this.offerDigest) throw new SignalingError("PairingFailed", "pairing failed: an answer to send, but no offer was received");
      const body = bodyOf(message.sdp);
      return this.inner.send({ type: "answer", sdp: `${body}${ATTRIBUTE}${await this.code("answer", body)}\r\n` });
    }
    return this.inner.send(message);
  }

  async recv(): Promise<SignalMessage | null> {
    const message = await this.inner.recv();
    if (!message) return message;
    if (message.type === "pairing") {
      throw new SignalingError("PairingFailed", "pairing failed: the peer pairs with a short code, which this package does not support; use a secret");
    }
    if (message.type !== "offer" && message.type !== "answer") return message;
    const what = message.type;
    const parts = split(message.sdp);
    if (!parts) {
      throw new SignalingError("PairingFailed", `pairing failed: the ${what} carries no pairing code: the peer has no pairing secret, or someone altered the signaling`);
    }
    const [body, code] = parts;
    if (what === "answer" && !this.offerDigest) throw new SignalingError("PairingFailed", "pairing failed: the answer came before any offer was sent");
    const expected = await this.code(what, body);
    if (!constantTimeEqual(expected, code.toLowerCase())) {
      throw new SignalingError("PairingFailed", `pairing failed: the ${what} does not match the pairing secret: wrong secret, or someone altered the signaling`);
    }
    if (what === "offer") this.offerDigest = await this.digest(body);
    return { type: what, sdp: body };
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
