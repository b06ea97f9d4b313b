// `cargo xtask interop --node`: Node peers against the Rust ones, through
// our relay on 127.0.0.1.
//
// - The TypeScript reference's shape: simple-peer on @roamhq/wrtc (its own
//   stack), simple-peer's signal objects, a random channel label, one
//   JSON.stringify'd message per text message. Plain mode.
//     Rust server (mcp-webrtc serve) ⇄ reference-shaped Node client
//     reference-shaped Node server ⇄ Rust client (examples/relay_client)
// - This project's package (mcp-webrtc-channel) on @roamhq/wrtc, chunked,
//   paired, with 20 MiB results, in both roles.
// - The same package in plain mode against the reference's shape, in a
//   relay room, in both roles: it takes simple-peer's random label, and as a
//   server it answers a result over 256 KiB with the JSON-RPC error.
//
// Environment: MCP_WEBRTC, STDIO_SERVER, RELAY_CLIENT (as browser.mjs).
// Prints one `CELL <name>\t<ok|FAIL>\t<detail>` line per check; exits 1 on any failure.

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import wrtc from "@roamhq/wrtc";
import SimplePeer from "simple-peer";
import WebSocket from "ws";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { PairedSignaling, RelayHost, WebRtcTransport, WebSocketSignaling, clientUrl, generateSecret, parsePairingUrl } from "../../clients/js/dist/index.js";
import { startRelay, startServe } from "./stack.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

let failures = 0;
function cell(name, ok, detail = "") {
  console.log(`CELL ${name}\t${ok ? "ok" : "FAIL"}\t${String(detail).replace(/\s+/g, " ")}`);
  if (!ok) failures += 1;
}
async function attempt(name, f) {
  try {
    await f();
  } catch (e) {
    cell(name, false, `threw: ${e?.stack ?? e}`);
  }
}

function runRust(args, timeoutMs = 120_000) {
  return new Promise((resolve) => {
    const child = spawn(env("RELAY_CLIENT"), args, { stdio: ["ignore", "pipe", "pipe"] });
    const out = [];
    let err = "";
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      const lines = Buffer.concat(out).toString("utf8").split("\n");
      const get = (tag) => {
        const l = lines.find((x) => x.startsWith(`${tag} `));
        return l ? l.slice(tag.length + 1) : null;
      };
      resolve({ code, err, get });
    });
  });
}

// ---- the reference's shape -------------------------------------------------

/** What the TypeScript reference's transport does: one JSON text per message over simple-peer. */
class SimplePeerTransport {
  constructor(peer) {
    this.peer = peer;
  }
  async start() {
    if (this.peer.connected) return;
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("simple-peer did not connect within 20 s")), 20_000);
      this.peer.once("connect", () => {
        clearTimeout(t);
        resolve();
      });
      this.peer.once("error", (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
    this.label = this.peer._channel?.label;
    this.peer.on("data", (d) => this.onmessage?.(JSON.parse(d.toString())));
    this.peer.on("close", () => this.onclose?.());
    this.peer.on("error", (e) => this.onerror?.(e));
  }
  async send(message) {
    this.peer.send(JSON.stringify(message));
  }
  async close() {
    this.peer.destroy();
  }
}

