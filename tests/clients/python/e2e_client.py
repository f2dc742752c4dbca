#!/usr/bin/env python3
"""Drive an MCP server with the official Python client (PyPI `mcp` 2.x) for the mcp-security
end-to-end tests (tests/tests/e2e_python.rs), and print ONE JSON line on stdout saying what the
client saw.

Usage:
    python e2e_client.py URL --mode legacy|auto [--token TOKEN]
    python e2e_client.py URL --mode legacy|auto --oauth-client-id ID --oauth-client-secret SECRET --oauth-issuer AS_URL

`--mode legacy` forces the 2025-11-25 initialize handshake and Mcp-Session-Id sessions;
`--mode auto` negotiates the stateless 2026-07-28 era (server/discover) with servers that speak
it, such as rmcp. `--token` sends `Authorization: Bearer TOKEN` on every request. The
`--oauth-*` options use the SDK's `ClientCredentialsOAuthProvider` instead: on the server's 401
it discovers the protected-resource and authorization-server metadata, gets a token with the
client_credentials grant (client_secret_basic) and retries; the report then has `oauth`
(`token_type`, `got_token`, `scope`). Request entries then also carry the `path` of the
discovery and token requests.

The JSON line has `ok`, `mode`, `protocol`, `tools` (sorted names), `whoami` (the tool's JSON),
`echo` ({sent, got, is_error}), `requests` (one entry per HTTP exchange: method, status, and the
MCP headers the client sent -- `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, whether an
`Mcp-Session-Id` was sent; never a credential), and on failure `error` and `status` (the first
HTTP error status the server answered). Exit 0 when every step worked, 1 otherwise, 2 on bad
usage.

Setup: `bash .ci/e2e-setup.sh` (a venv with `pip install -r .ci/requirements.txt`).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import httpx2
from common import parser, run_client, text_of
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client


async def drive(args: argparse.Namespace, report: dict) -> None:
    requests: list[dict] = []
    report["requests"] = requests

    async def on_response(response: httpx2.Response) -> None:
        req = response.request
        requests.append(
            {
                "method": req.method,
                "path": req.url.path,
                "status": response.status_code,
                "protocol_version": req.headers.get("mcp-protocol-version"),
                "mcp_method": req.headers.get("mcp-method"),
                "mcp_name": req.headers.get("mcp-name"),
                "session": "mcp-session-id" in req.headers,
            }
        )

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    auth = None
    storage = None
    if args.oauth_client_id:
        from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

        storage = _MemoryStorage()
        auth = ClientCredentialsOAuthProvider(
            server_url=args.url,
            storage=storage,
            client_id=args.oauth_client_id,
            client_secret=args.oauth_client_secret,
            issuer=args.oauth_issuer,
        )
    timeout = httpx2.Timeout(10.0, read=30.0)
    async with httpx2.AsyncClient(
        timeout=timeout, headers=headers, auth=auth, event_hooks={"response": [on_response]}
    ) as http:
        async with Client(streamable_http_client(args.url, http_client=http), mode=args.mode) as client:
            report["connected"] = True
            report["protocol"] = client.protocol_version
            listed = await client.list_tools()
            report["tools"] = sorted(tool.name for tool in listed.tools)
            who = await client.call_tool("whoami", {})
            report["whoami"] = json.loads(text_of(who))
            sent = args.echo_text or f"py-{args.mode}-{uuid.uuid4().hex}"
            echoed = await client.call_tool("echo", {"text": sent})
            report["echo"] = {"sent": sent, "got": text_of(echoed), "is_error": bool(echoed.is_error)}
            if storage is not None:
                tokens = storage.tokens
                report["oauth"] = {
                    "token_type": tokens.token_type if tokens else None,
                    "got_token": bool(tokens and tokens.access_token),
                    "scope": tokens.scope if tokens else None,
                }
            report["ok"] = True


class _MemoryStorage:
    """The SDK's TokenStorage, in memory: what the provider got is read back for the report."""

    def __init__(self) -> None:
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--oauth-client-id")
    p.add_argument("--oauth-client-secret")
    p.add_argument("--oauth-issuer")
    p.add_argument("--echo-text", help="what to send to echo (default: a random marker)")
    return run_client(p, {"client": "python", "sdk": "mcp", "ok": False}, drive)


if __name__ == "__main__":
    sys.exit(main())
