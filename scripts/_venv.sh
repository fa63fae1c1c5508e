# Sourced by scripts/test.sh and scripts/demo.sh: the package's own venv in .venv.
#
#   ensure_venv EXTRAS   e.g. ensure_venv "test,cookbook"
#
# (Re)installs the package with EXTRAS when .venv is missing or pyproject.toml, the version or EXTRAS
# changed (an editable install's metadata keeps the version it was installed with).

ensure_venv() {
    local extras="$1"
    local want
    want="$(cat pyproject.toml src/vllm_multimodal_embeddings/_version.py | sha256sum | cut -d' ' -f1) [$extras]"
    if [[ -x .venv/bin/python && "$(cat .venv/.vmme-deps 2>/dev/null)" == "$want" ]]; then
        return 0
    fi
    echo "installing the package with [$extras] into .venv" >&2
    python3 -m venv .venv
    # This machine's pip config may name find-links folders that do not exist; drop only those
    # warnings (a failing pip still fails the caller through pipefail).
    .venv/bin/pip install -q --disable-pip-version-check -e ".[$extras]" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
    echo "$want" > .venv/.vmme-deps
}
