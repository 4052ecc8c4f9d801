#!/usr/bin/env bash
# Sets up and runs the service on its embedded defaults (SQLite store, bundled demo
# warehouse, lexical judge unless TABLEROUTER_LLM_MODEL is set). Extra args go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --no-dev
exec uv run --frozen --no-dev tablerouter serve "$@"
