#!/usr/bin/env python3
"""Drive a running MCP server with the official Python client (PyPI `mcp` 2.x).

Usage:
    python .ci/mcp_smoke.py [URL] [--token TOKEN] [--expect-principal ID] [--expect-refused]
                            [--expect-browser-guards] [--expect-rate-limit N]
                            [--expect-tools A,B] [--expect-prompts A,B]
                            [--expect-resources URI,URI] [--expect-templates T,T]
                            [--expect-call-refused TOOL,TOOL]

    URL defaults to http://127.0.0.1:8080/mcp. --token sends `Authorization:
    Bearer TOKEN` on every request; --expect-principal checks that `whoami`
    names that principal. --expect-refused checks instead that the server
    refuses the client (no or a bad token): a raw POST gets 401 with a
    `WWW-Authenticate: Bearer resource_metadata=...` challenge whose metadata
    document names the resource, and the MCP client fails to connect.
    --expect-browser-guards checks the browser-facing controls: security
    headers on every answer, a POST from an unlisted Origin refused with 403
    and a JSON-RPC error, a preflight from http://localhost:3000 (a
    development default origin) answered with CORS headers.
    --expect-rate-limit N checks a server whose per-IP limit is N requests per
    window (and nothing else has used it): N requests pass with X-RateLimit-*
    and RateLimit headers, the next gets 429 with Retry-After >= 1 and the
    seed's body, and an MCP call gets a JSON-RPC error (id null: the per-IP
    limit answers before the body is read).

Expects the tools of `examples/axum_mcp_server.rs` (whoami, echo, read_note,
write_note, delete_note). For both protocol eras -- `mode="legacy"` (the
2025-11-25 initialize handshake and Mcp-Session-Id sessions) and `mode="auto"`
(server/discover, which negotiates the stateless 2026-07-28 era with rmcp) --
it connects, lists the tools, calls `echo`, writes a note and reads it back (when
the caller is shown write_note), and checks that reading a missing note is a
tool error rather than a protocol error.

Per-caller lists: --expect-tools, --expect-prompts, --expect-resources and
--expect-templates (comma-separated) make tools/list, prompts/list,
resources/list and resources/templates/list match exactly that set (without
--expect-tools, tools/list must contain the five tools above); every listed
prompt is fetched and every listed resource read. --expect-call-refused names
tools the caller is not shown and may not call: the list must not contain them,
and calling each through the client (which sends it anyway) must fail, with the
answer on the wire an HTTP 403 carrying `WWW-Authenticate: Bearer
error="insufficient_scope", ..., scope="..."` and the RFC 6750 JSON body
`{"error": "insufficient_scope", "required_scopes": [...]}` (seen through an
httpx2 response hook), in both eras.

Prints one line per check; exits 0 when all pass, 1 on the first failure (with
the reason), 2 on bad usage. The whole run is bounded by TOTAL_TIMEOUT_S.

Requires: pip install 'mcp>=2,<3'   (it brings `httpx2`)
"""

from __future__ import annotations

import argparse
import json
import logging
import re
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


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def names_of(value: str | None) -> set[str] | None:
    """A comma-separated option as a set (None when the option was not given)."""
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


def check_exact(listed: set[str], expected: set[str] | None, mode: str, what: str) -> None:
    if expected is None:
        return
    check(
        listed == expected,
        mode,
        f"{what} is exactly {sorted(expected)}",
        f"listed {sorted(listed)}; extra {sorted(listed - expected)}, missing {sorted(expected - listed)}",
    )


