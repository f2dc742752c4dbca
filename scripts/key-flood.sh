#!/usr/bin/env bash
# Key flood: ADDRESSES distinct client addresses (default 1 000 000) through the trusted proxy
# 127.0.0.1 (X-Forwarded-For), one request each without a credential, at examples/axum_mcp_server
# (release build, audit file on), while two clients outside the flood keep calling with their
# own JWTs (scripts/key-flood/outside.py): one whose key was tracked before the flood, and a
# newcomer that arrives once the per-IP key store is full and is charged to its network prefix.
#
# The per-IP limit is KEYFLOOD_REQUESTS per hour (default 200: one request every 18 s refills,
# so every flooded address stays a live key for 18 s and the store really fills at any flood
# rate above max_keys / 18 s ≈ 5.6 k req/s; below that it fills with the help of idle keys
# the sweep has not reached yet), burst KEYFLOOD_BURST (default 50). The store holds
# MCP_RATE_LIMIT_MAX_KEYS (KEYFLOOD_MAX_KEYS, default 100 000, the product default) keys and
# the 4 096-entry prefix table; the addresses count up from 10.0.0.0, so 1 M of them span
# 3 907 /24 prefixes: the prefix table has room.
#
# The flood runs in two wrk phases: the first 1.5 × max_keys addresses (flooded again until
# KEYFLOOD_WARMUP_SECS have passed), then the rest (the newcomer arrives between them; on a
# machine fast enough to end the flood before the newcomer's first own-pace calls, the second
# phase goes on over its addresses again until they are in). Prints the flood's answers and
# rate, the RSS and fd samples, and asserts:
#   1. the flood got only 401 (no credential) and 429 (its prefixes' buckets): no 5xx;
#   2. RSS bounded: the peak during the flood is within the idle RSS + KEYFLOOD_RSS_SLACK_MIB
#      (default 48 MiB: the key store and prefix table are about 5.4 MB per limiter at the
#      defaults; the rest is working memory that grows with the request rate up to a plateau —
#      connection buffers, the audit queue of up to 8 192 records, up to 5 s of metric samples
#      between drains, the allocator's arenas —, measured at +18 MiB at 14 k req/s and +30 to
#      +40 MiB at 50 k req/s);
#   3. RSS flat once the store is full: the peak of the second phase is within the highest RSS
#      of the warmed-up first phase + KEYFLOOD_FLAT_SLACK_MIB (default 8 MiB);
#   4. the outside clients (outside.py): the established one always served, the newcomer's
#      burst admitted at its own limit and then served at its own pace;
#   5. no fd growth after the flood, nothing panicked.
#
#   scripts/key-flood.sh            # 1 M addresses
#   scripts/key-flood.sh 200000     # fewer
#   KEYFLOOD_MAX_KEYS=2000 KEYFLOOD_REQUESTS=3600 KEYFLOOD_BURST=20 scripts/key-flood.sh 40000   # CI
#
# Needs wrk (apt-get install wrk), python3 and cargo. Honours CARGO_TARGET_DIR (default
# $HOME/.cache/mcp-security/target, as .ci/run). KEEP_WORK=1 keeps the scratch directory.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

