"""Matryoshka dimensions: storage cost vs retrieval agreement, as a PNG plot.

Qwen3-VL-Embedding is trained so that the first ``d`` numbers of a vector (re-normalized) are
themselves a usable embedding. This recipe embeds one corpus (texts + images) at several sizes,
with the server's ``dimensions=`` option, and measures how far search results at each size agree
with full-size search: the overlap of the top-k lists and the rank correlation (Spearman) of the
whole ranking. Storage is float32: 4 bytes per dimension per vector.

The sizes come from ``server_info().embedding_size``: powers of two from D/32 (at least 8) up to
D, i.e. 8..128 on the 128-dim test model and 64..2048 on Qwen3-VL-Embedding-2B.
The server must run with ``--hf-overrides '{"is_matryoshka": true}'``.

Environment:
    VLLM_BASE_URL         server root, e.g. http://localhost:8000 (required)
    VLLM_API_KEY          bearer token, when the server runs with --api-key (optional)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python cookbook/matryoshka.py --out matryoshka.png
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed: we only write a file

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from vllm_multimodal_embeddings import EmbeddingClient, EmbedInput, VLLMEmbeddingError

COLORS = ["red", "blue", "green", "orange", "purple", "black", "teal", "gold"]
SHAPES = ["circle", "square", "triangle", "ring"]
THINGS = ["bicycle", "harbor", "violin", "glacier", "teapot", "lantern", "orchard", "comet"]
PLACES = ["in the rain", "at dawn", "on a desk", "under snow", "in a museum", "at night"]


def make_image(rng: random.Random) -> Image.Image:
    """A small random scene of flat shapes (no downloads)."""
    im = Image.new("RGB", (96, 96), rng.choice(["white", "lightgray", "beige", "lightblue"]))
    d = ImageDraw.Draw(im)
    for _ in range(rng.randint(1, 3)):
        x, y = rng.randint(0, 60), rng.randint(0, 60)
        s = rng.randint(16, 36)
        color = rng.choice(COLORS)
        shape = rng.choice(SHAPES)
        if shape == "circle":
            d.ellipse((x, y, x + s, y + s), fill=color)
        elif shape == "square":
            d.rectangle((x, y, x + s, y + s), fill=color)
        elif shape == "triangle":
            d.polygon([(x + s // 2, y), (x + s, y + s), (x, y + s)], fill=color)
        else:
            d.ellipse((x, y, x + s, y + s), outline=color, width=4)
    return im


def build_corpus(n_texts: int, n_images: int, seed: int) -> tuple[list[EmbedInput], list[str]]:
    """Documents (texts then images) and text queries, reproducible from ``seed``."""
    rng = random.Random(seed)
    texts: list[EmbedInput] = [
        f"A {rng.choice(COLORS)} {rng.choice(THINGS)} {rng.choice(PLACES)}." for _ in range(n_texts)
    ]
    images: list[EmbedInput] = [make_image(rng) for _ in range(n_images)]
    queries = [f"{rng.choice(COLORS)} {rng.choice(SHAPES + THINGS)}" for _ in range(20)]
    return texts + images, queries


def dimension_ladder(full: int) -> list[int]:
    """Powers of two from full/32 (at least 8) up to ``full``, plus ``full`` itself."""
    d = 8
    while d < full // 32:
        d *= 2
    dims = []
    while d < full:
        dims.append(d)
        d *= 2
    return [*dims, full]


def ranks(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Rank of each entry along the last axis (0 = lowest); ties are vanishingly rare here."""
    return np.argsort(np.argsort(scores, axis=-1), axis=-1).astype(np.float64)


