/**
 * Opening the data channel on an `RTCPeerConnection` (the browser's, or a
 * Node binding's such as `@roamhq/wrtc`): the offer/answer and trickled
 * candidates over a {@link Signaling}, with a deadline, and errors that
 * name the phase that failed. As `docs/protocol.md` says, the side that
 * offers creates the channel (`mcp`, reliable and ordered) and, for chunked
 * framing, gives it the protocol `mcp-webrtc/1`.
 */

import { SignalingError, type CandidateInit, type SignalMessage, type Signaling } from "./signaling.js";
import type { Role } from "./framer.js";
import { PROTOCOL } from "./wire.js";
import { carriesPairingCode } from "./pairing.js";

/** An `RTCPeerConnection` constructor (`globalThis.RTCPeerConnection` by default). */
export type PeerConnectionConstructor = new (config?: RTCConfiguration) => RTCPeerConnection;

/** Why the channel did not open. */
export type ConnectPhase = "signaling" | "sdp" | "ice" | "dtls" | "channel" | "timeout" | "refused" | "pairing";

/** A set-up failure, naming its phase. */
export class ConnectError extends Error {
  constructor(
    /** Where it failed. */
    readonly phase: ConnectPhase,
    message: string,
  ) {
    super(message);
    this.name = "ConnectError";
  }
}

/** How to open the channel. */
export interface PeerOptions {
  /** The session's signaling. */
  signaling: Signaling;
  /** `offerer` creates the channel (an MCP server, as the reference packages); `answerer` accepts it. */
  role: Role;
  /** The `RTCPeerConnection` class; the global one by default. */
  RTCPeerConnection?: PeerConnectionConstructor;
  /** STUN/TURN servers. None by default: nothing but the peer is contacted unless you say so. */
  iceServers?: RTCIceServer[];
  /** Offer chunked framing (`mcp-webrtc/1`); `false` for the reference's plain channel. Default `true`. */
  chunked?: boolean;
  /** The channel's label (offerer only): `mcp`. */
  label?: string;
  /** How long the whole set-up may take: 20 s. */
  handshakeTimeoutMs?: number;
  /** Remote candidates taken at most over the session: 64 (as the Rust side). */
  maxRemoteCandidates?: number;
}

/** An open channel, and what the session needs to keep it. */
export interface OpenPeer {
  pc: RTCPeerConnection;
  channel: RTCDataChannel;
  /** The largest message the channel carries toward the peer (`null`: 65536 by RFC 8841). */
  maxMessageSize: number | null;
  /** The remote description as received (for its limits). */
  remoteSdp: string;
  /** Resolves when the peer says bye or signaling ends; the session reads on after set-up. */
  signalingDone: Promise<"bye" | "lost">;
}

/** `a=max-message-size` of a description: `null` when absent. */
export function sdpMaxMessageSize(sdp: string): number | null {
  const m = /^a=max-message-size:(\d+)\s*$/m.exec(sdp);
  return m && m[1] ? Number(m[1]) : null;
}

/**
 * A description that still carries a pairing code reached a side without
 * the secret (`PairedSignaling` strips it): say so, rather than fail later.
 */
function unpairedCheck(sdp: string, what: string): void {
  if (carriesPairingCode(sdp)) {
    throw new ConnectError("pairing", `the peer pairs (its ${what} carries a pairing code): give the secret, from the #… of its mcpw:// line`);
  }
}

function candidateOf(c: RTCIceCandidate): CandidateInit {
  return { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null };
}

