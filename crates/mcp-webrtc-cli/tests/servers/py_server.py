"""A stdio MCP server on the Python `mcp` SDK (2.x), for the CLI's tests.

Tools: `echo`, `blob` (a text of `size` bytes, then its SHA-256 as a second
content block), `slow` (waits; logs "slow cancelled" on stderr when the call
is cancelled) and `ask` (asks the client to sample: a server-to-client
request). Logs go to stderr; stdout carries MCP only.
"""

import hashlib
import sys

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("py-mcp2-test-server")


def blob_text(size: int) -> str:
    pattern = "0123456789abcdefghijklmnopqrstuvwxyz"
    return (pattern * (size // len(pattern) + 1))[:size]


@server.tool()
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool(structured_output=False)
async def blob(size: int) -> list[types.TextContent]:
    """A text of `size` bytes, then its SHA-256."""
    text = blob_text(size)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return [types.TextContent(type="text", text=text), types.TextContent(type="text", text="sha256:" + digest)]


@server.tool()
async def slow(ms: int) -> str:
    """Wait `ms` milliseconds."""
    try:
        await anyio.sleep(ms / 1000)
    except anyio.get_cancelled_exc_class():
        print("slow cancelled", file=sys.stderr, flush=True)
        raise
    return f"slept {ms} ms"


@server.tool()
async def ask(question: str, ctx: Context) -> str:
    """Ask the client's model (sampling/createMessage) and return its answer."""
    result = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=question))],
        max_tokens=50,
    )
    content = result.content
    return content.text if isinstance(content, types.TextContent) else str(content)


if __name__ == "__main__":
    server.run("stdio")
