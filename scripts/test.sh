#!/usr/bin/env bash
# The test command: set up both venvs if needed, then run pytest (live tests included).
#
#   scripts/test.sh [pytest args...]      e.g. scripts/test.sh -m "not live"
#
# Env: VLLM_BASE_URL (use that server instead of starting the CPU one), CI (a missing server fails
# instead of skipping), plus those of scripts/server-venv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ensure_venv "test,cookbook,ray"
# The CPU vLLM server's own venv; not needed when the tests use an external server.
if [[ -z "${VLLM_BASE_URL:-}" ]]; then
    scripts/server-venv.sh
fi
exec .venv/bin/python -m pytest "$@"
