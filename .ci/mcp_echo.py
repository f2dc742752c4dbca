#!/usr/bin/env python3
"""Call the `echo` tool of a running MCP server with the official Python client (PyPI `mcp` 2.x),
in both protocol eras, and check the answer; exit 1 otherwise.

Usage: python .ci/mcp_echo.py URL --token TOKEN
"""

import argparse
import sys
import uuid

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client


async def run(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    for mode in ("legacy", "auto"):
        async with httpx2.AsyncClient(headers=headers, timeout=30.0) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                tools = sorted(t.name for t in (await client.list_tools()).tools)
                sent = f"minimal-{uuid.uuid4().hex}"
                result = await client.call_tool("echo", {"text": sent})
                got = "".join(getattr(block, "text", "") for block in result.content)
                if tools != ["echo"] or got != sent or result.is_error:
                    raise SystemExit(f"{mode}: tools {tools}, echo {got!r} (sent {sent!r})")
                print(f"{mode} ({client.protocol_version}): tools {tools}, echo OK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    anyio.run(run, args.url, args.token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
