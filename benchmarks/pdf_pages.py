"""PDF pages: pages/s and peak memory through the package vs rendering + a hand-written client.

Writes a large PDF once (reportlab; text, a table-like grid and a shape on every page), then
runs each path in a fresh process and reports pages/s and peak RSS growth (``VmHWM`` minus the
RSS after imports):

- ``render``: the package's page preparation alone (render at the budget, PNG data URI), no server.
- ``render-handwritten``: pypdfium2's public ``page.render(scale=...)`` at the same pixel count,
  PNG, base64: what a script writes without the package, no server.
- ``client``: ``EmbeddingClient.iter_embed_images(pdf_pages(path))`` against the server.
- ``handwritten``: render 8 pages, post them as one batched ``/v1/embeddings`` request, repeat.

``--tokens`` prints, for common page shapes, the image tokens and pixels per point a page gets
from a fixed-DPI render (after the server fits it to the same budget) against the package's
budget-filling render.

Environment:
    VLLM_BASE_URL         server root (needed for the client and handwritten paths)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python benchmarks/pdf_pages.py --tokens
    python benchmarks/pdf_pages.py --pages 300 --paths render render-handwritten
    VLLM_BASE_URL=http://localhost:8000 python benchmarks/pdf_pages.py --pages 300 \\
        --max-pixels 200000 --paths client handwritten
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vllm_multimodal_embeddings._constants import DEFAULT_MAX_PIXELS, QWEN_DEFAULT_INSTRUCTION
from vllm_multimodal_embeddings.inputs._images import smart_resize

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vmme-bench-pdf"
PATHS = ("render", "render-handwritten", "client", "handwritten")
BATCH = 8


def make_pdf(pages: int) -> Path:
    """A letter-sized PDF of ``pages`` pages, written once and cached."""
    path = CACHE / f"pages-{pages}.pdf"
    if path.exists():
        return path
    from reportlab.pdfgen import canvas

    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    c = canvas.Canvas(str(tmp), pagesize=(612, 792))
    for n in range(1, pages + 1):
        c.setFont("Helvetica-Bold", 20)
        c.drawString(50, 740, f"Chapter {n}: results and discussion")
        c.setFont("Helvetica", 10)
        for line in range(40):
            c.drawString(50, 700 - 14 * line, f"Page {n}, line {line}: " + "lorem ipsum " * 7)
        for col in range(5):
            c.line(50 + 100 * col, 60, 50 + 100 * col, 120)
        c.circle(500, 90 + n % 20, 20, fill=1)
        c.showPage()
    c.save()
    tmp.rename(path)
    return path


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def handwritten_page_uri(doc: Any, index: int, max_pixels: int) -> str:
    """What a script does: pypdfium2's public render scaled to the pixel budget, PNG."""
    page = doc[index]
    width, height = page.get_size()
    scale = math.sqrt(max_pixels / (width * height))
    image = page.render(scale=scale).to_pil()
    page.close()
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def run_path(name: str, pdf: Path, max_pixels: int, base_url: str | None) -> dict[str, Any]:
    """One path in this process: pages, seconds, RSS after imports and at its peak."""
    import httpx
    import pypdfium2 as pdfium

    from vllm_multimodal_embeddings import EmbeddingClient
    from vllm_multimodal_embeddings.inputs._pdf import pdf_pages
    from vllm_multimodal_embeddings.inputs._read import prepare_image
    from vllm_multimodal_embeddings.inputs._settings import ImageSettings

    base = rss_kb("VmRSS")
    start = time.perf_counter()
    cpu_start = time.process_time()
    pages = 0
    if name == "render":
        options = ImageSettings(max_image_pixels=max_pixels)
        for page in pdf_pages(pdf):
            prepare_image(page, index=0, options=options)
            pages += 1
    elif name == "render-handwritten":
        doc = pdfium.PdfDocument(str(pdf))
        for i in range(len(doc)):
            handwritten_page_uri(doc, i, max_pixels)
            pages += 1
        doc.close()
    elif name == "client":
        with EmbeddingClient(base_url=base_url, max_image_pixels=max_pixels) as client:
            for _ in client.iter_embed_images(pdf_pages(pdf)):
                pages += 1
    elif name == "handwritten":
        assert base_url is not None
        model = (
            os.environ.get("VLLM_EMBEDDING_MODEL")
            or (httpx.get(f"{base_url}/v1/models", timeout=30).json()["data"][0]["id"])
        )
        doc = pdfium.PdfDocument(str(pdf))
        with httpx.Client(timeout=600) as http:
            for first in range(0, len(doc), BATCH):
                conversations = [
                    [
                        {"role": "system", "content": QWEN_DEFAULT_INSTRUCTION},
                        {
                            "role": "user",
                            "content": [
                                {
                                    "type": "image_url",
                                    "image_url": {"url": handwritten_page_uri(doc, i, max_pixels)},
                                }
                            ],
                        },
                        {"role": "assistant", "content": ""},
                    ]
                    for i in range(first, min(first + BATCH, len(doc)))
                ]
                resp = http.post(
                    f"{base_url}/v1/embeddings",
                    json={
                        "model": model,
                        "messages": conversations,
                        "continue_final_message": True,
                        "add_special_tokens": True,
                    },
                )
                resp.raise_for_status()
                pages += len(resp.json()["data"])
        doc.close()
    else:
        raise SystemExit(f"unknown path {name!r}")
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return {
        "cpu_ms_per_page": 1000 * cpu / max(pages, 1),
        "path": name,
        "pages": pages,
        "seconds": seconds,
        "pages_per_s": pages / seconds,
        "rss_base_mb": base / 1024,
        "peak_growth_mb": (rss_kb("VmHWM") - base) / 1024,
    }