addresses=${1:-1000000}
case "$addresses" in '' | *[!0-9]*) echo "key-flood: ADDRESSES must be a number" >&2; exit 2 ;; esac
max_keys=${KEYFLOOD_MAX_KEYS:-100000}
requests=${KEYFLOOD_REQUESTS:-200}
burst=${KEYFLOOD_BURST:-50}
slack_mib=${KEYFLOOD_RSS_SLACK_MIB:-48}
flat_mib=${KEYFLOOD_FLAT_SLACK_MIB:-8}
# Phase 1 fills the store and warms the server up: 1.5 × max_keys addresses, flooded again until
# KEYFLOOD_WARMUP_SECS (default 10) have passed, so that the server's working memory has reached
# its plateau for this machine's request rate before check 3's reference is taken (at tens of
# thousands of requests per second a phase of 150 000 addresses lasts 2 s; RSS levels off after
# about 5 s).
warmup_secs=${KEYFLOOD_WARMUP_SECS:-10}
phase1=$((max_keys * 3 / 2))
[ "$addresses" -gt "$phase1" ] || { echo "key-flood: ADDRESSES must exceed 1.5 × max_keys ($phase1)" >&2; exit 2; }
command -v wrk >/dev/null 2>&1 || { echo "key-flood: wrk is missing: apt-get install wrk" >&2; exit 2; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mcp-security/target}"
WORK=$(mktemp -d)
SERVER=""
OUTSIDE=""
SAMPLER=""
cleanup() {
  for p in "$SERVER" "$OUTSIDE" "$SAMPLER"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "key-flood: scratch kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "key-flood: $addresses addresses, max_keys $max_keys, $requests per hour (burst $burst) per address, $(date -u '+%Y-%m-%d %H:%M UTC')"
cargo build --release -p examples --example axum_mcp_server >"$WORK/build.log" 2>&1 ||
  { tail -30 "$WORK/build.log"; echo "key-flood: FAIL the build"; exit 1; }
BIN="$CARGO_TARGET_DIR/release/examples/axum_mcp_server"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
BASE="http://127.0.0.1:$PORT"
JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$WORK/audit.key"
chmod 600 "$WORK/audit.key"

MCP_ENV=development MCP_BIND="127.0.0.1:$PORT" MCP_JWT_SECRET="$JWT_SECRET" \
  MCP_JWT_AUDIENCE="$BASE/mcp" MCP_TRUSTED_PROXIES=127.0.0.1 MCP_RATE_LIMIT_REQUESTS="$requests" \
  MCP_RATE_LIMIT_BURST="$burst" MCP_RATE_LIMIT_WINDOW=1h MCP_RATE_LIMIT_MAX_KEYS="$max_keys" \
  MCP_AUDIT_LOG_FILE="$WORK/audit.jsonl" MCP_AUDIT_HMAC_KEY_FILE="$WORK/audit.key" RUST_LOG=warn \
  "$BIN" >"$WORK/server.log" 2>&1 &
SERVER=$!
NAME=key-flood
# shellcheck source=scripts/lib/server.sh
. "$ROOT/scripts/lib/server.sh"
wait_listening

mkdir -p "$WORK/state"
python3 "$ROOT/scripts/key-flood/outside.py" "$BASE" --jwt-secret "$JWT_SECRET" --state "$WORK/state" \
  --burst "$burst" --rate "$(awk -v r="$requests" 'BEGIN { print r / 3600 }')" \
  --out "$WORK/outside.json" 2>"$WORK/outside.log" &
OUTSIDE=$!
for _ in $(seq 1 100); do [ -e "$WORK/state/ready" ] && break; sleep 0.1; done
sleep 1
fd_idle=$(fds)
rss_idle=$(rss_kib)

sample 1 "$WORK/samples.txt"

runs=0
flood() { # START COUNT: wrk until both its threads have sent their share, then SIGINT
  runs=$((runs + 1))
  local done="$WORK/done-$runs-" out="$WORK/wrk-$runs.txt"
  wrk -t2 -c32 -d2h --timeout 10s -s "$ROOT/scripts/key-flood/flood.lua" "$BASE/mcp" -- "$1" "$2" 2 \
    "$done" >"$out" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null && ! { [ -e "${done}0" ] && [ -e "${done}1" ]; }; do sleep 0.2; done
  kill -INT "$pid" 2>/dev/null
  wait "$pid"
  grep -E '^flood:|Requests/sec' "$out"
}
echo "== phase 1: addresses 0 .. $phase1 (fills the key store)"
flood 0 "$phase1"
while [ $(( $(date +%s) - start )) -lt "$warmup_secs" ]; do flood 0 "$phase1" >/dev/null; done
t1=$(( $(date +%s) - start ))
# The reference: the highest RSS of the warmed-up phase 1 (its second half).
rss_full=$(awk -v a="$((t1 / 2))" -v b="$t1" '$1 >= a && $1 <= b && $2 > m { m = $2 } END { print m + 0 }' "$WORK/samples.txt")
[ "$rss_full" -gt 0 ] || rss_full=$(rss_kib)
touch "$WORK/state/full"
echo "== phase 2: addresses $phase1 .. $addresses (store full; the newcomer arrives)"
flood "$phase1" $((addresses - phase1))
# The newcomer's own-pace calls must meet a full store: where the flood is faster than the
# newcomer's burst, its wait and its first calls, it goes on over phase 2's addresses again
# (their keys long evicted, so new keys again; no new prefixes, so the prefix table's room is
# unchanged), 20 000 at a time, until the newcomer has made them (at most 90 s more).
next=$phase1
chunk=$(( addresses - phase1 < 20000 ? addresses - phase1 : 20000 ))
extra_until=$((SECONDS + 90))
while [ ! -e "$WORK/state/newcomer-steady" ] && [ "$SECONDS" -lt "$extra_until" ] &&
  kill -0 "$OUTSIDE" 2>/dev/null; do
  [ $((next + chunk)) -le "$addresses" ] || next=$phase1
  echo "== phase 2 goes on: addresses $next .. $((next + chunk)) again (the newcomer's calls are not in yet)"
  flood "$next" "$chunk"
  next=$((next + chunk))
done
t2=$(( $(date +%s) - start ))
touch "$WORK/state/stop"
wait "$OUTSIDE"
outside_status=$?
OUTSIDE=""
drain_fds "$fd_idle"
rss_end=$(rss_kib)
stop_server

fails=()
fail() { fails+=("$1"); echo "key-flood: FAIL $1"; }

# 1. The flood's answers.
for f in "$WORK"/wrk-*.txt; do
  line=$(grep '^flood:' "$f")
  [ -n "$line" ] || { cat "$f"; fail "wrk did not finish ($f)"; continue; }
  other=$(grep -oE '[0-9]{3}=[0-9]+' <<<"$line" | grep -vE '^(401|429)=' | tr '\n' ' ')
  [ -z "$other" ] || fail "the flood got answers other than 401/429: $other"
done
sent=$(awk '/^flood: / { n += $2 } END { print n + 0 }' "$WORK"/wrk-*.txt)
echo
echo "flood: $sent answers ($addresses distinct addresses) in ${t2}s (phase 1 ${t1}s)"

echo
echo "== server RSS and fds (every 1 s)"
awk '{ printf "t=%4ss rss=%6.1f MiB fds=%s\n", $1, $2 / 1024, $3 }' "$WORK/samples.txt" |
  awk -v n="$(wc -l <"$WORK/samples.txt")" 'NR <= 2 || NR > n - 2 || NR % 15 == 0'
rss_peak=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$WORK/samples.txt")
rss_peak2=$(awk -v t="$t1" '$1 >= t && $2 > m { m = $2 } END { print m + 0 }' "$WORK/samples.txt")
echo "rss: idle $((rss_idle / 1024)) MiB, store full (phase 1, warmed up) $((rss_full / 1024)) MiB, peak $((rss_peak / 1024)) MiB, peak in phase 2 $((rss_peak2 / 1024)) MiB, after $((${rss_end:-0} / 1024)) MiB"
# 2. and 3.
[ "$rss_peak" -le $((rss_idle + slack_mib * 1024)) ] ||
  fail "RSS peak $((rss_peak / 1024)) MiB > idle $((rss_idle / 1024)) MiB + $slack_mib MiB"
[ "$rss_peak2" -le $((rss_full + flat_mib * 1024)) ] ||
  fail "RSS grew after the store was full: $((rss_peak2 / 1024)) MiB > $((rss_full / 1024)) MiB + $flat_mib MiB"

# 4. The outside clients.
echo
echo "== clients outside the flood"
[ -s "$WORK/outside.json" ] && cat "$WORK/outside.json" && echo
[ "$outside_status" -eq 0 ] || { cat "$WORK/outside.log"; fail "the clients outside the flood (see above)"; }

# 5. fds and panics.
echo "fds: idle $fd_idle, after the flood $fd_after"
[ "$fd_after" -le $((fd_idle + 4)) ] || fail "fd growth: $fd_after open after the flood, $fd_idle before"
if grep -n -i 'panicked' "$WORK/server.log"; then fail "the server panicked"; fi

echo
if [ "${#fails[@]}" -ne 0 ]; then
  echo "key-flood: FAILED (${#fails[@]}): ${fails[*]}"
  KEEP_WORK=1
  exit 1
fi
echo "key-flood: OK ($addresses distinct addresses, $sent answers)"
