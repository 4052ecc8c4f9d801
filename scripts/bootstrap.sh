#!/usr/bin/env bash
# Installs uv when missing and syncs the locked environment into .venv.
# Usage: scripts/bootstrap.sh [--no-dev]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check "uv>=0.5"
fi
uv sync --frozen "$@"
