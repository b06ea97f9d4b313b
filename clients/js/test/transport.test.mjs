// The transport between two real peer connections (@roamhq/wrtc, libwebrtc)
// in this process, signaling over the channel adapter.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import wrtc from "@roamhq/wrtc";
import { ChannelSignaling, ConnectError, WebRtcTransport, openPeer } from "../dist/index.js";

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