class WireLog:
    """What the server answered to each JSON-RPC method the client posted (an httpx2 response
    hook): status, WWW-Authenticate, the MCP request headers sent and, for errors, the body."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    async def hook(self, response) -> None:
        try:
            sent = json.loads(response.request.content or b"null")
        except (ValueError, UnicodeDecodeError):
            sent = None
        entry = {
            "method": sent.get("method") if isinstance(sent, dict) else None,
            "name": (sent.get("params") or {}).get("name") if isinstance(sent, dict) else None,
            "status": response.status_code,
            "www_authenticate": response.headers.get("www-authenticate", ""),
            "content_type": response.headers.get("content-type", ""),
            "sent_headers": {k.lower(): v for k, v in response.request.headers.items() if k.lower().startswith("mcp-")},
            "body": None,
        }
        if response.status_code >= 400:
            # Small error bodies only; reading here leaves the content for the SDK.
            await response.aread()
            entry["body"] = response.text
        self.entries.append(entry)

    def last_call(self, tool: str) -> dict | None:
        for entry in reversed(self.entries):
            if entry["method"] == "tools/call" and entry["name"] == tool:
                return entry
        return None


async def expect_call_refused(client, wire: WireLog, mode: str, tool: str) -> None:
    """Calling `tool` (not listed for this caller) fails, and the wire shows the stack's 403."""
    failed = False
    detail = "the call succeeded"
    try:
        result = await client.call_tool(tool, {"name": "smoke-refused"})
        detail = f"isError={result.is_error}: {text_of(result)!r}"
    except Exception as exc:  # noqa: BLE001 - the SDK raises on the 403
        failed = True
        detail = describe(exc)
    check(failed, mode, f"calling the hidden tool {tool} fails in the client ({detail[:70]})", detail)
    entry = wire.last_call(tool)
    check(entry is not None, mode, f"the client posted tools/call {tool}", f"wire log: {wire.entries[-3:]!r}")
    assert entry is not None
    if mode != "legacy":
        sent = entry["sent_headers"]
        check(
            sent.get("mcp-method") == "tools/call" and sent.get("mcp-name") == tool,
            mode,
            f"it was sent with Mcp-Method: tools/call, Mcp-Name: {tool}",
            f"sent {sent!r}",
        )
    challenge = entry["www_authenticate"]
    try:
        body = json.loads(entry["body"] or "null")
    except ValueError:
        body = None
    check(
        entry["status"] == 403
        and challenge.startswith("Bearer ")
        and 'error="insufficient_scope"' in challenge
        and re.search(r'scope="[^"]+"', challenge) is not None
        and entry["content_type"].startswith("application/json")
        and isinstance(body, dict)
        and body.get("error") == "insufficient_scope"
        and bool(body.get("required_scopes")),
        mode,
        f"the stack answered 403 insufficient_scope (needs {body.get('required_scopes') if isinstance(body, dict) else '?'})",
        f"got {entry['status']} {challenge!r} {entry['content_type']!r} {entry['body']!r}",
    )


