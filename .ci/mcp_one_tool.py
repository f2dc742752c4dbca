#!/usr/bin/env python3
"""Call the one tool of a small example MCP server with the official Python client (PyPI `mcp`
2.x), in both protocol eras, and check the answer; exit 1 otherwise.

Usage:
    python .ci/mcp_one_tool.py URL --token TOKEN --echo              # examples/minimal.rs
    python .ci/mcp_one_tool.py URL --token TOKEN --whoami PRINCIPAL  # examples/hyper_server.rs
"""

import argparse
import json
import sys
import uuid

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client


def text_of(result) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def run(args: argparse.Namespace) -> None:
    headers = {"Authorization": f"Bearer {args.token}"}
    for mode in ("legacy", "auto"):
        async with httpx2.AsyncClient(headers=headers, timeout=30.0) as http:
            async with Client(streamable_http_client(args.url, http_client=http), mode=mode) as client:
                tools = sorted(t.name for t in (await client.list_tools()).tools)
                if args.whoami:
                    result = await client.call_tool("whoami", {})
                    got = json.loads(text_of(result)).get("id") if text_of(result) != "null" else None
                    ok = tools == ["whoami"] and got == args.whoami
                else:
                    sent = f"example-{uuid.uuid4().hex}"
                    result = await client.call_tool("echo", {"text": sent})
                    got = text_of(result)
                    ok = tools == ["echo"] and got == sent
                if not ok or result.is_error:
                    raise SystemExit(f"{mode}: tools {tools}, answer {got!r}")
                print(f"{mode} ({client.protocol_version}): tools {tools}, answer {got!r}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--token", required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--echo", action="store_true")
    which.add_argument("--whoami", metavar="PRINCIPAL")
    anyio.run(run, parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
