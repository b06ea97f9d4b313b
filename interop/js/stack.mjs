// Starting the pieces the browser demo and the interop cells need, all on
// 127.0.0.1 with ports the OS picks: the relay (`mcp-webrtc relay`), a Rust
// MCP server behind `mcp-webrtc serve`, and a static file server for the
// page. Node built-ins only. Every child is killed when the process exits.

import { spawn } from "node:child_process";
import { createReadStream, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve, sep } from "node:path";
import { randomBytes } from "node:crypto";

const children = new Set();
/** The last output of each child, by name (at most TAIL characters each). */
const tails = new Map();
const TAIL = 64 * 1024;

/** What the children printed lately (the last 64 KiB of each), for a failure report. */
export function recentOutput() {
  return [...tails].map(([name, text]) => `--- ${name} (last output)\n${text}`).join("\n");
}
const cleanups = [];
function cleanup() {
  for (const child of children) child.kill("SIGTERM");
  for (const f of cleanups.splice(0)) f();
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/** Spawn `cmd`, resolve with the first match of `pattern` in its output (within `timeoutMs`). */
export function spawnUntil(cmd, args, pattern, { env = {}, timeoutMs = 20_000, name = cmd } = {}) {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let seen = "";
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no ${pattern} within ${timeoutMs} ms; it printed:\n${seen}`)), timeoutMs);
    const look = (d) => {
      const tail = (tails.get(name) ?? "") + d;
      tails.set(name, tail.length > TAIL ? tail.slice(-TAIL) : tail);
      if (seen.length < TAIL) seen += d;
      if (process.env.STACK_VERBOSE) process.stderr.write(`[${name}] ${d}`);
      const m = pattern.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ child, match: m });
      }
    };
    child.stdout.on("data", look);
    child.stderr.on("data", look);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before ${pattern}; it printed:\n${seen}`));
    });
  });
}

/** A relay on 127.0.0.1 with one fresh token: `{ url, token }`. */
export async function startRelay(bin) {
  const dir = mkdtempSync(join(tmpdir(), "mcp-webrtc-relay-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const token = randomBytes(16).toString("hex");
  writeFileSync(join(dir, "tokens"), `${token}\n`);
  const { match } = await spawnUntil(bin, ["relay", "--listen", "127.0.0.1:0", "--token-file", join(dir, "tokens")], /relay listening on (ws:\/\/[0-9.:]+)/, {
    name: "relay",
  });
  return { url: match[1], token };
}

/**
 * `mcp-webrtc serve` in front of a stdio MCP server, registered as `name`.
 * Resolves with the `mcpw://…#secret` line it prints (pairing on), or the
 * relay URL (`pairing: false`). WebRTC binds to 127.0.0.1 only unless
 * `bind` says otherwise (`null`: every interface, as a user's demo needs).
 */
export async function startServe(bin, relay, name, command, { pairing = true, bind = "127.0.0.1:0", extra = [], env = {} } = {}) {
  const args = ["serve", "--signal", relay.url, "--name", name, "--token", relay.token, ...(bind ? ["--bind", bind] : []), ...(pairing ? [] : ["--no-pairing"]), ...extra, "--", ...command];
  const { child, match } = await spawnUntil(bin, args, pairing ? /connect '(mcpw:\/\/[^']+)'/ : /waiting for a peer/, { name: `serve ${name}`, env });
  return { child, line: pairing ? match[1] : null };
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".map": "application/json", ".css": "text/css", ".png": "image/png" };

/** A static file server for `root` on 127.0.0.1 (GET and HEAD only, nothing outside `root`). */
export function startStatic(root, port = 0) {
  const base = resolve(root);
  const server = createServer((req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405).end();
      return;
    }
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const file = normalize(join(base, path.endsWith("/") ? `${path}index.html` : path));
    if (file !== base && !file.startsWith(base + sep)) {
      res.writeHead(403).end();
      return;
    }
    let size;
    try {
      const st = statSync(file);
      if (!st.isFile()) throw new Error("not a file");
      size = st.size;
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": size, "cache-control": "no-store" });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  cleanups.push(() => server.close());
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => ok({ url: `http://127.0.0.1:${server.address().port}/`, server }));
  });
}
