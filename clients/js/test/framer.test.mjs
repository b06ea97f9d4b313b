// The framer's behaviour beyond single frames: negotiation, interleaving,
// limits, reassembly errors and timers, between two framers (no network).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Framer, PROTOCOL, ReassemblyError, SendError, encodeData } from "../dist/index.js";

/** Move everything `from` has to send into `to`; the whole messages `to` got. */
function pump(from, to, now = 0) {
  const got = [];
  for (let t = from.pollTransmit(); t; t = from.pollTransmit()) {
    const m = t.kind === "text" ? to.receiveText(t.text) : to.receiveBinary(t.data, now);
    if (m !== null) got.push(m);
  }
  return got;
}

function negotiated(config = {}) {
  const offerer = new Framer("offerer", PROTOCOL, 262144, 0, config);
  const answerer = new Framer("answerer", PROTOCOL, 262144, 0, config);
  assert.equal(offerer.mode, "plain");
  assert.equal(answerer.mode, "chunked");
  pump(answerer, offerer); // the answerer's HELLO
  assert.equal(offerer.mode, "chunked");
  pump(offerer, answerer); // the offerer's HELLO
  assert.ok(offerer.peerLimits && answerer.peerLimits);
  return { offerer, answerer };
}

const json = (id, text) => JSON.stringify({ jsonrpc: "2.0", id, result: { text } });

test("a 5 MiB message crosses in 16 KiB frames and arrives whole", () => {
  const { offerer, answerer } = negotiated();
  const big = json(1, "x".repeat(5 << 20));
  offerer.send(big);
  const frames = [];
  for (let t = offerer.pollTransmit(); t; t = offerer.pollTransmit()) frames.push(t);
  assert.ok(frames.every((f) => f.kind === "binary" && f.data.length <= 16 * 1024));
  const got = frames.map((f) => answerer.receiveBinary(f.data, 0)).filter((m) => m !== null);
  assert.deepEqual(got, [big]);
});

test("a small message waits behind one frame of a large one, not all of it", () => {
  const { offerer, answerer } = negotiated();
  const sent = [];
  const poll = () => {
    const t = offerer.pollTransmit();
    sent.push(t);
    return t;
  };
  offerer.send(json(1, "x".repeat(1 << 20)));
  assert.equal(poll().kind, "binary");
  offerer.send(json(2, "small"));
  // Text goes ahead of the rotation at once.
  assert.deepEqual(poll(), { kind: "text", text: json(2, "small") });
  // Two large messages (ids 0 and 1) alternate frame by frame.
  offerer.send(json(3, "y".repeat(100_000)));
  const ids = [];
  for (let i = 0; i < 4; i += 1) ids.push(new DataView(poll().data.buffer).getUint32(1));
  assert.deepEqual(ids, [0, 1, 0, 1]);
  for (let t = offerer.pollTransmit(); t; t = offerer.pollTransmit()) sent.push(t);
  const got = sent
    .map((t) => (t.kind === "text" ? answerer.receiveText(t.text) : answerer.receiveBinary(t.data, 0)))
    .filter((m) => m !== null);
  // Delivered in the order they complete: the small one, then the shorter
  // large one, then the 1 MiB one.
  assert.deepEqual(got.map((m) => JSON.parse(m).id), [2, 3, 1]);
});

test("toward a plain peer a message over the channel limit is refused by name", () => {
  const framer = new Framer("offerer", "", 262144, 0);
  framer.send(json(1, "fits"));
  assert.throws(() => framer.send(json(2, "x".repeat(300_000))), (e) => e instanceof SendError && e.kind === "MessageTooLarge");
  assert.throws(() => framer.receiveBinary(new Uint8Array([1, 2]), 0), /NotNegotiated/);
});

test("large messages wait for the HELLO, and are handed back when it never comes", () => {
  const framer = new Framer("offerer", PROTOCOL, 262144, 1_000);
  framer.send(json(1, "x".repeat(300_000)));
  assert.equal(framer.pollTransmit(), null, "no DATA before the peer's HELLO");
  assert.equal(framer.pollTimeout(), 6_000);
  framer.handleTimeout(6_000);
  const back = framer.pollRejected();
  assert.equal(back.error.kind, "NoPeerHello");
  assert.throws(() => framer.send(json(2, "x".repeat(300_000))), (e) => e.kind === "NoPeerHello");
});

test("our limits are checked before memory is reserved, and a bad frame ends only its message", () => {
  const small = { maxMessageSize: 1000n, maxInFlight: 1, maxBufferedBytes: 1500n };
  const { offerer, answerer } = negotiated({ limits: small });
  const frame = (id, offset, total, n) => encodeData(id, BigInt(offset), BigInt(total), new Uint8Array(n).fill(0x20));
  assert.throws(() => answerer.receiveBinary(frame(1, 0, 5000, 10), 0), (e) => e instanceof ReassemblyError && e.kind === "MessageTooLarge");
  assert.equal(answerer.receiveBinary(frame(1, 10, 5000, 10), 0), null, "later frames of a refused message are skipped");
  answerer.receiveBinary(frame(2, 0, 900, 10), 0);
  assert.throws(() => answerer.receiveBinary(frame(3, 0, 900, 10), 0), (e) => e.kind === "TooManyInFlight");
  assert.throws(() => answerer.receiveBinary(frame(2, 5, 900, 10), 0), (e) => e.kind === "DuplicateFrame");
  assert.throws(() => answerer.receiveBinary(frame(9, 5, 900, 10), 0), (e) => e.kind === "UnknownMessage");
  // The session goes on: a whole message still arrives.
  offerer.send(json(4, "ok"));
  assert.deepEqual(pump(offerer, answerer), [json(4, "ok")]);
});

test("a message that stops receiving frames expires and frees its memory", () => {
  const { answerer } = negotiated({ partialTimeoutMs: 1_000 });
  answerer.receiveBinary(encodeData(1, 0n, 100n, new Uint8Array(10)), 0);
  assert.equal(answerer.pollTimeout(), 1_000);
  const expired = answerer.handleTimeout(1_000);
  assert.equal(expired[0].kind, "PartialTimeout");
  assert.equal(answerer.pollTimeout(), null);
});
