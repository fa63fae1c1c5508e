"""Compact vectors: a 1-bit Hamming first pass, then float re-scoring of the top candidates.

``/v2/embed`` (``EmbeddingClient(protocol="cohere")``) can return ``ubinary`` embeddings: the sign
bit of each dimension, packed eight per byte, 32x smaller than float32. Searching them with
Hamming distance (XOR + popcount) is cheap; re-scoring only the best candidates with the float
vectors recovers most of the float-only ranking. This recipe prints the storage sizes and how well
"binary first pass + float re-score" agrees with float-only search.

Environment:
    VLLM_BASE_URL         server root, e.g. http://localhost:8000 (required)
    VLLM_API_KEY          bearer token, when the server runs with --api-key (optional)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python cookbook/compact_vectors.py --docs 500 --candidates 50
"""

from __future__ import annotations

import argparse
import random
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from vllm_multimodal_embeddings import EmbeddingClient, EmbedInput, VLLMEmbeddingError

COLORS = ["red", "blue", "green", "orange", "purple", "black", "teal", "gold"]
THINGS = ["bicycle", "harbor", "violin", "glacier", "teapot", "lantern", "orchard", "comet"]
PLACES = ["in the rain", "at dawn", "on a desk", "under snow", "in a museum", "at night"]


def make_corpus(n_docs: int, n_images: int, seed: int) -> tuple[list[EmbedInput], list[str]]:
    """Generated text documents plus a few flat-colour images, and text queries."""
    rng = random.Random(seed)
    docs: list[EmbedInput] = [
        f"Note {i}: a {rng.choice(COLORS)} {rng.choice(THINGS)} {rng.choice(PLACES)}."
        for i in range(n_docs - n_images)
    ]
    for _ in range(n_images):
        im = Image.new("RGB", (64, 64), rng.choice(COLORS))
        x = rng.randint(0, 40)
        ImageDraw.Draw(im).ellipse((x, x, x + 24, x + 24), fill=rng.choice(COLORS))
        docs.append(im)
    queries = [f"{rng.choice(COLORS)} {rng.choice(THINGS)}" for _ in range(25)]
    return docs, queries


def hamming(queries: npt.NDArray[np.uint8], docs: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
    """Hamming distances between packed bit vectors, shape (queries, docs)."""
    xor = queries[:, None, :] ^ docs[None, :, :]
    # np.bitwise_count (NumPy >= 2) is a popcount; unpackbits works everywhere.
    if hasattr(np, "bitwise_count"):
        counts: npt.NDArray[Any] = np.bitwise_count(xor)
    else:
        counts = np.unpackbits(xor, axis=-1)
    distances: npt.NDArray[Any] = counts.sum(axis=-1, dtype=np.int64)
    return distances


def top_k_overlap(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Mean share of items two top-k lists (one row per query) have in common."""
    k = a.shape[1]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500, help="documents in the corpus")
    parser.add_argument("--images", type=int, default=20, help="how many documents are images")
    parser.add_argument("--candidates", type=int, default=50, help="first-pass shortlist size")
    parser.add_argument("--k", type=int, default=10, help="results per query")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.k <= args.candidates <= args.docs:
        parser.error("need 0 < k <= candidates <= docs")

    docs, queries = make_corpus(args.docs, min(args.images, args.docs), args.seed)
    with EmbeddingClient(protocol="cohere") as client:
        info = client.server_info()
        print(f"model {info.model}: {info.embedding_size} dims, protocol /v2/embed")
        # In a real system: store doc_bits in the fast index, doc_float on cheaper storage.
        doc_bits = client.embed_array(docs, embedding_type="ubinary")
        doc_float = client.embed_array(docs)
        q_bits = client.embed_array(queries, input_type="query", embedding_type="ubinary")
        q_float = client.embed_array(queries, input_type="query")

    # The bits are the signs of the float vector, most significant bit first.
    signs = np.unpackbits(doc_bits, axis=1)[:, : doc_float.shape[1]] == 1
    print(f"ubinary bits equal float signs: {float(np.mean(signs == (doc_float > 0))):.2%}")

    n, dim = doc_float.shape
    print(f"\nstorage for {n} vectors of {dim} dims:")
    print(f"  float32  {doc_float.nbytes:>10,} bytes ({doc_float.nbytes // n} B/vector)")
    print(f"  ubinary  {doc_bits.nbytes:>10,} bytes ({doc_bits.nbytes // n} B/vector)")
    print(f"  ratio    {doc_float.nbytes / doc_bits.nbytes:>10.0f}x")

    k, c = args.k, args.candidates
    float_top = np.argsort(-(q_float @ doc_float.T), axis=1)[:, :k]
    dist = hamming(q_bits, doc_bits)
    # stable sort: equal Hamming distances keep document order, so results are reproducible.
    shortlist = np.argsort(dist, axis=1, kind="stable")[:, :c]
    binary_top = shortlist[:, :k]
    rescored = np.einsum("qd,qcd->qc", q_float, doc_float[shortlist])
    rescored_top = np.take_along_axis(shortlist, np.argsort(-rescored, axis=1)[:, :k], axis=1)
    recall = np.mean([len(set(f) & set(s)) / k for f, s in zip(float_top, shortlist, strict=True)])

    print(f"\nagreement with float-only top-{k} over {len(queries)} queries:")
    print(f"  binary only (Hamming top-{k})             {top_k_overlap(binary_top, float_top):.3f}")
    print(f"  float top-{k} found in the {c}-shortlist   {recall:.3f}")
    print(
        f"  binary shortlist + float re-score        {top_k_overlap(rescored_top, float_top):.3f}"
    )
    print(f"  float re-scoring touched {c}/{n} float vectors per query ({c / n:.0%})")
    if "tiny" in info.model.lower():
        print("note: random-weight test model; the agreement shows the method, not the model")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing VLLM_BASE_URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
