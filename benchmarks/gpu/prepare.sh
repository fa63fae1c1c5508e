#!/usr/bin/env bash
# Runs HERE (not on the device): packs what the device needs into $CHECKOUT/.carry, in parts the
# device tool can carry (64 MiB per call, the working tree included).
#
#   bash benchmarks/gpu/prepare.sh [CHECKOUT]
#
# CHECKOUT is the checkout the device tool sends (default /work/main); its .git/info/exclude gets
# "/.carry/". The package wheel is built from THIS script's worktree, so the device runs the
# package as an installed wheel, as users do. Downloads are cached in $VMME_GPU_CACHE.
#
# What goes: vLLM 0.26.0 (the last release pinning the device's torch 2.11.0) without the parts
# an H100 pooling server never loads (FA2 kernels, the Rust front end, SM100 FMHA, DeepGEMM headers),
# as tar.xz; vLLM's run-time dependencies the device image lacks (server-deps.txt); our wheel and
# the LangChain / LlamaIndex cores with their dependencies, minus what the device image holds
# (device-packages.txt). All of it is one tar, split into parts of $PART_MB; bench scripts go to
# .carry/bench with parts.sha256. VMME_RAY= (empty) leaves Ray out (two parts fewer; only phase
# `ray` needs it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORKTREE=$(cd "$HERE/../.." && pwd)
CHECKOUT=${1:-/work/main}
CACHE=${VMME_GPU_CACHE:-$HOME/.cache/vmme-gpu}
PART_MB=${PART_MB:-60}
VLLM_VERSION=0.26.0
PY=python3
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_35_x86_64 --platform manylinux_2_34_x86_64
      --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64
      --platform manylinux1_x86_64 --platform any)
quiet() { grep -v "is ignored: it is neither" || true; }
norm() { tr 'A-Z_.' 'a-z--'; }  # PEP 503 names
wheel_name() { basename "$1" | cut -d- -f1 | norm; }

mkdir -p "$CACHE"/{dl,whl,pkgdl,stage}

# 1. vLLM, trimmed, tar.xz (xz takes a few minutes; cached by wheel hash).
cd "$CACHE/dl"
ls vllm-$VLLM_VERSION-*.whl >/dev/null 2>&1 || $PY -m pip download -q --no-deps "${PLAT[@]}" \
    -d . "vllm==$VLLM_VERSION" 2>&1 | quiet
WHEEL=$(ls vllm-$VLLM_VERSION-*.whl)
if [ ! -s "$CACHE/vllm.tar.xz" ] || [ "$CACHE/vllm.tar.xz" -ot "$WHEEL" ]; then
    rm -rf "$CACHE/unpack" && mkdir "$CACHE/unpack"
    unzip -q "$WHEEL" -d "$CACHE/unpack"
    rm -rf "$CACHE/unpack/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so" "$CACHE/unpack/vllm/vllm-rs" \
        "$CACHE/unpack/vllm/third_party/fmha_sm100" "$CACHE/unpack/vllm/third_party/deep_gemm/include"
    tar -C "$CACHE/unpack" -cf - . | xz -6 -T0 > "$CACHE/vllm.tar.xz.tmp"
    mv "$CACHE/vllm.tar.xz.tmp" "$CACHE/vllm.tar.xz"
fi

# 2. vLLM's dependencies the device lacks.
# Fresh folders each time: a stale second version of a wheel would break the device's install.
grep -v '^#' "$HERE/server-deps.txt" > "$CACHE/server-deps.req"
rm -rf "$CACHE/whl" "$CACHE/pkgdl" && mkdir -p "$CACHE/whl" "$CACHE/pkgdl"
(cd "$CACHE/whl" && $PY -m pip download -q --no-deps "${PLAT[@]}" -d . -r "$CACHE/server-deps.req" 2>&1 | quiet) &

# 3. Our wheel (from this worktree) + LangChain/LlamaIndex cores and their dependency trees.
$PY -m pip wheel -q --no-deps -w "$CACHE/pkgdl" "$WORKTREE" 2>&1 | quiet
(cd "$CACHE/pkgdl" && $PY -m pip download -q "${PLAT[@]}" -d . \
    "langchain-core>=0.3.40" "llama-index-core>=0.12.0" ${VMME_RAY-"ray[data]>=2.40"} 2>&1 | quiet)
wait

# 4. Stage: one version of each name; nothing the device image or the server set already holds.
rm -rf "$CACHE/stage" && mkdir -p "$CACHE/stage/whl" "$CACHE/stage/pkg"
cp "$CACHE/vllm.tar.xz" "$CACHE/stage/"
declare -A have=()
while read -r name; do have[$name]=device; done < <(grep -v '^#' "$HERE/device-packages.txt" | norm)
for w in "$CACHE"/whl/*.whl; do
    n=$(wheel_name "$w"); [ -n "${have[$n]:-}" ] && [ "${have[$n]}" != device ] && continue
    have[$n]=server; cp "$w" "$CACHE/stage/whl/"
done
for w in "$CACHE"/pkgdl/*.whl; do
    n=$(wheel_name "$w"); [ -n "${have[$n]:-}" ] && continue
    have[$n]=pkg; cp "$w" "$CACHE/stage/pkg/"
done
echo "staged: $(ls "$CACHE/stage/whl" | wc -l) server wheels, $(ls "$CACHE/stage/pkg" | wc -l) package wheels"
du -sh "$CACHE/stage"/*

# 5. Split into parts under $CHECKOUT/.carry, with checksums and the bench scripts.
grep -qx '/.carry/' "$CHECKOUT/.git/info/exclude" 2>/dev/null || {
    mkdir -p "$CHECKOUT/.git/info"; echo '/.carry/' >> "$CHECKOUT/.git/info/exclude"; }
rm -rf "$CHECKOUT/.carry" && mkdir -p "$CHECKOUT/.carry/bench"
tar -C "$CACHE/stage" -cf - . | split -b "${PART_MB}M" -d - "$CHECKOUT/.carry/part-"
# One folder per part, so each call carries exactly one part plus the scripts.
for p in "$CHECKOUT"/.carry/part-*; do mkdir "$p.d" && mv "$p" "$p.d/"; done
(cd "$CHECKOUT/.carry" && sha256sum part-*.d/part-* | sed 's| part-[0-9]*\.d/| |' > bench/parts.sha256)
cp "$HERE"/{device_run.sh,bench.py,build_checkpoint.py,server_cmd.py} "$CHECKOUT/.carry/bench/"
ls -la "$CHECKOUT"/.carry/*
cat "$CHECKOUT/.carry/bench/parts.sha256"
