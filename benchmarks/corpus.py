"""Camera photos through every path, side by side: photos/s and peak RSS at two corpus sizes.

Each (path, size) runs in a fresh process, so its peak RSS is its own; rounds interleave the
paths (A B C ..., A B C ...) so that a noisy neighbour slows all of them alike, and the median
photos/s is reported. RSS growth per 100 photos is (peak at the large size - peak at the small
size) / (difference in photos / 100): a streaming path stays flat, a path that keeps every
payload grows by the payload size.

Paths:
  naive        one photo at a time: prepare, post, wait
  handwritten  a 30-line script: N threads, each preparing a batch of 8 and posting it
  client       EmbeddingClient.embed_images(paths)
  stream       EmbeddingClient.iter_embed_images(generator of paths)
  langchain    VLLMMultimodalEmbeddings.embed_image(uris) (what Chroma's add_images calls)
  llama_index  VLLMMultiModalEmbedding.get_image_embedding_batch(paths)

Env:
    VLLM_BASE_URL   the server (required)

Run:
    python benchmarks/corpus.py --sizes 64 192 --rounds 2
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

PATHS = ("naive", "handwritten", "client", "stream", "langchain", "llama_index")
CACHE = Path(os.environ.get("VMME_BENCH_PHOTOS", Path.home() / ".cache" / "vmme-bench-photos"))
MAX_PIXELS = 1_843_200


def make_photos(n: int, size: tuple[int, int] = (4000, 3000)) -> list[Path]:
    """``n`` camera-like JPEGs (12 MP, about 2-3 MB: smooth scenes with sensor noise), cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = CACHE / f"photo-{size[0]}x{size[1]}-{i:04d}.jpg"
        if not path.exists():
            rng = np.random.default_rng(i)
            small = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
            scene = np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC))
            noise = rng.normal(0, 9, size=scene.shape)
            pixels = np.clip(scene + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path, format="JPEG", quality=88)
        paths.append(path)
    return paths


# -- the hand-written strategies: what a user writes without the package --------------------------


def prepare(path: Path) -> str:
    with Image.open(path) as im:
        w, h = im.size
        scale = (MAX_PIXELS / (w * h)) ** 0.5
        target = (int(w * scale), int(h * scale))
        im.draft("RGB", target)
        out = im.convert("RGB").resize(target, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def conversation(url: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": [{"type": "text", "text": "Represent the user's input."}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]},
        {"role": "assistant", "content": [{"type": "text", "text": ""}]},
    ]


def post(http: httpx.Client, base: str, model: str, urls: list[str]) -> list[Any]:
    body = {
        "model": model,
        "messages": [conversation(u) for u in urls],
        "continue_final_message": True,
        "add_generation_prompt": False,
        "encoding_format": "float",
    }
    resp = http.post(f"{base}/v1/embeddings", json=body, timeout=600)
    resp.raise_for_status()
    return [d["embedding"] for d in resp.json()["data"]]


def naive(base: str, model: str, photos: list[Path]) -> int:
    with httpx.Client() as http:
        return sum(len(post(http, base, model, [prepare(p)])) for p in photos)


def handwritten(base: str, model: str, photos: list[Path], threads: int = 4) -> int:
    batches = [photos[i : i + 8] for i in range(0, len(photos), 8)]
    done = [0]
    lock = threading.Lock()

    def worker(mine: list[list[Path]], http: httpx.Client) -> None:
        for batch in mine:
            vectors = post(http, base, model, [prepare(p) for p in batch])
            with lock:
                done[0] += len(vectors)

    with httpx.Client() as http:
        pool = [
            threading.Thread(target=worker, args=(batches[t::threads], http))
            for t in range(threads)
        ]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    return done[0]


# -- the package's paths ------------------------------------------------------------------------


def package(path: str, base: str, photos: list[Path]) -> int:
    if path in ("client", "stream"):
        from vllm_multimodal_embeddings import EmbeddingClient

        with EmbeddingClient(base_url=base) as client:
            if path == "client":
                return len(client.embed_images([str(p) for p in photos]))
            return sum(1 for _ in client.iter_embed_images(str(p) for p in photos))
    if path == "langchain":
        from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings

        with VLLMMultimodalEmbeddings(base_url=base) as emb:
            return len(emb.embed_image([str(p) for p in photos]))
    from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding

    li = VLLMMultiModalEmbedding(base_url=base)
    try:
        return len(li.get_image_embedding_batch([str(p) for p in photos]))
    finally:
        li.close()


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the process's own memory map; ru_maxrss
    survives exec, so a child started by a parent that had just generated photos would
    report the parent's peak and hide its own growth."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # KiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def one(path: str, n: int, base: str, model: str) -> dict[str, float]:
    """Run one path on ``n`` photos in this process; the caller made it a fresh one."""
    photos = make_photos(n)
    # Import what the path needs and warm the connection before measuring.
    import vllm_multimodal_embeddings.langchain
    import vllm_multimodal_embeddings.llama_index  # noqa: F401

    httpx.get(f"{base}/v1/models", timeout=60).raise_for_status()
    base_rss = peak_rss_mb()
    cpu0, t0 = time.process_time(), time.perf_counter()
    if path == "naive":
        count = naive(base, model, photos)
    elif path == "handwritten":
        count = handwritten(base, model, photos)
    else:
        count = package(path, base, photos)
    elapsed = time.perf_counter() - t0
    if count != n:
        raise SystemExit(f"{path}: {count} vectors for {n} photos")
    return {
        "photos_per_s": n / elapsed,
        "peak_rss_growth_mb": peak_rss_mb() - base_rss,
        "client_cpu_ms_per_photo": 1000 * (time.process_time() - cpu0) / n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[64, 192])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--one", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    base = os.environ.get("VLLM_BASE_URL", "").rstrip("/")
    if not base:
        print("set VLLM_BASE_URL", file=sys.stderr)
        return 2
    model = httpx.get(f"{base}/v1/models", timeout=60).json()["data"][0]["id"]
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), base, model)))
        return 0
    make_photos(max(args.sizes))
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for r in range(args.rounds):
        for n in args.sizes:
            for path in args.paths:
                out = subprocess.run(
                    [sys.executable, __file__, "--one", path, str(n)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault((path, n), []).append(row)
                print(f"round {r + 1} {path:12s} n={n:4d} {row}", file=sys.stderr)
    small, large = args.sizes
    hand = statistics.median(x["photos_per_s"] for x in results[("handwritten", large)])
    print(
        f"| path | photos/s (n={large}) | vs handwritten | peak RSS n={small} | "
        f"n={large} | growth per 100 photos | client CPU ms/photo |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in args.paths:
        speed = statistics.median(x["photos_per_s"] for x in results[(path, large)])
        rss_s = statistics.median(x["peak_rss_growth_mb"] for x in results[(path, small)])
        rss_l = statistics.median(x["peak_rss_growth_mb"] for x in results[(path, large)])
        cpu = statistics.median(x["client_cpu_ms_per_photo"] for x in results[(path, large)])
        growth = (rss_l - rss_s) / ((large - small) / 100)
        print(
            f"| {path} | {speed:.2f} | {speed / hand:.2f}x | {rss_s:.0f} MB | {rss_l:.0f} MB | "
            f"{growth:+.0f} MB | {cpu:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
