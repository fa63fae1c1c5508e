"""A long batch job with a tqdm progress bar and throughput.

The client splits a long list into requests (``batch_size``, ``max_batch_bytes``), runs up to
``max_concurrency`` of them at once, and calls ``on_progress(n)`` with the number of inputs each
finished request covered. Feeding that to ``tqdm.update`` gives a live bar with items/s; results
still come back in input order, one vector per input.

Environment:
    VLLM_BASE_URL         server root, e.g. http://localhost:8000 (required)
    VLLM_API_KEY          bearer token, when the server runs with --api-key (optional)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python cookbook/progress_bar.py                       # 2000 texts + 300 images
    python cookbook/progress_bar.py --count 300 --images 30 --concurrency 8
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from vllm_multimodal_embeddings import EmbeddingClient, EmbedInput, VLLMEmbeddingError

WORDS = [
    "amber",
    "basalt",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "granite",
    "harbor",
    "indigo",
    "juniper",
    "kelp",
    "lagoon",
]


def make_items(n_texts: int, n_images: int, seed: int) -> list[EmbedInput]:
    """Short generated texts, then small generated images (64x64, a few hundred bytes each)."""
    rng = random.Random(seed)
    items: list[EmbedInput] = [
        f"Item {i}: " + " ".join(rng.choices(WORDS, k=6)) for i in range(n_texts)
    ]
    for _ in range(n_images):
        im = Image.new("RGB", (64, 64), tuple(rng.randrange(256) for _ in range(3)))
        x, y = rng.randrange(40), rng.randrange(40)
        fill = tuple(rng.randrange(256) for _ in range(3))
        ImageDraw.Draw(im).rectangle((x, y, x + 20, y + 20), fill=fill)
        items.append(im)
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="short texts to embed")
    parser.add_argument("--images", type=int, default=300, help="generated images to embed")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per request")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    items = make_items(args.count, args.images, args.seed)
    with EmbeddingClient(batch_size=args.batch_size, max_concurrency=args.concurrency) as client:
        info = client.server_info()  # probe first, so the timer measures embedding only
        print(f"model {info.model}: embedding {args.count} texts + {args.images} images")
        start = time.perf_counter()
        with tqdm(total=len(items), unit="item", desc="embedding", smoothing=0.1) as bar:
            vectors = client.embed_array(items, on_progress=bar.update)
        elapsed = time.perf_counter() - start

    if vectors.shape != (len(items), info.embedding_size):
        print(f"error: got {vectors.shape} vectors for {len(items)} inputs", file=sys.stderr)
        return 1
    norms = np.linalg.norm(vectors, axis=1)
    print(f"embedded {len(items)} items in {elapsed:.1f} s: {len(items) / elapsed:.0f} items/s")
    print(f"shape {vectors.shape}, norms {norms.min():.4f}..{norms.max():.4f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing VLLM_BASE_URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
