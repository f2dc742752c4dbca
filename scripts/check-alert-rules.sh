#!/usr/bin/env bash
# Check the shipped Prometheus rules and Grafana dashboard (deploy/):
#   1. `promtool check rules` on deploy/prometheus/mcp-security.rules.yml;
#   2. `promtool test rules` on deploy/prometheus/mcp-security.rules.test.yml;
#   3. check that the dashboard is JSON whose queries parse (promtool, on a copy as rules);
#   4. start examples/axum_mcp_server twice, drive scripted traffic that makes every metric appear
#      (good calls, refusals: bad keys from one and from many clients, a per-tool rate limit, a
#      flood, a credential in a tool result, a short-lived JWT, a JWT secret dated 40 days ago;
#      then, on a second start over the same audit log with its last record removed, a file-size
#      limit and an unreachable Redis: a missing tail, write errors, dropped records, the
#      fail-open fallback limiter), scrape
#      GET /metrics after each, and fail naming every metric the rules or the dashboard use that
#      neither scrape contains, and every label value they match that neither the scrapes nor the
#      product's source ever produce.
#
# Needs promtool (Debian: `apt-get install prometheus`), curl and python3 (standard library only).
# Builds the example with cargo (a no-op when it is built). Honours CARGO_TARGET_DIR.
# Exits non-zero on any failure. KEEP_WORK=1 keeps the scratch directory (logs, scrapes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RULES=deploy/prometheus/mcp-security.rules.yml
TESTS=deploy/prometheus/mcp-security.rules.test.yml
DASHBOARD=deploy/grafana/mcp-security.json
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER_BIN=$TARGET/debug/examples/axum_mcp_server

say() { printf -- '-- %s (%ss)\n' "$*" "$SECONDS"; }
fail() { printf 'check-alert-rules: %s\n' "$*" >&2; exit 1; }

command -v promtool >/dev/null 2>&1 || fail "promtool not found (Debian: apt-get install prometheus)"
command -v curl >/dev/null 2>&1 || fail "curl not found"

say "promtool check rules $RULES"
promtool check rules "$RULES"

say "promtool test rules $TESTS"
promtool test rules "$TESTS"

say "the dashboard is valid JSON and its queries parse (promtool check rules on a copy)"
DASH_RULES=$(mktemp --suffix=.yml)
python3 - "$DASHBOARD" >"$DASH_RULES" <<'EOF'
import json, sys
# Each panel query as a recording rule, Grafana's variables replaced by values Prometheus knows.
with open(sys.argv[1]) as f:
    dash = json.load(f)
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$instance": ".*"}
print("groups:\n  - name: dashboard\n    rules:")
n = 0
for panel in dash["panels"]:
    for target in panel.get("targets", []):
        expr = target["expr"]
        for k, v in subst.items():
            expr = expr.replace(k, v)
        n += 1
        print(f"      - record: dashboard:query_{n}")
        print(f"        expr: {json.dumps(expr)}")
if n == 0:
    sys.exit("no panel queries")
EOF
promtool check rules "$DASH_RULES" || { rm -f "$DASH_RULES"; fail "a query of $DASHBOARD does not parse"; }
rm -f "$DASH_RULES"

say "cargo build -p examples --example axum_mcp_server"
cargo build -q -p examples --example axum_mcp_server

WORK=$(mktemp -d)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
API_KEY=mcp-sk-$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$WORK/audit.key"
chmod 600 "$WORK/audit.key"
# An HS256 token for this server that expires in 10 minutes: inside the token-expiry
# detector's default warning time (1 h).
JWT=$(python3 - "$JWT_SECRET" "$BASE/mcp" <<'EOF'
import base64, hashlib, hmac, json, sys, time
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "alerts-check", "aud": sys.argv[2], "iat": now, "exp": now + 600}).encode())
sig = hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
EOF
)

