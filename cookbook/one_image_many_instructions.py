"""One image under many instructions: let the server re-use its image work.

Qwen3-VL-Embedding takes an instruction (the system prompt) with every input, so one image can be
embedded for several tasks ("find similar products", "read the text in it", ...). vLLM caches
processed images (the multimodal processor cache) and vision-encoder outputs, keyed by a hash of
the image CONTENT. Embedding the same image again under another instruction can then skip the
image work; only the language model runs again.

That only works when the bytes are identical. The client sends a file's original bytes when it
can (JPEG/PNG/WEBP within the pixel budget), so the same file always hits the cache. A re-saved
JPEG looks the same to a person but has different bytes: it is a cache miss. This recipe times a
cold image, the same image under other instructions, and a re-saved copy, sequentially and then
concurrently with the async client. Each run draws fresh images so the first call is really cold.

Environment:
    VLLM_BASE_URL         server root, e.g. http://localhost:8000 (required)
    VLLM_API_KEY          bearer token, when the server runs with --api-key (optional)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python cookbook/one_image_many_instructions.py --rounds 3 --size 640
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from vllm_multimodal_embeddings import AsyncEmbeddingClient, EmbeddingClient, VLLMEmbeddingError

INSTRUCTIONS = [
    "Represent the user's input.",
    "Represent this image for finding visually similar product photos.",
    "Represent the text visible in this image for search.",
    "Represent the overall scene and mood of this image.",
]


def fresh_jpeg(size: int) -> bytes:
    """A photo-sized JPEG no server has seen (random pixels: a cold cache every run)."""
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    h = size * 3 // 4
    ramp = np.linspace(0, 255, size)[None, :, None] * np.ones((h, 1, 3))
    noise = rng.normal(0, 40, (h, size, 3))
    pixels = np.clip(ramp + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def resave(jpeg: bytes) -> bytes:
    """Decode and encode again, as an editor or a thumbnail pipeline would: new bytes."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def timed(
    client: EmbeddingClient, image: bytes, instruction: str
) -> tuple[float, npt.NDArray[Any]]:
    """Seconds for one image embedding under one instruction, and the vector."""
    start = time.perf_counter()
    vector = client.embed_array([image], instruction=instruction)[0]
    return time.perf_counter() - start, vector


async def concurrent(size: int) -> tuple[float, float]:
    """Seconds for all instructions on a fresh image: all at once, and one first then the rest.

    Requests that arrive together for an image the server has not seen can each miss the cache
    and each do the image work; one call first fills the cache, then the rest can fan out.
    """
    async with AsyncEmbeddingClient() as client:
        await client.server_info()
        image = fresh_jpeg(size)
        start = time.perf_counter()
        await asyncio.gather(*(client.embed([image], instruction=i) for i in INSTRUCTIONS))
        together = time.perf_counter() - start

        image = fresh_jpeg(size)
        start = time.perf_counter()
        await client.embed([image], instruction=INSTRUCTIONS[0])
        await asyncio.gather(*(client.embed([image], instruction=i) for i in INSTRUCTIONS[1:]))
        return together, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh images to measure")
    parser.add_argument("--size", type=int, default=640, help="image width in pixels (4:3)")
    args = parser.parse_args()

    cold: list[float] = []
    warm: list[float] = []
    resaved: list[float] = []
    with EmbeddingClient() as client:
        info = client.server_info()  # probe once, outside the timings
        print(
            f"model {info.model}; {args.rounds} fresh {args.size}px JPEGs, "
            f"{len(INSTRUCTIONS)} instructions each"
        )
        client.embed(["warm-up"])  # the first request of a process pays for connection setup
        for _ in range(args.rounds):
            image = fresh_jpeg(args.size)
            t, first = timed(client, image, INSTRUCTIONS[0])
            cold.append(t)
            others = [timed(client, image, i) for i in INSTRUCTIONS[1:]]
            warm.extend(t for t, _ in others)
            copy = resave(image)
            bytes_differ = copy != image
            t, again = timed(client, copy, INSTRUCTIONS[0])
            resaved.append(t)
        same_bytes = float(first @ timed(client, image, INSTRUCTIONS[0])[1])
        across = float(first @ others[0][1])
        looks_same = float(first @ again)

    ms = statistics.median
    print("\nmedian seconds per single-image request:")
    print(f"  first time (cold cache)                 {ms(cold):.3f}")
    print(f"  same bytes, another instruction         {ms(warm):.3f}")
    print(f"  re-saved JPEG (new bytes: cache miss)   {ms(resaved):.3f}")
    speedup = ms(cold) / ms(warm)
    print(f"  cold / repeated: {speedup:.2f}x")
    if speedup < 1.15:
        print(
            "  -> no clear difference on this server: its image work is too cheap to show up "
            "next to the request overhead (expected for a tiny CPU test model; on a GPU server "
            "with a real vision encoder the repeated calls are much cheaper)."
        )
    else:
        print("  -> repeated calls with identical bytes skip the image work")
    print(f"re-saved copy has different bytes: {bytes_differ}")

    print("\nvectors:")
    print(f"  same bytes, same instruction, twice:  cosine {same_bytes:.4f}")
    print(f"  same bytes, different instruction:    cosine {across:.4f}  (the instruction matters)")
    print(
        f"  re-saved copy, same instruction:      cosine {looks_same:.4f}  (close, not identical)"
    )

    together, warm_first = asyncio.run(concurrent(args.size))
    sequential = ms(cold) + (len(INSTRUCTIONS) - 1) * ms(warm)
    print(f"\n{len(INSTRUCTIONS)} instructions on a fresh image:")
    print(f"  one after another (medians above)   {sequential:.3f} s")
    print(f"  async, all at once                  {together:.3f} s")
    print(f"  async, one first, then the rest     {warm_first:.3f} s")
    if together > warm_first:
        print(
            "  -> all at once was slower: requests for an unseen image arrive before the cache\n"
            "     holds it, so each does the image work. Send one call first, then fan out."
        )
    else:
        print("  -> sending all at once cost nothing extra on this server")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing VLLM_BASE_URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
