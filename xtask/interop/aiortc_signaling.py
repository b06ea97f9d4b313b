#!/usr/bin/env python3
"""One side of a signaling exchange with aiortc's own TcpSocketSignaling or
UnixSocketSignaling, for mcp-webrtc's interop tests.

    aiortc_signaling.py tcp|unix listen|connect <host:port | path>

aiortc picks roles lazily: the side that sends first listens, the side that
receives first connects (once, without retry).

- listen:  send an offer, then expect an answer and a candidate; send a
           candidate; expect a bye; close.
- connect: expect an offer; send an answer and a candidate; expect a
           candidate and a bye; close.

Every received object is printed as one JSON line on stdout, for the Rust
test to check. Any exception (for example aiortc refusing a malformed
message) exits non-zero.
"""
import asyncio
import json
import sys

from aiortc import RTCIceCandidate, RTCSessionDescription
from aiortc.contrib.signaling import BYE, TcpSocketSignaling, UnixSocketSignaling
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=python offer\r\nt=0 0\r\n"
ANSWER = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=python answer\r\nt=0 0\r\n"
CANDIDATE = "2 1 udp 2130706431 127.0.0.1 50001 typ host"


def report(obj):
    if obj is None:
        out = {"type": "eof"}
    elif obj is BYE:
        out = {"type": "bye"}
    elif isinstance(obj, RTCSessionDescription):
        out = {"type": obj.type, "sdp": obj.sdp}
    elif isinstance(obj, RTCIceCandidate):
        out = {
            "type": "candidate",
            "candidate": "candidate:" + candidate_to_sdp(obj),
            "sdpMid": obj.sdpMid,
            "sdpMLineIndex": obj.sdpMLineIndex,
        }
    else:
        out = {"type": "unknown", "repr": repr(obj)}
    print(json.dumps(out), flush=True)
    return out


def candidate():
    c = candidate_from_sdp(CANDIDATE)
    c.sdpMid = "0"
    c.sdpMLineIndex = 0
    return c


async def main(kind, role, target):
    if kind == "tcp":
        host, port = target.rsplit(":", 1)
        signaling = TcpSocketSignaling(host, int(port))
    else:
        signaling = UnixSocketSignaling(target)
    if role == "listen":
        await signaling.send(RTCSessionDescription(sdp=OFFER, type="offer"))
        report(await signaling.receive())
        report(await signaling.receive())
        await signaling.send(candidate())
        report(await signaling.receive())
    else:
        report(await signaling.receive())
        await signaling.send(RTCSessionDescription(sdp=ANSWER, type="answer"))
        await signaling.send(candidate())
        report(await signaling.receive())
        report(await signaling.receive())
    await signaling.close()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(*sys.argv[1:4]), timeout=20))
