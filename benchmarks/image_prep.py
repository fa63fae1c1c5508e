"""Client-side image preparation cost: what the client spends before a request leaves.

Compares, in one run, a 12-megapixel photo (downscaled to the Qwen pixel budget), a 224x224 JPEG
and PNG sent byte-for-byte, and a PIL image (encoded as PNG). No server needed.

Run:
    python benchmarks/image_prep.py --repeat 7
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image

from vllm_multimodal_embeddings._inputs import ImageOptions, prepare_image


def photo(width: int, height: int) -> Image.Image:
    """A smooth, photo-like RGB image (noise would compress unrealistically)."""
    y, x = np.mgrid[0:height, 0:width]
    channels = [np.sin(x / (37 + 11 * c) + y / (53 + 7 * c)) for c in range(3)]
    pixels = ((np.stack(channels, axis=-1) + 1) * 127.5).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def encoded(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    options = {"quality": 90} if fmt == "JPEG" else {}
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    options = ImageOptions()
    cases = {
        "12 MP JPEG (4000x3000), downscaled": encoded(photo(4000, 3000), "JPEG"),
        "224x224 JPEG, sent as is": encoded(photo(224, 224), "JPEG"),
        "224x224 PNG, sent as is": encoded(photo(224, 224), "PNG"),
        "224x224 PIL image, encoded PNG": photo(224, 224),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    sizes: dict[str, int] = {}
    for _ in range(args.repeat):
        for name, source in cases.items():  # interleaved: noise hits every case alike
            start = time.perf_counter()
            uri = prepare_image(source, index=0, options=options)
            times[name].append(time.perf_counter() - start)
            sizes[name] = len(uri)
    width = max(map(len, cases))
    print(f"{'input':<{width}}  {'median ms':>9}  {'data URI':>10}")
    for name in cases:
        print(f"{name:<{width}}  {statistics.median(times[name]) * 1000:9.1f}  {sizes[name]:>10,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
