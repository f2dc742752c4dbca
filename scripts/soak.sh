#!/usr/bin/env bash
# Soak: examples/axum_mcp_server (release build) with a tamper-evident audit file, driven for
# MINUTES (default 30; fractions allowed, CI runs 1) by scripts/soak/driver.py: the real Python
# MCP client (valid sessions, legacy and stateless) and a stdlib asyncio load generator (valid
# stateless calls; bad, forged and expired tokens; floods from 65 536 addresses through the
# trusted proxy 127.0.0.1 and from one hot address; oversized, malformed, slow and stalled
# bodies; long-lived SSE streams; session churn and abandoned sessions).
#
# Prints the answers per traffic category, the RSS and fd samples, and asserts:
#   1. no 5xx but the designed ones (503 from the resource limits, 504 timeouts);
#   2. every category got its expected answer at least once (200 / 401 / 429 / 413 / 400);
#   3. RSS flat after warm-up: every sample after the warm-up (the first 20 % of the run, at
#      least 10 s) within warm-up RSS + 16 MiB (SOAK_RSS_SLACK_MIB);
#   4. no fd growth: once the traffic has stopped, the server's open fds come back to at most
#      the idle count before the traffic + 4;
#   5. the audit chain verifies (`mcp-security audit verify`, every rotated file and the live
#      one), and it holds one request record
#      per answer the clients saw, plus at most one per request they sent but saw no answer to
#      (abandoned bodies, connections closed first): answered <= records <= answered + unanswered;
#   6. nothing panicked (the server log).
# Exits non-zero naming each failed assertion ("soak: FAIL <what>").
#
# SOAK_ONLY=flood,valid_raw runs only those driver categories (see scripts/soak/driver.py).
# Needs python3, the venv of .ci/run ($HOME/.cache/mcp-security/venv with `mcp`; without it the
# real-client category is skipped, with a warning) and cargo. Honours CARGO_TARGET_DIR (default
# $HOME/.cache/mcp-security/target, as .ci/run). KEEP_WORK=1 keeps the scratch directory.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

minutes=${1:-30}
seconds=$(awk -v m="$minutes" 'BEGIN { if (m !~ /^[0-9]*\.?[0-9]+$/) exit 1; s = int(m * 60 + 0.5); print (s < 20 ? 20 : s) }') || {
  echo "soak: MINUTES must be a number (got '$minutes')" >&2
  exit 2
}
warmup=$((seconds / 5 < 10 ? 10 : seconds / 5))
slack_mib=${SOAK_RSS_SLACK_MIB:-16}
max_body=65536

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mcp-security/target}"
VENV="${SOAK_VENV:-$HOME/.cache/mcp-security/venv}"
PY=python3
[ -x "$VENV/bin/python" ] && PY="$VENV/bin/python"

WORK=$(mktemp -d)
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "soak: scratch kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "soak: ${seconds}s of mixed traffic (warm-up ${warmup}s), $(date -u '+%Y-%m-%d %H:%M UTC')"
# The server in release (what is measured); the CLI (keygen, audit verify) as .ci/run builds it.
{ cargo build --release -p examples --example axum_mcp_server && cargo build -p mcp-security-cli; } \
  >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; echo "soak: FAIL the build"; exit 1; }
CLI="$CARGO_TARGET_DIR/debug/mcp-security"
BIN="$CARGO_TARGET_DIR/release/examples/axum_mcp_server"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
BASE="http://127.0.0.1:$PORT"
API_KEY=$("$CLI" keygen --name soak | head -n 1)
[ -n "$API_KEY" ] || { echo "soak: FAIL mcp-security keygen"; exit 1; }
JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$WORK/audit.key"
chmod 600 "$WORK/audit.key"
AUDIT="$WORK/audit.jsonl"

# A short request timeout so stalled bodies meet it within the run; the per-IP limit high enough
# for the 4096-address pools of the valid traffic, low enough for the hot flooder to meet it.
MCP_ENV=development MCP_BIND="127.0.0.1:$PORT" MCP_API_KEY="$API_KEY" MCP_JWT_SECRET="$JWT_SECRET" \
  MCP_JWT_AUDIENCE="$BASE/mcp" MCP_TRUSTED_PROXIES=127.0.0.1 MCP_RATE_LIMIT_REQUESTS=120 \
  MCP_MAX_BODY_BYTES=$max_body MCP_REQUEST_TIMEOUT=5s MCP_AUDIT_LOG_FILE="$AUDIT" \
  MCP_AUDIT_HMAC_KEY_FILE="$WORK/audit.key" RUST_LOG=warn \
  "$BIN" >"$WORK/server.log" 2>&1 &
SERVER=$!
NAME=soak
# shellcheck source=scripts/lib/server.sh
. "$ROOT/scripts/lib/server.sh"
wait_listening
sleep 1
fd_idle=$(fds)
rss_start=$(rss_kib)

# Samples every 2 s: seconds since the traffic started, RSS (KiB), open fds.
sample 2 "$WORK/samples.txt"

"$PY" "$ROOT/scripts/soak/driver.py" "$BASE" "$seconds" --jwt-secret "$JWT_SECRET" \
  --api-key "$API_KEY" --max-body "$max_body" --out "$WORK/counts.json" 2>"$WORK/driver.log"
driver_status=$?

drain_fds "$fd_idle"
rss_end=$(rss_kib)
stop_server

fails=()
fail() { fails+=("$1"); echo "soak: FAIL $1"; }

[ "$driver_status" -eq 0 ] && [ -s "$WORK/counts.json" ] || {
  tail -20 "$WORK/driver.log"; fail "the traffic driver failed (exit $driver_status)";
}

