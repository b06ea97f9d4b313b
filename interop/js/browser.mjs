// `cargo xtask interop --browser`: the demo page in headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core), against a Rust
// MCP server behind `mcp-webrtc serve`, and serving tools to a Rust client.
// It starts the relay, `serve` and a static file server itself (stack.mjs).
//
// Environment (the xtask sets it):
//   MCP_WEBRTC     the `mcp-webrtc` binary
//   STDIO_SERVER   a stdio MCP server (the greeter example)
//   RELAY_CLIENT   the relay_client example binary (a Rust rmcp client)
//   DEMO_DIR       the built page (clients/js/dist/demo)
//   SCREENSHOT_DIR where the screenshots go (target/browser-interop)
//   CHROMIUM       the browser (/usr/bin/chromium by default)
// Prints one `CELL <name>\t<ok|FAIL>\t<detail>` line per check; exits 1 on any failure.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { recentOutput, startRelay, startServe, startStatic } from "./stack.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
  // Loopback only: peer connections on 127.0.0.1, real addresses rather than mDNS names.
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

let failures = 0;
function cell(name, ok, detail = "") {
  console.log(`CELL ${name}\t${ok ? "ok" : "FAIL"}\t${String(detail).replace(/\s+/g, " ")}`);
  if (!ok) failures += 1;
}

