// The w3c dialect, the recv rules, the channel adapter and secret pairing.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ChannelSignaling,
  Inbox,
  PairedSignaling,
  SignalingError,
  carriesPairingCode,
  decodeSignal,
  encodeSignal,
  generateSecret,
  parsePairingUrl,
  parseSecret,
  roomUrl,
  clientUrl,
} from "../dist/index.js";

test("messages encode in the w3c shapes of docs/signaling.md and decode back", () => {
  const cases = [
    [{ type: "offer", sdp: "v=0\r\n" }, '{"type":"offer","sdp":"v=0\\r\\n"}'],
    [{ type: "answer", sdp: "v=0\r\n" }, '{"type":"answer","sdp":"v=0\\r\\n"}'],
    [
      { type: "candidate", candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host", sdpMid: "0", sdpMLineIndex: 0 } },
      '{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}',
    ],
    [{ type: "end-of-candidates" }, '{"type":"candidate","candidate":{"candidate":""}}'],
    [{ type: "pairing", data: "ab" }, '{"type":"pairing","data":"ab"}'],
    [{ type: "refused", reason: "busy" }, '{"type":"refused","reason":"busy"}'],
  ];
  for (const [message, text] of cases) {
    assert.equal(encodeSignal(message), text);
    assert.deepEqual(decodeSignal(text), { kind: "message", message });
  }
  assert.deepEqual(decodeSignal('{"type":"bye"}'), { kind: "message", message: { type: "bye" } });
  assert.deepEqual(decodeSignal('{"type":"candidate","candidate":null}'), { kind: "message", message: { type: "end-of-candidates" } });
  assert.deepEqual(decodeSignal('{"type":"error","reason":"message too large"}'), { kind: "notice", reason: "message too large" });
  assert.deepEqual(decodeSignal('{"type":"session","room":"h/1"}'), { kind: "session", room: "h/1" });
});

test("malformed messages are refused with an error naming the field", () => {
  const cases = [
    ["not json", /not JSON/],
    ["[1]", /JSON object/],
    ['{"type":"offer"}', /offer message has no string `sdp`/],
    ['{"type":"candidate","candidate":{"candidate":"c","sdpMLineIndex":-1}}', /sdpMLineIndex/],
    ['{"type":"candidate","candidate":{"candidate":"c","sdpMid":5}}', /sdpMid/],
    ['{"type":"renegotiate","renegotiate":true}', /unknown message type "renegotiate"/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => decodeSignal(text), (e) => e instanceof SignalingError && e.kind === "Malformed" && pattern.test(e.message), text);
  }
  assert.throws(() => decodeSignal(`"${"x".repeat(1024 * 1024 + 1)}"`), (e) => e.kind === "TooLarge");
});

test("recv gives null after a bye forever, and a loss once, then null", async () => {
  const a = new Inbox();
  a.push(1);
  a.finish(null);
  assert.equal(await a.next(), 1);
  assert.equal(await a.next(), null);
  assert.equal(await a.next(), null);
  const b = new Inbox();
  b.finish(new SignalingError("PeerClosed", "gone"));
  await assert.rejects(b.next(), /gone/);
  assert.equal(await b.next(), null);
});

test("an inbox past its limit fails instead of growing", async () => {
  const inbox = new Inbox(3);
  for (let i = 0; i < 10; i += 1) inbox.push(i);
  assert.equal(await inbox.next(), 0);
  assert.equal(await inbox.next(), 1);
  assert.equal(await inbox.next(), 2);
  await assert.rejects(inbox.next(), /more than 3 signaling messages/);
});

/** Two ChannelSignaling ends wired to each other. */
function linked() {
  const notices = [];
  let a = null;
  let b = null;
  a = new ChannelSignaling((t) => b.deliver(t), (n) => notices.push(n));
  b = new ChannelSignaling((t) => a.deliver(t), (n) => notices.push(n));
  return { a, b, notices };
}

test("the channel adapter carries messages; bad texts become notices; bye ends recv", async () => {
  const { a, b, notices } = linked();
  await a.send({ type: "offer", sdp: "v=0\r\n" });
  b.deliver("garbage");
  b.deliver('{"type":"error","reason":"dropped"}');
  assert.deepEqual(await b.recv(), { type: "offer", sdp: "v=0\r\n" });
  assert.equal(notices.length, 2);
  await a.close();
  assert.equal(await b.recv(), null);
  await assert.rejects(a.send({ type: "bye" }), (e) => e.kind === "Closed");
});

test("pairing: both sides with the secret exchange descriptions unchanged", async () => {
  const { a, b } = linked();
  const secret = generateSecret();
  const offerer = new PairedSignaling(a, secret);
  const answerer = new PairedSignaling(b, secret);
  await offerer.send({ type: "offer", sdp: "v=0\r\na=fingerprint:sha-256 AA\r\n" });
  assert.deepEqual(await answerer.recv(), { type: "offer", sdp: "v=0\r\na=fingerprint:sha-256 AA\r\n" });
  await answerer.send({ type: "answer", sdp: "v=0\r\na=fingerprint:sha-256 BB" });
  assert.deepEqual(await offerer.recv(), { type: "answer", sdp: "v=0\r\na=fingerprint:sha-256 BB\r\n" });
});

test("pairing: a wrong secret, a rewritten description, or none is refused", async () => {
  {
    const { a, b } = linked();
    await new PairedSignaling(a, generateSecret()).send({ type: "offer", sdp: "v=0\r\n" });
    await assert.rejects(new PairedSignaling(b, generateSecret()).recv(), (e) => e.kind === "PairingFailed" && /does not match/.test(e.message));
  }
  {
    // A relay that swaps the fingerprint in transit.
    const secret = generateSecret();
    let answerer = null;
    const tamper = new ChannelSignaling((t) => answerer.deliver(t.replace("sha-256 AA", "sha-256 EE")));
    answerer = new ChannelSignaling(() => {});
    await new PairedSignaling(tamper, secret).send({ type: "offer", sdp: "v=0\r\na=fingerprint:sha-256 AA\r\n" });
    await assert.rejects(new PairedSignaling(answerer, secret).recv(), /does not match/);
  }
  {
    const { a, b } = linked();
    await a.send({ type: "offer", sdp: "v=0\r\n" });
    await assert.rejects(new PairedSignaling(b, generateSecret()).recv(), /carries no pairing code/);
  }
});

test("pairing attribute, secrets and mcpw URLs are read as the Rust side writes them", () => {
  assert.equal(carriesPairingCode("v=0\r\na=mcpw-pairing:ab\r\n"), true);
  assert.equal(carriesPairingCode("v=0\r\nx a=mcpw-pairing:ab\r\n"), false);
  assert.equal(carriesPairingCode("v=0\r\na=mcpw-pairing:ab\r\na=x\r\n"), false);
  assert.equal(parseSecret("00".repeat(16)).length, 16);
  assert.throws(() => parseSecret("abc"), /in pairs/);
  assert.throws(() => parseSecret("00".repeat(8)), /8 bytes/);
  const hex = "3f2a".repeat(8);
  assert.deepEqual(parsePairingUrl(`mcpw://relay.example:8787/desktop#${hex}`), { relay: "ws://relay.example:8787", name: "desktop", secret: hex });
  assert.throws(() => parsePairingUrl("mcpw://relay.example:8787/desktop#"), /secret after # is empty/);
  // A bad URL's error never shows the secret.
  assert.throws(() => parsePairingUrl(`mcpw://relay.example:8787/a/b#${hex}`), (e) => !e.message.includes(hex) && /#…/.test(e.message));
  assert.throws(() => parsePairingUrl("mcpw://relay.example:8787/desktop#3f2a"), /2 bytes/);
  assert.deepEqual(parsePairingUrl("mcpws://relay.example/desktop"), { relay: "wss://relay.example", name: "desktop", secret: null });
  assert.throws(() => parsePairingUrl("https://x/y"), /not an mcpw/);
  assert.equal(roomUrl("ws://r:1/", "a/b"), "ws://r:1/v1/room/a/b");
  assert.equal(clientUrl("ws://r:1", "desk"), "ws://r:1/v1/host/desk/connect");
  assert.throws(() => clientUrl("ws://r:1", "a/b"), /host name/);
  assert.throws(() => roomUrl("ws://r:1", "a//b"), /room name/);
});

test("pairing: an answer rewritten in transit, or one without a code, is refused by the offerer", async () => {
  for (const rewrite of [(t) => t.replace("sha-256 BB", "sha-256 EE"), (t) => t.replace(/a=mcpw-pairing:[0-9a-f]+\\r\\n/, "")]) {
    const secret = generateSecret();
    let a = null;
    let b = null;
    a = new ChannelSignaling((t) => b.deliver(t));
    b = new ChannelSignaling((t) => a.deliver(rewrite(t)));
    const offerer = new PairedSignaling(a, secret);
    const answerer = new PairedSignaling(b, secret);
    await offerer.send({ type: "offer", sdp: "v=0\r\na=fingerprint:sha-256 AA\r\n" });
    await answerer.recv();
    await answerer.send({ type: "answer", sdp: "v=0\r\na=fingerprint:sha-256 BB\r\n" });
    await assert.rejects(offerer.recv(), (e) => e.kind === "PairingFailed" && /the answer (does not match|carries no pairing code)/.test(e.message));
  }
});

test("pairing codes match the Rust side byte for byte (a shared known answer)", async () => {
  // The same vector is asserted in crates/mcp-webrtc-signaling/src/pairing/mod.rs;
  // the expected codes were computed with Python's hmac module.
  const secret = "000102030405060708090a0b0c0d0e0f";
  let seen = [];
  const a = new ChannelSignaling((t) => seen.push(JSON.parse(t)));
  const offerer = new PairedSignaling(a, secret);
  await offerer.send({ type: "offer", sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" });
  assert.equal(seen[0].sdp, `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\na=mcpw-pairing:2af4d98ccead5b6cd6de898a617f2807c84c1ddeb83d1da0d4aaad4f715e859d\r\n`);
  const b = new ChannelSignaling((t) => seen.push(JSON.parse(t)));
  const answerer = new PairedSignaling(b, secret);
  b.deliver(JSON.stringify(seen[0]));
  await answerer.recv();
  await answerer.send({ type: "answer", sdp: "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n" });
  assert.equal(seen[1].sdp, `v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\na=mcpw-pairing:0ad50d686861395e6272aca8e787c22dbb5ed460a9ce63c55b95413434d241c7\r\n`);
});