def agreement(
    full: npt.NDArray[np.float64], small: npt.NDArray[np.float64], k: int
) -> tuple[float, float]:
    """Mean top-k overlap and mean Spearman correlation of ``small`` vs ``full`` scores."""
    top_full = np.argsort(-full, axis=1)[:, :k]
    top_small = np.argsort(-small, axis=1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_full, top_small, strict=True)])
    rf, rs = ranks(full), ranks(small)
    rf -= rf.mean(axis=1, keepdims=True)
    rs -= rs.mean(axis=1, keepdims=True)
    rho = (rf * rs).sum(axis=1) / np.sqrt((rf**2).sum(axis=1) * (rs**2).sum(axis=1))
    return float(overlap), float(rho.mean())


def plot(
    rows: list[tuple[int, int, float, float]], *, k: int, model: str, n_docs: int, out: Path
) -> None:
    """Agreement vs bytes per vector, each point labelled with its dimension."""
    dims = [r[0] for r in rows]
    nbytes = [r[1] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    ax.plot(nbytes, [r[2] for r in rows], "o-", label=f"top-{k} overlap with full size")
    ax.plot(nbytes, [r[3] for r in rows], "s--", label="Spearman rank correlation")
    for d, b, overlap in zip(dims, nbytes, (r[2] for r in rows), strict=True):
        ax.annotate(f"{d}d", (b, overlap), textcoords="offset points", xytext=(0, 8), ha="center")
    ax.set_xscale("log", base=2)
    ax.set_xticks(nbytes, [f"{b:,} B" for b in nbytes])
    ax.set_ylim(min(0.0, *(r[3] for r in rows)) - 0.05, 1.12)
    ax.set_xlabel("storage per vector (float32 bytes; label = dimensions)")
    ax.set_ylabel("agreement with full-dimension search")
    title = f"Matryoshka truncation: {model}\n{n_docs} documents (texts + images), 20 text queries"
    if "tiny" in model.lower():
        title += "\n(random-weight test model: numbers show the plumbing, not quality)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("matryoshka.png"), help="PNG to write")
    parser.add_argument("--texts", type=int, default=120, help="text documents")
    parser.add_argument("--images", type=int, default=40, help="image documents")
    parser.add_argument("--k", type=int, default=10, help="top-k for the overlap metric")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    docs, queries = build_corpus(args.texts, args.images, args.seed)
    with EmbeddingClient() as client:
        info = client.server_info()
        if not info.matryoshka:
            print(
                f"error: model {info.model} does not accept `dimensions`; start vLLM with "
                """--hf-overrides '{"is_matryoshka": true}'""",
                file=sys.stderr,
            )
            return 1
        dims = dimension_ladder(info.embedding_size)
        print(f"model {info.model}: {info.embedding_size} dims; trying {dims}")
        full_docs = client.embed_array(docs)
        full_queries = client.embed_array(queries, input_type="query")
        full_scores = (full_queries @ full_docs.T).astype(np.float64)

        rows: list[tuple[int, int, float, float]] = []
        print(f"\n{'dims':>6} {'bytes/vec':>10} {f'top-{args.k} overlap':>15} {'spearman':>9}")
        for d in dims:
            # The server truncates and re-normalizes: one request per size, no local math.
            small_docs = client.embed_array(docs, dimensions=d)
            small_queries = client.embed_array(queries, input_type="query", dimensions=d)
            overlap, rho = agreement(full_scores, small_queries @ small_docs.T, args.k)
            rows.append((d, d * 4, overlap, rho))
            print(f"{d:>6} {d * 4:>10,} {overlap:>15.3f} {rho:>9.3f}")

        # The same thing done here: keep the first d numbers, re-normalize. It matches the
        # server, so you can store full vectors once and shorten them later without re-embedding.
        d = dims[0]
        local = full_docs[:, :d] / np.linalg.norm(full_docs[:, :d], axis=1, keepdims=True)
        served = client.embed_array(docs, dimensions=d)
        print(
            f"\nlocal truncation vs server dimensions={d}: max |diff| "
            f"{float(np.abs(local - served).max()):.2e}"
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, k=args.k, model=info.model, n_docs=len(docs), out=args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing VLLM_BASE_URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
