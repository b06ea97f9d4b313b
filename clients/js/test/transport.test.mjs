// The transport between two real peer connections (@roamhq/wrtc, libwebrtc)
// in this process, signaling over the channel adapter.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import wrtc from "@roamhq/wrtc";
import { ChannelSignaling, ConnectError, PROTOCOL, WebRtcTransport, encodeHello, openPeer } from "../dist/index.js";

const peers = [];
after(() => {
  for (const p of peers) p.close();
});

function linked() {
  let a = null;
  let b = null;
  a = new ChannelSignaling((t) => b.deliver(t));
  b = new ChannelSignaling((t) => a.deliver(t));
  return [a, b];
}

/** Two started transports; messages and errors collected. */
async function pair(options = {}) {
  const [sa, sb] = linked();
  const make = (signaling, role) => {
    const t = new WebRtcTransport({ signaling, role, RTCPeerConnection: wrtc.RTCPeerConnection, ...options });
    t.got = [];
    t.errors = [];
    t.closed = false;
    t.onmessage = (m) => t.got.push(m);
    t.onerror = (e) => t.errors.push(e);
    t.onclose = () => (t.closed = true);
    peers.push({ close: () => t.close() });
    return t;
  };
  const server = make(sa, "offerer");
  const client = make(sb, "answerer");
  await Promise.all([server.start(), client.start()]);
  return { server, client };
}

async function until(f, what, ms = 10_000) {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const request = (id, text) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: { text } } });

test("chunked mode is negotiated and 3 MiB messages cross both ways, interleaved with small ones", async () => {
  const { server, client } = await pair();
  const big = "x".repeat(3 * 1024 * 1024);
  await client.send(request(1, big));
  await client.send(request(2, "small"));
  await server.send({ jsonrpc: "2.0", id: 9, result: { text: big } });
  await until(() => server.got.length === 2 && client.got.length === 1, "both messages");
  assert.equal(server.mode, "chunked");
  assert.equal(client.mode, "chunked");
  // The small request was not stuck behind the large one: it overtook it.
  assert.deepEqual(server.got.map((m) => m.id), [2, 1]);
  assert.equal(server.got.find((m) => m.id === 1).params.arguments.text.length, big.length);
  assert.equal(client.got[0].result.text, big);
  assert.deepEqual([server.errors, client.errors], [[], []]);
  await client.close();
  await until(() => server.closed, "the server to see the bye");
  // A clean close by the peer is no error on either side.
  assert.deepEqual([server.errors, client.errors], [[], []]);
});

test("plain mode: a result too large for the peer becomes a JSON-RPC error, a request is refused, the session lives", async () => {
  const { server, client } = await pair({ chunked: false });
  assert.equal(server.mode, "plain");
  await server.send({ jsonrpc: "2.0", id: 7, result: { text: "y".repeat(300 * 1024) } });
  await until(() => client.got.length === 1, "the error response");
  const reply = client.got[0];
  assert.equal(reply.id, 7);
  assert.equal(reply.error.code, -32603);
  assert.match(reply.error.message, /^result too large for this peer: \d+ bytes > limit 262144$/);
  assert.equal(server.stats.oversizeResultsAnswered, 1);
  await assert.rejects(client.send(request(3, "z".repeat(300 * 1024))), (e) => e.kind === "MessageTooLarge");
  await client.send(request(4, "still here"));
  await until(() => server.got.length === 1, "the next request");
  assert.equal(server.got[0].id, 4);
  await server.close();
});

