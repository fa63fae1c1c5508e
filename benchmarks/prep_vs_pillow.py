"""CPU time per camera photo: the package's preparation against plain Pillow, one thread.

Plain Pillow is what a script does without thinking: open, convert to RGB, LANCZOS down to the
pixel budget, JPEG q95. The package decodes at a reduced JPEG scale (draft), resizes once to the
official smart-resize size and re-encodes. Rounds interleave the two; CPU time, not wall time, so
that a busy neighbour matters less.

Run:
    python benchmarks/prep_vs_pillow.py --photos 8 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

from vllm_multimodal_embeddings._constants import DEFAULT_MAX_PIXELS
from vllm_multimodal_embeddings.inputs._read import prepare_image
from vllm_multimodal_embeddings.inputs._settings import ImageSettings

sys.path.insert(0, str(Path(__file__).parent))
from corpus import make_photos  # the same camera-like photos


def plain(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    scale = (DEFAULT_MAX_PIXELS / (w * h)) ** 0.5
    im = im.resize((int(w * scale), int(h * scale)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def package(data: bytes) -> str:
    return prepare_image(data, index=0, options=ImageSettings())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    photos = [p.read_bytes() for p in make_photos(args.photos)]
    seconds: dict[str, list[float]] = {"plain Pillow": [], "package": []}
    for _ in range(args.rounds):
        for name, prepare in (("plain Pillow", plain), ("package", package)):
            start = time.process_time()
            for data in photos:
                prepare(data)
            seconds[name].append((time.process_time() - start) / len(photos))
    base = statistics.median(seconds["plain Pillow"])
    for name, values in seconds.items():
        s = statistics.median(values)
        print(f"{name:13s} {s:.3f} CPU s/photo  {1 / s:5.2f} photos/s per core  {base / s:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
