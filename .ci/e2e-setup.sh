#!/usr/bin/env bash
# Set up the real MCP clients the end-to-end suite drives (`cargo test -p tests --features e2e`):
#   - the Python `mcp` 2.x client in a venv at $MCP_E2E_PYTHON's venv, default
#     ~/.cache/mcp-security/venv (from .ci/requirements.txt);
#   - the TypeScript `@modelcontextprotocol/sdk` client in tests/clients/ts (`npm ci`, from the
#     committed package-lock.json).
# Idempotent and fast when warm: pip only runs when requirements.txt changed since the last
# install, npm only when package-lock.json changed. Needs python3 (with venv), node 20+ and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PYTHON="${MCP_E2E_PYTHON:-$HOME/.cache/mcp-security/venv/bin/python}"
VENV=$(dirname "$(dirname "$PYTHON")")
REQUIREMENTS="$ROOT/.ci/requirements.txt"

if [ ! -x "$PYTHON" ]; then
  echo "e2e-setup: creating the venv $VENV"
  python3 -m venv "$VENV"
fi
STAMP="$VENV/.mcp-security-requirements"
if ! cmp -s "$REQUIREMENTS" "$STAMP" || ! "$PYTHON" -c 'import mcp.client, httpx2' 2>/dev/null; then
  echo "e2e-setup: pip install -r .ci/requirements.txt"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$STAMP"
fi
"$PYTHON" -c 'import importlib.metadata as m; print("e2e-setup: python mcp", m.version("mcp"))'

TS="$ROOT/tests/clients/ts"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "e2e-setup: node and npm are required (apt-get install -y nodejs npm)" >&2
  exit 1
fi
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
if [ "$NODE_MAJOR" -lt 20 ]; then
  echo "e2e-setup: node 20+ is required, found $(node --version)" >&2
  exit 1
fi
TS_STAMP="$TS/node_modules/.mcp-security-lock"
if ! cmp -s "$TS/package-lock.json" "$TS_STAMP" \
  || [ ! -f "$TS/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
  echo "e2e-setup: npm ci in tests/clients/ts"
  (cd "$TS" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$TS/package-lock.json" "$TS_STAMP"
fi
echo "e2e-setup: node $(node --version), @modelcontextprotocol/sdk $(node -p "require('$TS/node_modules/@modelcontextprotocol/sdk/package.json').version")"
