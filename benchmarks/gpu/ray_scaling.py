"""Ray Data across N vLLM servers (issue 25): items/s against N, GPU busy per server, a fault run.

On a machine with G GPUs, the device payload installed as ``device_run.sh`` installs it:

    python ray_scaling.py --checkpoint CKPT --servers 1,2,4 --out results.jsonl \
        [--photos 128] [--texts 4096] [--actors-per-server 4] [--cpus-per-actor 4] [--fault]

One vLLM server per GPU (``CUDA_VISIBLE_DEVICES=i``, the package's production flags, ports
8000+i), all started once; a run over N servers uses the first N, with inputs no other run has
seen (so no server cache serves a later run), and N x the base number of items (so runs last
alike). Per run, one JSON line: items/s, each GPU's mean busy %, actors, CPUs.

``--fault`` then runs a text job over every server, stops server 0 and SIGKILLs one worker actor
a third of the way in, and checks: every row exactly once, in order, and each vector's cosine
with the same row embedded by one client on one surviving server.

``--cpu`` exercises all of it on the CPU build with the tiny test checkpoint (the numbers mean
nothing there; the fault run's checks do).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ray
from bench import ImageFactory, TextMaker

from vllm_multimodal_embeddings import ClientSettings, EmbeddingClient
from vllm_multimodal_embeddings.bulk.ray_data import embed_dataset
from vllm_multimodal_embeddings.server import cpu_test_config, production_config, vllm_args
from vllm_multimodal_embeddings.testing import (
    LocalServer,
    ensure_tiny_checkpoint,
    server_python,
)


class ServeServer(LocalServer):
    """A GPU server through ``vllm serve``: the GPU profile's ``--api-server-count`` needs it."""

    def command(self) -> list[str]:
        return [
            str(self.python),
            "-m",
            "vllm.entrypoints.cli.main",
            "serve",
            *vllm_args(self.config),
        ]


class GpuBusy:
    """Each GPU's utilization every 200 ms (``nvidia-smi``), averaged over a time window."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, float]] = []
        self._proc: subprocess.Popen[str] | None = None
        if shutil.which("nvidia-smi") is None:
            return
        self._proc = subprocess.Popen(
            [
                "nvidia-smi",
                "--query-gpu=index,utilization.gpu",
                "--format=csv,noheader,nounits",
                "-lms",
                "200",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                index, busy = line.split(",")
                self.samples.append((time.time(), int(index), float(busy)))
            except ValueError:
                continue

    def means(self, t0: float, t1: float, gpus: int) -> list[float | None]:
        out: list[float | None] = []
        for g in range(gpus):
            window = [b for t, i, b in self.samples if i == g and t0 <= t <= t1]
            out.append(round(sum(window) / len(window), 1) if window else None)
        return out

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()


def prepare_workers(args: Any) -> int:
    """Threads per actor's client: its CPUs, at least one (an actor may hold half a CPU)."""
    return max(1, int(args.cpus_per_actor))


def start_servers(args: argparse.Namespace, n: int, logs: Path) -> list[LocalServer]:
    servers = []
    for i in range(n):
        if args.cpu:
            config = cpu_test_config(str(ensure_tiny_checkpoint(server_python())))
            server = LocalServer(config, log_path=logs / f"server-{i}.log", startup_timeout_s=900)
        else:
            # --share-gpu: every server on GPU 0, each with its share of memory and of the
            # CPU's front end: the GPU path, the harness and the faults on one lent GPU (no
            # scaling).
            shared: dict[str, object] = (
                {
                    "frontend_args": ("--api-server-count", "2"),
                    "extra_args": ("--gpu-memory-utilization", str(round(0.85 / n, 2))),
                }
                if args.share_gpu
                else {}
            )
            config = production_config(args.checkpoint, host="127.0.0.1", port=8000 + i, **shared)
            server = ServeServer(
                config,
                python=Path(sys.executable),
                env={"CUDA_VISIBLE_DEVICES": "0" if args.share_gpu else str(i)},
                log_path=logs / f"server-{i}.log",
                startup_timeout_s=900,
            )
        servers.append(server)
    # Started one after another: on one GPU each claims its share of memory before the next.
    for server in servers:
        server.start()
        print(f"server {server.base_url} ready in {server.startup_s:.0f} s", flush=True)
    return servers


def rows_for(kind: str, seed: int, n: int, texts: TextMaker, images: ImageFactory) -> list[Any]:
    if kind == "texts":
        return [
            {"id": f"t{seed}-{i}", "text": t, "image": None}
            for i, t in enumerate(texts.make(seed, n, 30))
        ]
    paths = images.make(seed, n, (4000, 3000))
    return [{"id": f"p{seed}-{i}", "text": None, "image": p} for i, p in enumerate(paths)]


