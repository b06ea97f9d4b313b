#!/usr/bin/env python3
"""The Python reference (`mcp-webrtc` 0.1.0 on aiortc, `mcp` 1.30.0) as one
side of an MCP session, for `cargo xtask interop` and `cargo xtask bench`.

    mcp_peer.py server (--tcp HOST:PORT | --unix PATH) [--answer]
                       [--exit-after SECONDS]
    mcp_peer.py client (--tcp HOST:PORT | --unix PATH) [--hold]
                       [--expect-oversize] [--bench ROUNDS]

server: the greeter (greet, echo, blob) on `webrtc_server_transport`. It
        offers, unless --answer (initiator=False: the client offers). With
        --exit-after it leaves normally that many seconds after the client
        initialized; otherwise it serves until the session ends.
client: `webrtc_client_transport` and `mcp.ClientSession`: initialize,
        list_tools, call greet, a 200 KiB blob checked by SHA-256; with
        --expect-oversize, a 300000-byte blob that must come back as the
        JSON-RPC error "result too large for this peer", then another call.
        With --hold it prints HOLDING and waits (to be killed); otherwise it
        leaves normally. --bench prints timings as JSON instead.

Every check prints `CHECK <name> ok|FAIL <detail>`; a failed check exits 1.

The package calls `RTCPeerConnection()` with no configuration, and aiortc
then uses a public STUN server. Tests must not, so the constructor is
replaced by one with no ICE server before the package is used.
"""
import argparse
import asyncio
import hashlib
import json
import logging
import os
import sys
import time

import aiortc
import anyio
import mcp.types as types
import mcp_webrtc.webrtc as package
from aiortc.contrib.signaling import TcpSocketSignaling, UnixSocketSignaling
from mcp import ClientSession
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import McpError
from mcp_webrtc import (
    WebRTCServerParameters,
    webrtc_client_transport,
    webrtc_server_transport,
)

package.RTCPeerConnection = lambda: aiortc.RTCPeerConnection(
    aiortc.RTCConfiguration(iceServers=[])
)


def announcing(start):
    """aiortc listens lazily, on its first send. Say when, so that a peer
    that connects only once (aiortc's) can be started after it."""

    async def wrapper(*args, **kwargs):
        server = await start(*args, **kwargs)
        print("LISTENING", flush=True)
        return server

    return wrapper


asyncio.start_server = announcing(asyncio.start_server)
asyncio.start_unix_server = announcing(asyncio.start_unix_server)

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
FAILED = False


def check(name, ok, detail=""):
    global FAILED
    print(f"CHECK {name} {'ok' if ok else 'FAIL'} {detail}".rstrip(), flush=True)
    if not ok:
        FAILED = True


