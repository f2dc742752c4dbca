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
import json
import logging
import sys

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

TOTAL_TIMEOUT_S = 60.0
TOOL_ARGS = {"echo": {"text": "hi"}}
DEFAULT_ARGS = {"name": "welcome"}


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _DropTerminate202(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Session termination failed: 202"


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
                    text = "".join(getattr(b, "text", "") for b in res.content)
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
                    text = "".join(getattr(b, "text", "") for b in res.content)
                    report["extra_call"] = {"name": name, "ok": not res.is_error, "is_error": bool(res.is_error), "detail": text}
                except Exception as exc:  # noqa: BLE001
                    report["extra_call"] = {"name": name, "ok": False, "is_error": None, "detail": describe(exc)}
            report["ok"] = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--mode", choices=["legacy", "auto"], required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--call", help="also call this tool (listed or not) and report it as extra_call")
    try:
        args = parser.parse_args()
    except SystemExit:
        return 2
    logging.getLogger("mcp.client.streamable_http").addFilter(_DropTerminate202())
    report: dict = {"client": "python", "mode": args.mode, "ok": False}

    async def run() -> None:
        with anyio.fail_after(TOTAL_TIMEOUT_S):
            await drive(args, report)

    try:
        anyio.run(run)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001
        report["ok"] = False
        report["error"] = describe(exc)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
