#!/usr/bin/env bash
# Builds the installable API clients from the committed openapi.json:
#   clients/python/dist/tablerouter_client-<version>-py3-none-any.whl (and its sdist)
#   clients/typescript/dist/ (npm ci && npm run build: generated types + the createClient wrapper)
# Both carry the service's version (pyproject.toml): the Python one through the generator's
# package_version_override, the TypeScript one in its package.json (a test holds them equal).
# The Python package is generated here, never committed: openapi.json stays the one source, and
# tests/test_openapi.py already fails when it drifts from the app.
# Usage: scripts/build_clients.sh [python|typescript]   (both by default)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}

build_python() {
    local dir=clients/python
    local version
    version=$(uv run --frozen python -c \
        'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
    rm -rf "$dir/generated" "$dir/dist"
    mkdir -p "$dir/generated"
    { cat "$dir/config.yaml"; echo "package_version_override: \"$version\""; } >"$dir/generated/config.yaml"
    # uv run puts .venv/bin on PATH: the generator formats its output with ruff from there.
    uv run --frozen openapi-python-client generate --path openapi.json --meta uv \
        --config "$dir/generated/config.yaml" --output-path "$dir/generated/tablerouter-client"
    # uv builds a uv_build project with its own backend: nothing is downloaded.
    uv build --quiet --offline --out-dir "$dir/dist" "$dir/generated/tablerouter-client"
    ls "$dir"/dist/*.whl
}

build_typescript() {
    (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
    echo "clients/typescript/dist"
}

case "$what" in
    python) build_python ;;
    typescript) build_typescript ;;
    all) build_python && build_typescript ;;
    *) echo "usage: $0 [python|typescript]" >&2 && exit 2 ;;
esac