/** Open the data channel. Rejects with a {@link ConnectError}; the peer connection is closed then. */
export async function openPeer(options: PeerOptions): Promise<OpenPeer> {
  const Ctor = options.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: PeerConnectionConstructor }).RTCPeerConnection;
  if (!Ctor) throw new ConnectError("channel", "no RTCPeerConnection here: pass one (`@roamhq/wrtc` in Node)");
  const timeoutMs = options.handshakeTimeoutMs ?? 20_000;
  const maxCandidates = options.maxRemoteCandidates ?? 64;
  const signaling = options.signaling;
  const pc = new Ctor({ iceServers: options.iceServers ?? [] });

  let fail: (e: ConnectError) => void = () => {};
  let opened: (ch: RTCDataChannel) => void = () => {};
  const outcome = new Promise<RTCDataChannel>((resolve, reject) => {
    opened = resolve;
    fail = reject;
  });
  let settled = false;
  outcome.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );

  // Local candidates wait until our description is out.
  let described = false;
  const early: SignalMessage[] = [];
  const sendSignal = (m: SignalMessage) => {
    signaling.send(m).catch((e: Error) => {
      if (!settled) fail(new ConnectError("signaling", `sending ${m.type}: ${e.message}`));
    });
  };
  pc.onicecandidate = (ev) => {
    const m: SignalMessage = ev.candidate && ev.candidate.candidate ? { type: "candidate", candidate: candidateOf(ev.candidate) } : { type: "end-of-candidates" };
    if (described) sendSignal(m);
    else early.push(m);
  };
  const describe = async (kind: "offer" | "answer") => {
    const local = pc.localDescription;
    if (!local) throw new ConnectError("sdp", `no local ${kind} after setLocalDescription`);
    await signaling.send({ type: kind, sdp: local.sdp });
    described = true;
    for (const m of early.splice(0)) sendSignal(m);
  };

  pc.oniceconnectionstatechange = () => {
    if (pc.iceConnectionState === "failed" && !settled) fail(new ConnectError("ice", "ICE failed: no candidate pair worked"));
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed" && !settled) fail(new ConnectError("dtls", "the connection failed after ICE (DTLS)"));
  };

  const watch = (ch: RTCDataChannel) => {
    ch.binaryType = "arraybuffer";
    if (ch.readyState === "open") opened(ch);
    ch.onopen = () => opened(ch);
    ch.onclose = () => {
      if (!settled) fail(new ConnectError("channel", "the data channel closed before it opened"));
    };
  };
  if (options.role === "offerer") {
    watch(pc.createDataChannel(options.label ?? "mcp", { ordered: true, protocol: options.chunked === false ? "" : PROTOCOL }));
  } else {
    pc.ondatachannel = (ev) => {
      if (!settled) watch(ev.channel);
    };
  }

  // One reader for the whole session: descriptions and candidates during
  // set-up, then late candidates and the peer's bye.
  let remoteSdp = "";
  let remoteSet = false;
  const pending: CandidateInit[] = [];
  let taken = 0;
  const addCandidate = (c: CandidateInit | null) => {
    const init = c ?? { candidate: "" };
    pc.addIceCandidate(init as RTCIceCandidateInit).catch(() => {
      // a candidate the stack cannot use (another transport, mDNS it cannot resolve) is skipped
    });
  };
  const signalingDone = (async (): Promise<"bye" | "lost"> => {
    for (;;) {
      let m: SignalMessage | null;
      try {
        m = await signaling.recv();
      } catch (e) {
        const err = e as SignalingError;
        if (!settled) fail(new ConnectError(err.kind === "PairingFailed" ? "pairing" : "signaling", err.message));
        return "lost";
      }
      if (m === null) {
        if (!settled) fail(new ConnectError("signaling", "the peer said bye before the channel opened"));
        return "bye";
      }
      try {
        switch (m.type) {
          case "offer":
            if (options.role !== "answerer" || remoteSet) break;
            unpairedCheck(m.sdp, "offer");
            remoteSdp = m.sdp;
            await pc.setRemoteDescription({ type: "offer", sdp: m.sdp }).catch((e: Error) => {
              throw new ConnectError("sdp", `the peer's offer was refused: ${e.message}`);
            });
            remoteSet = true;
            for (const c of pending.splice(0)) addCandidate(c);
            await pc.setLocalDescription(await pc.createAnswer());
            await describe("answer");
            break;
          case "answer":
            if (options.role !== "offerer" || remoteSet) break;
            unpairedCheck(m.sdp, "answer");
            remoteSdp = m.sdp;
            await pc.setRemoteDescription({ type: "answer", sdp: m.sdp }).catch((e: Error) => {
              throw new ConnectError("sdp", `the peer's answer was refused: ${e.message}`);
            });
            remoteSet = true;
            for (const c of pending.splice(0)) addCandidate(c);
            break;
          case "candidate":
            if (taken >= maxCandidates) break;
            taken += 1;
            if (remoteSet) addCandidate(m.candidate);
            else pending.push(m.candidate);
            break;
          case "end-of-candidates":
            if (remoteSet) addCandidate(null);
            break;
          case "refused":
            if (!settled) fail(new ConnectError("refused", `the server refused the session: ${m.reason}`));
            return "bye";
          case "pairing":
            if (!settled) fail(new ConnectError("pairing", "the peer pairs with a short code, which this package does not support; use a secret"));
            return "bye";
          case "bye":
            return "bye";
        }
      } catch (e) {
        if (!settled) fail(e instanceof ConnectError ? e : new ConnectError("sdp", (e as Error).message));
        return "lost";
      }
    }
  })();

  const timer = setTimeout(() => {
    const state = `ICE ${pc.iceConnectionState}, connection ${pc.connectionState}`;
    fail(new ConnectError("timeout", `the data channel did not open within ${timeoutMs} ms (${remoteSet ? state : "no answer from the peer"})`));
  }, timeoutMs);
  try {
    if (options.role === "offerer") {
      await pc.setLocalDescription(await pc.createOffer());
      // The send may never settle (a channel of the caller's): the timer bounds it.
      await Promise.race([describe("offer"), outcome]);
    }
    const channel = await outcome;
    return { pc, channel, maxMessageSize: sdpMaxMessageSize(remoteSdp), remoteSdp, signalingDone };
  } catch (e) {
    settled = true;
    pc.close();
    if (e instanceof ConnectError) throw e;
    throw new ConnectError("signaling", (e as Error).message);
  } finally {
    clearTimeout(timer);
  }
}
