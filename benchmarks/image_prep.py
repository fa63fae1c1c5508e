"""Client-side image preparation cost: what the client spends before a request leaves.

Compares, in one run, a 12-megapixel photo (downscaled to the Qwen pixel budget), a 224x224 JPEG
and PNG sent byte-for-byte, and a PIL image (encoded as PNG). No server needed.

Run:
    python benchmarks/image_prep.py --repeat 7
    python benchmarks/image_prep.py --big-16bit   # peak RSS and time for an 88 MP 16-bit PNG

``--compare NAME=SRC ...`` times the same inputs through several checkouts of the package, side
by side in one run (each in its own child process per round, rounds interleaved): in-budget
640x480 and 1536x1152 JPEGs and a 640x480 PNG (sent as they are) and 12 MP camera photos
(downscaled), all camera-like content (``corpus.make_photos``). CPU ms per image, median::

    git archive a70de78 src | tar -x -C /tmp/before
    python benchmarks/image_prep.py --compare before=/tmp/before/src after=src --repeat 15

``--big-16bit`` prepares one 10880x8160 16-bit grayscale PNG (a smooth ramp, ~0.2 MB on disk)
in a fresh child process and reports its peak RSS above the baseline and the wall time. Point
``PYTHONPATH`` at another checkout's ``src`` to compare versions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vllm_multimodal_embeddings.inputs._read import prepare_image
from vllm_multimodal_embeddings.inputs._settings import ImageSettings


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


BIG_16BIT_SIZE = (10880, 8160)  # 88.8 MP, just under Pillow's warning limit


def big_16bit_png() -> Path:
    """The 88 MP 16-bit test PNG, made once and cached in the temp directory."""
    path = Path(tempfile.gettempdir()) / "vmme-bench-88mp-16bit.png"
    if not path.exists():
        width, height = BIG_16BIT_SIZE
        ramp = np.linspace(0, 65535, width, dtype=np.float32).astype(np.uint16)
        pixels = np.broadcast_to(ramp, (height, width))
        Image.fromarray(np.ascontiguousarray(pixels)).save(path, format="PNG")
    return path


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure_big_16bit_child(path: str) -> None:
    """Run in a child: prepare the big PNG once, print RSS growth and time."""
    data = Path(path).read_bytes()
    before = _peak_rss_mib()
    start = time.perf_counter()
    uri = prepare_image(data, index=0, options=ImageSettings())
    elapsed = time.perf_counter() - start
    print(
        f"88 MP 16-bit PNG ({len(data) / 1024:.0f} KiB): +{_peak_rss_mib() - before:.0f} MiB "
        f"peak RSS, {elapsed:.2f} s, data URI {len(uri):,} chars"
    )


COMPARE_CASES = {
    "640x480 JPEG (in budget)": ((640, 480), "JPEG"),
    "1536x1152 JPEG (in budget)": ((1536, 1152), "JPEG"),
    "640x480 PNG (in budget)": ((640, 480), "PNG"),
    "12 MP camera photo (downscaled)": ((4000, 3000), "JPEG"),
}


def compare_inputs(n: int) -> dict[str, list[bytes]]:
    """``n`` distinct camera-like images per case (cached JPEGs; PNGs made from them)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from corpus import make_photos

    out: dict[str, list[bytes]] = {}
    for name, (size, fmt) in COMPARE_CASES.items():
        paths = make_photos(n, size)
        if fmt == "JPEG":
            out[name] = [p.read_bytes() for p in paths]
        else:
            out[name] = [encoded(Image.open(p).convert("RGB"), "PNG") for p in paths]
    return out


def _default_image_options() -> Any:
    """The checkout's default image settings (``ImageOptions`` before the settings redesign)."""
    try:
        from vllm_multimodal_embeddings.inputs._settings import ImageSettings as Options  # type: ignore[attr-defined,no-redef]
    except ImportError:
        from vllm_multimodal_embeddings.inputs._read import ImageOptions as Options
    return Options()


def compare_child(repeat: int, n: int) -> None:
    """In a child (PYTHONPATH = one checkout's src): CPU ms per image for each case, as JSON."""
    inputs = compare_inputs(n)
    options = _default_image_options()
    result: dict[str, float] = {}
    for name, items in inputs.items():
        prepare_image(items[0], index=0, options=options)  # warm: imports, codec tables
        times = []
        for k in range(repeat):
            data = items[k % len(items)]
            start = time.process_time()
            prepare_image(data, index=0, options=options)
            times.append(time.process_time() - start)
        result[name] = statistics.median(times) * 1000
    print(json.dumps(result))


def compare(versions: list[str], repeat: int, rounds: int, n: int) -> None:
    named = [v.split("=", 1) for v in versions]
    compare_inputs(n)  # made once, before any timing
    ms: dict[str, dict[str, list[float]]] = {name: {} for name, _ in named}
    for _ in range(rounds):
        for name, src in named:  # interleaved: a busy neighbour hits every version alike
            env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
            out = subprocess.run(
                [sys.executable, __file__, "--compare-child", str(repeat), "--photos", str(n)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            for case, value in json.loads(out.splitlines()[-1]).items():
                ms[name].setdefault(case, []).append(value)
    width = max(map(len, COMPARE_CASES))
    heads = "".join(f"  {name:>10}" for name, _ in named)
    ratio = f"  {named[-1][0]}/{named[0][0]}" if len(named) > 1 else ""
    print(f"CPU ms per image, median of {rounds} rounds x {repeat} images, one thread")
    print(f"{'input':<{width}}{heads}{ratio}")
    for case in COMPARE_CASES:
        cells = [statistics.median(ms[name][case]) for name, _ in named]
        line = "".join(f"  {c:10.2f}" for c in cells)
        if len(named) > 1:
            line += f"  {cells[-1] / cells[0]:.2f}x"
        print(f"{case:<{width}}{line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--big-16bit", action="store_true", help="88 MP 16-bit PNG: RSS, time")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--compare", nargs="+", metavar="NAME=SRC", help="checkouts side by side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=4, help="distinct images per case")
    parser.add_argument("--compare-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compare_child:
        compare_child(args.compare_child, args.photos)
        return 0
    if args.compare:
        compare(args.compare, args.repeat, args.rounds, args.photos)
        return 0
    if args.child:
        measure_big_16bit_child(args.child)
        return 0
    if args.big_16bit:
        path = big_16bit_png()
        # A fresh process each run: peak RSS never goes down within one.
        for _ in range(args.repeat if args.repeat < 7 else 3):
            subprocess.run([sys.executable, __file__, "--child", str(path)], check=True)
        return 0
    options = ImageSettings()
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