def tokens_table(max_pixels: int) -> None:
    """Image tokens and pixels per point: fixed-DPI renders (fitted by the server) vs ours."""
    shapes = {
        "US letter 8.5x11 in": (612, 792),
        "A4 landscape": (842, 595),
        "slide 16:9 10x5.63 in": (720, 405),
        "receipt 3x30 in": (216, 2160),
        "banner 30x2 in": (2160, 144),
        "index card 5x3 in": (360, 216),
    }
    print(f"budget {max_pixels:,} pixels; a token is 32x32 pixels; px/pt = detail kept")
    print(f"{'page':24s} {'render':>11s} {'size sent':>11s} {'tokens':>7s} {'px/pt':>6s}")
    for name, (w, h) in shapes.items():
        for dpi in (72, 150, 300):
            rw, rh = round(w * dpi / 72), round(h * dpi / 72)
            # The server (and the official embedder) fit any image to the budget.
            sw, sh = smart_resize(rw, rh, max_pixels=max_pixels)
            print(
                f"{name:24s} {f'{dpi} DPI':>11s} {f'{sw}x{sh}':>11s} "
                f"{sw * sh // 1024:7d} {sw / w:6.2f}"
            )
        from vllm_multimodal_embeddings.inputs._pdf import page_size_for

        pw, ph = page_size_for(w, h, max_pixels)
        print(f"{name:24s} {'package':>11s} {f'{pw}x{ph}':>11s} {pw * ph // 1024:7d} {pw / w:6.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--tokens", action="store_true", help="print the token table and stop")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tokens:
        tokens_table(args.max_pixels)
        return 0
    base_url = os.environ.get("VLLM_BASE_URL")
    pdf = make_pdf(args.pages)
    if args.child:
        print(json.dumps(run_path(args.child, pdf, args.max_pixels, base_url)))
        return 0
    if {"client", "handwritten"} & set(args.paths) and not base_url:
        print("error: set VLLM_BASE_URL for the client and handwritten paths", file=sys.stderr)
        return 1
    print(f"{args.pages} pages ({pdf.stat().st_size / 1e6:.1f} MB), budget {args.max_pixels:,} px")
    # On a shared machine wall time swings with the neighbours; client CPU per page does not.
    print(
        f"{'path':20s} {'pages/s':>8s} {'seconds':>8s} {'CPU ms/page':>12s} "
        f"{'peak RSS growth':>16s}"
    )
    for name in args.paths:
        # A fresh process per path: the peak RSS is that path's alone.
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--pages",
                str(args.pages),
                "--max-pixels",
                str(args.max_pixels),
                "--child",
                name,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{name:20s} {r['pages_per_s']:8.2f} {r['seconds']:8.1f} "
            f"{r['cpu_ms_per_page']:12.0f} {r['peak_growth_mb']:13.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