# The environment both runs share: the loopback peer is a trusted proxy, so the scripted
# "clients" below are told apart by X-Forwarded-For while the scraper (no header) stays
# 127.0.0.1; the result guard redacts credentials in tool results; a JWT secret made 40 days
# ago (older than the 30-day rotation period) for the credential-age gauge.
common_env=(
  MCP_BIND="127.0.0.1:$PORT" MCP_API_KEY="$API_KEY" MCP_JWT_SECRET="$JWT_SECRET"
  MCP_JWT_AUDIENCE="$BASE/mcp" MCP_TRUSTED_PROXIES=127.0.0.1/32 MCP_RESULT_GUARD=redact
  MCP_JWT_SECRET_CREATED_AT="$(date -u -d '40 days ago' +%Y-%m-%dT%H:%M:%SZ)"
  MCP_AUDIT_LOG_FILE="$WORK/audit.jsonl" MCP_AUDIT_HMAC_KEY_FILE="$WORK/audit.key"
  RUST_LOG=warn
)

wait_up() {
  for _ in $(seq 1 150); do
    curl -fsS "$BASE/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER" 2>/dev/null || { cat "$1"; fail "the example server exited early"; }
    sleep 0.2
  done
  cat "$1"
  fail "the example server did not answer on $BASE/health"
}

stop_server() { # graceful: SIGTERM, the audit file is closed
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=
}

# `n` requests over one connection; prints one status code per line.
hit() { # n url [curl args...]
  local n=$1 url=$2; shift 2
  local urls=()
  for _ in $(seq 1 "$n"); do urls+=(-o /dev/null "$url"); done
  curl -s -w '%{http_code}\n' "$@" "${urls[@]}"
}

# A stateless (2026-07-28) MCP tools/call: status code.
call_tool() { # client-ip credential tool arguments-json
  local body
  body=$(printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":%s,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}' "$3" "$4")
  curl -s -o /dev/null -w '%{http_code}\n' "$BASE/mcp" \
    -H "X-Forwarded-For: $1" -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H "Mcp-Name: $3" \
    -d "$body"
}

expect() { # description want got...
  local what=$1 want=$2; shift 2
  local got=" $* "
  case "$got" in *" $want "*) ;; *) fail "$what: expected a $want among the answers, got:$got" ;; esac
}

scrape() { # out-file
  curl -fsS -H "Authorization: Bearer $API_KEY" "$BASE/metrics" >"$1" \
    || fail "cannot scrape $BASE/metrics"
}

say "run 1: the example server, scripted traffic"
LOG1="$WORK/server1.log"
env "${common_env[@]}" "$SERVER_BIN" >"$LOG1" 2>&1 &
SERVER=$!
wait_up "$LOG1"

# Allowed calls: a credential in a tool result (redacted), a short-lived JWT.
expect "echo with a credential in it" 200 \
  "$(call_tool 192.0.2.10 "$API_KEY" echo '{"text":"AKIAIOSFODNN7EXAMPLE"}')"
expect "whoami with a JWT" 200 "$(call_tool 192.0.2.11 "$JWT" whoami '{}')"
# Brute force from one client: 12 bad keys; the detector fires above 10 and bans it.
codes=$(hit 12 "$BASE/metrics" -H 'X-Forwarded-For: 203.0.113.66' -H 'Authorization: Bearer mcp-sk-wrong')
expect "bad keys" 401 $codes
expect "the banned client" 429 "$(hit 1 "$BASE/health" -H 'X-Forwarded-For: 203.0.113.66')"
# A distributed spray: 11 clients x 10 bad keys, each under the per-client threshold, 110 in
# all: above the global detector's 100 a minute.
for i in $(seq 1 11); do
  hit 10 "$BASE/metrics" -H "X-Forwarded-For: 198.51.100.$i" -H 'Authorization: Bearer mcp-sk-wrong' >/dev/null
done
# Abuse of one tool: delete_note is limited to 10 a minute per caller.
codes=$(for _ in $(seq 1 12); do call_tool 192.0.2.12 "$API_KEY" delete_note '{"name":"x"}'; done)
expect "delete_note past its limit" 429 $codes
# A flood from one client: more than 100 requests a minute (the per-IP limit answers 429).
codes=$(hit 105 "$BASE/health" -H 'X-Forwarded-For: 198.51.100.200')
expect "the flood" 429 $codes
scrape "$WORK/scrape1.txt"
stop_server