async def drive(url: str, mode: str, token: str | None, principal: str | None, args: argparse.Namespace) -> None:
    run = uuid.uuid4().hex
    wire = WireLog()
    # Short connect/read timeouts so a hung server fails fast instead of waiting
    # for the SDK's 300 s SSE read default.
    timeout = httpx2.Timeout(10.0, read=30.0)
    async with httpx2.AsyncClient(
        timeout=timeout, headers=auth_headers(token), event_hooks={"response": [wire.hook]}
    ) as http:
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
            expected_tools = names_of(args.expect_tools)
            if expected_tools is None:
                missing = EXPECTED_TOOLS - names
                check(
                    not missing,
                    mode,
                    f"tools/list has {sorted(EXPECTED_TOOLS)}",
                    f"missing {sorted(missing)}; server listed {sorted(names)}",
                )
            else:
                check_exact(names, expected_tools, mode, "tools/list")
            refused = names_of(args.expect_call_refused) or set()
            check(
                not (refused & names),
                mode,
                f"tools/list hides {sorted(refused)}" if refused else "no hidden tools to check",
                f"listed {sorted(refused & names)}",
            )
            if args.expect_prompts is not None:
                prompts = {p.name for p in (await client.list_prompts()).prompts}
                check_exact(prompts, names_of(args.expect_prompts), mode, "prompts/list")
                for prompt in sorted(prompts):
                    got = await client.get_prompt(prompt, {})
                    check(bool(got.messages), mode, f"prompts/get {prompt} answers", f"got {got!r}")
            if args.expect_resources is not None:
                resources = {str(r.uri) for r in (await client.list_resources()).resources}
                check_exact(resources, names_of(args.expect_resources), mode, "resources/list")
                for uri in sorted(resources):
                    got = await client.read_resource(uri)
                    check(bool(got.contents), mode, f"resources/read {uri} answers", f"got {got!r}")
            if args.expect_templates is not None:
                templates = {str(t.uri_template) for t in (await client.list_resource_templates()).resource_templates}
                check_exact(templates, names_of(args.expect_templates), mode, "resources/templates/list")

            if principal is not None:
                result = await client.call_tool("whoami", {})
                got = text_of(result)
                try:
                    who = json.loads(got).get("principal", {})
                except ValueError:
                    who = {}
                check(
                    isinstance(who, dict) and who.get("id") == principal,
                    mode,
                    f"whoami names principal {principal!r}",
                    f"got {got!r}",
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
            if "write_note" in names:
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

            if "read_note" in names:
                result = await client.call_tool("read_note", {"name": f"no-such-note-{run}"})
                check(
                    bool(result.is_error),
                    mode,
                    "read_note of a missing note is a tool error",
                    f"expected isError=True, got {result.is_error} with {text_of(result)!r}",
                )

            if "write_note" in names and "delete_note" in names:
                result = await client.call_tool("delete_note", {"name": name})
                check(
                    not result.is_error,
                    mode,
                    "delete_note removes the note",
                    f"isError=True: {text_of(result)!r}",
                )

            for tool in sorted(refused):
                await expect_call_refused(client, wire, mode, tool)


async def expect_refused(url: str, token: str | None) -> None:
    """The server must refuse: 401 with an RFC 6750/9728 challenge, and the MCP client fails."""
    mode = "refused"
    timeout = httpx2.Timeout(10.0, read=30.0)
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "mcp-smoke", "version": "0"},
        },
    }
    async with httpx2.AsyncClient(timeout=timeout, headers=auth_headers(token)) as http:
        response = await http.post(
            url,
            json=body,
            headers={"Accept": "application/json, text/event-stream"},
        )
        check(
            response.status_code == 401,
            mode,
            "a raw initialize POST gets 401",
            f"got {response.status_code}: {response.text[:200]!r}",
        )
        challenge = response.headers.get("www-authenticate", "")
        match = re.search(r'resource_metadata="([^"]+)"', challenge)
        check(
            challenge.startswith("Bearer") and match is not None,
            mode,
            "the 401 carries a Bearer challenge with resource_metadata",
            f"WWW-Authenticate was {challenge!r}",
        )
        assert match is not None
        metadata = await http.get(match.group(1))
        doc = metadata.json() if metadata.status_code == 200 else {}
        check(
            metadata.status_code == 200 and doc.get("resource", "").endswith("/mcp"),
            mode,
            f"protected-resource metadata names the resource ({doc.get('resource')})",
            f"GET {match.group(1)} -> {metadata.status_code} {metadata.text[:200]!r}",
        )
    refused = False
    detail = "the client connected"
    try:
        with anyio.fail_after(20):
            async with httpx2.AsyncClient(timeout=timeout, headers=auth_headers(token)) as http:
                async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                    await client.list_tools()
    except CheckFailed:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure to connect is the expected outcome
        refused = True
        detail = describe(exc)
    check(refused, mode, f"the MCP client is refused ({detail[:80]})", detail)


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
    "x-xss-protection": "0",
}


async def expect_browser_guards(url: str) -> None:
    mode = "browser"
    health = url.rsplit("/", 1)[0] + "/health"
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(10.0)) as http:
        for label, response in (
            ("GET /health", await http.get(health)),
            ("an unauthenticated POST", await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
        ):
            wrong = {k: response.headers.get(k) for k, v in SECURITY_HEADERS.items() if response.headers.get(k) != v}
            check(not wrong, mode, f"security headers on {label} ({response.status_code})", f"wrong or missing: {wrong}")
        response = await http.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Origin": "http://evil.example", "Accept": "application/json, text/event-stream"},
        )
        body = response.json() if response.headers.get("content-type") == "application/json" else {}
        check(
            response.status_code == 403
            and body.get("id", "missing") is None
            and body.get("error", {}).get("data", {}).get("code") == "origin_not_allowed",
            mode,
            "a POST from an unlisted Origin gets 403 with a JSON-RPC error",
            f"got {response.status_code} {response.text[:200]!r}",
        )
        response = await http.request(
            "OPTIONS",
            url,
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version",
            },
        )
        allowed = response.headers.get("access-control-allow-headers", "")
        check(
            response.status_code in (200, 204)
            and response.headers.get("access-control-allow-origin") == "http://localhost:3000"
            and "authorization" in allowed,
            mode,
            "a preflight from an allowed origin is answered with CORS headers",
            f"got {response.status_code} {dict(response.headers)!r}",
        )


