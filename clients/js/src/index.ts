/**
 * MCP over a WebRTC data channel, for browsers and Node: the mcp-webrtc
 * wire protocol (`docs/protocol.md`), plain and chunked, with the same test
 * vectors as the Rust core.
 */

export * from "./wire.js";
export * from "./reassembler.js";
export * from "./framer.js";
