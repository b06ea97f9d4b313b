// `cargo xtask demo`: the relay, a Rust MCP server (the greeter example
// behind `mcp-webrtc serve`, paired with a fresh secret) and the demo page,
// all on 127.0.0.1. Prints the page's address (with the settings in its
// fragment, which never leaves the browser) and runs until Ctrl-C.
//
// Environment: MCP_WEBRTC, STDIO_SERVER, DEMO_DIR (as browser.mjs);
// DEMO_PORT for the page (8080 by default).

import { startRelay, startServe, startStatic } from "./stack.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const relay = await startRelay(env("MCP_WEBRTC"));
// Every interface: a browser without test flags offers no loopback
// candidate, only its LAN address hidden behind an mDNS name; it reaches
// the server's LAN candidate instead.
const serve = await startServe(env("MCP_WEBRTC"), relay, "demo", [env("STDIO_SERVER")], { bind: null });
const site = await startStatic(env("DEMO_DIR"), Number(process.env.DEMO_PORT ?? 8080));
const fragment = new URLSearchParams({ relay: relay.url, token: relay.token, server: serve.line });
console.log(`
mcp-webrtc demo
  relay:  ${relay.url} (token ${relay.token})
  server: the greeter (greet, echo, blob, sleep) behind mcp-webrtc serve, as ${serve.line}

Open this in Chromium or Firefox on this machine, and press Connect:

  ${site.url}#${fragment}

"Serve a tool from this page" registers the page at the relay; it prints the
mcp-webrtc connect line an agent uses to call the page's tools.
Ctrl-C stops everything.
`);
serve.child.on("exit", (code) => {
  console.error(`mcp-webrtc serve exited (${code}); stopping`);
  process.exit(1);
});
await new Promise(() => {});
