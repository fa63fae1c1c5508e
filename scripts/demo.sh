#!/usr/bin/env bash
# The main job, end to end: start a vLLM embedding server and run cookbook/quickstart.py on it.
#
#   scripts/demo.sh
#
# - NVIDIA GPU and a Docker engine: `docker compose` serves Qwen/Qwen3-VL-Embedding-2B
#   (docker/compose.yaml; MODEL=Qwen/Qwen3-VL-Embedding-8B for the 8B). It keeps running.
# - Otherwise the CPU vLLM server (scripts/server-venv.sh, about 3.5 GB once): the real 2B model
#   when Hugging Face is reachable, else a tiny random-weight checkpoint built here, whose
#   vectors only show the plumbing. It stops when the demo ends.
#
# Env: VLLM_BASE_URL (use that server, start none), VMME_DEMO_TINY=1 (CPU: skip the real model).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
# The test extras are a superset of what the demo needs: one venv serves both scripts.
ensure_venv "test,cookbook"
PY=.venv/bin/python

if [[ -n "${VLLM_BASE_URL:-}" ]]; then
    exec "$PY" cookbook/quickstart.py
fi

if nvidia-smi -L >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo "GPU and Docker found: starting docker/compose.yaml (first start downloads the model)" >&2
    docker compose -f docker/compose.yaml up -d --wait vllm
    export VLLM_BASE_URL="http://localhost:${PORT:-8000}"
    "$PY" cookbook/quickstart.py
    echo "the server keeps running; stop it with: docker compose -f docker/compose.yaml down" >&2
    exit 0
fi

scripts/server-venv.sh >&2
model_args=()
if [[ -z "${VMME_DEMO_TINY:-}" ]] && "$PY" -c '
import httpx, sys
try:
    r = httpx.head("https://huggingface.co/api/models/Qwen/Qwen3-VL-Embedding-2B", timeout=5)
except httpx.HTTPError:
    sys.exit(1)
sys.exit(0 if r.status_code < 400 else 1)'; then
    echo "no GPU: serving Qwen/Qwen3-VL-Embedding-2B on the CPU (slow; first start downloads it)" >&2
    model_args=(--model Qwen/Qwen3-VL-Embedding-2B)
else
    echo "no GPU and no Hugging Face: serving the TINY RANDOM-WEIGHT test checkpoint" >&2
fi

log="$(mktemp -t vmme-demo.XXXXXX)"
"$PY" -m vllm_multimodal_embeddings serve-cpu "${model_args[@]}" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
echo "starting the CPU vLLM server (log: $log) ..." >&2
while ! grep -q '^VLLM_BASE_URL=' "$log"; do
    if ! kill -0 "$server" 2>/dev/null; then
        echo "the server did not start:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    sleep 1
done
export VLLM_BASE_URL="$(sed -n 's/^VLLM_BASE_URL=//p' "$log")"
"$PY" cookbook/quickstart.py
