/**
 * The demo page: an MCP client of a remote server, or an MCP server whose
 * tools a remote agent calls, over WebRTC with the mcp-webrtc relay for
 * signaling. Settings come from the form, or from the URL's fragment
 * (`#relay=…&token=…&server=…&host=…`), which never reaches a server.
 */

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import {
  PairedSignaling,
  RelayHost,
  WebRtcTransport,
  WebSocketSignaling,
  clientUrl,
  generateSecret,
  parsePairingUrl,
  type Signaling,
} from "../src/index.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no #${id}`);
  return el as T;
};
const input = (id: string) => $<HTMLInputElement>(id);

function setStatus(id: string, text: string, state: "idle" | "busy" | "ok" | "bad"): void {
  const el = $(id);
  el.textContent = text;
  el.dataset.state = state;
  el.classList.toggle("ok", state === "ok");
  el.classList.toggle("bad", state === "bad");
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- settings from the fragment --------------------------------------------

const fragment = new URLSearchParams(location.hash.slice(1));
for (const [key, id] of [
  ["relay", "relay"],
  ["token", "token"],
  ["server", "server"],
  ["host", "host"],
] as const) {
  const v = fragment.get(key);
  if (v) input(id).value = v;
}

function showTab(serve: boolean): void {
  $("tab-client").setAttribute("aria-selected", String(!serve));
  $("tab-serve").setAttribute("aria-selected", String(serve));
  $("client-panel").hidden = serve;
  $("serve-panel").hidden = !serve;
}
$("tab-client").onclick = () => showTab(false);
$("tab-serve").onclick = () => showTab(true);
if (fragment.get("mode") === "serve") showTab(true);

// ---- client mode -----------------------------------------------------------

interface ToolInfo {
  name: string;
  description?: string | undefined;
  inputSchema: { properties?: Record<string, { type?: string; description?: string; default?: unknown }> | undefined; required?: string[] | undefined };
}

let client: Client | null = null;
let transport: WebRtcTransport | null = null;
let chosen: ToolInfo | null = null;

function target(): { relay: string; name: string; secret: string | null } {
  const server = input("server").value.trim();
  if (!server) throw new Error("give the server: its mcpw:// line or its name");
  if (server.startsWith("mcpw://") || server.startsWith("mcpws://")) return parsePairingUrl(server);
  return { relay: input("relay").value.trim(), name: server, secret: null };
}

async function connect(): Promise<void> {
  const button = $<HTMLButtonElement>("connect");
  button.disabled = true;
  setStatus("status", "Connecting through the relay…", "busy");
  try {
    const t = target();
    const ws = await WebSocketSignaling.connect(clientUrl(t.relay, t.name), { token: input("token").value.trim() || undefined });
    const signaling: Signaling = t.secret ? new PairedSignaling(ws, t.secret) : ws;
    transport = new WebRtcTransport({ signaling, role: "answerer" });
    transport.onerror = (e) => console.warn("transport:", e.message);
    client = new Client({ name: "mcp-webrtc demo page", version: "0.1.0" });
    client.onclose = () => {
      setStatus("status", "The session ended.", "bad");
      button.disabled = false;
    };
    const started = performance.now();
    await client.connect(transport);
    const server = client.getServerVersion();
    const ms = Math.round(performance.now() - started);
    setStatus(
      "status",
      `Connected to ${server?.name ?? "the server"} ${server?.version ?? ""} in ${ms} ms: ${transport.mode} framing, ${t.secret ? "paired end to end" : "not paired"}.`,
      "ok",
    );
    const { tools } = await client.listTools();
    renderTools(tools as ToolInfo[]);
  } catch (e) {
    setStatus("status", `Could not connect: ${(e as Error).message}`, "bad");
    button.disabled = false;
  }
}

function renderTools(tools: ToolInfo[]): void {
  const list = $("tools");
  list.replaceChildren();
  for (const tool of tools) {
    const li = document.createElement("li");
    li.dataset.tool = tool.name;
    const b = document.createElement("b");
    b.textContent = tool.name;
    li.append(b, document.createTextNode(` ${tool.description ?? ""}`));
    li.onclick = () => choose(tool);
    list.append(li);
  }
  $("tools-box").hidden = false;
  if (tools[0]) choose(tools[0]);
}

function choose(tool: ToolInfo): void {
  chosen = tool;
  for (const li of Array.from($("tools").children) as HTMLElement[]) li.classList.toggle("chosen", li.dataset.tool === tool.name);
  const fields = $("fields");
  fields.replaceChildren();
  const required = new Set(tool.inputSchema.required ?? []);
  for (const [name, schema] of Object.entries(tool.inputSchema.properties ?? {})) {
    const label = document.createElement("label");
    label.htmlFor = `arg-${name}`;
    label.textContent = `${name}${required.has(name) ? " *" : ""}${schema.description ? `: ${schema.description}` : ""}`;
    const field = document.createElement("input");
    field.id = `arg-${name}`;
    field.name = name;
    field.dataset.kind = schema.type ?? "string";
    if (schema.type === "boolean") {
      field.type = "checkbox";
      field.checked = schema.default === true;
    } else {
      field.type = schema.type === "integer" || schema.type === "number" ? "number" : "text";
      if (schema.default !== undefined) field.value = String(schema.default);
    }
    fields.append(label, field);
  }
}

async function call(ev: Event): Promise<void> {
  ev.preventDefault();
  if (!client || !chosen) return;
  const args: Record<string, unknown> = {};
  for (const field of Array.from($("fields").querySelectorAll("input"))) {
    const kind = field.dataset.kind;
    if (kind === "boolean") args[field.name] = field.checked;
    else if (field.value === "") continue;
    else if (kind === "integer" || kind === "number") args[field.name] = Number(field.value);
    else args[field.name] = field.value;
  }
  const meta = $("result-meta");
  $("result-box").hidden = false;
  meta.textContent = `Calling ${chosen.name}…`;
  delete meta.dataset.bytes;
  $("result").textContent = "";
  const started = performance.now();
  try {
    const result = await client.callTool({ name: chosen.name, arguments: args }, undefined, { timeout: 120_000 });
    const ms = Math.round(performance.now() - started);
    const texts = ((result.content as { type: string; text?: string }[]) ?? []).filter((c) => c.type === "text").map((c) => c.text ?? "");
    const main = texts[0] ?? "";
    const bytes = new TextEncoder().encode(main).length;
    const hash = await sha256Hex(main);
    const claimed = texts.find((t) => /^sha256:[0-9a-f]{64}$/.test(t))?.slice(7);
    meta.dataset.bytes = String(bytes);
    meta.dataset.sha256 = hash;
    meta.dataset.verified = String(claimed === hash);
    meta.dataset.error = String(result.isError === true);
    meta.textContent =
      `${chosen.name}: ${bytes.toLocaleString("en")} bytes in ${ms} ms, SHA-256 ${hash.slice(0, 16)}…` +
      (claimed ? (claimed === hash ? " (matches the server's hash)" : " (DOES NOT match the server's hash)") : "") +
      (result.isError ? " (the tool reported an error)" : "");
    $("result").textContent = main.length > 4000 ? `${main.slice(0, 4000)}\n… (${(main.length - 4000).toLocaleString("en")} more characters)` : texts.join("\n");
  } catch (e) {
    meta.dataset.error = "true";
    meta.dataset.bytes = "0";
    meta.textContent = `${chosen.name} failed: ${(e as Error).message}`;
  }
}

$("connect").onclick = () => void connect();
$("call-form").onsubmit = (ev) => void call(ev);

// ---- serve mode ------------------------------------------------------------

const log: string[] = [];
function logCall(line: string): void {
  log.push(`${new Date().toISOString().slice(11, 19)} ${line}`);
  const el = $("serve-log");
  el.textContent = log.slice(-50).join("\n");
  el.dataset.calls = String(log.length);
}

function pageServer(session: number, modeOf: () => string | null): McpServer {
  const server = new McpServer({ name: "mcp-webrtc demo page", version: "0.1.0" });
  server.registerTool(
    "page_info",
    { description: "This browser's user agent, the page's address and the time", inputSchema: {} },
    async () => {
      logCall(`session ${session}: page_info (${modeOf()} framing)`);
      const info = { userAgent: navigator.userAgent, page: location.origin + location.pathname, time: new Date().toISOString() };
      return { content: [{ type: "text", text: JSON.stringify(info) }] };
    },
  );
  server.registerTool(
    "reverse",
    { description: "Reverse a text", inputSchema: { text: z.string().describe("The text to reverse") } },
    async ({ text }) => {
      logCall(`session ${session}: reverse ${JSON.stringify(text.slice(0, 60))} (${modeOf()} framing)`);
      return { content: [{ type: "text", text: Array.from(text).reverse().join("") }] };
    },
  );
  return server;
}

/** Clients in set-up at once, and sessions open at once. */
const MAX_SETTING_UP = 4;
const MAX_SESSIONS = 16;

async function serve(): Promise<void> {
  const button = $<HTMLButtonElement>("serve");
  button.disabled = true;
  const relay = input("relay").value.trim();
  const name = input("host").value.trim();
  const token = input("token").value.trim() || undefined;
  setStatus("serve-status", "Registering at the relay…", "busy");
  let host: RelayHost;
  try {
    host = await RelayHost.register(relay, name, { token });
  } catch (e) {
    setStatus("serve-status", `Could not register: ${(e as Error).message}`, "bad");
    button.disabled = false;
    return;
  }
  const secret = fragment.get("secret") ?? generateSecret();
  const url = `${relay.replace(/^wss:/, "mcpws:").replace(/^ws:/, "mcpw:")}/${name}#${secret}`;
  $("connect-line").textContent = `${token ? "MCP_WEBRTC_TOKEN=… " : ""}mcp-webrtc connect '${url}'`;
  $("connect-line").dataset.url = url;
  $("connect-box").hidden = false;
  setStatus("serve-status", `Serving as "${name}". Waiting for agents (each one is paired with the secret after # in the line below).`, "ok");
  let sessions = 0;
  let settingUp = 0;
  let open = 0;
  for (;;) {
    let signaling: WebSocketSignaling | null;
    try {
      signaling = await host.accept();
    } catch (e) {
      setStatus("serve-status", `The registration ended: ${(e as Error).message}`, "bad");
      button.disabled = false;
      return;
    }
    if (!signaling) return;
    if (settingUp >= MAX_SETTING_UP || open >= MAX_SESSIONS) {
      // A page is a small server: turn clients away rather than pile up peer connections.
      logCall(`a client was turned away (${open} sessions, ${settingUp} setting up)`);
      await signaling.send({ type: "refused", reason: "the page is busy: try again later" }).catch(() => {});
      await signaling.close();
      continue;
    }
    sessions += 1;
    const n = sessions;
    const transport = new WebRtcTransport({ signaling: new PairedSignaling(signaling, secret), role: "offerer" });
    const server = pageServer(n, () => transport.mode);
    settingUp += 1;
    server
      .connect(transport)
      .then(() => {
        open += 1;
        logCall(`session ${n}: an agent connected`);
        server.server.onclose = () => {
          open -= 1;
          logCall(`session ${n}: ended`);
        };
      })
      .catch((e: Error) => logCall(`session ${n}: set-up failed: ${e.message}`))
      .finally(() => {
        settingUp -= 1;
      });
    transport.onerror = (e) => console.warn(`session ${n}:`, e.message);
  }
}

$("serve").onclick = () => void serve();
