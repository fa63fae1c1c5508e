"""Cosine to the official recipe for 12 MP photos: the old client downscale versus the new one.

Old: the client downscaled to the largest aspect-exact size within 1,843,200 pixels (LANCZOS,
JPEG q95), and the server resized that again to multiples of 32. New: the client resizes once,
bicubic, to the official smart-resize size, and the server finds nothing to resize. Both go
through the same server; the reference is ``tests/reference`` (transformers, official recipe)
given the original photo.

Env:
    VLLM_BASE_URL   a server on the tiny checkpoint, with this package's flags (required)

Run:
    python benchmarks/parity_downscale.py --photos 4 \
        --checkpoint ~/.cache/vllm-multimodal-embeddings/tiny-qwen3-vl
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.live.test_parity import photo
from tests.reference.embedder import Part, ReferenceEmbedder
from vllm_multimodal_embeddings import Content, EmbeddingClient
from vllm_multimodal_embeddings._constants import (
    DEFAULT_MAX_PIXELS,
    QWEN_DEFAULT_INSTRUCTION,
)
from vllm_multimodal_embeddings.testing import SERVER_VENV


def old_downscale(data: bytes) -> bytes:
    """The client's previous behaviour: aspect-exact fit, draft decode, LANCZOS; JPEG q95 for
    a JPEG source, PNG otherwise."""
    im = Image.open(io.BytesIO(data))
    fmt = "JPEG" if im.format == "JPEG" else "PNG"
    w, h = im.size
    scale = math.sqrt(DEFAULT_MAX_PIXELS / (w * h))
    target = (math.floor(w * scale), math.floor(h * scale))
    im.draft(None, target)
    out = im.convert("RGB").resize(target, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    out.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--server-python", type=Path, default=SERVER_VENV / "bin" / "python")
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument(
        "--format", choices=("JPEG", "PNG"), default="JPEG", help="how the photos are stored"
    )
    parser.add_argument("--size", default="4000x3000", help="photo size, WxH")
    args = parser.parse_args()
    base_url = os.environ["VLLM_BASE_URL"]
    tmp = Path(tempfile.mkdtemp(prefix="parity-downscale-"))
    reference = ReferenceEmbedder(args.server_python, args.checkpoint, tmp / "reference.log")
    rows: list[tuple[float, float]] = []
    try:
        with EmbeddingClient(base_url=base_url) as client:
            for seed in range(args.photos):
                buf = io.BytesIO()
                width, height = (int(v) for v in args.size.split("x"))
                params = {"quality": 90} if args.format == "JPEG" else {}
                photo(width, height, 100 + seed).save(buf, format=args.format, **params)
                path = tmp / f"photo-{seed}.{args.format.lower()}"
                path.write_bytes(buf.getvalue())
                ref = reference.embed([(QWEN_DEFAULT_INSTRUCTION, [Part.image(path)])])[0]
                old, new = client.embed(
                    [Content(image=old_downscale(buf.getvalue())), Content(image=path)]
                )
                rows.append(
                    (cosine(np.asarray(old), ref.vector), cosine(np.asarray(new), ref.vector))
                )
                print(f"photo {seed}: before {rows[-1][0]:.6f}  after {rows[-1][1]:.6f}")
    finally:
        reference.close()
    before, after = zip(*rows, strict=True)
    print(f"min cosine to the reference, {len(rows)} {args.format} photos of {args.size}:")
    print(f"  before (aspect-exact LANCZOS, server resizes again): {min(before):.6f}")
    print(f"  after (official smart resize, bicubic, once):        {min(after):.6f}")


if __name__ == "__main__":
    main()