/** simple-peer over a relay WebSocket: its signal objects verbatim, both ways. */
async function referencePeer(url, token, initiator) {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  const peer = new SimplePeer({ initiator, wrtc, trickle: true });
  // The relay delivers what a room held as soon as this peer joins, possibly
  // in the same read as the upgrade: the handler must be there before "open".
  const outbox = [];
  peer.on("signal", (data) => (ws.readyState === WebSocket.OPEN ? ws.send(JSON.stringify(data)) : outbox.push(data)));
  ws.on("message", (raw) => {
    const m = JSON.parse(raw.toString());
    if (m.type === "bye" || m.type === "error" || m.type === "refused") return;
    // A late candidate after the session ended is not an error of the peer's.
    if (peer.destroyed) return;
    peer.signal(m);
  });
  try {
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the relay did not open ${url} within 10 s`)), 10_000);
      ws.once("open", () => {
        clearTimeout(t);
        resolve();
      });
      ws.once("error", (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  } catch (e) {
    peer.destroy();
    ws.terminate();
    throw e;
  }
  for (const data of outbox.splice(0)) ws.send(JSON.stringify(data));
  peer.once("close", () => ws.close());
  return { peer, ws };
}

async function rustServerToReferenceClient(bin, relay) {
  await startServe(bin, relay, "for-reference", [env("STDIO_SERVER")], { pairing: false });
  const { peer } = await referencePeer(clientUrl(relay.url, "for-reference"), relay.token, false);
  const transport = new SimplePeerTransport(peer);
  const client = new Client({ name: "reference-shaped node client", version: "0.1.0" });
  await client.connect(transport);
  const label = transport.label;
  const { tools } = await client.listTools();
  cell("rust-server→reference-client: tools listed", tools.some((t) => t.name === "blob"), JSON.stringify(tools.map((t) => t.name)));
  const greet = await client.callTool({ name: "greet", arguments: { name: "simple-peer" } });
  cell("rust-server→reference-client: tool called", greet.content?.[0]?.text === "Hello, simple-peer!", JSON.stringify(greet.content?.[0]?.text));
  const big = await client.callTool({ name: "blob", arguments: { bytes: 200 * 1024, seed: 3, hash: true } });
  const body = big.content?.[0]?.text ?? "";
  cell(
    "rust-server→reference-client: 200 KiB result",
    body.length === 200 * 1024 && big.content?.[1]?.text === `sha256:${sha256(body)}`,
    `${body.length} bytes on channel ${JSON.stringify(label)}`,
  );
  let refusal = null;
  try {
    await client.callTool({ name: "blob", arguments: { bytes: 300 * 1024, seed: 3, hash: true } });
  } catch (e) {
    refusal = e;
  }
  const after = await client.callTool({ name: "greet", arguments: { name: "again" } }).catch((e) => ({ failed: e }));
  cell(
    "rust-server→reference-client: plain-mode oversize is a JSON-RPC error, the channel lives",
    refusal !== null && /result too large for this peer/.test(refusal.message) && after.content?.[0]?.text === "Hello, again!",
    refusal ? refusal.message : "no error",
  );
  await client.close();
  peer.destroy();
}

async function referenceServerToRustClient(relay) {
  const room = `reference-${randomBytes(6).toString("hex")}`;
  const { peer, ws } = await referencePeer(`${relay.url}/v1/room/${room}`, relay.token, true);
  const server = new McpServer({ name: "reference-shaped node server", version: "0.1.0" });
  server.registerTool("blob", { description: "bytes of text", inputSchema: { bytes: z.number().int() } }, async ({ bytes }) => {
    const text = "0123456789abcdef".repeat(Math.ceil(bytes / 16)).slice(0, bytes);
    return { content: [{ type: "text", text }, { type: "text", text: `sha256:${sha256(text)}` }] };
  });
  const transport = new SimplePeerTransport(peer);
  const serving = server.connect(transport);
  serving.catch(() => {});
  const rust = await runRust(["--relay", relay.url, "--room", room, "--token", relay.token, "--bind", "127.0.0.1:0", "--call", "blob", "--args", JSON.stringify({ bytes: 200 * 1024 })]);
  await serving.catch(() => {});
  const tools = JSON.parse(rust.get("TOOLS") ?? "[]");
  cell("reference-server→rust-client: tools listed", rust.code === 0 && tools.some((t) => t.name === "blob"), rust.code === 0 ? JSON.stringify(tools.map((t) => t.name)) : rust.err.trim());
  const result = JSON.parse(rust.get("RESULT") ?? "null");
  const body = result?.content?.[0]?.text ?? "";
  cell(
    "reference-server→rust-client: 200 KiB result",
    body.length === 200 * 1024 && result?.content?.[1]?.text === `sha256:${sha256(body)}` && rust.get("MODE") === "Plain" && /^[0-9a-f]{40}$/.test(transport.label ?? ""),
    `${body.length} bytes, ${rust.get("MODE")} framing, simple-peer's random channel label ${JSON.stringify(transport.label)}`,
  );
  peer.destroy();
  ws.close();
}

// ---- this project's package in Node ------------------------------------------

const BIG = 20 * 1024 * 1024;

