#!/usr/bin/env bash
# Sets up and runs the service on its embedded defaults (SQLite store, bundled demo
# warehouse, lexical judge unless TABLEROUTER_LLM_MODEL is set). Extra args go to `serve`.
#
# The demo must work on a fresh machine with no key, so API keys are turned OFF here
# (TABLEROUTER_AUTH=off) unless the environment or .env says otherwise. Never expose a
# service started this way; see docs/api.md "Authentication, grants and limits" to run it with keys.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --no-dev
if [[ -z "${TABLEROUTER_AUTH:-}" ]] && ! grep -qs '^TABLEROUTER_AUTH=' .env; then
    export TABLEROUTER_AUTH=off
fi
if [[ "${TABLEROUTER_AUTH:-}" == "off" ]]; then
    cat >&2 <<'WARNING'
##############################################################################
#  scripts/serve.sh: API keys are OFF (TABLEROUTER_AUTH=off), for the local   #
#  demo only: anyone who can reach this port sees every source and table.     #
#  Set TABLEROUTER_AUTH=on (and TABLEROUTER_ADMIN_KEY) to require keys.       #
##############################################################################
WARNING
fi
exec uv run --frozen --no-dev tablerouter serve "$@"