function run(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

const relay = await startRelay(env("MCP_WEBRTC"));
// The rtc layer's set-up steps are logged, for the report of a failed first cell.
const serve = await startServe(env("MCP_WEBRTC"), relay, "demo", [env("STDIO_SERVER")], {
  env: { RUST_LOG: process.env.RUST_LOG ?? "info,mcp_webrtc_rtc=debug" },
});
const site = await startStatic(env("DEMO_DIR"));
process.env.PAGE_URL = site.url;
process.env.RELAY = relay.url;
process.env.RELAY_TOKEN = relay.token;
process.env.SERVER_LINE = serve.line;

const profile = mkdtempSync(join(tmpdir(), "mcp-webrtc-chromium-"));
// A fresh profile (the --user-data-dir of the flags) for each run.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: FLAGS,
  timeout: 60_000,
  viewport: { width: 1100, height: 1000 },
});
try {
  const page = await browser.newPage();
  // Everything the page logs is kept (the last 200 lines), for a failure report.
  const pageLog = [];
  page.on("console", (m) => {
    pageLog.push(`[page ${m.type()}] ${m.text()}`);
    if (pageLog.length > 200) pageLog.shift();
    if (m.type() === "error" || m.type() === "warning") console.error(`[page ${m.type()}] ${m.text()}`);
  });
  page.on("pageerror", (e) => console.error(`[page error] ${e.message}`));
  const shots = env("SCREENSHOT_DIR");
  const fragment = new URLSearchParams({ relay: env("RELAY"), token: env("RELAY_TOKEN") });

  // 1. The page as a client of the Rust server, paired with the secret.
  await page.goto(`${env("PAGE_URL")}#${fragment}`);
  await page.fill("#server", env("SERVER_LINE"));
  await page.click("#connect");
  // No outcome in time is a failed cell that says what the page showed, not a bare timeout.
  // 60 s: the page reports how long the connection took, so a slow one shows in the cell.
  const settled = await page.waitForSelector('#status[data-state="ok"], #status[data-state="bad"]', { timeout: 60_000 }).then(
    () => true,
    () => false,
  );
  const status = await page.textContent("#status");
  cell(
    "browser-client-connects",
    settled && (await page.getAttribute("#status", "data-state")) === "ok" && /chunked framing, paired/.test(status ?? ""),
    `${JSON.stringify(status)}${settled ? "" : " (no outcome within 60 s)"}`,
  );
  if (!settled) {
    console.error(`the page's console:\n${pageLog.join("\n")}\n${recentOutput()}`);
  }
  await page.waitForSelector("#tools li", { timeout: 10_000 }).catch(() => {});
  const tools = await page.$$eval("#tools li", (lis) => lis.map((li) => li.dataset.tool));
  cell("browser-lists-tools", ["greet", "echo", "blob", "sleep"].every((t) => tools.includes(t)), JSON.stringify(tools));

  const callThroughForm = async (tool, args) => {
    await page.click(`#tools li[data-tool="${tool}"]`);
    for (const [name, value] of Object.entries(args)) {
      if (typeof value === "boolean") await page.setChecked(`#arg-${name}`, value);
      else await page.fill(`#arg-${name}`, String(value));
    }
    await page.evaluate(() => {
      const m = document.getElementById("result-meta");
      if (m) delete m.dataset.bytes;
    });
    await page.click("#call");
    await page.waitForSelector("#result-meta[data-bytes]", { timeout: 120_000 });
    return {
      text: await page.textContent("#result"),
      bytes: Number(await page.getAttribute("#result-meta", "data-bytes")),
      sha256: await page.getAttribute("#result-meta", "data-sha256"),
      verified: (await page.getAttribute("#result-meta", "data-verified")) === "true",
      error: (await page.getAttribute("#result-meta", "data-error")) === "true",
      meta: await page.textContent("#result-meta"),
    };
  };

  const greet = await callThroughForm("greet", { name: "Chromium" });
  cell("browser-calls-tool", !greet.error && /Chromium/.test(greet.text ?? ""), JSON.stringify(greet.text));
  await page.screenshot({ path: join(shots, "client-greet.png"), fullPage: true });

  const size = 5 * 1024 * 1024;
  const big = await callThroughForm("blob", { bytes: size, seed: 11, hash: true });
  cell("browser-5mib-result-by-hash", !big.error && big.bytes === size && big.verified, `${big.bytes} bytes, sha256 ${big.sha256}, ${big.meta}`);
  await page.screenshot({ path: join(shots, "client.png"), fullPage: true });

  // 1b. The page checks the server's offer: a wrong secret, or none, is refused before any MCP message.
  const tryConnect = async (server) => {
    const p = await browser.newPage();
    await p.goto(`${env("PAGE_URL")}#${fragment}`);
    await p.fill("#server", server);
    await p.click("#connect");
    await p.waitForSelector('#status[data-state="ok"], #status[data-state="bad"]', { timeout: 30_000 });
    const result = { state: await p.getAttribute("#status", "data-state"), text: await p.textContent("#status") };
    await p.close();
    return result;
  };
  const line = env("SERVER_LINE");
  const wrongSecret = line.replace(/#([0-9a-f]+)$/, (_, hex) => `#${hex.slice(0, -1)}${hex.endsWith("0") ? "1" : "0"}`);
  const mismatch = await tryConnect(wrongSecret);
  cell("page-refuses-a-server-with-another-secret", mismatch.state === "bad" && /pairing failed: the offer does not match/.test(mismatch.text ?? ""), JSON.stringify(mismatch.text));
  const unpaired = await tryConnect("demo");
  cell("page-without-the-secret-is-told-the-server-pairs", unpaired.state === "bad" && /the peer pairs/.test(unpaired.text ?? ""), JSON.stringify(unpaired.text));

  // 2. The page serves tools; a Rust rmcp client calls one through the relay.
  const serving = await browser.newPage();
  serving.on("pageerror", (e) => console.error(`[serving page error] ${e.message}`));
  await serving.goto(`${env("PAGE_URL")}#${new URLSearchParams({ relay: env("RELAY"), token: env("RELAY_TOKEN"), mode: "serve", host: "page-demo" })}`);
  await serving.click("#serve");
  await serving.waitForSelector("#connect-line[data-url]", { timeout: 15_000 });
  const served = await serving.getAttribute("#connect-line", "data-url");
  const secret = (served ?? "").split("#")[1] ?? "";
  const text = "WebRTC from Rust to a page";
  const rust = await run(
    env("RELAY_CLIENT"),
    ["--relay", env("RELAY"), "--name", "page-demo", "--token", env("RELAY_TOKEN"), "--secret", secret, "--bind", "127.0.0.1:0", "--call", "reverse", "--args", JSON.stringify({ text })],
    60_000,
  );
  const resultLine = rust.out.split("\n").find((l) => l.startsWith("RESULT "));
  const result = resultLine ? JSON.parse(resultLine.slice(7)) : null;
  const reversed = Array.from(text).reverse().join("");
  cell(
    "rust-client-calls-page-tool",
    rust.code === 0 && result?.content?.[0]?.text === reversed,
    rust.code === 0 ? JSON.stringify(result?.content?.[0]?.text) : `exit ${rust.code}: ${rust.err.trim().split("\n").slice(-3).join(" | ")}`,
  );
  const toolsLine = rust.out.split("\n").find((l) => l.startsWith("TOOLS "));
  const pageTools = toolsLine ? JSON.parse(toolsLine.slice(6)).map((t) => t.name) : [];
  cell("rust-client-lists-page-tools", pageTools.includes("page_info") && pageTools.includes("reverse"), JSON.stringify(pageTools));
  const modeLine = rust.out.split("\n").find((l) => l.startsWith("MODE "));
  cell("page-server-chunked", modeLine === "MODE Chunked", JSON.stringify(modeLine));
  await serving.waitForFunction(() => Number(document.getElementById("serve-log")?.dataset.calls ?? 0) >= 2, null, { timeout: 5_000 }).catch(() => {});
  const logText = await serving.textContent("#serve-log");
  cell("page-logs-the-call", /reverse/.test(logText ?? ""), JSON.stringify(logText));
  await serving.screenshot({ path: join(shots, "serve.png"), fullPage: true });

  // 3. A wrong secret is refused by the page's pairing (the Rust client fails, the page runs no tool).
  const before = Number((await serving.getAttribute("#serve-log", "data-calls")) ?? 0);
  const wrong = await run(
    env("RELAY_CLIENT"),
    ["--relay", env("RELAY"), "--name", "page-demo", "--token", env("RELAY_TOKEN"), "--secret", "00".repeat(16), "--bind", "127.0.0.1:0", "--timeout", "5", "--call", "reverse", "--args", "{\"text\":\"x\"}"],
    30_000,
  );
  const after = await serving.$eval("#serve-log", (el) => el.textContent ?? "");
  cell(
    "a-rust-client-with-another-secret-refuses-the-page-and-no-tool-runs",
    wrong.code !== 0 && /pairing/i.test(wrong.err) && !/reverse "x"/.test(after),
    `exit ${wrong.code}: ${wrong.err.trim().split("\n").slice(-1)[0]} (calls logged before ${before})`,
  );
} finally {
  await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failures ? 1 : 0);
