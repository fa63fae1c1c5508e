"""Does the package's image preparation scale with cores? 12 MP photos, threads vs processes.

Runs anywhere (no server needed); on the 16-core device through ``device_run.sh prep``:

    python prep_scaling.py --data /tmp/photos --out prep.jsonl [--workers 1,2,4,8,16] [--n 64]

Each photo goes through the package's own preparation, ``prepare_input(path, str_as="image")``
(read, header, draft decode, bicubic resize to the pixel budget, JPEG encode, base64 data URI),
on a thread pool and on a process pool of N workers. Then every stage alone on N threads
(``stage:<name>``), to see which one holds the GIL: a stage that scales on threads releases it.
Per row: photos/s, and efficiency = rate / (N x the one-worker rate of the same mode).
Which package runs is whatever Python imports (``PYTHONPATH`` picks a checkout's ``src``).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import camera_like


def _write(job: tuple[str, int]) -> str:
    path, seed = job
    if not Path(path).exists():
        buf = io.BytesIO()
        Image.fromarray(camera_like(seed, 4000, 3000), "RGB").save(buf, "JPEG", quality=92)
        Path(path).write_bytes(buf.getvalue())
    return path


def make_photos(folder: Path, n: int, workers: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"photo-{i}.jpg"), 7_000 + i) for i in range(n)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_write, jobs))


# -- the package's preparation (module level: process pools pickle it by name) ------------------


def prepare(path: str) -> int:
    from vllm_multimodal_embeddings.inputs._read import prepare_input
    from vllm_multimodal_embeddings.inputs._settings import ImageSettings

    prepared = prepare_input(path, index=0, options=ImageSettings(), str_as="image")
    assert prepared.image_url is not None
    return len(prepared.image_url)


# -- stages alone (threads only): which one holds the GIL? --------------------------------------

_TARGET = (1536, 1152)  # what the package's smart resize gives a 4000x3000 photo at 1.84 MP


def stage_read(path: str) -> int:
    return len(Path(path).read_bytes())


def stage_decode(path: str) -> int:
    im = Image.open(path)
    im.draft("RGB", _TARGET)
    im.load()
    return im.size[0]


def stage_resize(path: str) -> int:
    im = _DECODED[path]
    return im.resize(_TARGET, Image.Resampling.BICUBIC).size[0]


def stage_encode(path: str) -> int:
    buf = io.BytesIO()
    _RESIZED[path].save(buf, format="JPEG", quality=95)
    return len(buf.getvalue())


def stage_base64(path: str) -> int:
    return len(base64.b64encode(_ENCODED[path]).decode("ascii"))


def stage_json(path: str) -> int:
    return len(json.dumps({"image_url": {"url": _URIS[path]}}))


_DECODED: dict[str, Image.Image] = {}
_RESIZED: dict[str, Image.Image] = {}
_ENCODED: dict[str, bytes] = {}
_URIS: dict[str, str] = {}


def _fill_stage_inputs(paths: list[str]) -> None:
    for p in paths:
        im = Image.open(p)
        im.draft("RGB", _TARGET)
        im.load()
        _DECODED[p] = im
        _RESIZED[p] = im.resize(_TARGET, Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        _RESIZED[p].save(buf, format="JPEG", quality=95)
        _ENCODED[p] = buf.getvalue()
        _URIS[p] = "data:image/jpeg;base64," + base64.b64encode(_ENCODED[p]).decode("ascii")


STAGES: dict[str, Callable[[str], int]] = {
    "read": stage_read,
    "decode (draft)": stage_decode,
    "resize": stage_resize,
    "encode": stage_encode,
    "base64": stage_base64,
    "json": stage_json,
}


def timed(pool: Executor, fn: Callable[[str], int], items: list[str]) -> float:
    list(pool.map(fn, items[: max(2, len(items) // 8)]))  # warm: imports, pool start
    t0 = time.perf_counter()
    list(pool.map(fn, items, chunksize=1))
    return len(items) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=64, help="distinct photos (cycled)")
    p.add_argument("--workers", default="1,2,4,8,16")
    p.add_argument("--per-worker", type=int, default=12, help="photos timed per worker")
    p.add_argument("--tag", action="append", default=[], help="KEY=VALUE added to every row")
    p.add_argument("--modes", default="thread,process,stages")
    args = p.parse_args()
    tags = dict(t.split("=", 1) for t in args.tag)
    counts = [int(x) for x in args.workers.split(",")]
    modes = set(args.modes.split(","))
    cores = os.cpu_count() or 1
    t0 = time.perf_counter()
    paths = make_photos(args.data, args.n, cores)
    size = os.path.getsize(paths[0])
    print(
        f"{len(paths)} photos 4000x3000 ({size / 1e6:.1f} MB each) ready in "
        f"{time.perf_counter() - t0:.1f} s; {cores} cores",
        flush=True,
    )

    def items(workers: int) -> list[str]:
        k = max(24, args.per_worker * workers)
        return [paths[i % len(paths)] for i in range(k)]

    def emit(row: dict[str, Any]) -> None:
        row.update(tags)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"  {row['mode']:<18} N={row['workers']:>2}  {row['per_s']:>7.1f}/s  "
            f"x{row['speedup']:.2f}  efficiency {row['efficiency']:.2f}",
            flush=True,
        )

    runs: list[tuple[str, Callable[[str], int], Callable[[int], Executor]]] = []
    if "thread" in modes:
        runs.append(("prepare_input threads", prepare, lambda n: ThreadPoolExecutor(n)))
    if "process" in modes:
        runs.append(("prepare_input processes", prepare, lambda n: ProcessPoolExecutor(n)))
    if "stages" in modes:
        _fill_stage_inputs(paths[:16])
        stage_paths = paths[:16]
        for name, fn in STAGES.items():
            runs.append((f"stage:{name}", fn, lambda n: ThreadPoolExecutor(n)))
    for mode, fn, make_pool in runs:
        base = None
        for n in counts:
            work = items(n)
            if mode.startswith("stage:"):
                work = [stage_paths[i % len(stage_paths)] for i in range(len(work) * 2)]
            with make_pool(n) as pool:
                rate = timed(pool, fn, work)
            base = base or rate
            emit(
                {
                    "mode": mode,
                    "workers": n,
                    "per_s": round(rate, 2),
                    "speedup": round(rate / base, 2),
                    "efficiency": round(rate / (n * base), 2),
                    "items": len(work),
                    "cores": cores,
                }
            )


if __name__ == "__main__":
    main()