async function rustServerToOurNodeClient(bin, relay) {
  const { line } = await startServe(bin, relay, "for-ours", [env("STDIO_SERVER")]);
  const target = parsePairingUrl(line);
  const ws = await WebSocketSignaling.connect(clientUrl(target.relay, target.name), { token: relay.token, WebSocket });
  const transport = new WebRtcTransport({ signaling: new PairedSignaling(ws, target.secret), role: "answerer", RTCPeerConnection: wrtc.RTCPeerConnection });
  const client = new Client({ name: "mcp-webrtc-channel in node", version: "0.1.0" });
  await client.connect(transport);
  const started = Date.now();
  const big = await client.callTool({ name: "blob", arguments: { bytes: BIG, seed: 5, hash: true } }, undefined, { timeout: 120_000 });
  const body = big.content?.[0]?.text ?? "";
  cell(
    "rust-server→our-node-client: 20 MiB chunked",
    transport.mode === "chunked" && body.length === BIG && big.content?.[1]?.text === `sha256:${sha256(body)}`,
    `${body.length} bytes in ${Date.now() - started} ms, ${transport.mode} framing`,
  );
  await client.close();
}

async function ourNodeServerToRustClient(relay) {
  const name = `node-ours-${randomBytes(4).toString("hex")}`;
  const host = await RelayHost.register(relay.url, name, { token: relay.token, WebSocket });
  const secret = generateSecret();
  let transport = null;
  const accepted = (async () => {
    const signaling = await host.accept();
    if (!signaling) return;
    transport = new WebRtcTransport({ signaling: new PairedSignaling(signaling, secret), role: "offerer", RTCPeerConnection: wrtc.RTCPeerConnection });
    const server = new McpServer({ name: "mcp-webrtc-channel server in node", version: "0.1.0" });
    server.registerTool("blob", { description: "bytes of text", inputSchema: { bytes: z.number().int() } }, async ({ bytes }) => {
      const text = "abcdefghijklmnop".repeat(Math.ceil(bytes / 16)).slice(0, bytes);
      return { content: [{ type: "text", text }, { type: "text", text: `sha256:${sha256(text)}` }] };
    });
    await server.connect(transport);
  })();
  const rust = await runRust(["--relay", relay.url, "--name", name, "--token", relay.token, "--secret", secret, "--bind", "127.0.0.1:0", "--call", "blob", "--args", JSON.stringify({ bytes: BIG })]);
  // Ends a still-waiting accept (a client that never came).
  host.close();
  await accepted.catch(() => {});
  const result = JSON.parse(rust.get("RESULT") ?? "null");
  const body = result?.content?.[0]?.text ?? "";
  cell(
    "our-node-server→rust-client: 20 MiB chunked",
    rust.code === 0 && rust.get("MODE") === "Chunked" && body.length === BIG && result?.content?.[1]?.text === `sha256:${sha256(body)}`,
    rust.code === 0 ? `${body.length} bytes, ${rust.get("MODE")} framing` : rust.err.trim(),
  );
  await transport?.close();
  host.close();
}

// ---- this project's package, plain mode, against the reference's shape ----

function blobServer(name, alphabet) {
  const server = new McpServer({ name, version: "0.1.0" });
  server.registerTool("blob", { description: "bytes of text", inputSchema: { bytes: z.number().int() } }, async ({ bytes }) => {
    const text = alphabet.repeat(Math.ceil(bytes / alphabet.length)).slice(0, bytes);
    return { content: [{ type: "text", text }, { type: "text", text: `sha256:${sha256(text)}` }] };
  });
  server.registerTool("greet", { description: "a greeting", inputSchema: { name: z.string() } }, async ({ name: who }) => ({
    content: [{ type: "text", text: `Hello, ${who}!` }],
  }));
  return server;
}

const hashed = (result, bytes) => {
  const body = result?.content?.[0]?.text ?? "";
  return body.length === bytes && result?.content?.[1]?.text === `sha256:${sha256(body)}`;
};

