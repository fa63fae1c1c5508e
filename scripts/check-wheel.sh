#!/usr/bin/env bash
# Build the sdist and wheel and prove the WHEEL is what users get, apart from this checkout:
#   1. python -m build (the wheel is built from the sdist), twine check --strict;
#   2. the wheel ships every file under src/ (by git's listing, not by name), the sdist the sources;
#   3. per extra (none, langchain, llama-index), a fresh venv with only the wheel: the package
#      imports from site-packages without importing a framework, the extra's adapter imports,
#      `vllm-mm-embed --version` and `server-args` (its chat template lies inside the package);
#   4. the same in a fresh venv with the wheel's [test] extra, which then runs tests/unit from the
#      unpacked sdist with its src/ removed, so nothing but the installed wheel can be imported.
#
#   scripts/check-wheel.sh        (.ci/run calls it; exits non-zero when any step fails)
#
# Env: VMME_WHEEL_CHECK_DIR (work folder, default .cache/wheel-check; emptied first).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="${VMME_WHEEL_CHECK_DIR:-$root/.cache/wheel-check}"
start=$(date +%s)
step() { echo "== check-wheel: $* ($(( $(date +%s) - start )) s)" >&2; }

# This machine's pip config may name find-links folders that do not exist; drop only those
# warnings (a failing pip still fails through pipefail).
pip_quiet() {
    "$@" -q --disable-pip-version-check 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
}

# A fresh venv at $1 with only $2 (the wheel, maybe with extras) from the wheelhouse. pip itself
# stays out of it: the tools venv's pip installs into it (--python), which also saves time.
install_fresh() {
    rm -rf "$1"
    python3 -m venv --without-pip "$1"
    pip_quiet "$tools/bin/pip" --python "$1/bin/python" install --no-compile --no-index \
        --find-links "$work/wheelhouse" "$2"
}

step "emptying $work"
rm -rf "$work"
mkdir -p "$work"
# build and twine live in their own venv, kept between runs.
tools="$root/.cache/wheel-tools"
if ! "$tools/bin/python" -c "import build, twine" 2>/dev/null; then
    step "installing build and twine into $tools"
    rm -rf "$tools"
    python3 -m venv "$tools"
    pip_quiet "$tools/bin/pip" install "build>=1.2" "twine>=5.1"
fi

step "building sdist and wheel"
"$tools/bin/python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
"$tools/bin/twine" check --strict "$work/dist"/*
wheel=$(echo "$work"/dist/*.whl)
sdist=$(echo "$work"/dist/*.tar.gz)
# vllm_multimodal_embeddings-0.1.0.dev0-py3-none-any.whl -> 0.1.0.dev0
version=$(basename "$wheel" | cut -d- -f2)

# What hatch should have packed: the files git tracks or would track under src/.
git ls-files --cached --others --exclude-standard src/ >"$work/src-files.txt"
python3 scripts/wheel_smoke.py contents "$work/dist" "$work/src-files.txt"

# Resolve and download once; [test] holds every extra's framework. The venvs install from here.
step "downloading the dependencies of the wheel [test]"
pip_quiet "$tools/bin/pip" download --dest "$work/wheelhouse" "$wheel[test]"

# Run from an empty folder so that nothing in this checkout is on sys.path.
mkdir -p "$work/cwd"
for extra in none langchain llama-index test; do
    step "fresh venv with the wheel [$extra]"
    venv="$work/venv-$extra"
    spec="$wheel"
    [[ "$extra" == none ]] || spec="$wheel[$extra]"
    install_fresh "$venv" "$spec"
    (cd "$work/cwd" && "$venv/bin/python" "$root/scripts/wheel_smoke.py" installed "$extra" "$version")
done

step "tests/unit from the sdist, src/ removed, against the wheel in venv-test"
tar -xzf "$sdist" -C "$work"
tree="$work/$(basename "$sdist" .tar.gz)"
rm -rf "$tree/src"
# Not here: tests marked `source_tree` check that docker/compose.yaml mounts the checkout's own
# template files, a fact about a source tree that an installed package cannot show (the unit run
# in .ci/run covers them).
(cd "$tree" && "$work/venv-test/bin/python" -m pytest tests/unit -q -p no:cacheprovider \
    -m "not source_tree")
step "passed"
