"""``vllm-mm-embed embed`` throughput with 1, 2 and 4 preparing workers, beside the plain client.

Writes a corpus of JPEG photos (``--size``, default 320x240: the tiny CPU model's time per image
grows with its pixels, 1 token per 32x32, and larger photos measure the server, not us), then,
in interleaved rounds, embeds it with the bulk job into a fresh Parquet folder per run, and
with ``EmbeddingClient.embed_array`` (no output, no hashing) as the baseline.
Reports the median items/s per setup.

Env:
    VLLM_BASE_URL   the server (required), e.g. from ``vllm-mm-embed serve-cpu``
    VLLM_API_KEY    optional

Run:
    python benchmarks/bulk.py --photos 96 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet  # noqa: F401  # imported here: its first import (~1.5 s) is not throughput
from PIL import Image

from vllm_multimodal_embeddings import Content, EmbeddingClient
from vllm_multimodal_embeddings.bulk import JobOptions, directory_source, read_vectors, run_job


def make_photos(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        # Smooth gradients plus noise: JPEG sizes near a real photo's, unlike pure noise.
        h, w = size[1], size[0]
        base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3))
        pixels = np.clip(base + rng.normal(0, 20, (h, w, 3)) + i, 0, 255).astype(np.uint8)
        path = folder / f"photo{i:05d}.jpg"
        Image.fromarray(pixels, "RGB").save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    workers = [int(x) for x in args.workers.split(",")]
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "photos").mkdir()
        paths = make_photos(root / "photos", args.photos, (w, h))
        run = 0
        for _ in range(args.rounds):
            for n in workers:
                settings = {
                    "batch_size": args.batch_size,
                    "max_concurrency": args.concurrency,
                    "prepare_workers": n,
                }
                with EmbeddingClient(**settings) as client:
                    client.server_info()
                    out = root / f"out{run}"
                    run += 1
                    summary = run_job(
                        client, directory_source(root / "photos"), out, JobOptions(flush_rows=32)
                    )
                    assert len(read_vectors(out)[0]) == len(paths)
                    rates.setdefault(f"embed command, {n} worker(s)", []).append(
                        summary.items_per_s
                    )
                    start = time.perf_counter()
                    client.embed_array([Content(image=str(p)) for p in paths])
                    rates.setdefault(f"client.embed_array, {n} worker(s)", []).append(
                        len(paths) / (time.perf_counter() - start)
                    )
    print(
        f"{args.photos} photos {args.size}, batch {args.batch_size}, "
        f"{args.concurrency} in flight, median of {args.rounds} rounds"
    )
    print("| setup | photos/s |\n|---|---:|")
    for name in sorted(rates, key=lambda k: (k.split(",")[1], k)):
        print(f"| {name} | {statistics.median(rates[name]):.1f} |")


if __name__ == "__main__":
    main()
