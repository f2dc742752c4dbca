#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, server scenarios)
# against examples/conformance_server, bare and behind the whole mcp-security stack.
#
#   .ci/conformance.sh            run both, compare, fail on any difference that matters
#   .ci/conformance.sh --update   rewrite .ci/conformance/expected-failures.txt from the bare run
#
# Fails when
#   * the bare run's failing checks differ from .ci/conformance/expected-failures.txt (the suite
#     or rmcp changed: look, then --update and say why in the file);
#   * the stacked run fails a check the bare run passes (the stack may lose no scenario);
#   * DNS-rebinding protection does not fail bare (rmcp's own Host check is off there) or does not
#     pass behind the stack (where only our Origin guard can refuse the rebinding attempt); and,
#     beyond the suite, a hostile Host alone and a hostile Origin alone are not each served bare
#     and refused (403) behind the stack.
# Takes ~20 s with a warm build cache (each suite run ~2 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA="$ROOT/.ci/conformance"

# The suite's latest release. It requires Node 22 (`fs.globSync`); on older Node the preload
# below supplies it (see node20-globsync.mjs).
SUITE_VERSION=0.1.16
SUITE_DIR="$HOME/.cache/mcp-security/conformance"
SUITE_JS="$SUITE_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mcp-security/target}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

UPDATE=false
case "${1:-}" in
  "") ;;
  --update) UPDATE=true ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

installed=$(node -p "try { require('$SUITE_DIR/node_modules/@modelcontextprotocol/conformance/package.json').version } catch { '' }")
if [ "$installed" != "$SUITE_VERSION" ]; then
  echo "-- installing @modelcontextprotocol/conformance@$SUITE_VERSION into $SUITE_DIR"
  mkdir -p "$SUITE_DIR"
  timeout 300 npm install --prefix "$SUITE_DIR" --no-audit --no-fund --loglevel=error \
    "@modelcontextprotocol/conformance@$SUITE_VERSION"
fi
SUITE=(node --import "$DATA/node20-globsync.mjs" "$SUITE_JS")

cargo build -p examples --example conformance_server
SERVER_BIN="$CARGO_TARGET_DIR/debug/examples/conformance_server"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# run MODE: start the server in MODE on a free port, run the whole active suite against it,
# write "<scenario> <check> <status>" lines to $WORK/MODE.checks, stop the server.
run() {
  local mode=$1 port pid
  port=$(free_port)
  MCP_BIND="127.0.0.1:$port" "$SERVER_BIN" "$mode" >"$WORK/$mode.server.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$mode.server.log"; echo "conformance_server $mode exited early"; exit 1; }
    sleep 0.2
  done
  echo "-- the active server suite against conformance_server $mode (http://127.0.0.1:$port/mcp)"
  # The suite exits 1 when any check fails; the comparison below decides.
  timeout 150 "${SUITE[@]}" server --url "http://127.0.0.1:$port/mcp" -o "$WORK/$mode" \
    >"$WORK/$mode.suite.log" 2>&1 || true
  sed -n '/=== SUMMARY ===/,$p' "$WORK/$mode.suite.log"
  # The suite's rebinding request carries a hostile Host and Origin together; send each alone
  # so both halves of the guard are seen to work (bare: served; stacked: 403 naming the header).
  local init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"conformance.sh","version":"0"}}}'
  local header code
  for header in "Host: evil.example" "Origin: http://evil.example"; do
    code=$(curl -s -o "$WORK/$mode.rebinding.body" -w '%{http_code}' --max-time 10 -H "$header" \
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -d "$init" "http://127.0.0.1:$port/mcp" || true)
    echo "$header alone -> $code" >>"$WORK/$mode.rebinding"
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ -d "$WORK/$mode" ] || { cat "$WORK/$mode.suite.log"; echo "the suite wrote no results"; exit 1; }
  node "$DATA/collect.mjs" "$WORK/$mode" >"$WORK/$mode.checks"
  grep -q ' SUCCESS$' "$WORK/$mode.checks" || { cat "$WORK/$mode.suite.log"; echo "no check passed"; exit 1; }
}

