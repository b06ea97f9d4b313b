"""A stdio MCP client on the Python `mcp` SDK (2.x), for the CLI's tests.

    py_client.py [--call NAME JSON]... [--blob TOOL SIZE_FIELD SIZE] -- COMMAND [ARGS...]

Spawns COMMAND (`mcp-webrtc connect …`) as its stdio server, initializes,
lists the tools, makes the calls, and prints one JSON line with what it saw.
It answers sampling requests with "sampled by python".
"""

import hashlib
import json
import os
import sys

import anyio
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


async def sampling(context, params):
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="sampled by python"),
        model="test-model",
    )


def texts(result):
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


async def main(argv):
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    calls, blobs = [], []
    i = 0
    while i < len(options):
        if options[i] == "--call":
            calls.append((options[i + 1], json.loads(options[i + 2])))
            i += 3
        elif options[i] == "--blob":
            blobs.append((options[i + 1], options[i + 2], int(options[i + 3])))
            i += 4
        else:
            raise SystemExit(f"unknown option {options[i]}")
    # The SDK passes only a safe list of variables to the server it starts;
    # hand on the relay token, as a host's config would.
    env = {k: v for k, v in os.environ.items() if k.startswith("MCP_WEBRTC_")}
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    out = {"calls": [], "blobs": []}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, sampling_callback=sampling) as session:
            init = await session.initialize()
            out["server"] = init.server_info.name
            out["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
            for name, arguments in calls:
                result = await session.call_tool(name, arguments)
                out["calls"].append({"name": name, "error": bool(result.is_error), "texts": texts(result)})
            for name, field, size in blobs:
                result = await session.call_tool(name, {field: size})
                body, digest = texts(result)[:2]
                out["blobs"].append(
                    {
                        "size": len(body.encode()),
                        "intact": digest == "sha256:" + hashlib.sha256(body.encode()).hexdigest(),
                    }
                )
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