def blob(size, seed=0):
    """The same text as the Rust greeter's `blob`."""
    start = seed % 64
    pattern = ALPHABET[start:] + ALPHABET[:start]
    return (pattern * (size // 64 + 1))[:size]


def signaling(args):
    if args.tcp:
        host, port = args.tcp.rsplit(":", 1)
        return TcpSocketSignaling(host, int(port))
    return UnixSocketSignaling(args.unix)


def make_server(initialized):
    server = Server("python-greeter")

    @server.list_tools()
    async def list_tools():
        obj = {"type": "object"}
        return [
            types.Tool(name="greet", description="Greet someone", inputSchema=obj),
            types.Tool(name="echo", description="Return the text", inputSchema=obj),
            types.Tool(name="blob", description="bytes of text, then sha256", inputSchema=obj),
        ]

    @server.call_tool()
    async def call_tool(name, arguments):
        initialized.set()
        if name == "greet":
            return [types.TextContent(type="text", text=f"Hello, {arguments['name']}!")]
        if name == "echo":
            return [types.TextContent(type="text", text=arguments["text"])]
        if name == "blob":
            text = blob(int(arguments["bytes"]), int(arguments.get("seed", 0)))
            out = [types.TextContent(type="text", text=text)]
            if arguments.get("hash", True):
                digest = hashlib.sha256(text.encode()).hexdigest()
                out.append(types.TextContent(type="text", text=f"sha256:{digest}"))
            return out
        raise ValueError(f"unknown tool {name}")

    return server


async def run_server(args):
    initialized = asyncio.Event()
    server = make_server(initialized)
    params = WebRTCServerParameters(initiator=not args.answer)
    async with webrtc_server_transport(signaling(args), params) as (read, write):
        task = asyncio.ensure_future(
            server.run(read, write, server.create_initialization_options())
        )
        if args.exit_after is None:
            await task
            return
        await initialized.wait()
        await asyncio.sleep(args.exit_after)
        task.cancel()
        print("EXITING", flush=True)


async def run_client(args):
    start = time.perf_counter()
    async with webrtc_client_transport(signaling(args)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            init_ms = (time.perf_counter() - start) * 1000
            if args.bench:
                await bench(session, init_ms, args.bench)
                return
            check("initialize", True, f"{init_ms:.1f} ms")
            tools = await session.list_tools()
            names = sorted(t.name for t in tools.tools)
            check("list_tools", {"greet", "echo", "blob"} <= set(names), ",".join(names))
            result = await session.call_tool("greet", {"name": "Python"})
            text = result.content[0].text
            check("call_tool", text == "Hello, Python!", repr(text))
            size = 200 * 1024
            result = await session.call_tool("blob", {"bytes": size, "seed": 5})
            body = result.content[0].text
            digest = hashlib.sha256(body.encode()).hexdigest()
            ok = (
                len(body) == size
                and body == blob(size, 5)
                and result.content[1].text == f"sha256:{digest}"
            )
            check("result_200KiB", ok, f"{len(body)} bytes")
            if args.expect_oversize:
                try:
                    await session.call_tool("blob", {"bytes": 300000})
                    check("oversize_error", False, "a 300000-byte result arrived")
                except McpError as e:
                    message = str(e.error.message)
                    check(
                        "oversize_error",
                        "result too large for this peer" in message,
                        repr(message),
                    )
                result = await session.call_tool("greet", {"name": "again"})
                check("after_oversize", result.content[0].text == "Hello, again!")
            if args.hold:
                print("HOLDING", flush=True)
                await asyncio.sleep(3600)


async def bench(session, init_ms, rounds):
    """Timings for `cargo xtask bench`, as one JSON object."""
    out = {"init_ms": init_ms}
    for _ in range(20):
        await session.call_tool("echo", {"text": "warm"})
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        await session.call_tool("echo", {"text": "ping"})
        samples.append((time.perf_counter() - t) * 1e6)
    samples.sort()
    out["call_median_us"] = samples[len(samples) // 2]
    out["call_p99_us"] = samples[min(len(samples) - 1, round((len(samples) - 1) * 0.99))]
    for name, size in [("10KiB", 10 * 1024), ("100KiB", 100 * 1024), ("256KiB", 256 * 1000), ("10MiB", 10 << 20)]:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            try:
                result = await asyncio.wait_for(
                    session.call_tool("blob", {"bytes": size, "hash": False}), 30
                )
                ok = len(result.content[0].text) == size
            except Exception:
                ok = False
            if not ok:
                break
            times.append((time.perf_counter() - t) * 1000)
        out[f"result_{name}_ms"] = sorted(times)[len(times) // 2] if len(times) == 5 else None
        if len(times) < 5:
            break  # the reference drops its session above its limit
    print("BENCH " + json.dumps(out), flush=True)


def describe(e):
    """An exception, with the leaves of an exception group."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


def closing_bug(e):
    """Only anyio.ClosedResourceError, the reference's shutdown bug."""
    if isinstance(e, BaseExceptionGroup):
        return all(closing_bug(x) for x in e.exceptions)
    return isinstance(e, anyio.ClosedResourceError)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["server", "client"])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp")
    where.add_argument("--unix")
    parser.add_argument("--answer", action="store_true")
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--expect-oversize", action="store_true")
    parser.add_argument("--bench", type=int)
    # An ICE server (the network lab's TURN): none by default, so the
    # package's public STUN server is never used.
    parser.add_argument("--ice-server")
    parser.add_argument("--turn-username")
    parser.add_argument("--turn-credential")
    args = parser.parse_args()
    # MCP_PEER_LOG=DEBUG logs aiortc and aioice to stderr (the network lab
    # sets it when it keeps logs).
    if os.environ.get("MCP_PEER_LOG"):
        logging.basicConfig(
            level=os.environ["MCP_PEER_LOG"].upper(),
            stream=sys.stderr,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
    if args.ice_server:
        server = aiortc.RTCIceServer(
            urls=args.ice_server,
            username=args.turn_username,
            credential=args.turn_credential,
        )
        package.RTCPeerConnection = lambda: aiortc.RTCPeerConnection(
            aiortc.RTCConfiguration(iceServers=[server])
        )
    run = run_server if args.role == "server" else run_client
    try:
        asyncio.run(run(args))
    except Exception as e:  # noqa: BLE001 - report and fail
        if closing_bug(e):
            # mcp-webrtc 0.1.0 closes its write stream when the channel
            # closes, under its own writer task, which then raises. It
            # happens on every normal end; it is the reference's, not ours.
            print(f"NOTE the reference raised on close: {describe(e)}", flush=True)
        else:
            check("session", False, describe(e))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
