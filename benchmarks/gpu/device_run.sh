#!/usr/bin/env bash
# Runs ON THE DEVICE, from the repository root of the copy the device tool sends. Same command in
# every call; what it does depends on what has arrived so far:
#
#   bash .carry/bench/device_run.sh [main|verify|variants|tuned|photos|memory|ceiling|frontend|prep|ray]
#
# 1. Copies the payload part this call carried (.carry/part-NN.d/part-NN) to $STORE, which lives as long as
#    the machine stays warm. Until every part listed in parts.sha256 is there, it stops.
# 2. Once: joins and unpacks the parts, installs vLLM 0.26.0 and the wheels with
#    `pip --no-index --no-deps --target`, and builds the 2B-shaped bf16 checkpoint on the GPU.
# 3. main: starts vLLM with the INSTALLED package's production flags (server_cmd.py), runs
#    bench.py (every workload and path), the parity spread and `vllm-mm-embed doctor`.
#    variants: restarts the server with one changed flag at a time (no chat template; api servers;
#    processor cache; scheduler limits) and measures small images and the doctor on each.
#    tuned: the package's batch_size / max_concurrency swept on the GPU profile's server
#    (VMME_TUNED_FLAGS: other vLLM flags, e.g. "--api-server-count 4" as before issue #36).
#    verify: issue 20's check, package defaults vs the best hand-written client on the GPU
#    profile's server (kept running: call it again for a second round).
#    frontend: the GPU profile's front-end flags, one server per variant (VMME_FRONTENDS).
#    memory: the GPU profile's server per --mm-processor-cache-gb (VMME_CACHE_GBS), its RSS
#    after each of VMME_MEMORY_ROUNDS bench rounds (memory.txt).
#    ray: ray_scaling.py, one server per GPU, Ray Data over N = 1, 2, 4 servers, then the fault
#    run (needs a multi-GPU kind; VMME_RAY_ARGS adds options).
# Without any payload (carry .carry/bench, .carry/whl and .carry/src-NAME folders):
#    ceiling: builds the checkpoint, then plain transformers on it with the bench's token counts,
#    GPU only (ceiling.py); prep: the package's 12 MP photo preparation on 1..16 threads and
#    processes (prep_scaling.py), for each .carry/src-NAME; ceilprep: both.
# Results go to $OUT: results.jsonl, doctor-*.txt, log.txt, server logs.
set -uo pipefail
PHASE=${1:-main}
START=$(date +%s)
# Each call may run 600 s; leave room to copy $OUT back.
DEADLINE=$((START + ${VMME_CALL_SECONDS:-570}))
HERE=$(cd "$(dirname "$0")" && pwd)
STORE=${VMME_STORE:-/root/vmme}
OUT=${OUT:-/tmp/vmme-out}
mkdir -p "$STORE" "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
echo "device_run $PHASE at $(date -u +%FT%TZ)"

