#!/usr/bin/env python3
"""Mixed traffic for scripts/soak.sh against examples/axum_mcp_server.

Usage: driver.py BASE_URL SECONDS --jwt-secret HEX --api-key KEY --out counts.json

Every category runs as its own asyncio workers until SECONDS have passed:

  valid_mcp      the official Python MCP client (PyPI `mcp` 2.x), alternating the legacy era
                 (initialize, Mcp-Session-Id, DELETE: session churn) and the stateless era;
                 lists tools, calls echo and whoami, writes and reads a note; a JWT per session
                 with one of 1000 subjects, from one of 4096 client addresses (X-Forwarded-For)
  valid_raw      the load generator: stateless 2026-07-28 tools/call echo over raw HTTP/1.1,
                 JWT-authenticated, from one of 4096 addresses
  bad_token      random bearer strings, wrong API keys, JWTs with a forged signature
  expired_token  JWTs correctly signed but expired
  flood          no credential, each request from a new address (65 536 of them, through the
                 trusted proxy 127.0.0.1)
  flood_hot      one address hammering: the per-IP limit must answer 429
  oversized      bodies over MCP_MAX_BODY_BYTES, with and without Content-Length
  malformed      not JSON, JSON that is not JSON-RPC, Mcp-Method disagreeing with the body
  slow_body      a valid call whose body arrives a few bytes at a time, and one that stalls and
                 is abandoned
  sse            legacy sessions holding a GET text/event-stream open for ~15 s, then DELETE
  abandoned      legacy sessions opened and never closed

SOAK_ONLY=cat1,cat2 runs only those categories (to find which one a figure comes from).

The load generator is this stdlib asyncio client (not wrk): the audit check needs every answer
counted by status and category, and the abuse categories need control of the bytes on the wire
(slow and stalled bodies, X-Forwarded-For per request, held SSE streams).

Writes counts.json: per category, answers by status ("none" = no answer head: the connection was
closed or abandoned first), plus `answered` (every answer head seen, the audit trail must hold
at least that many request records) and `unanswered` (requests sent that got no answer head: the
trail may hold up to that many more).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import hmac
import json
import logging
import os
import random
import sys
import time
import urllib.parse

PROTOCOL = "2026-07-28"
LEGACY = "2025-11-25"
META = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOL,
    "io.modelcontextprotocol/clientCapabilities": {},
}

counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
errors: collections.Counter = collections.Counter()
totals = {"answered": 0, "unanswered": 0}


def record(category: str, status: int | None) -> None:
    counts[category][str(status) if status is not None else "none"] += 1
    if status is None:
        totals["unanswered"] += 1
    else:
        totals["answered"] += 1


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret: bytes, claims: dict, forge: bool = False) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    key = os.urandom(32) if forge else secret
    sig = b64(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


class Ctx:
    def __init__(self, base: str, secret: bytes, api_key: str, deadline: float):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.hosthdr = f"{self.host}:{self.port}"
        self.url = base.rstrip("/") + "/mcp"
        self.secret = secret
        self.api_key = api_key
        self.deadline = deadline

    def live(self) -> bool:
        return time.monotonic() < self.deadline

    def token(self, sub: str | None = None, expired: bool = False, forge: bool = False) -> str:
        now = int(time.time())
        exp = now - 120 if expired else now + 7200
        claims = {
            "sub": sub or f"soak-{random.randrange(1000)}",
            "aud": self.url,
            "iat": now - 300,
            "nbf": now - 300,
            "exp": exp,
            "scope": "notes",
        }
        return jwt(self.secret, claims, forge)


def addr(prefix: str, n: int) -> str:
    return f"{prefix}.{(n >> 8) & 255}.{n & 255}"


async def http(
    ctx: Ctx,
    method: str,
    headers: dict[str, str],
    body: bytes = b"",
    *,
    path: str = "/mcp",
    chunks: list[tuple[bytes, float]] | None = None,
    hold: float = 0.0,
    timeout: float = 20.0,
    abandon_after: float | None = None,
) -> tuple[int | None, dict[str, str], bytes]:
    """One request on a fresh connection (`Connection: close`); the answer's status (None when
    no answer head came), headers, and body (read until the server closes, or `hold` seconds of
    a stream)."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ctx.host, ctx.port), timeout
        )
        lines = [f"{method} {path} HTTP/1.1", f"Host: {ctx.hosthdr}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if chunks is None and (body or method in ("POST", "PUT")):
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            if chunks is None:
                writer.write(body)
                await writer.drain()
            else:
                for piece, pause in chunks:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(pause)
        except (ConnectionError, OSError):
            pass  # the server may answer (413) and close before the body is sent
        if abandon_after is not None:
            await asyncio.sleep(abandon_after)
            return None, {}, b""
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ")[1])
        got = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                got[k.strip().lower()] = v.strip()
        data = b""
        if hold > 0:
            end = time.monotonic() + hold
            while time.monotonic() < end:
                try:
                    piece = await asyncio.wait_for(reader.read(4096), max(0.01, end - time.monotonic()))
                except asyncio.TimeoutError:
                    continue
                if not piece:
                    break
                data += piece[:256]
        else:
            while len(data) < (1 << 20):
                piece = await asyncio.wait_for(reader.read(65536), timeout)
                if not piece:
                    break
                data += piece
        return status, got, data
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError, ValueError, IndexError):
        return None, {}, b""
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


