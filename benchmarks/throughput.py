"""Client strategies side by side against one server: sequential, concurrent, batched.

Rounds interleave the strategies (A B C D, A B C D, ...) so that a noisy neighbour slows all of
them alike; the median of the rounds is reported. Also times decoding a response as JSON floats
versus base64 float32, the reason the client asks for base64.

Env:
    VLLM_BASE_URL   the server (required), e.g. http://127.0.0.1:8000
    VLLM_API_KEY    optional

Run:
    python benchmarks/throughput.py --images 64 --texts 512 --rounds 3
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from vllm_multimodal_embeddings import Content, EmbeddingClient, VLLMEmbeddingError

# name -> (batch_size, max_concurrency)
STRATEGIES: dict[str, tuple[int, int]] = {
    "sequential (1 per request, 1 in flight)": (1, 1),
    "concurrent (1 per request, 8 in flight)": (1, 8),
    "batched (8 per request, 1 in flight)": (8, 1),
    "batched + concurrent (8 per request, 4 in flight)": (8, 4),
}


def photo(seed: int, size: int) -> bytes:
    """A smooth photo-like JPEG, distinct per seed (noise would compress unrealistically)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = [
        np.sin(x * rng.uniform(2, 9) + y * rng.uniform(2, 9) + rng.uniform(0, 6)) for _ in range(3)
    ]
    pixels = ((np.stack(channels, axis=-1) + 1) * 127.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def decode_costs(dim: int, count: int) -> tuple[float, float]:
    """Seconds to decode ``count`` vectors of ``dim`` as JSON floats and as base64 float32."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((count, dim)).astype("<f4")
    as_json = json.dumps({"data": [{"embedding": v.tolist()} for v in vectors]})
    as_b64 = json.dumps(
        {"data": [{"embedding": base64.b64encode(v.tobytes()).decode()} for v in vectors]}
    )
    t_json = timed(
        lambda: np.array([d["embedding"] for d in json.loads(as_json)["data"]], np.float32)
    )
    t_b64 = timed(
        lambda: np.stack(
            [
                np.frombuffer(base64.b64decode(d["embedding"]), "<f4")
                for d in json.loads(as_b64)["data"]
            ]
        )
    )
    return t_json, t_b64


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=64, help="images per round")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--texts", type=int, default=512, help="texts per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if not os.environ.get("VLLM_BASE_URL"):
        print("set VLLM_BASE_URL to a running vLLM server", file=sys.stderr)
        return 2

    images = [Content(image=photo(i, args.image_size)) for i in range(args.images)]
    texts = [
        f"benchmark sentence number {i} about a red bicycle in the snow" for i in range(args.texts)
    ]
    try:
        with EmbeddingClient() as probe:
            info = probe.server_info()
            probe.embed(images[:2] + texts[:2])  # warm the server up
    except VLLMEmbeddingError as exc:
        print(f"cannot use the server: {exc}", file=sys.stderr)
        return 1
    print(f"server: vLLM {info.version}, model {info.model}, {info.embedding_size} dims")
    print(
        f"{args.images} images of {args.image_size}x{args.image_size}, {args.texts} texts, "
        f"{args.rounds} interleaved rounds, median reported\n"
    )

    results: dict[str, dict[str, list[float]]] = {
        name: {"img": [], "txt": []} for name in STRATEGIES
    }
    for _ in range(args.rounds):
        for name, (batch, concurrency) in STRATEGIES.items():
            with EmbeddingClient(batch_size=batch, max_concurrency=concurrency) as client:
                client.server_info()
                results[name]["img"].append(args.images / timed(lambda c=client: c.embed(images)))
                results[name]["txt"].append(args.texts / timed(lambda c=client: c.embed(texts)))

    width = max(len(n) for n in STRATEGIES)
    print(f"{'strategy':<{width}}  {'images/s':>9}  {'texts/s':>9}")
    for name, r in results.items():
        img, txt = statistics.median(r["img"]), statistics.median(r["txt"])
        print(f"{name:<{width}}  {img:9.1f}  {txt:9.1f}")
    with EmbeddingClient(batch_size=512, max_concurrency=1) as client:
        one_request = [
            args.texts / timed(lambda c=client: c.embed(texts)) for _ in range(args.rounds)
        ]
    print(f"{'all texts in one request':<{width}}  {'':>9}  {statistics.median(one_request):9.1f}")

    t_json, t_b64 = decode_costs(dim=2048, count=512)
    print(
        f"\ndecoding 512 x 2048-dim vectors: JSON floats {t_json * 1000:.0f} ms, "
        f"base64 float32 {t_b64 * 1000:.0f} ms ({t_json / t_b64:.0f}x faster)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
