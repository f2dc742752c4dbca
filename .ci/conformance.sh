#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, server scenarios)
# against examples/conformance_server, bare and behind the whole mcp-security stack.
#
#   .ci/conformance.sh            run every pass against both servers, compare
#   .ci/conformance.sh --update   rewrite each pass's expected-failures file from its bare run
#
# Two passes, each with its own pinned suite version and expected-failures file:
#   active     0.1.16 (the latest release), the whole active server suite (2025-11-25 era)
#                -> .ci/conformance/expected-failures.txt
#   2026-07-28 0.2.0-alpha.12 (pre-release), `--requirements 2026-07-28`: the scenarios the
#              stateless revision requires (Mcp-Method / Mcp-Name headers, stateless requests)
#                -> .ci/conformance/expected-failures-2026-07-28.txt
# Fails when
#   * a bare run's failing checks differ from its expected-failures file (the suite or rmcp
#     changed: look, then --update and give each line its reason);
#   * a stacked run fails a check its bare run passes (the stack may lose no scenario);
#   * DNS-rebinding protection does not fail bare (rmcp's own Host check is off there) or does not
#     pass behind the stack (where only our Origin guard can refuse the rebinding attempt); and,
#     beyond the suite, a hostile Host alone and a hostile Origin alone are not each served bare
#     and refused (403) behind the stack.
# Takes ~25 s with a warm build cache (each suite run 2-3 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA="$ROOT/.ci/conformance"
CACHE="$HOME/.cache/mcp-security/conformance"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mcp-security/target}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# name | suite version | suite arguments | expected-failures file | scenarios the pass runs
PASSES=(
  "active|0.1.16||expected-failures.txt|30"
  "2026-07-28|0.2.0-alpha.12|--requirements 2026-07-28|expected-failures-2026-07-28.txt|50"
)

UPDATE=false
case "${1:-}" in
  "") ;;
  --update) UPDATE=true ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

# suite_js VERSION: the CLI of that suite version, installed (once) under $CACHE/VERSION.
suite_js() {
  local dir="$CACHE/$1" pkg
  pkg="$dir/node_modules/@modelcontextprotocol/conformance"
  if [ "$(node -p "try { require('$pkg/package.json').version } catch { '' }")" != "$1" ]; then
    echo "-- installing @modelcontextprotocol/conformance@$1 into $dir" >&2
    mkdir -p "$dir"
    timeout 300 npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
      "@modelcontextprotocol/conformance@$1" >&2
  fi
  echo "$pkg/dist/index.js"
}

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

# start MODE: the server in MODE on a free port; sets PORT_<MODE>.
start() {
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
  printf -v "PORT_$mode" '%s' "$port"
}
start bare
start stacked

# The suite's rebinding request carries a hostile Host and Origin together; send each alone so
# both halves of the guard are seen to work (bare: served; stacked: 403).
rebinding_alone() {
  local mode=$1 port=$2 header code
  local init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"conformance.sh","version":"0"}}}'
  for header in "Host: evil.example" "Origin: http://evil.example"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "$header" \
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -d "$init" "http://127.0.0.1:$port/mcp" || true)
    echo "$header alone -> $code"
  done | paste -sd';'
}

failures() { awk '$3 == "FAILURE" { print $1, $2 }' "$1"; }
count() {
  printf '%s checks in %s scenarios: %s passed, %s failed, %s warnings, %s skipped' \
    "$(wc -l <"$1")" "$(cut -d' ' -f1 "$1" | sort -u | wc -l)" \
    "$(grep -c ' SUCCESS$' "$1" || true)" "$(grep -c ' FAILURE$' "$1" || true)" \
    "$(grep -c ' WARNING$' "$1" || true)" "$(grep -c ' SKIPPED$' "$1" || true)"
}
rebinding() { grep "^dns-rebinding-protection localhost-host-$1 " "$2" | cut -d' ' -f3; }

