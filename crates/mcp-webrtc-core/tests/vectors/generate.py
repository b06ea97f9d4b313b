#!/usr/bin/env python3
"""Generate wire-v1.json from docs/protocol.md, independently of the Rust code.

This is a second implementation of the frame layout, written from the spec
with Python's struct module, so that the Rust tests that read the vectors
check the Rust code against the spec rather than against itself.

    python3 generate.py > wire-v1.json
"""
import json
import struct

DATA, HELLO = 0x01, 0x02
HEADER = 21


def data(msg_id, offset, total, payload):
    return struct.pack(">BIQQ", DATA, msg_id, offset, total) + payload


def hello(max_message, in_flight, buffered, version=1):
    return struct.pack(">BBQIQ", HELLO, version, max_message, in_flight, buffered)


def chunk(message, frame_size, msg_id):
    """The frames a conforming sender emits for one message (alone in the queue)."""
    if len(message) <= frame_size:
        return [{"text": message.decode("utf-8")}]
    room = frame_size - HEADER
    frames = []
    for off in range(0, len(message), room):
        frames.append({"binary_hex": data(msg_id, off, len(message), message[off:off + room]).hex()})
    return frames


valid = [
    {"name": "data-first-frame", "type": "data", "id": 1, "offset": 0, "total": 10,
     "payload_hex": b'{"jsonrpc"'.hex(), "hex": data(1, 0, 10, b'{"jsonrpc"').hex()},
    {"name": "data-middle-frame-large-id", "type": "data", "id": 0xDEADBEEF, "offset": 16363,
     "total": 1 << 40, "payload_hex": b"xyz".hex(), "hex": data(0xDEADBEEF, 16363, 1 << 40, b"xyz").hex()},
    {"name": "data-last-frame", "type": "data", "id": 7, "offset": 5, "total": 6,
     "payload_hex": b"}".hex(), "hex": data(7, 5, 6, b"}").hex()},
    {"name": "hello-defaults", "type": "hello", "max_message_size": 128 * 1024 * 1024,
     "max_in_flight": 32, "max_buffered_bytes": 256 * 1024 * 1024,
     "hex": hello(128 * 1024 * 1024, 32, 256 * 1024 * 1024).hex()},
    {"name": "hello-with-trailing-extension", "type": "hello", "max_message_size": 1,
     "max_in_flight": 1, "max_buffered_bytes": 1,
     "hex": (hello(1, 1, 1) + b"\x00\x01future").hex(), "note": "bytes after offset 22 are ignored"},
]

invalid = [
    {"name": "empty", "hex": "", "error": "EmptyFrame"},
    {"name": "unknown-type", "hex": "7b7d", "error": "UnknownFrameType"},
    {"name": "data-truncated-header", "hex": data(1, 0, 10, b"")[:20].hex(), "error": "TruncatedHeader"},
    {"name": "data-no-payload", "hex": data(1, 0, 10, b"").hex(), "error": "EmptyPayload"},
    {"name": "data-overruns-total", "hex": data(1, 8, 10, b"abc").hex(), "error": "FrameOverrun"},
    {"name": "data-offset-overflows-u64", "hex": data(1, 2**64 - 1, 2**64 - 1, b"ab").hex(), "error": "FrameOverrun"},
    {"name": "hello-truncated", "hex": hello(1, 1, 1)[:21].hex(), "error": "TruncatedHeader"},
    {"name": "hello-wrong-version", "hex": hello(1, 1, 1, version=2).hex(), "error": "UnsupportedVersion"},
    {"name": "hello-zero-message-size", "hex": hello(0, 1, 1).hex(), "error": "InvalidHello"},
    {"name": "hello-zero-in-flight", "hex": hello(1, 0, 1).hex(), "error": "InvalidHello"},
    {"name": "hello-zero-buffered", "hex": hello(1, 1, 0).hex(), "error": "InvalidHello"},
]

small = b'{"jsonrpc":"2.0","id":1,"result":{}}'
big = b'{"jsonrpc":"2.0","id":2,"result":{"text":"' + b"0123456789" * 10 + b'"}}'
messages = [
    {"name": "fits-in-one-frame-goes-as-text", "frame_size": 64, "first_id": 0,
     "message": small.decode(), "frames": chunk(small, 64, 0)},
    {"name": "exactly-frame-size-goes-as-text", "frame_size": len(small), "first_id": 0,
     "message": small.decode(), "frames": chunk(small, len(small), 0)},
    {"name": "one-byte-over-goes-chunked", "frame_size": len(small) - 1, "first_id": 0,
     "message": small.decode(), "frames": chunk(small, len(small) - 1, 0)},
    {"name": "chunked-into-several-frames", "frame_size": 48, "first_id": 0,
     "message": big.decode(), "frames": chunk(big, 48, 0)},
]

print(json.dumps({
    "spec": "docs/protocol.md",
    "protocol": "mcp-webrtc/1",
    "frames": valid,
    "invalid_frames": invalid,
    "messages": messages,
}, indent=1))
