#!/usr/bin/env python3
"""List and use everything an MCP server shows this caller, with the official Python client
(PyPI `mcp` 2.x), for the list-filtering end-to-end tests (tests/tests/e2e_list_filter.rs). Prints
ONE JSON line on stdout.

Usage:
    python list_client.py URL --mode legacy|auto --token TOKEN

The JSON line has `ok`, `mode`, `protocol`, `tools`, `prompts`, `resources` (URIs),
`templates` (URI templates) -- each sorted -- and `calls`: for every listed tool, prompt and
resource, whether using it worked (`{"kind": "tool", "name": ..., "ok": bool, "detail": ...}`; a
tool call is ok when it is not `isError`). `cache_scopes` holds the `cacheScope` of each list
result (2026-07-28 era). On failure `error`. Exit 0 when listing worked, 1 otherwise, 2 on bad
usage.
"""

from __future__ import annotations

import argparse
import sys

import httpx2
from common import describe, parser, run_client, text_of
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

TOOL_ARGS = {"echo": {"text": "hi"}}
DEFAULT_ARGS = {"name": "welcome"}


async def drive(args: argparse.Namespace, report: dict) -> None:
    headers = {"Authorization": f"Bearer {args.token}"}
    timeout = httpx2.Timeout(10.0, read=30.0)
    calls: list[dict] = []
    report["calls"] = calls
    scopes: dict = {}
    report["cache_scopes"] = scopes
    async with httpx2.AsyncClient(timeout=timeout, headers=headers) as http:
        async with Client(streamable_http_client(args.url, http_client=http), mode=args.mode) as client:
            report["protocol"] = client.protocol_version
            tools = await client.list_tools(cache_mode="bypass") if hasattr(client, "list_tools") else None
            prompts = await client.list_prompts(cache_mode="bypass")
            resources = await client.list_resources(cache_mode="bypass")
            templates = await client.list_resource_templates(cache_mode="bypass")
            for key, result in (("tools", tools), ("prompts", prompts), ("resources", resources), ("templates", templates)):
                scopes[key] = getattr(result, "cache_scope", None)
            report["tools"] = sorted(t.name for t in tools.tools)
            report["prompts"] = sorted(p.name for p in prompts.prompts)
            report["resources"] = sorted(str(r.uri) for r in resources.resources)
            report["templates"] = sorted(str(t.uri_template) for t in templates.resource_templates)
            for name in report["tools"]:
                try:
                    res = await client.call_tool(name, TOOL_ARGS.get(name, DEFAULT_ARGS))
                    text = text_of(res)
                    calls.append({"kind": "tool", "name": name, "ok": not res.is_error, "detail": text})
                except Exception as exc:  # noqa: BLE001
                    calls.append({"kind": "tool", "name": name, "ok": False, "detail": describe(exc)})
            for name in report["prompts"]:
                try:
                    await client.get_prompt(name, {})
                    calls.append({"kind": "prompt", "name": name, "ok": True})
                except Exception as exc:  # noqa: BLE001
                    calls.append({"kind": "prompt", "name": name, "ok": False, "detail": describe(exc)})
            for uri in report["resources"]:
                try:
                    await client.read_resource(uri, cache_mode="bypass")
                    calls.append({"kind": "resource", "name": uri, "ok": True})
                except Exception as exc:  # noqa: BLE001
                    calls.append({"kind": "resource", "name": uri, "ok": False, "detail": describe(exc)})
            if args.call:
                name = args.call
                try:
                    res = await client.call_tool(name, TOOL_ARGS.get(name, DEFAULT_ARGS))
                    text = text_of(res)
                    report["extra_call"] = {"name": name, "ok": not res.is_error, "is_error": bool(res.is_error), "detail": text}
                except Exception as exc:  # noqa: BLE001
                    report["extra_call"] = {"name": name, "ok": False, "is_error": None, "detail": describe(exc)}
            report["ok"] = True


def main() -> int:
    p = parser(__doc__, token_required=True)
    p.add_argument("--call", help="also call this tool (listed or not) and report it as extra_call")
    return run_client(p, {"client": "python", "ok": False}, drive)


if __name__ == "__main__":
    sys.exit(main())
