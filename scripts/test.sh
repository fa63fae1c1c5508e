#!/usr/bin/env bash
# The test command: set up both venvs if needed, then run pytest (live tests included).
#
#   scripts/test.sh [pytest args...]      e.g. scripts/test.sh -m "not live"
#
# Env: VLLM_BASE_URL (use that server instead of starting the CPU one), CI (a missing server fails
# instead of skipping), plus those of scripts/server-venv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# The package's own venv, reinstalled whenever pyproject.toml changes.
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ ! -x .venv/bin/python || "$(cat .venv/.vmme-deps 2>/dev/null)" != "$want" ]]; then
    echo "installing the package and its test extras into .venv" >&2
    python3 -m venv .venv
    # This machine's pip config names find-links folders that may not exist; drop only
    # those warnings (a failing pip still fails the script through pipefail).
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test,cookbook]' 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
    echo "$want" > .venv/.vmme-deps
fi
# The CPU vLLM server's own venv; not needed when the tests use an external server.
if [[ -z "${VLLM_BASE_URL:-}" ]]; then
    scripts/server-venv.sh
fi
exec .venv/bin/python -m pytest "$@"
