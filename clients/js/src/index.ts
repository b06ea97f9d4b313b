/**
 * MCP over a WebRTC data channel, for browsers and Node: the mcp-webrtc
 * wire protocol (`docs/protocol.md`), plain and chunked, with the same test
 * vectors as the Rust core; a `Transport` for the official MCP TypeScript
 * SDK; and signaling through the mcp-webrtc relay or a channel you have.
 */

export * from "./wire.js";
export * from "./reassembler.js";
export * from "./framer.js";
export * from "./signaling.js";
export * from "./relay.js";
export * from "./pairing.js";
export * from "./peer.js";
export * from "./transport.js";
