#!/usr/bin/env bash
# Sets up and runs every check CI runs: lint, types, then the test suite against the local
# PostgreSQL and MariaDB (URLs from TABLEROUTER_TEST_PG_URL / TABLEROUTER_TEST_MYSQL_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
uv run --frozen ruff check .
uv run --frozen ruff format --check .
uv run --frozen mypy app bench tests migrations/env.py
# The suite's wall time, printed whatever the outcome, so CI logs show it creeping up; the exit
# code stays pytest's.
started=$EPOCHREALTIME
status=0
uv run --frozen pytest "$@" || status=$?
awk -v s="$started" -v e="$EPOCHREALTIME" 'BEGIN { printf "pytest wall time: %.1f s\n", e - s }'
exit "$status"
