// The wire vectors the Rust core passes (crates/mcp-webrtc-core/tests/
// vectors/wire-v1.json, generated from docs/protocol.md by an independent
// Python implementation): the contract between the two implementations.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Framer, FrameError, PROTOCOL, encodeData, encodeHello, parseFrame } from "../dist/index.js";

const vectors = JSON.parse(
  readFileSync(new URL("../../../crates/mcp-webrtc-core/tests/vectors/wire-v1.json", import.meta.url), "utf8"),
);

const unhex = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const hex = (bytes) => Buffer.from(bytes).toString("hex");

test("the vectors name our protocol", () => {
  assert.equal(vectors.protocol, PROTOCOL);
});

test("valid frames parse and encode byte for byte", () => {
  assert.ok(vectors.frames.length >= 5);
  for (const c of vectors.frames) {
    const frame = parseFrame(unhex(c.hex));
    if (c.type === "data") {
      assert.equal(frame.type, "data", c.name);
      assert.equal(frame.id, c.id, c.name);
      assert.equal(frame.offset, BigInt(c.offset), c.name);
      assert.equal(frame.total, BigInt(c.total), c.name);
      assert.equal(hex(frame.payload), c.payload_hex, c.name);
      assert.equal(hex(encodeData(c.id, BigInt(c.offset), BigInt(c.total), unhex(c.payload_hex))), c.hex, c.name);
    } else {
      assert.equal(frame.type, "hello", c.name);
      const limits = {
        maxMessageSize: BigInt(c.max_message_size),
        maxInFlight: c.max_in_flight,
        maxBufferedBytes: BigInt(c.max_buffered_bytes),
      };
      assert.deepEqual(frame.limits, limits, c.name);
      // Encoding writes version 1 only: compare the first 22 bytes.
      assert.equal(hex(encodeHello(limits)), c.hex.slice(0, 44), c.name);
    }
  }
});

test("invalid frames are refused with the error the vectors name", () => {
  assert.ok(vectors.invalid_frames.length >= 11);
  for (const c of vectors.invalid_frames) {
    assert.throws(
      () => parseFrame(unhex(c.hex)),
      (e) => e instanceof FrameError && e.kind === c.error,
      `${c.name} should be ${c.error}`,
    );
  }
});

test("messages are sent as the vectors say: text when they fit, else DATA frames", () => {
  for (const c of vectors.messages) {
    // An offerer whose peer's HELLO has arrived, with the vector's frame size.
    const framer = new Framer("offerer", PROTOCOL, 262144, 0, { frameSize: Number(c.frame_size) });
    assert.equal(framer.receiveBinary(encodeHello({ maxMessageSize: 1n << 30n, maxInFlight: 32, maxBufferedBytes: 1n << 30n }), 0), null);
    assert.equal(framer.pollTransmit().kind, "binary", "our HELLO goes first");
    assert.equal(Number(c.first_id), 0);
    framer.send(c.message);
    const sent = [];
    for (let t = framer.pollTransmit(); t; t = framer.pollTransmit()) sent.push(t);
    const expected = c.frames.map((f) => (f.text !== undefined ? { kind: "text", text: f.text } : { kind: "binary", hex: f.binary_hex }));
    assert.deepEqual(
      sent.map((t) => (t.kind === "text" ? t : { kind: "binary", hex: hex(t.data) })),
      expected,
      c.name,
    );
  }
});