say "run 2: the same audit log without its last record, a file-size limit, Redis unreachable"
# The log now ends before the record its head file names: a missing tail at the next start.
sed -i '$d' "$WORK/audit.jsonl"
LIMIT_KB=$(( $(stat -c %s "$WORK/audit.jsonl") / 1024 + 8 ))
REDIS_PORT=$(free_port) # nothing listens there
LOG2="$WORK/server2.log"
# Writes past the limit fail with EFBIG (SIGXFSZ ignored); the server log goes to a pipe, which
# the limit does not cover.
(
  trap '' XFSZ
  ulimit -f "$LIMIT_KB"
  exec env "${common_env[@]}" MCP_AUDIT_OVERFLOW=drop \
    MCP_RATE_LIMIT_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" MCP_RATE_LIMIT_REDIS_FAILURE=open \
    "$SERVER_BIN"
) > >(cat >"$LOG2") 2>&1 &
SERVER=$!
wait_up "$LOG2"
for _ in $(seq 1 20); do
  hit 20 "$BASE/health" -H "X-Forwarded-For: 192.0.2.$((RANDOM % 200 + 20))" >/dev/null
  scrape "$WORK/scrape2.txt"
  grep -q '^mcp_audit_records_dropped_total' "$WORK/scrape2.txt" \
    && grep -q '^mcp_audit_write_errors_total' "$WORK/scrape2.txt" && break
  sleep 0.5
done
stop_server

say "every metric the rules and the dashboard use appears in the scrapes"
python3 - "$RULES" "$DASHBOARD" "$WORK/scrape1.txt" "$WORK/scrape2.txt" <<'EOF'
import json, re, sys

rules, dashboard, *scrapes = sys.argv[1:]
NAME = re.compile(r"\bmcp_[a-z0-9_]+\b")

used = {}
with open(rules) as f:
    for name in NAME.findall(f.read()):
        used.setdefault(name, set()).add(rules)

def exprs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "query", "definition") and isinstance(v, str):
                yield v
            else:
                yield from exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from exprs(v)

with open(dashboard) as f:
    dash = json.load(f)
n_exprs = 0
for e in exprs(dash):
    n_exprs += 1
    for name in NAME.findall(e):
        used.setdefault(name, set()).add(dashboard)
if n_exprs == 0:
    sys.exit(f"{dashboard}: no queries found")

exported = set()
for path in scrapes:
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                exported.add(re.split(r"[{ ]", line, maxsplit=1)[0])

missing = sorted(n for n in used if n not in exported)
print(f"{len(used)} metric names used, {len(exported)} exported by the example")
if missing:
    for n in missing:
        print(f"missing from /metrics: {n} (used in {', '.join(sorted(used[n]))})", file=sys.stderr)
    sys.exit(1)
for n in sorted(used):
    print(f"  ok {n}")

# Label values matched with = or =~ (plain words, `a|b` alternatives): each must be one the
# scrapes show, or a string literal of the product's source, so a misspelt reason or outcome
# cannot hide an alert that would never fire.
import glob
literals = set()
for src in glob.glob("crates/*/src/**/*.rs", recursive=True):
    with open(src) as f:
        literals.update(re.findall(r'"([a-z0-9_:]+)"', f.read()))
seen = set()
for path in scrapes:
    with open(path) as f:
        seen.update(re.findall(r'[a-z_]+="([^"]*)"', f.read()))
texts = [open(rules).read()] + list(exprs(dash))
bad = set()
for text in texts:
    for sel in re.findall(r"\bmcp_[a-z0-9_]+\{([^}]*)\}", text):
        for label, op, value in re.findall(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"', sel):
            if label in ("instance", "job", "le", "quantile"):
                continue
            for v in value.split("|"):
                if re.fullmatch(r"[a-z0-9_:]+", v) and v not in seen and v not in literals:
                    bad.add(f'{label}{op}"{v}"')
if bad:
    for b in sorted(bad):
        print(f"label value used but produced nowhere: {b}", file=sys.stderr)
    sys.exit(1)
print("every label value used is produced by the product")
EOF
say "alert rules and dashboard OK"