test("malformed input from a peer is reported and the session goes on", async () => {
  const [sa, sb] = linked();
  const t = new WebRtcTransport({ signaling: sb, role: "answerer", RTCPeerConnection: wrtc.RTCPeerConnection });
  const got = [];
  const errors = [];
  t.onmessage = (m) => got.push(m);
  t.onerror = (e) => errors.push(e);
  const [raw] = await Promise.all([openPeer({ signaling: sa, role: "offerer", RTCPeerConnection: wrtc.RTCPeerConnection }), t.start()]);
  peers.push(raw.pc, { close: () => t.close() });
  raw.channel.send("not json");
  raw.channel.send("[1,2]");
  raw.channel.send(new Uint8Array([0x7f, 1, 2]));
  raw.channel.send(JSON.stringify({ jsonrpc: "2.0", method: "ping" }));
  await until(() => got.length === 1, "the valid message");
  assert.deepEqual(got, [{ jsonrpc: "2.0", method: "ping" }]);
  assert.deepEqual(
    errors.map((e) => e.kind),
    ["InvalidMessage", "InvalidMessage", "Framing"],
  );
  assert.match(errors[0].message, /not JSON/);
  assert.equal(t.stats.invalidMessages, 3);
  await t.close();
});

test("a set-up with a silent peer fails within the handshake timeout, naming it", async () => {
  const [, sb] = linked();
  const t = new WebRtcTransport({ signaling: sb, role: "answerer", RTCPeerConnection: wrtc.RTCPeerConnection, handshakeTimeoutMs: 500 });
  const started = Date.now();
  await assert.rejects(t.start(), (e) => e instanceof ConnectError && e.phase === "timeout" && /within 500 ms \(no answer from the peer\)/.test(e.message));
  assert.ok(Date.now() - started < 3_000);
});

test("a peer that refuses the session ends the set-up with its reason", async () => {
  const [sa, sb] = linked();
  const t = new WebRtcTransport({ signaling: sb, role: "answerer", RTCPeerConnection: wrtc.RTCPeerConnection });
  const starting = t.start();
  await sa.send({ type: "refused", reason: "the server is busy" });
  await assert.rejects(starting, (e) => e.phase === "refused" && /busy/.test(e.message));
});

test("messages held for the HELLO and then over the peer's limits are answered, not lost", async () => {
  // A raw answerer that speaks chunked framing but sends its HELLO only when told.
  const [sa, sb] = linked();
  const server = new WebRtcTransport({ signaling: sa, role: "offerer", RTCPeerConnection: wrtc.RTCPeerConnection });
  const got = [];
  const errors = [];
  server.onmessage = (m) => got.push(m);
  server.onerror = (e) => errors.push(e);
  const texts = [];
  const [, raw] = await Promise.all([server.start(), openPeer({ signaling: sb, role: "answerer", RTCPeerConnection: wrtc.RTCPeerConnection })]);
  peers.push(raw.pc, { close: () => server.close() });
  raw.channel.onmessage = (ev) => {
    if (typeof ev.data === "string") texts.push(JSON.parse(ev.data));
  };
  assert.equal(raw.channel.protocol, PROTOCOL);
  // Over the channel's 256 KiB: both wait for the peer's HELLO.
  await server.send({ jsonrpc: "2.0", id: 5, result: { text: "r".repeat(400 * 1024) } });
  await server.send({ jsonrpc: "2.0", id: "ask", method: "sampling/createMessage", params: { text: "q".repeat(400 * 1024) } });
  raw.channel.send(encodeHello({ maxMessageSize: 300n * 1024n, maxInFlight: 4, maxBufferedBytes: 1n << 20n }));
  await until(() => texts.length === 1 && got.length === 1, "the two answers");
  // The peer's request gets the "too large" error instead of a result.
  assert.equal(texts[0].id, 5);
  assert.match(texts[0].error.message, /^result too large for this peer: \d+ bytes > limit 307200$/);
  // Our own request is answered here, so its caller does not wait for ever.
  assert.equal(got[0].id, "ask");
  assert.match(got[0].error.message, /request not sent: .*307200/);
  assert.deepEqual(errors.map((e) => e.kind), ["MessageTooLarge"]);
  await server.close();
});

test("sends keep their order while they wait for room in the queue", async () => {
  const { server, client } = await pair({ framer: { maxQueuedBytes: 256 * 1024 } });
  const sends = [];
  for (let i = 0; i < 20; i += 1) sends.push(client.send(request(i, `${i}:${"m".repeat(100 * 1024)}`)));
  await Promise.all(sends);
  await until(() => server.got.length === 20, "all twenty");
  assert.deepEqual(server.got.map((m) => m.id), [...Array(20).keys()]);
  await client.close();
});