echo
echo "== answers per traffic category (status: count; none = no answer head)"
if [ -s "$WORK/counts.json" ]; then
  python3 - "$WORK/counts.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for cat, by in d["categories"].items():
    total = sum(by.values())
    print(f"{cat:20} {total:8}  " + "  ".join(f"{k}: {v}" for k, v in sorted(by.items())))
print(f"{'answered':20} {d['answered']:8}")
print(f"{'unanswered':20} {d['unanswered']:8}")
for e, n in d["errors"].items():
    print(f"driver error: {e}: {n}")
EOF
  # 1. 5xx: only 503 and 504.
  bad5xx=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(f"{c}:{s}x{n}" for c, by in d["categories"].items() for s, n in by.items()
               if s.isdigit() and 500 <= int(s) < 600 and s not in ("503", "504")))' "$WORK/counts.json")
  [ -z "$bad5xx" ] || fail "undesigned 5xx answers: $bad5xx"
  # 2. every category met its expected answer.
  missing=$(python3 -c '
import json, sys
full = json.load(open(sys.argv[1]))
d = full["categories"]
want = {"valid_raw": "200", "bad_token": "401", "expired_token": "401", "flood": "401",
        "flood_hot": "429", "oversized": "413", "malformed": "400", "slow_body": "200", "sse": "200",
        "abandoned": "200"}
want["valid_mcp"] = "200"
want = {c: s for c, s in want.items() if c in full["ran"]}
print(" ".join(f"{c}({s})" for c, s in want.items() if d.get(c, {}).get(s, 0) == 0))' "$WORK/counts.json")
  [ -z "$missing" ] || fail "categories that never got their expected answer: $missing"
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
errs = {k: v for k, v in d["errors"].items() if not k.startswith("valid_mcp: ")}
sys.exit(1 if errs else 0)' "$WORK/counts.json" || fail "wrong answers seen by the driver (see 'driver error' above)"
  grep -q 'valid_mcp_sessions' "$WORK/counts.json" || echo "soak: warning: the real MCP client did not run"
fi

echo
echo "== server RSS and fds (every 2 s; seconds since the traffic started)"
awk '{ printf "t=%4ss rss=%6.1f MiB fds=%s\n", $1, $2 / 1024, $3 }' "$WORK/samples.txt" |
  awk -v n="$(wc -l <"$WORK/samples.txt")" 'NR <= 3 || NR > n - 3 || NR % 10 == 0'
# 3. RSS flat after warm-up.
read -r rss_warm rss_max_after < <(awk -v w="$warmup" '
  $1 >= w && warm == "" { warm = $2 }
  warm != "" && $2 > max { max = $2 }
  END { print (warm == "" ? 0 : warm), (max == "" ? 0 : max) }' "$WORK/samples.txt")
bound=$((rss_warm + slack_mib * 1024))
echo "rss: start $((rss_start / 1024)) MiB, warm-up ($warmup s) $((rss_warm / 1024)) MiB, max after warm-up $((rss_max_after / 1024)) MiB, end $((${rss_end:-0} / 1024)) MiB; bound $((bound / 1024)) MiB (warm-up + ${slack_mib} MiB)"
if [ "$rss_warm" -eq 0 ]; then
  fail "no RSS sample after the warm-up"
elif [ "$rss_max_after" -gt "$bound" ]; then
  fail "RSS grew after warm-up: $((rss_max_after / 1024)) MiB > $((bound / 1024)) MiB"
fi
# 4. fds.
fd_max=$(awk '$3 > m { m = $3 } END { print m + 0 }' "$WORK/samples.txt")
echo "fds: idle before the traffic $fd_idle, max during $fd_max, after it stopped $fd_after (bound $((fd_idle + 4)))"
[ "$fd_after" -le $((fd_idle + 4)) ] || fail "fd growth: $fd_after open after the traffic, $fd_idle before"

# 5. The audit chain.
echo
echo "== audit trail"
# The writer rotates at 64 MiB (MCP_AUDIT_MAX_FILE_BYTES): the rotated files, oldest first
# (their names carry the first sequence number, zero-padded), then the live one.
mapfile -t trail < <(find "$WORK" -maxdepth 1 -name 'audit-*.jsonl' | sort; echo "$AUDIT")
echo "files: ${#trail[@]} ($(du -ch "${trail[@]}" | tail -1 | cut -f1))"
if "$CLI" audit verify "${trail[@]}" --key-file "$WORK/audit.key" >"$WORK/verify.txt" 2>&1; then
  tail -5 "$WORK/verify.txt"
  grep -q 'was not given' "$WORK/verify.txt" && fail "the audit chain does not start at the first file"
else
  cat "$WORK/verify.txt"; fail "the audit chain does not verify"
fi
records=$(cat "${trail[@]}" | grep -c '"kind":"request"')
if [ -s "$WORK/counts.json" ]; then
  read -r answered unanswered < <(python3 -c '
import json, sys; d = json.load(open(sys.argv[1])); print(d["answered"], d["unanswered"])' "$WORK/counts.json")
  echo "request records $records; answers the clients saw $answered; requests without an answer $unanswered"
  if [ "$records" -lt "$answered" ]; then
    fail "the audit trail misses answers: $records request records < $answered answers seen"
  elif [ "$records" -gt $((answered + unanswered)) ]; then
    fail "the audit trail has more records than requests: $records > $answered + $unanswered"
  fi
fi

# 6. Panics.
if grep -n -i 'panicked' "$WORK/server.log"; then fail "the server panicked"; fi

echo
if [ "${#fails[@]}" -ne 0 ]; then
  echo "soak: FAILED (${#fails[@]}): ${fails[*]}"
  KEEP_WORK=1
  exit 1
fi
echo "soak: OK (${seconds}s)"
