"""int8 vectors with the model's learned step: recall@10 against float search.

Qwen3-VL-Embedding was trained to survive int8 storage (Learned Step Size Quantization) and
QwenLM published the learned step: 0.2656 for 2B, 0.2891 for 8B (QwenLM/Qwen3-VL-Embedding
issue #40). ``embed_array(..., embedding_type="int8")`` returns ``clip(round(x / step), -128,
127)`` of the vector before L2 normalization, 4x smaller than float32. This recipe embeds one
corpus as float and as int8 and measures recall@10: the share of float search's top 10 that
int8 search (cosine of the codes) also returns, at the step and at multiples of it.

The step: the published one when the served model is Qwen3-VL-Embedding-2B or -8B; ``--scale``
to choose one. Any other checkpoint (the random-weight test model, a fine-tune) has no known
step: the client refuses int8 until one is given, and this recipe then calibrates one from a
sample (the largest magnitude seen, divided by 127), says so, and measures it like any other.

Environment:
    VLLM_BASE_URL         server root, e.g. http://localhost:8000 (required)
    VLLM_API_KEY          bearer token, when the server runs with --api-key (optional)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python cookbook/int8_recall.py --docs 500
"""

from __future__ import annotations

import argparse
import random
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from vllm_multimodal_embeddings import (
    ConfigurationError,
    EmbeddingClient,
    EmbedInput,
    VLLMEmbeddingError,
    int8_scale_for,
)

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
        ImageDraw.Draw(im).rectangle((x, x, x + 20, x + 20), fill=rng.choice(COLORS))
        docs.append(im)
    queries = [f"{rng.choice(COLORS)} {rng.choice(THINGS)}" for _ in range(25)]
    return docs, queries


def top_k(queries: npt.NDArray[Any], docs: npt.NDArray[Any], k: int) -> npt.NDArray[Any]:
    """Indices of each query's k nearest documents by cosine (ties keep document order)."""
    q = queries.astype(np.float32)
    d = docs.astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :k]


def recall(found: npt.NDArray[Any], truth: npt.NDArray[Any]) -> float:
    """Mean share of each truth row that the found row holds."""
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def calibrate(sample: list[EmbedInput]) -> float:
    """A step for a checkpoint with none: the largest raw magnitude in ``sample`` / 127.

    The raw vector is read through int8 itself: at a step of 1 the codes are the rounded raw
    values, unless they saturate, in which case the step doubles until nothing does.
    """
    probe = 1.0
    while True:
        with EmbeddingClient(int8_scale=probe) as c:
            codes = c.embed_array(sample, embedding_type="int8").astype(np.int32)
        peak = int(np.abs(codes).max())
        if peak < 127:
            return max(peak, 1) * probe / 127
        probe *= 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500, help="documents in the corpus")
    parser.add_argument("--images", type=int, default=20, help="how many documents are images")
    parser.add_argument("--scale", type=float, default=None, help="int8 step (default: model's)")
    parser.add_argument("--k", type=int, default=10, help="results per query")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.k <= args.docs:
        parser.error("need 0 < k <= docs")

    docs, queries = make_corpus(args.docs, min(args.images, args.docs), args.seed)
    with EmbeddingClient() as client:
        info = client.server_info()
        print(f"model {info.model}: {info.embedding_size} dims, protocol /v1/embeddings")
        doc_float = client.embed_array(docs)
        q_float = client.embed_array(queries, input_type="query")
        try:
            step = int8_scale_for(info.model, info.embedding_size, args.scale)
            origin = "--scale" if args.scale is not None else "published for this model"
        except ConfigurationError as exc:
            print(f"no published step: {exc}")
            step = calibrate(docs[:64])
            origin = "calibrated: max |raw| over 64 documents / 127"
    print(f"int8 step {step:.4f} ({origin})")

    truth = top_k(q_float, doc_float, args.k)
    n, dim = doc_float.shape
    print(f"\nstorage for {n} vectors of {dim} dims:")
    print(f"  float32  {doc_float.nbytes:>10,} bytes ({doc_float.nbytes // n} B/vector)")
    print(f"  int8     {n * dim:>10,} bytes ({dim} B/vector)")

    print(f"\nrecall@{args.k} of int8 search against float search, {len(queries)} queries:")
    print("  step      recall   saturated   zero")
    for factor in (0.25, 0.5, 1.0, 2.0, 4.0):
        s = step * factor
        with EmbeddingClient(int8_scale=s) as c:
            doc_q = c.embed_array(docs, embedding_type="int8")
            q_q = c.embed_array(queries, input_type="query", embedding_type="int8")
        saturated = float(np.mean((doc_q == 127) | (doc_q == -128)))
        zero = float(np.mean(doc_q == 0))
        mark = "  <- the step" if factor == 1.0 else ""
        r = recall(top_k(q_q, doc_q, args.k), truth)
        print(f"  {s:<8.4f}  {r:.3f}    {saturated:>7.2%}   {zero:>6.2%}{mark}")
    if "tiny" in info.model.lower():
        print("note: random-weight test model; the numbers show the method, not the model")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing VLLM_BASE_URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