# Phases that need no vLLM: the package source (.carry/src-NAME) and its few dependencies the
# image lacks (.carry/whl: pydantic and its core) are enough.
light_site() {
    if [ ! -e /tmp/light-site/.done ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --target /tmp/light-site .carry/whl/*.whl && touch /tmp/light-site/.done
    fi
}
# prep_phase: each carried package source through prep_scaling.py.
prep_phase() {
    for src in .carry/src-*; do
        [ -d "$src" ] || continue
        name=${src#.carry/src-}
        echo "== prep: $name"
        PYTHONPATH=$src:/tmp/light-site python3 "$HERE/prep_scaling.py" --data /tmp/prep-photos \
            --out "$OUT/prep.jsonl" --tag "src=$name" ${VMME_PREP_ARGS:-} || true
        # Stages are the same Pillow calls for every source: measure them once.
        VMME_PREP_ARGS="--modes thread,process"
    done
}
# ceiling: the checkpoint (kept in $STORE for later phases) and plain transformers on it.
ceiling_phase() {
    local src
    src=$(ls -d .carry/src-* | tail -1)
    if [ ! -e "$STORE/ckpt/config.json" ]; then
        PYTHONPATH=$src:/tmp/light-site python3 "$HERE/build_checkpoint.py" --out "$STORE/ckpt" || return 1
    fi
    PYTHONPATH=$src:/tmp/light-site python3 "$HERE/ceiling.py" --ckpt "$STORE/ckpt" \
        --out "$OUT/results.jsonl" --tag server=ceiling || true
}
case "$PHASE" in
    prep|ceiling|ceilprep)
        light_site || exit 1
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
        nproc
        [ "$PHASE" = prep ] || ceiling_phase
        [ "$PHASE" = ceiling ] || prep_phase
        echo "device_run $PHASE done in $(( $(date +%s) - START )) s"
        exit 0;;
esac

for f in .carry/part-*.d/part-*; do
    [ -e "$f" ] && cp "$f" "$STORE/" && echo "stored $(basename "$f")"
done
(cd "$STORE" && sha256sum --quiet -c "$HERE/parts.sha256" >/dev/null 2>&1) || {
    echo "payload incomplete; have:"; ls -la "$STORE"
    python3 -c 'import sys, torch, transformers, httpx, typing_extensions as t; print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "httpx", httpx.__version__)'
    command -v xz || echo "no xz binary: python's lzma will unpack"
    echo "carry the next part in the next call (back to back: the machine stays warm 30 s)"
    exit 0
}

SITE_VLLM=$STORE/site-vllm
SITE_DEPS=$STORE/site-deps
if [ ! -e "$STORE/.installed" ]; then
    t0=$(date +%s)
    rm -rf "$STORE/payload" "$SITE_VLLM" "$SITE_DEPS"
    mkdir -p "$STORE/payload" "$SITE_VLLM" "$SITE_DEPS"
    cat "$STORE"/part-* | tar -x -C "$STORE/payload" || exit 1
    if command -v xz >/dev/null; then
        xz -dc -T0 "$STORE/payload/vllm.tar.xz" | tar -x -C "$SITE_VLLM" || exit 1
    else
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer, 1 << 20)' \
            "$STORE/payload/vllm.tar.xz" | tar -x -C "$SITE_VLLM" || exit 1
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target "$SITE_DEPS" "$STORE"/payload/whl/*.whl "$STORE"/payload/pkg/*.whl || exit 1
    rm -rf "$STORE/payload"
    touch "$STORE/.installed"
    echo "installed in $(( $(date +%s) - t0 )) s"
fi
export PYTHONPATH=$SITE_VLLM:$SITE_DEPS
export VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
CKPT=$STORE/ckpt
if [ ! -e "$CKPT/config.json" ]; then
    python3 "$HERE/build_checkpoint.py" --out "$CKPT" || exit 1
fi
python3 -c 'import vllm, torch, transformers, vllm_multimodal_embeddings as p; print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__, "package", p.__version__, p.__file__)'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

PORT=8000
BASE=http://127.0.0.1:$PORT
stop_server() {
    if [ -e "$STORE/server.pid" ]; then
        pid=$(cat "$STORE/server.pid")
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -KILL -- "-$pid" 2>/dev/null
        rm -f "$STORE/server.pid"
        sleep 2
    fi
}
# start_server NAME [server_cmd.py options] [-- extra vLLM flags]
start_server() {
    local name=$1; shift
    stop_server
    mapfile -t args < <(python3 "$HERE/server_cmd.py" "$CKPT" --port $PORT "$@")
    echo "server $name: vllm serve ${args[*]}" | tee "$OUT/server-$name.cmd"
    # setsid: its own process group, so stop_server ends it and nothing else; it outlives this
    # call (next call reuses it) until stopped or the machine goes back.
    setsid python3 -m vllm.entrypoints.cli.main serve "${args[@]}" \
        >"$STORE/server-$name.log" 2>&1 < /dev/null &
    echo $! > "$STORE/server.pid"
    SERVER_T0=$(date +%s)
}
wait_server() {
    for _ in $(seq 400); do
        curl -sf "$BASE/health" >/dev/null 2>&1 && {
            echo "server ready after $(( $(date +%s) - SERVER_T0 )) s"; return 0; }
        kill -0 "$(cat "$STORE/server.pid")" 2>/dev/null || { echo "server died"; return 1; }
        sleep 1
    done
    return 1
}
# reuse NAME: the cookbook's one-image-many-instructions recipe (what the processor cache buys:
# the same photo under other instructions) on the running server, photo-sized images.
reuse() {
    VLLM_BASE_URL=$BASE timeout 60 python3 cookbook/one_image_many_instructions.py \
        --rounds "${VMME_REUSE_ROUNDS:-4}" --size 1536 > "$OUT/reuse-$1.txt" 2>&1
    echo "reuse $1 exit $?" | tee -a "$OUT/reuse-$1.txt"
    cat "$OUT/reuse-$1.txt"
}
save_log() { tail -c 3000000 "$STORE/server-$1.log" > "$OUT/server-$1.log"; }
bench() { python3 "$HERE/bench.py" --base-url "$BASE" --data "$STORE/data" \
    --out "$OUT/results.jsonl" --tokenizer "$CKPT/tokenizer.json" --deadline "$DEADLINE" \
    --server-pid "$(cat "$STORE/server.pid")" "$@"; }
doctor() {
    local name=$1
    python3 -m vllm_multimodal_embeddings doctor --base-url "$BASE" > "$OUT/doctor-$name.txt" 2>&1
    echo "doctor $name exit $?" | tee -a "$OUT/doctor-$name.txt"
    cat "$OUT/doctor-$name.txt"
}

if [ "$PHASE" = ray ]; then
    gpus=$(nvidia-smi --list-gpus | wc -l)
    ns=$(for n in 1 2 4 8; do [ "$n" -le "$gpus" ] && printf '%s,' "$n"; done)
    # shellcheck disable=SC2086
    timeout $(( DEADLINE - $(date +%s) )) python3 "$HERE/ray_scaling.py" --checkpoint "$CKPT" \
        --servers "${ns%,}" --data /tmp/ray-data --out "$OUT/ray.jsonl" --fault ${VMME_RAY_ARGS:-}
    cp /tmp/ray-data/server-*.log "$OUT/" 2>/dev/null
elif [ "$PHASE" = frontend ]; then
    # name | extra vLLM flags (one server each; VMME_FRONTENDS picks names)
    variants=(
        "prod|"
        "api4|--api-server-count 4"
        "api8|--api-server-count 8"
        "api4r4|--api-server-count 4 --renderer-num-workers 4 --mm-processor-cache-gb 0"
        "r8|--renderer-num-workers 8 --mm-processor-cache-gb 0"
    )
    for v in "${variants[@]}"; do
        name=${v%%|*}; opts=${v#*|}
        case " ${VMME_FRONTENDS:-prod api4 api8} " in *" $name "*) ;; *) continue;; esac
        if [ $(( DEADLINE - $(date +%s) )) -lt 150 ]; then echo "skip $name: deadline"; continue; fi
        # shellcheck disable=SC2086
        start_server "$name" -- $opts
        bench --phase frontend --tag server="$name" || true
        save_log "$name"
        # Host memory of the whole server (API processes, engine core, workers): the cost of
        # more front-end processes.
        rss=$(ps -eo pgid=,rss= | awk -v g="$(cat "$STORE/server.pid")" '$1 == g {s += $2} END {print int(s / 1024)}')
        echo "server $name: RSS ${rss} MB, GPU $(nvidia-smi --query-gpu=memory.used --format=csv,noheader)" \
            | tee -a "$OUT/memory.txt"
    done
    stop_server
elif [ "$PHASE" = verify ]; then
    # Issue 20's check on the GPU profile (production_config: --api-server-count 8): package
    # defaults vs the best hand-written client. The server is kept for the next call (a second
    # round on the same server is the noise estimate); a call finds it and reuses it.
    if [ -e "$STORE/server.pid" ] && kill -0 "$(cat "$STORE/server.pid")" 2>/dev/null \
        && curl -sf "$BASE/health" >/dev/null 2>&1; then
        echo "reusing the running server"
        cp "$STORE"/server-gpu.cmd "$OUT/" 2>/dev/null
    else
        start_server gpu
        cp "$OUT/server-gpu.cmd" "$STORE/"
    fi
    round=$(( $(cat "$STORE/verify.round" 2>/dev/null || echo 0) + 1 ))
    echo "$round" > "$STORE/verify.round"
    # VMME_BENCH_ONLY: comma-separated workload names (default all).
    bench --phase verify --tag server=gpu --tag round="$round" \
        ${VMME_BENCH_ONLY:+--only "$VMME_BENCH_ONLY"} || true
    reuse "gpu-round$round"
    save_log gpu
    rss=$(ps -eo pgid=,rss= | awk -v g="$(cat "$STORE/server.pid")" '$1 == g {s += $2} END {print int(s / 1024)}')
    echo "server gpu: RSS ${rss} MB, GPU $(nvidia-smi --query-gpu=memory.used --format=csv,noheader)" \
        | tee -a "$OUT/memory.txt"
elif [ "$PHASE" = main ]; then
    start_server prod
    # bench.py writes its inputs while the server starts, then waits for /health itself.
    bench --phase main --tag server=prod || true
    wait_server || { save_log prod; exit 1; }
    doctor prod
    bench --phase parity --tag server=prod || true
    save_log prod
elif [ "$PHASE" = photos ]; then
    # Camera photos with a 4-process front end: is the server's preprocessing their limit?
    start_server api4 -- --api-server-count 4
    bench --phase photos --tag server=api4 || true
    save_log api4
    stop_server
elif [ "$PHASE" = tuned ]; then
    # The package's batch size / concurrency swept. On the GPU profile's server since issue
    # #36 (production_config carries --api-server-count 8; the 256 x 16 slowdown was seen
    # there); VMME_TUNED_FLAGS="--api-server-count 4" gives the earlier api4 rounds' server.
    name=gpu
    [ -n "${VMME_TUNED_FLAGS:-}" ] && name=tuned-flags
    # shellcheck disable=SC2086
    start_server "$name" ${VMME_TUNED_FLAGS:+-- $VMME_TUNED_FLAGS}
    bench --phase tuned --tag server="$name" || true
    save_log "$name"
    stop_server
elif [ "$PHASE" = memory ]; then
    # Issue #36, item 5: the GPU profile's server (8 API processes) with one
    # --mm-processor-cache-gb each (VMME_CACHE_GBS, default "0 1"; vLLM's own default is 4),
    # VMME_MEMORY_ROUNDS rounds of small images and photos on fresh inputs, and the whole
    # server's RSS after each round. Each API process may keep its own cache, so the bound to
    # expect is about (8 + 1) x the size; ~200 s a size: two sizes per call.
    for gb in ${VMME_CACHE_GBS:-0 1}; do
        if [ $(( DEADLINE - $(date +%s) )) -lt 150 ]; then echo "skip cache $gb: deadline"; continue; fi
        name="cache$gb"
        start_server "$name" -- --mm-processor-cache-gb "$gb"
        for round in $(seq "${VMME_MEMORY_ROUNDS:-3}"); do
            bench --phase memory --tag server="$name" --tag round="$round" || true
            rss=$(ps -eo pgid=,rss= | awk -v g="$(cat "$STORE/server.pid")" '$1 == g {s += $2} END {print int(s / 1024)}')
            echo "server $name round $round: RSS ${rss} MB, GPU $(nvidia-smi --query-gpu=memory.used --format=csv,noheader)" \
                | tee -a "$OUT/memory.txt"
        done
        reuse "$name"
        save_log "$name"
    done
    stop_server
elif [ "$PHASE" = variants ]; then
    # name | server_cmd.py options and extra vLLM flags
    variants=(
        "notemplate|--no-template"
        "api4|-- --api-server-count 4"
        "nocache|-- --mm-processor-cache-gb 0"
        "seqs|-- --max-num-seqs 512 --max-num-batched-tokens 65536"
    )
    for v in "${variants[@]}"; do
        name=${v%%|*}; opts=${v#*|}
        case " ${VMME_SKIP:-} " in *" $name "*) echo "skip $name (VMME_SKIP)"; continue;; esac
        if [ $(( DEADLINE - $(date +%s) )) -lt 110 ]; then echo "skip $name: deadline"; continue; fi
        # shellcheck disable=SC2086
        start_server "$name" $opts
        wait_server || { save_log "$name"; continue; }
        if [ "$name" = notemplate ]; then
            doctor notemplate
            bench --phase parity --tag server=notemplate || true
        else
            bench --phase smallimg --tag server="$name" || true
        fi
        save_log "$name"
    done
    stop_server
fi
nvidia-smi --query-gpu=memory.used --format=csv,noheader
echo "device_run $PHASE done in $(( $(date +%s) - START )) s"
