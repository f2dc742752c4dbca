#!/usr/bin/env bash
# The end-to-end load bench in one command: bare rmcp vs the whole mcp-security stack vs the
# stack users assemble from tower-http + tower_governor, driven by wrk in interleaved rounds.
#   bash benches/e2e/run.sh                      # 5 s x 3 rounds, 16 connections
#   bash benches/e2e/run.sh --secs 10 --rounds 5 --connections 16
# Installs wrk (Debian/Ubuntu apt) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mcp-security/target}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
exec cargo bench -p benches --bench e2e_load -- "$@"