def call_body(i: int, name: str = "echo", arguments: dict | None = None) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": i,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments or {"text": f"soak {i}"}, "_meta": META},
        }
    ).encode()


def call_headers(token: str | None, xff: str, name: str = "echo") -> dict[str, str]:
    h = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
        "X-Forwarded-For": xff,
    }
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return h


# --------------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------------


async def valid_raw(ctx: Ctx, w: int) -> None:
    i = 0
    while ctx.live():
        i += 1
        status, _, body = await http(
            ctx, "POST", call_headers(ctx.token(), addr("10.2", random.randrange(4096))), call_body(i)
        )
        record("valid_raw", status)
        if status == 200 and b"soak" not in body:
            errors["valid_raw: 200 without the echoed text"] += 1


async def bad_token(ctx: Ctx, w: int) -> None:
    i = 0
    while ctx.live():
        i += 1
        kind = i % 3
        token = (
            b64(os.urandom(24))
            if kind == 0
            else "mcp-sk-" + b64(os.urandom(32))
            if kind == 1
            else ctx.token(forge=True)
        )
        status, _, _ = await http(ctx, "POST", call_headers(token, addr("10.3", i % 4096)), call_body(i))
        record("bad_token", status)
        await asyncio.sleep(0.01)


async def expired_token(ctx: Ctx, w: int) -> None:
    i = 0
    while ctx.live():
        i += 1
        status, _, _ = await http(
            ctx, "POST", call_headers(ctx.token(expired=True), addr("10.4", i % 4096)), call_body(i)
        )
        record("expired_token", status)
        await asyncio.sleep(0.02)


async def flood(ctx: Ctx, w: int) -> None:
    i = w * 7919
    while ctx.live():
        i += 1
        status, _, _ = await http(ctx, "POST", call_headers(None, addr("172.16", i % 65536)), call_body(i))
        record("flood", status)


async def flood_hot(ctx: Ctx, w: int) -> None:
    i = 0
    while ctx.live():
        i += 1
        status, _, _ = await http(ctx, "POST", call_headers(None, "192.0.2.99"), call_body(i))
        record("flood_hot", status)
        await asyncio.sleep(0.005)


async def oversized(ctx: Ctx, w: int, max_body: int) -> None:
    i = 0
    while ctx.live():
        i += 1
        big = json.dumps(
            {"jsonrpc": "2.0", "id": i, "method": "tools/call",
             "params": {"name": "echo", "arguments": {"text": "x" * (max_body + 1024)}, "_meta": META}}
        ).encode()
        h = call_headers(ctx.token(), addr("10.5", i % 4096))
        if i % 2 == 0:
            status, _, _ = await http(ctx, "POST", h, big)
        else:
            # Chunked: no Content-Length, the limit is found while reading.
            h["Transfer-Encoding"] = "chunked"
            pieces = [(f"{len(big[k:k + 16384]):x}\r\n".encode() + big[k:k + 16384] + b"\r\n", 0.0)
                      for k in range(0, len(big), 16384)] + [(b"0\r\n\r\n", 0.0)]
            status, _, _ = await http(ctx, "POST", h, chunks=pieces)
        record("oversized", status)
        await asyncio.sleep(0.05)


async def malformed(ctx: Ctx, w: int) -> None:
    i = 0
    while ctx.live():
        i += 1
        h = call_headers(ctx.token(), addr("10.6", i % 4096))
        kind = i % 4
        if kind == 0:
            body = b'{"jsonrpc": "2.0", "id": 1, "method": '
        elif kind == 1:
            body = os.urandom(64)
        elif kind == 2:
            body = b'{"hello": "world"}'
        else:
            body = call_body(i)
            h["Mcp-Method"] = "tools/list"
        status, _, _ = await http(ctx, "POST", h, body)
        record("malformed", status)
        await asyncio.sleep(0.02)


async def slow_body(ctx: Ctx, w: int) -> None:
    i = 0
    while ctx.live():
        i += 1
        body = call_body(i)
        h = call_headers(ctx.token(), addr("10.7", i % 4096))
        h["Content-Length"] = str(len(body))
        if i % 2 == 0:
            pieces = [(body[k:k + 16], 0.1) for k in range(0, len(body), 16)]
            status, _, _ = await http(ctx, "POST", h, chunks=pieces)
        else:
            # Half the body, then nothing: abandoned after 3 s (the server may record it later).
            status, _, _ = await http(ctx, "POST", h, chunks=[(body[: len(body) // 2], 0.0)], abandon_after=3.0)
        record("slow_body", status)


async def legacy_session(ctx: Ctx, category: str, token: str, xff: str) -> str | None:
    h = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token}",
        "X-Forwarded-For": xff,
    }
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {},
                       "clientInfo": {"name": "soak", "version": "1"}}}
    status, got, _ = await http(ctx, "POST", h, json.dumps(init).encode())
    record(category, status)
    sid = got.get("mcp-session-id")
    if status != 200 or not sid:
        return None
    h["Mcp-Session-Id"] = sid
    h["MCP-Protocol-Version"] = LEGACY
    status, _, _ = await http(
        ctx, "POST", h, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
    )
    record(category, status)
    return sid


