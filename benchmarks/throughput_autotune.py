"""Package defaults (self-tuned) vs fixed 16 x 4 vs a hand-written batched httpx client.

Short texts and 640x480 JPEGs against one server, in interleaved rounds (A B C, A B C, ...) so
a noisy neighbour slows every strategy alike; the median round is reported. The package's
default client lives across rounds, as it would through a long job (its tuner learns from the
first round on); what it chose is printed from ``client.stats``. A warm-up round is not timed.

``--photos N`` then embeds camera photos (4000x3000 JPEGs, benchmarks/corpus.py) in a fresh
process per run: N and 2N with the package defaults (peak RSS must not grow with the corpus),
then N/2 with ``prepare_processes`` 0 and 2; it reports photos/s, the growth of peak RSS over
the process's state after setup, and what the tuner chose.

Env:
    VLLM_BASE_URL   the server (required)

Run:
    python benchmarks/throughput_autotune.py --texts 2048 --images 256 --rounds 3 --photos 100
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from vllm_multimodal_embeddings import EmbeddingClient

INSTRUCTION = "Represent the user's input."


def jpeg_640x480(seed: int) -> bytes:
    """A smooth photo-like JPEG, distinct per seed (noise would compress unrealistically)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640] / 640
    channels = [
        np.sin(x * rng.uniform(2, 9) + y * rng.uniform(2, 9) + rng.uniform(0, 6)) for _ in range(3)
    ]
    pixels = ((np.stack(channels, axis=-1) + 1) * 127.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def hand_written(
    base_url: str, model: str, items: Sequence[Any], batch: int, inflight: int
) -> np.ndarray:
    """What a user writes without the package: threads posting batched conversations."""

    def part(item: Any) -> dict[str, Any]:
        if isinstance(item, bytes):
            uri = "data:image/jpeg;base64," + base64.b64encode(item).decode()
            return {"type": "image_url", "image_url": {"url": uri}}
        return {"type": "text", "text": item}

    def one(chunk: Sequence[Any]) -> list[np.ndarray]:
        body = {
            "model": model,
            "messages": [
                [
                    {"role": "system", "content": [{"type": "text", "text": INSTRUCTION}]},
                    {"role": "user", "content": [part(x)]},
                ]
                for x in chunk
            ],
            "add_generation_prompt": True,
            "encoding_format": "base64",
            "embed_dtype": "float32",
            "endianness": "little",
        }
        resp = http.post(f"{base_url}/v1/embeddings", json=body)
        resp.raise_for_status()
        data = sorted(resp.json()["data"], key=lambda d: d["index"])
        return [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in data]

    chunks = [items[i : i + batch] for i in range(0, len(items), batch)]
    with (
        httpx.Client(timeout=600) as http,
        ThreadPoolExecutor(max_workers=inflight) as pool,
    ):
        return np.stack([v for r in pool.map(one, chunks) for v in r])


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in kB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset the peak RSS mark to the current RSS and return it, in kB. (``ru_maxrss`` will
    not do: Linux carries it over ``execve``, so a child starts at its parent's peak.)"""
    Path("/proc/self/clear_refs").write_text("5")
    return status_kb("VmRSS")


def photos_child(n: int, processes: int | None) -> int:
    """One setting over ``n`` camera photos in this process: photos/s and peak RSS growth."""
    sys.path.insert(0, str(Path(__file__).parent))
    from corpus import make_photos

    photos = make_photos(n)
    options: dict[str, Any] = {} if processes is None else {"prepare_processes": processes}
    with EmbeddingClient(**options) as client:
        client.embed(["warm up"])
        base = reset_peak_rss()
        count = 0
        start = time.perf_counter()
        for _ in client.iter_embed_images(photos):
            count += 1
        seconds = time.perf_counter() - start
        peak = status_kb("VmHWM")
        stats = client.stats
    print(
        f"{count / seconds:.2f} photos/s, peak RSS +{(peak - base) / 1024:.0f} MB "
        f"(this process; a process pool's workers not counted); chose {stats.batch_size} x "
        f"{stats.max_concurrency}, prepare_processes={client.settings.prepare_processes}"
    )
    print(f"    why: {stats.reason}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=0, help="camera photos per setting")
    parser.add_argument("--photos-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.environ.get("VLLM_BASE_URL"):
        print("set VLLM_BASE_URL to a running vLLM server", file=sys.stderr)
        return 2
    if args.photos_child:
        return photos_child(args.photos_child, args.processes)

    base_url = os.environ["VLLM_BASE_URL"].rstrip("/")
    texts = [f"benchmark sentence {i} about a red bicycle in the snow" for i in range(args.texts)]
    images = [jpeg_640x480(i) for i in range(args.images)]
    auto = EmbeddingClient()
    info = auto.server_info()
    fixed = EmbeddingClient(batch_size=16, max_concurrency=4)
    fixed.server_info()
    model = info.model
    strategies: dict[str, Callable[[Sequence[Any], str], Any]] = {
        "package defaults (tuned)": lambda items, kind: (
            auto.embed(items) if kind == "text" else auto.embed_images(items)
        ),
        "package fixed 16 x 4": lambda items, kind: (
            fixed.embed(items) if kind == "text" else fixed.embed_images(items)
        ),
        "hand-written (64 texts / 8 images x 4 threads)": lambda items, kind: hand_written(
            base_url, model, items, 64 if kind == "text" else 8, 4
        ),
    }
    print(f"server: vLLM {info.version}, model {model}, {info.embedding_size} dims")
    print(f"{args.texts} short texts, {args.images} 640x480 JPEGs, {args.rounds} rounds\n")
    for fn in strategies.values():  # warm-up, not timed
        fn(texts, "text")
        fn(images, "image")
    rates: dict[str, dict[str, list[float]]] = {n: {"text": [], "image": []} for n in strategies}
    for _ in range(args.rounds):
        for name, fn in strategies.items():
            rates[name]["text"].append(args.texts / timed(lambda f=fn: f(texts, "text")))
            rates[name]["image"].append(args.images / timed(lambda f=fn: f(images, "image")))
    width = max(map(len, strategies))
    hand = next(reversed(rates.values()))
    print(f"{'strategy':<{width}}  {'texts/s':>8} {'vs hand':>7}  {'images/s':>8} {'vs hand':>7}")
    for name, r in rates.items():
        t, i = statistics.median(r["text"]), statistics.median(r["image"])
        ht, hi = statistics.median(hand["text"]), statistics.median(hand["image"])
        print(f"{name:<{width}}  {t:8.1f} {t / ht:6.2f}x  {i:8.1f} {i / hi:6.2f}x")
    stats = auto.stats
    print(f"\ndefaults chose {stats.batch_size} per request x {stats.max_concurrency} in flight")
    print(f"  why: {stats.reason}")
    print(f"  {stats.changes} changes, {stats.requests} requests, {stats.overloads} overloads")
    auto.close()
    fixed.close()

    if args.photos:
        sys.path.insert(0, str(Path(__file__).parent))
        from corpus import make_photos

        make_photos(2 * args.photos)  # written once, before any child measures its RSS
        n, half = args.photos, max(1, args.photos // 2)
        print("\ncamera photos (4000x3000 JPEG), a fresh process per setting:")
        runs = (
            (f"defaults, {n} photos", None, n),
            (f"defaults, {2 * n} photos", None, 2 * n),
            (f"threads only, {half}", 0, half),
            (f"2 processes, {half}", 2, half),
        )
        for label, processes, count in runs:
            cmd = [sys.executable, __file__, "--photos-child", str(count)]
            if processes is not None:
                cmd += ["--processes", str(processes)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            print(f"  {label:<22} {out.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
