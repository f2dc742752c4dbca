#!/usr/bin/env python3
"""Drive a running MCP server with the official Python client (PyPI `mcp` 2.x).

Usage:
    python .ci/mcp_smoke.py [URL]        # default http://127.0.0.1:8080/mcp

Expects the tools of `examples/axum_mcp_server.rs` (whoami, echo, read_note,
write_note, delete_note). For both protocol eras -- `mode="legacy"` (the
2025-11-25 initialize handshake and Mcp-Session-Id sessions) and `mode="auto"`
(server/discover, which negotiates the stateless 2026-07-28 era with rmcp) --
it connects, lists the tools, calls `echo`, writes a note and reads it back, and
checks that reading a missing note is a tool error rather than a protocol error.

Prints one line per check; exits 0 when all pass, 1 on the first failure (with
the reason), 2 on bad usage. The whole run is bounded by TOTAL_TIMEOUT_S.

Requires: pip install 'mcp>=2,<3'   (it brings `httpx2`)
"""

from __future__ import annotations

import logging
import sys
import traceback
import uuid

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

DEFAULT_URL = "http://127.0.0.1:8080/mcp"
TOTAL_TIMEOUT_S = 60.0
EXPECTED_TOOLS = {"whoami", "echo", "read_note", "write_note", "delete_note"}


class CheckFailed(Exception):
    """A smoke check did not hold."""


def ok(mode: str, what: str) -> None:
    print(f"ok   [{mode}] {what}", flush=True)


def check(cond: bool, mode: str, what: str, detail: str) -> None:
    if not cond:
        raise CheckFailed(f"[{mode}] {what}: {detail}")
    ok(mode, what)


def text_of(result) -> str:
    """Concatenate the text blocks of a CallToolResult."""
    return "".join(getattr(block, "text", "") for block in result.content)


async def drive(url: str, mode: str) -> None:
    run = uuid.uuid4().hex
    # Short connect/read timeouts so a hung server fails fast instead of waiting
    # for the SDK's 300 s SSE read default.
    timeout = httpx2.Timeout(10.0, read=30.0)
    async with httpx2.AsyncClient(timeout=timeout) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            version = client.protocol_version
            if mode == "legacy":
                check(
                    version in HANDSHAKE_PROTOCOL_VERSIONS,
                    mode,
                    f"connected, protocol {version} (initialize handshake)",
                    f"expected a handshake-era version, got {version!r}",
                )
            else:
                check(
                    version in MODERN_PROTOCOL_VERSIONS,
                    mode,
                    f"connected, protocol {version} (stateless)",
                    f"expected a modern version {MODERN_PROTOCOL_VERSIONS}, got {version!r}",
                )

            listed = await client.list_tools()
            names = {tool.name for tool in listed.tools}
            missing = EXPECTED_TOOLS - names
            check(
                not missing,
                mode,
                f"tools/list has {sorted(EXPECTED_TOOLS)}",
                f"missing {sorted(missing)}; server listed {sorted(names)}",
            )

            sent = f"smoke-{mode}-{run}"
            result = await client.call_tool("echo", {"text": sent})
            got = text_of(result)
            check(
                not result.is_error and got == sent,
                mode,
                "echo returns its text",
                f"sent {sent!r}, got {got!r} (isError={result.is_error})",
            )

            name = f"smoke-note-{mode}-{run}"
            content = f"content {run} \u2713 with unicode"
            result = await client.call_tool("write_note", {"name": name, "content": content})
            check(
                not result.is_error,
                mode,
                "write_note succeeds",
                f"isError=True: {text_of(result)!r}",
            )
            result = await client.call_tool("read_note", {"name": name})
            got = text_of(result)
            check(
                not result.is_error and got == content,
                mode,
                "read_note returns what write_note stored",
                f"expected {content!r}, got {got!r} (isError={result.is_error})",
            )

            result = await client.call_tool("read_note", {"name": f"no-such-note-{run}"})
            check(
                bool(result.is_error),
                mode,
                "read_note of a missing note is a tool error",
                f"expected isError=True, got {result.is_error} with {text_of(result)!r}",
            )

            result = await client.call_tool("delete_note", {"name": name})
            check(
                not result.is_error,
                mode,
                "delete_note removes the note",
                f"isError=True: {text_of(result)!r}",
            )


def find_check_failure(exc: BaseException) -> CheckFailed | None:
    """The CheckFailed behind `exc`, which anyio task groups may have wrapped."""
    if isinstance(exc, CheckFailed):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := find_check_failure(inner)) is not None:
                return found
    return None


def describe(exc: BaseException) -> str:
    """One readable line for an exception, looking inside exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _DropTerminate202(logging.Filter):
    """rmcp answers the session DELETE with 202 Accepted; the SDK logs a warning
    "Session termination failed: 202" because it only expects 200/204. Harmless."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Session termination failed: 202"


async def main(url: str) -> None:
    with anyio.fail_after(TOTAL_TIMEOUT_S):
        for mode in ("legacy", "auto"):
            await drive(url, mode)


def run(argv: list[str]) -> int:
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__, file=sys.stderr)
        return 2
    target = argv[1] if len(argv) == 2 else DEFAULT_URL
    logging.getLogger("mcp.client.streamable_http").addFilter(_DropTerminate202())
    print(f"MCP smoke test against {target}", flush=True)
    try:
        anyio.run(main, target)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - report anything, including exception groups
        failed = find_check_failure(exc)
        if failed is not None:
            print(f"FAIL {failed}", file=sys.stderr, flush=True)
        elif isinstance(exc, TimeoutError):
            print(f"FAIL smoke test did not finish within {TOTAL_TIMEOUT_S:.0f} s", file=sys.stderr, flush=True)
        else:
            print(f"FAIL {describe(exc)}", file=sys.stderr, flush=True)
            traceback.print_exception(exc, file=sys.stderr)
        return 1
    print("all MCP smoke checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv))