run bare
run stacked

failures() { awk '$3 == "FAILURE" { print $1, $2 }' "$1"; }
count() { printf '%s checks in %s scenarios: %s passed, %s failed, %s warnings' \
  "$(wc -l <"$1")" "$(cut -d' ' -f1 "$1" | sort -u | wc -l)" \
  "$(grep -c ' SUCCESS$' "$1" || true)" "$(grep -c ' FAILURE$' "$1" || true)" \
  "$(grep -c ' WARNING$' "$1" || true)"; }
echo
echo "bare:    $(count "$WORK/bare.checks")"
echo "stacked: $(count "$WORK/stacked.checks")"

status=0
EXPECTED="$DATA/expected-failures.txt"
if $UPDATE; then
  {
    echo "# Checks of @modelcontextprotocol/conformance@$SUITE_VERSION (active server suite) that fail"
    echo "# against examples/conformance_server run bare (plain rmcp, its Host check off)."
    echo "# Written by .ci/conformance.sh --update; give each line its reason."
    failures "$WORK/bare.checks" | sed 's/$/  # reason: TODO/'
  } >"$EXPECTED"
  echo "wrote $EXPECTED"
fi
if ! diff -u <(sed 's/#.*//; s/[[:space:]]*$//; /^$/d' "$EXPECTED" | sort) \
  <(failures "$WORK/bare.checks" | sort) >"$WORK/bare.diff"; then
  echo "FAIL: the bare run's failures differ from $EXPECTED (- expected, + now):"
  cat "$WORK/bare.diff"
  status=1
fi

# Every check the bare run passes must pass behind the stack.
lost=$(join -v1 <(awk '$3 == "SUCCESS" { print $1 "/" $2 }' "$WORK/bare.checks" | sort) \
  <(awk '$3 == "SUCCESS" { print $1 "/" $2 }' "$WORK/stacked.checks" | sort) || true)
if [ -n "$lost" ]; then
  echo "FAIL: checks that pass bare but not behind the stack:"
  echo "$lost"
  for check in $lost; do
    grep -F "${check%%/*} ${check#*/} " "$WORK/stacked.checks" || echo "${check%%/*} ${check#*/} (missing)"
  done
  echo "-- stacked server log (last 40 lines)"
  tail -n 40 "$WORK/stacked.server.log"
  status=1
fi

# DNS-rebinding protection is ours: it fails bare and passes behind the stack.
rebinding() { grep "^dns-rebinding-protection localhost-host-$1 " "$2" | cut -d' ' -f3; }
if [ "$(rebinding rebinding-rejected "$WORK/bare.checks")" != FAILURE ]; then
  echo "FAIL: bare rmcp (Host check off) was expected to accept the DNS-rebinding attempt"
  status=1
fi
for check in rebinding-rejected valid-accepted; do
  if [ "$(rebinding "$check" "$WORK/stacked.checks")" != SUCCESS ]; then
    echo "FAIL: behind the stack, dns-rebinding-protection localhost-host-$check did not pass"
    status=1
  fi
done

# Each hostile header alone: served bare, refused by the stack.
for mode in bare stacked; do echo "$mode: $(paste -sd';' "$WORK/$mode.rebinding")"; done
if [ "$(paste -sd';' "$WORK/bare.rebinding")" != "Host: evil.example alone -> 200;Origin: http://evil.example alone -> 200" ]; then
  echo "FAIL: bare rmcp (Host check off) was expected to serve each hostile header alone"
  status=1
fi
if [ "$(paste -sd';' "$WORK/stacked.rebinding")" != "Host: evil.example alone -> 403;Origin: http://evil.example alone -> 403" ]; then
  echo "FAIL: behind the stack, a hostile Host or Origin alone was not refused with 403"
  status=1
fi

if [ "$status" -ne 0 ]; then
  echo "-- suite output, stacked run"
  tail -n 60 "$WORK/stacked.suite.log"
  exit "$status"
fi
echo "conformance OK: the bare run fails exactly the expected checks, the stack loses none, and"
echo "DNS-rebinding protection passes only behind the stack"