def run(
    rows: list[dict[str, Any]], settings: ClientSettings, urls: Sequence[str], args: Any
) -> tuple[list[dict[str, Any]], float]:
    start = time.perf_counter()
    out = embed_dataset(
        ray.data.from_items(rows),
        settings,
        base_urls=urls,
        concurrency=args.actors_per_server * len(urls),
        num_cpus=args.cpus_per_actor,
        batch_size=args.batch_rows,
        server_cooldown=30,
    ).take_all()
    return out, time.perf_counter() - start


def actor_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if b"MapBatches(EmbedBatches)" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def fault_run(args: Any, servers: list[LocalServer], rows: list[dict[str, Any]], out: Path):
    settings = ClientSettings(
        base_url=servers[0].base_url,
        prepare_workers=prepare_workers(args),
        max_retry_time=10,
    )
    urls = [s.base_url for s in servers]
    events: list[str] = []

    def strike() -> None:
        time.sleep(args.fault_after)
        servers[0].stop()
        events.append(f"stopped server {urls[0]} at {args.fault_after:.0f} s")
        pids = actor_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            events.append(f"SIGKILLed actor pid {pids[0]}")

    threading.Thread(target=strike, daemon=True).start()
    got, seconds = run(rows, settings, urls, args)
    ids_ok = [r["id"] for r in got] == [r["id"] for r in rows]
    with EmbeddingClient(base_url=urls[-1]) as client:
        want = client.embed_array([r["text"] for r in rows])
    vectors = np.stack([r["vector"] for r in got]) if ids_ok else want[:0]
    cosine = (vectors * want).sum(axis=1) if ids_ok else np.zeros(1)
    result = {
        "run": "fault",
        "servers": len(urls),
        "rows": len(rows),
        "rows_out": len(got),
        "ids_exactly_once_in_order": ids_ok,
        "min_cosine_vs_one_server": round(float(cosine.min()), 7),
        "seconds": round(seconds, 1),
        "events": events,
    }
    print(json.dumps(result), flush=True)
    with out.open("a") as f:
        f.write(json.dumps(result) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="the model folder (GPU runs)")
    parser.add_argument("--cpu", action="store_true", help="the CPU build and the tiny checkpoint")
    parser.add_argument("--servers", default="1,2,4", help="N values, comma-separated")
    parser.add_argument(
        "--share-gpu",
        action="store_true",
        help="every server on GPU 0 (one lent GPU: exercises the path and the faults only)",
    )
    parser.add_argument("--texts", type=int, default=4096, help="texts per server in a run")
    parser.add_argument("--photos", type=int, default=128, help="12 MP photos per server")
    parser.add_argument("--actors-per-server", type=int, default=4)
    parser.add_argument("--cpus-per-actor", type=float, default=4)
    parser.add_argument("--batch-rows", type=int, default=256, help="rows per Ray batch")
    parser.add_argument("--data", type=Path, default=Path("/tmp/ray-scaling"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fault", action="store_true")
    parser.add_argument("--fault-after", type=float, default=20.0, help="seconds into the job")
    args = parser.parse_args()
    if not args.cpu and not args.checkpoint:
        parser.error("--checkpoint is required without --cpu")
    ns = [int(n) for n in args.servers.split(",")]
    args.data.mkdir(parents=True, exist_ok=True)
    texts, images = TextMaker(None), ImageFactory(args.data / "photos")
    plan = [
        (kind, n, rows_for(kind, 10 * n + k, count * n, texts, images))
        for k, (kind, count) in enumerate((("texts", args.texts), ("photos", args.photos)))
        if count
        for n in ns
    ]
    with ProcessPoolExecutor() as pool:
        images.flush(pool)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    busy = GpuBusy()
    servers = start_servers(args, max(ns), args.data)
    try:
        for kind, n, rows in plan:
            urls = [s.base_url for s in servers[:n]]
            settings = ClientSettings(base_url=urls[0], prepare_workers=prepare_workers(args))
            t0 = time.time()
            got, seconds = run(rows, settings, urls, args)
            row = {
                "run": kind,
                "servers": n,
                "items": len(rows),
                "items_out": len(got),
                "items_per_s": round(len(rows) / seconds, 2),
                "gpu_busy_pct": busy.means(t0, time.time(), n),
                "actors": args.actors_per_server * n,
                "cpus_per_actor": args.cpus_per_actor,
                "cores": os.cpu_count(),
            }
            print(json.dumps(row), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if args.fault and len(servers) > 1:
            fault_rows = rows_for("texts", 999, args.texts * len(servers), texts, images)
            fault_run(args, servers, fault_rows, args.out)
    finally:
        busy.stop()
        for server in servers:
            server.stop()
        ray.shutdown()


if __name__ == "__main__":
    main()