async function referenceServerToOurPlainClient(relay) {
  const url = `${relay.url}/v1/room/plain-${randomBytes(6).toString("hex")}`;
  const { peer, ws } = await referencePeer(url, relay.token, true);
  const referenceTransport = new SimplePeerTransport(peer);
  const serving = blobServer("reference-shaped node server", "0123456789abcdef").connect(referenceTransport);
  // Awaited below; a failure before then is this cell's, not an unhandled rejection.
  serving.catch(() => {});
  const signaling = await WebSocketSignaling.connect(url, { token: relay.token, WebSocket });
  const transport = new WebRtcTransport({ signaling, role: "answerer", RTCPeerConnection: wrtc.RTCPeerConnection });
  const client = new Client({ name: "mcp-webrtc-channel, plain", version: "0.1.0" });
  await client.connect(transport, { timeout: 30_000 });
  await serving;
  const { tools } = await client.listTools(undefined, { timeout: 30_000 });
  cell(
    "reference-server→our-plain-client: tools listed",
    transport.mode === "plain" && /^[0-9a-f]{40}$/.test(referenceTransport.label ?? "") && tools.some((t) => t.name === "blob"),
    `${transport.mode} framing, simple-peer's random channel ${JSON.stringify(referenceTransport.label)}, tools ${JSON.stringify(tools.map((t) => t.name))}`,
  );
  const greet = await client.callTool({ name: "greet", arguments: { name: "plain" } }, undefined, { timeout: 30_000 });
  cell("reference-server→our-plain-client: tool called", greet.content?.[0]?.text === "Hello, plain!", JSON.stringify(greet.content?.[0]?.text));
  const big = await client.callTool({ name: "blob", arguments: { bytes: 200 * 1024 } }, undefined, { timeout: 30_000 });
  cell("reference-server→our-plain-client: 200 KiB result", hashed(big, 200 * 1024), `${big.content?.[0]?.text?.length} bytes`);
  await client.close();
  peer.destroy();
  ws.close();
}

async function ourPlainServerToReferenceClient(relay) {
  const url = `${relay.url}/v1/room/plain-${randomBytes(6).toString("hex")}`;
  const signaling = await WebSocketSignaling.connect(url, { token: relay.token, WebSocket });
  const transport = new WebRtcTransport({ signaling, role: "offerer", chunked: false, RTCPeerConnection: wrtc.RTCPeerConnection });
  const serving = blobServer("mcp-webrtc-channel server, plain", "abcdefghijklmnop").connect(transport);
  serving.catch(() => {});
  const { peer, ws } = await referencePeer(url, relay.token, false);
  const client = new Client({ name: "reference-shaped node client", version: "0.1.0" });
  await client.connect(new SimplePeerTransport(peer), { timeout: 30_000 });
  await serving;
  const { tools } = await client.listTools(undefined, { timeout: 30_000 });
  cell(
    "our-plain-server→reference-client: tools listed",
    transport.mode === "plain" && tools.some((t) => t.name === "greet"),
    `${transport.mode} framing, tools ${JSON.stringify(tools.map((t) => t.name))}`,
  );
  const big = await client.callTool({ name: "blob", arguments: { bytes: 200 * 1024 } }, undefined, { timeout: 30_000 });
  cell("our-plain-server→reference-client: 200 KiB result", hashed(big, 200 * 1024), `${big.content?.[0]?.text?.length} bytes`);
  let refusal = null;
  try {
    await client.callTool({ name: "blob", arguments: { bytes: 300 * 1024 } }, undefined, { timeout: 30_000 });
  } catch (e) {
    refusal = e;
  }
  const after = await client.callTool({ name: "greet", arguments: { name: "again" } }, undefined, { timeout: 30_000 }).catch((e) => ({ failed: e }));
  cell(
    "our-plain-server→reference-client: oversize is a JSON-RPC error, the channel lives",
    refusal !== null && /result too large for this peer/.test(refusal.message) && after.content?.[0]?.text === "Hello, again!",
    refusal ? refusal.message : "no error",
  );
  await client.close();
  await transport.close();
  peer.destroy();
  ws.close();
}

async function wrongTokenIsRefused(relay) {
  const started = Date.now();
  const error = await WebSocketSignaling.connect(clientUrl(relay.url, "for-ours"), { token: "not-the-token", WebSocket }).then(
    () => null,
    (e) => e,
  );
  cell(
    "our-node-client: a wrong relay token is refused, clearly and at once",
    error?.kind === "Relay" && /relay closed the connection/.test(error.message) && Date.now() - started < 5_000,
    error ? error.message : "connected",
  );
}

const bin = env("MCP_WEBRTC");
const relay = await startRelay(bin);
await attempt("rust-server→reference-client", () => rustServerToReferenceClient(bin, relay));
await attempt("reference-server→rust-client", () => referenceServerToRustClient(relay));
await attempt("rust-server→our-node-client", () => rustServerToOurNodeClient(bin, relay));
await attempt("our-node-server→rust-client", () => ourNodeServerToRustClient(relay));
await attempt("reference-server→our-plain-client", () => referenceServerToOurPlainClient(relay));
await attempt("our-plain-server→reference-client", () => ourPlainServerToReferenceClient(relay));
await attempt("our-node-client: wrong token", () => wrongTokenIsRefused(relay));
// @roamhq/wrtc may crash at exit with peers still open: every peer is closed above.
process.exit(failures ? 1 : 0);
