"""Reranking throughput: documents/s for client strategies and image sizing, one server.

Rounds interleave the strategies so a noisy neighbour slows all of them alike; the median of the
rounds is reported. Also times the client-side recipe sizing of images (decode, bicubic resize,
PNG) against sending them as the embedder prepares them, the cost of exact scores.

Env:
    VLLM_RERANKER_BASE_URL   the reranker server (or VLLM_BASE_URL), e.g. http://127.0.0.1:8001
    VLLM_RERANKER_MODEL      optional; else the server's first model
    VLLM_API_KEY             optional

Run:
    python benchmarks/rerank_throughput.py --texts 64 --images 16 --rounds 3

Measured 2026-11-23, tiny CPU reranker (tests' checkpoint), 2 cores shared with 4 other vLLM
users (load average 9-13, so absolute numbers are low and noisy; ratios are the point):

    texts: 1 document per request, 1 in flight          14.9 docs/s
    texts: 1 document per request, 4 in flight          63.5 docs/s
    texts: 16 per request, 1 in flight                 126.7 docs/s
    texts: 16 per request, 4 in flight                 158.1 docs/s
    images 300x200, 8/request, 4 in flight, recipe      11.8 docs/s
    images 300x200, 8/request, 4 in flight, vLLM        22.3 docs/s

Client-side preparation alone (RerankCore.prepare, one thread, noise PNGs, the worst case for
PNG): 300x200 34 ms/image with recipe sizing vs 6 ms without; 1024x768 273 vs 63 ms;
4000x3000 3.3 s vs 1.5 s. Exact scores cost a decode, a bicubic resize and a lossless encode;
``recipe_images=False`` trades them for up to ~1e-3 of score drift.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from vllm_multimodal_embeddings.reranking import RerankClient

# name -> (batch_size, max_concurrency)
STRATEGIES: dict[str, tuple[int, int]] = {
    "1 document per request, 1 in flight": (1, 1),
    "1 document per request, 4 in flight": (1, 4),
    "16 per request, 1 in flight": (16, 1),
    "16 per request, 4 in flight": (16, 4),
}


def noise_png(seed: int, size: tuple[int, int]) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    texts = [f"document number {i} about a red circle" for i in range(args.texts)]
    # 300x200: not at its recipe size (300 is no multiple of 32), so recipe sizing resizes it.
    images = [noise_png(i, (300, 200)) for i in range(args.images)]

    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, (batch, conc) in STRATEGIES.items():
            with RerankClient(batch_size=batch, max_concurrency=conc) as client:
                client.score("warm-up", ["x"])
                secs = timed(lambda c=client: c.score("a red circle", texts))
            results.setdefault(f"texts: {name}", []).append(len(texts) / secs)
        for recipe in (True, False):
            with RerankClient(batch_size=8, max_concurrency=4, recipe_images=recipe) as client:
                client.score("warm-up", ["x"])
                secs = timed(lambda c=client: c.score("a red circle", images))
            label = "recipe sizing (client)" if recipe else "vLLM sizing"
            results.setdefault(f"images 300x200, 8/request, 4 in flight, {label}", []).append(
                len(images) / secs
            )
    width = max(map(len, results))
    for name, rates in results.items():
        print(f"{name:<{width}}  {statistics.median(rates):8.1f} docs/s")


if __name__ == "__main__":
    main()