async def sse(ctx: Ctx, w: int) -> None:
    n = 0
    while ctx.live():
        n += 1
        token, xff = ctx.token(), addr("10.8", (w << 8) + n % 256)
        sid = await legacy_session(ctx, "sse", token, xff)
        if sid is None:
            await asyncio.sleep(0.5)
            continue
        h = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}", "X-Forwarded-For": xff,
             "Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY}
        hold = max(0.5, min(15.0, ctx.deadline - time.monotonic()))
        status, got, _ = await http(ctx, "GET", h, hold=hold)
        record("sse", status)
        if status == 200 and "text/event-stream" not in got.get("content-type", ""):
            errors["sse: 200 without text/event-stream"] += 1
        status, _, _ = await http(ctx, "DELETE", h)
        record("sse", status)


async def abandoned(ctx: Ctx, w: int) -> None:
    while ctx.live():
        await legacy_session(ctx, "abandoned", ctx.token(), addr("10.9", random.randrange(4096)))
        await asyncio.sleep(2.0)


async def valid_mcp(ctx: Ctx, w: int, venv_ok: bool) -> None:
    if not venv_ok:
        return
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    async def on_request(request):
        request.extensions["soak_sent"] = True
        sent[0] += 1

    async def on_response(response):
        record("valid_mcp", response.status_code)
        seen[0] += 1

    n = 0
    while ctx.live():
        n += 1
        mode = "legacy" if n % 2 else "auto"
        sent, seen = [0], [0]
        headers = {"Authorization": f"Bearer {ctx.token()}", "X-Forwarded-For": addr("10.1", random.randrange(4096))}
        try:
            async with httpx2.AsyncClient(
                timeout=httpx2.Timeout(10.0, read=30.0),
                headers=headers,
                event_hooks={"request": [on_request], "response": [on_response]},
            ) as client_http:
                async with Client(streamable_http_client(ctx.url, http_client=client_http), mode=mode) as client:
                    await client.list_tools()
                    result = await client.call_tool("echo", {"text": f"mcp {n}"})
                    if getattr(result, "is_error", False) or getattr(result, "isError", False):
                        errors["valid_mcp: echo returned a tool error"] += 1
                    await client.call_tool("whoami", {})
                    await client.call_tool("write_note", {"name": f"soak-{w}", "content": f"n {n}"})
                    await client.call_tool("read_note", {"name": f"soak-{w}"})
            counts["valid_mcp_sessions"][mode] += 1
        except Exception as e:  # noqa: BLE001 — counted, the assertions are on statuses
            counts["valid_mcp_sessions"][f"{mode} failed"] += 1
            errors[f"valid_mcp: {type(e).__name__}"] += 1
        finally:
            missing = sent[0] - seen[0]
            if missing > 0:
                counts["valid_mcp"]["none"] += missing
                totals["unanswered"] += missing


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("seconds", type=float)
    p.add_argument("--jwt-secret", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--max-body", type=int, default=65536)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    try:
        import httpx2  # noqa: F401
        import mcp  # noqa: F401

        venv_ok = True
    except ImportError:
        print("driver: the Python `mcp` package is missing; valid_mcp skipped", file=sys.stderr)
        venv_ok = False
    ctx = Ctx(a.base, a.jwt_secret.encode(), a.api_key, time.monotonic() + a.seconds)
    plan = {
        "valid_mcp": [valid_mcp(ctx, w, venv_ok) for w in range(2)] if venv_ok else [],
        "valid_raw": [valid_raw(ctx, w) for w in range(6)],
        "bad_token": [bad_token(ctx, 0)],
        "expired_token": [expired_token(ctx, 0)],
        "flood": [flood(ctx, w) for w in range(2)],
        "flood_hot": [flood_hot(ctx, 0)],
        "oversized": [oversized(ctx, 0, a.max_body)],
        "malformed": [malformed(ctx, 0)],
        "slow_body": [slow_body(ctx, w) for w in range(2)],
        "sse": [sse(ctx, w) for w in range(4)],
        "abandoned": [abandoned(ctx, 0)],
    }
    only = {c for c in os.environ.get("SOAK_ONLY", "").split(",") if c}
    ran = [c for c, ws in plan.items() if ws and (not only or c in only)]
    for c, ws in plan.items():
        if c not in ran:
            for w in ws:
                w.close()  # never awaited
    await asyncio.gather(*(w for c in ran for w in plan[c]))
    out = {
        "categories": {k: dict(v) for k, v in sorted(counts.items())},
        "answered": totals["answered"],
        "unanswered": totals["unanswered"],
        "errors": dict(errors),
        "ran": ran,
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
