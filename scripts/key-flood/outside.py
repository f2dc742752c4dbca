#!/usr/bin/env python3
"""Two clients outside the flood of scripts/key-flood.sh, each with its own JWT subject (so the
per-caller limit after auth is theirs alone) and its own /24 (so the per-IP limit before auth
is too):

  established  192.0.2.10: one call before the flood starts (its key is tracked while the store
               has room), then one call a second (up to half its burst), then one every 1.5
               refill intervals, until the flood ends: every answer must be 200.
  newcomer     198.51.100.20: arrives once the key store is full (the file STATE/full appears),
               so its key cannot be tracked and is charged to its network prefix's bucket. It
               first bursts BURST + 50 calls back to back on one keep-alive connection: about
               BURST must be admitted (its own limit: at least BURST - 2 and at most BURST plus
               what refills during the burst, + 2), every refusal a 429 with Retry-After and the
               RateLimit header; then, after waiting what the last Retry-After said, one call
               every 1.5 refill intervals until the flood ends: every answer must be 200. After
               STEADY_CALLS of them it creates STATE/newcomer-steady: the flood goes on (over its
               second phase's addresses again) until then, however fast it is.

Usage: outside.py BASE_URL --jwt-secret HEX --state DIR --burst N --rate PER_SECOND --out result.json

Runs until STATE/stop appears. Writes result.json and exits 1 naming what failed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

PROTOCOL = "2026-07-28"
# The newcomer's own-pace calls the flood waits for (STATE/newcomer-steady) before it may end.
STEADY_CALLS = 3


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret: bytes, sub: str, aud: str) -> str:
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "aud": aud, "iat": now - 60, "exp": now + 7200, "scope": "notes"}).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


class Client:
    def __init__(self, base: str, secret: bytes, sub: str, xff: str):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.token = jwt(secret, sub, base.rstrip("/") + "/mcp")
        self.xff = xff
        self.conn: http.client.HTTPConnection | None = None
        self.i = 0

    def call(self) -> tuple[int | None, dict[str, str]]:
        self.i += 1
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": self.i,
                "method": "tools/call",
                "params": {
                    "name": "echo",
                    "arguments": {"text": f"outside {self.i}"},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL,
            "Mcp-Method": "tools/call",
            "Mcp-Name": "echo",
            "X-Forwarded-For": self.xff,
            "Authorization": f"Bearer {self.token}",
        }
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=20)
                self.conn.request("POST", "/mcp", body, headers)
                r = self.conn.getresponse()
                r.read()
                got = {k.lower(): v for k, v in r.getheaders()}
                if got.get("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, got
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 1:
                    return None, {}
        return None, {}


def steady(client: Client, stop: str, counts: collections.Counter, pace: float, fast: int = 0,
           marker: str | None = None) -> None:
    """One call every second for the first `fast` calls (spending at most half the burst), then
    one every `pace` seconds (slower than the refill): never over the client's own limit. After
    STEADY_CALLS calls, the file `marker` (if any) is created."""
    n = 0
    while not os.path.exists(stop):
        status, _ = client.call()
        counts[str(status)] += 1
        n += 1
        if marker is not None and n == STEADY_CALLS:
            open(marker, "w").close()
        end = time.monotonic() + (1.0 if n < fast else pace)
        while time.monotonic() < end and not os.path.exists(stop):
            time.sleep(0.1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--jwt-secret", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--burst", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="the limit's refill, per second")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    secret = a.jwt_secret.encode()
    stop = os.path.join(a.state, "stop")
    full = os.path.join(a.state, "full")

    established = Client(a.base, secret, "established", "192.0.2.10")
    first, _ = established.call()
    open(os.path.join(a.state, "ready"), "w").close()
    est_counts: collections.Counter = collections.Counter()
    est_counts[str(first)] += 1
    pace = 1.5 / a.rate
    t = threading.Thread(target=steady, args=(established, stop, est_counts, pace, a.burst // 2), daemon=True)
    t.start()

    newcomer = Client(a.base, secret, "newcomer", "198.51.100.20")
    while not os.path.exists(full) and not os.path.exists(stop):
        time.sleep(0.1)
    burst = {"admitted": 0, "refused": 0, "other": collections.Counter(), "bad_refusals": 0}
    retry_after = 1
    began = time.monotonic()
    for _ in range(a.burst + 50):
        status, h = newcomer.call()
        if status == 200:
            burst["admitted"] += 1
        elif status == 429:
            burst["refused"] += 1
            if not h.get("retry-after", "").isdigit() or "ratelimit" not in h:
                burst["bad_refusals"] += 1
            else:
                retry_after = int(h["retry-after"])
        else:
            burst["other"][str(status)] += 1
    elapsed = time.monotonic() - began
    burst["seconds"] = round(elapsed, 3)
    time.sleep(retry_after)
    new_counts: collections.Counter = collections.Counter()
    steady(newcomer, stop, new_counts, pace, marker=os.path.join(a.state, "newcomer-steady"))
    t.join()

    fails = []
    if set(est_counts) != {"200"}:
        fails.append(f"the established client was not always served: {dict(est_counts)}")
    if not new_counts:
        fails.append("the newcomer's steady calls never ran (the flood ended first)")
    elif set(new_counts) != {"200"}:
        fails.append(f"the newcomer was not always served at its own pace: {dict(new_counts)}")
    low, high = a.burst - 2, a.burst + int(a.rate * elapsed) + 2
    if not low <= burst["admitted"] <= high:
        fails.append(f"the newcomer's burst admitted {burst['admitted']}, outside [{low}, {high}]")
    if burst["other"] or burst["bad_refusals"]:
        fails.append(f"the newcomer's burst got other answers {dict(burst['other'])} or refusals "
                     f"without Retry-After/RateLimit ({burst['bad_refusals']})")
    burst["other"] = dict(burst["other"])
    result = {
        "established": dict(est_counts),
        "newcomer_burst": burst,
        "newcomer_burst_bounds": [low, high],
        "newcomer_steady": dict(new_counts),
        "fails": fails,
    }
    with open(a.out, "w") as f:
        json.dump(result, f)
    for msg in fails:
        print(f"outside: {msg}", file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