status=0
for spec in "${PASSES[@]}"; do
  IFS='|' read -r pass version args expected scenarios <<<"$spec"
  js=$(suite_js "$version")
  # shellcheck disable=SC2206 # the suite arguments are words
  extra=($args)
  for mode in bare stacked; do
    port_var="PORT_$mode"
    url="http://127.0.0.1:${!port_var}/mcp"
    out="$WORK/$pass.$mode"
    echo "-- pass $pass: conformance $version ${args:-(active suite)} against conformance_server $mode ($url)"
    # The suite exits 1 when any check fails; the comparison below decides.
    timeout 150 node --import "$DATA/node20-globsync.mjs" "$js" server --url "$url" \
      "${extra[@]}" -o "$out" >"$out.log" 2>&1 || true
    grep -E '^Total' "$out.log" || true
    [ -d "$out" ] || { cat "$out.log"; echo "the suite wrote no results"; exit 1; }
    node "$DATA/collect.mjs" "$out" >"$out.checks"
    grep -q ' SUCCESS$' "$out.checks" || { cat "$out.log"; echo "no check passed"; exit 1; }
  done
  echo "pass $pass, bare:    $(count "$WORK/$pass.bare.checks")"
  echo "pass $pass, stacked: $(count "$WORK/$pass.stacked.checks")"
  # A scenario that crashed the runner, or one the suite added or dropped, shows here.
  for mode in bare stacked; do
    ran=$(cut -d' ' -f1 "$WORK/$pass.$mode.checks" | sort -u | wc -l)
    if [ "$ran" -ne "$scenarios" ]; then
      echo "FAIL ($pass): the $mode run reported $ran scenarios, expected $scenarios"
      status=1
    fi
  done

  file="$DATA/$expected"
  if $UPDATE; then
    {
      echo "# Checks of @modelcontextprotocol/conformance@$version (${args:-active server suite})"
      echo "# that fail against examples/conformance_server run bare (rmcp, its Host check off)."
      echo "# Written by .ci/conformance.sh --update; give each line its reason."
      failures "$WORK/$pass.bare.checks"
    } >"$file"
    echo "wrote $file"
  fi
  if ! diff -u <(sed 's/#.*//; s/[[:space:]]*$//; /^$/d' "$file" | sort) \
    <(failures "$WORK/$pass.bare.checks" | sort) >"$WORK/$pass.diff"; then
    echo "FAIL ($pass): the bare run's failures differ from $file (- expected, + now):"
    cat "$WORK/$pass.diff"
    status=1
  fi

  # Every check the bare run passes must pass behind the stack.
  lost=$(join -v1 <(awk '$3 == "SUCCESS" { print $1 "/" $2 }' "$WORK/$pass.bare.checks" | sort) \
    <(awk '$3 == "SUCCESS" { print $1 "/" $2 }' "$WORK/$pass.stacked.checks" | sort) || true)
  if [ -n "$lost" ]; then
    echo "FAIL ($pass): checks that pass bare but not behind the stack:"
    echo "$lost"
    echo "-- suite output, stacked (last 60 lines)"
    tail -n 60 "$WORK/$pass.stacked.log"
    status=1
  fi

  # DNS-rebinding protection is ours: it fails bare and passes behind the stack.
  if [ "$(rebinding rebinding-rejected "$WORK/$pass.bare.checks")" != FAILURE ]; then
    echo "FAIL ($pass): bare rmcp (Host check off) was expected to accept the DNS-rebinding attempt"
    status=1
  fi
  for check in rebinding-rejected valid-accepted; do
    if [ "$(rebinding "$check" "$WORK/$pass.stacked.checks")" != SUCCESS ]; then
      echo "FAIL ($pass): behind the stack, dns-rebinding-protection localhost-host-$check did not pass"
      status=1
    fi
  done
done

# Each hostile header alone: served bare, refused by the stack.
bare_alone=$(rebinding_alone bare "$PORT_bare")
stacked_alone=$(rebinding_alone stacked "$PORT_stacked")
echo "bare:    $bare_alone"
echo "stacked: $stacked_alone"
if [ "$bare_alone" != "Host: evil.example alone -> 200;Origin: http://evil.example alone -> 200" ]; then
  echo "FAIL: bare rmcp (Host check off) was expected to serve each hostile header alone"
  status=1
fi
if [ "$stacked_alone" != "Host: evil.example alone -> 403;Origin: http://evil.example alone -> 403" ]; then
  echo "FAIL: behind the stack, a hostile Host or Origin alone was not refused with 403"
  status=1
fi

if [ "$status" -ne 0 ]; then
  echo "-- stacked server log (last 40 lines)"
  tail -n 40 "$WORK/stacked.server.log"
  exit "$status"
fi
echo "conformance OK: each bare run fails exactly its expected checks, the stack loses none, and"
echo "DNS-rebinding protection passes only behind the stack"