async def expect_rate_limit(url: str, limit: int) -> None:
    mode = "ratelimit"
    health = url.rsplit("/", 1)[0] + "/health"
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(10.0)) as http:
        for i in range(limit):
            response = await http.get(health)
            remaining = response.headers.get("x-ratelimit-remaining")
            check(
                response.status_code == 200
                and response.headers.get("x-ratelimit-limit") == str(limit)
                and remaining == str(limit - 1 - i)
                and "ratelimit" in response.headers
                and "ratelimit-policy" in response.headers,
                mode,
                f"request {i + 1}/{limit} passes, X-RateLimit-Remaining {remaining}",
                f"got {response.status_code} {dict(response.headers)!r}",
            )
        response = await http.get(health)
        retry = response.headers.get("retry-after", "")
        body = response.json() if response.status_code == 429 else {}
        check(
            response.status_code == 429
            and retry.isdigit()
            and int(retry) >= 1
            and body.get("detail") == "Rate limit exceeded. Please try again later."
            and body.get("retry_after") == int(retry),
            mode,
            f"request {limit + 1} gets 429, Retry-After {retry}, the seed's body",
            f"got {response.status_code} {dict(response.headers)!r} {response.text[:200]!r}",
        )
        response = await http.post(
            url,
            json={"jsonrpc": "2.0", "id": "rl-1", "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        body = response.json() if response.status_code == 429 else {}
        # The per-IP limit runs before the body is read, so it cannot know the id (JSON-RPC
        # says null then); limits after McpInspectLayer answer with the request's id.
        check(
            response.status_code == 429
            and body.get("jsonrpc") == "2.0"
            and body.get("id", "missing") is None
            and body.get("error", {}).get("data", {}).get("code") == "rate_limited",
            mode,
            "a limited MCP call gets a JSON-RPC error",
            f"got {response.status_code} {response.text[:200]!r}",
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


async def main(args: argparse.Namespace) -> None:
    with anyio.fail_after(TOTAL_TIMEOUT_S):
        if args.expect_refused:
            await expect_refused(args.url, args.token)
            return
        if args.expect_browser_guards:
            await expect_browser_guards(args.url)
            return
        if args.expect_rate_limit is not None:
            await expect_rate_limit(args.url, args.expect_rate_limit)
            return
        for mode in ("legacy", "auto"):
            await drive(args.url, mode, args.token, args.expect_principal, args)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default=DEFAULT_URL)
    parser.add_argument("--token", help="send Authorization: Bearer TOKEN")
    parser.add_argument("--expect-principal", help="whoami must name this principal id")
    parser.add_argument("--expect-refused", action="store_true", help="the server must refuse the client")
    parser.add_argument("--expect-rate-limit", type=int, metavar="N", help="the per-IP limit is N requests")
    parser.add_argument(
        "--expect-browser-guards", action="store_true", help="check security headers, Origin guard and CORS"
    )
    parser.add_argument("--expect-tools", metavar="A,B", help="tools/list must be exactly these tools")
    parser.add_argument("--expect-prompts", metavar="A,B", help="prompts/list must be exactly these prompts")
    parser.add_argument("--expect-resources", metavar="URI,URI", help="resources/list must be exactly these URIs")
    parser.add_argument(
        "--expect-templates", metavar="T,T", help="resources/templates/list must be exactly these URI templates"
    )
    parser.add_argument(
        "--expect-call-refused",
        metavar="TOOL,TOOL",
        help="these tools are not listed, and calling them gets 403 insufficient_scope",
    )
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit:
        return 2
    target = args.url
    logging.getLogger("mcp.client.streamable_http").addFilter(_DropTerminate202())
    label = (
        "refusal"
        if args.expect_refused
        else "browser-guard"
        if args.expect_browser_guards
        else "rate-limit"
        if args.expect_rate_limit is not None
        else "smoke"
    )
    print(f"MCP {label} test against {target}", flush=True)
    try:
        anyio.run(main, args)
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
