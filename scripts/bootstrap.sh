#!/usr/bin/env bash
# Installs uv when missing and syncs the locked environment into .venv (and dbt's into .venv-dbt).
# Usage: scripts/bootstrap.sh [--no-dev]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check "uv>=0.5"
fi
uv sync --frozen "$@"
# dbt (for the tests' real dbt run) pins packages the dev tools outgrew: its own environment.
if [[ " $* " != *" --no-dev "* ]]; then
    UV_PROJECT_ENVIRONMENT=.venv-dbt uv sync --frozen --only-group dbt
fi
