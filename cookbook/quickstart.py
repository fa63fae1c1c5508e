"""Quickstart: embed texts, images and text+image pairs, then compare them.

Shows every input form the client takes (a text, an image file, a ``file://`` URI, a ``data:``
URI, optionally an ``http(s)`` URL, and a ``Content(text=..., image=...)`` pair), queries vs
documents, and a cosine-similarity table.

Environment:
    VLLM_BASE_URL         server root, e.g. http://localhost:8000 (required)
    VLLM_API_KEY          bearer token, when the server runs with --api-key (optional)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python cookbook/quickstart.py
    python cookbook/quickstart.py --image-url https://example.com/cat.jpg  # server fetches it
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

import numpy as np

from vllm_multimodal_embeddings import Content, EmbeddingClient, EmbedInput, VLLMEmbeddingError

ASSETS = Path(__file__).parent / "assets"


def warn_if_random_weights(model: str) -> None:
    """The CI test checkpoint has random weights: its similarities mean nothing."""
    if "tiny" in model.lower():
        bar = "!" * 78
        print(
            f"{bar}\n!! WARNING: model {model!r} is the random-weight test checkpoint.\n"
            "!! Its vectors are deterministic but meaningless: this run only shows the\n"
            "!! plumbing. Point VLLM_BASE_URL at a Qwen3-VL-Embedding server for real\n"
            f"!! similarities.\n{bar}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image-url",
        help="an http(s) image URL for the server to fetch (the server needs internet access)",
    )
    args = parser.parse_args()

    circle = ASSETS / "red_circle.png"
    square = ASSETS / "blue_square.png"
    triangle = ASSETS / "green_triangle.png"
    # A data: URI carries the bytes inline; a file:// URI is read here, on the client.
    square_data_uri = "data:image/png;base64," + base64.b64encode(square.read_bytes()).decode()

    # Each entry: (label, input). A plain str is text; images go through Content(image=...),
    # or as a Path / bytes / PIL image directly.
    documents: list[tuple[str, EmbedInput]] = [
        ("text: red circle", "A red circle on a white background."),
        ("image: path", circle),
        ("image: file:// URI", Content(image=triangle.resolve().as_uri())),
        ("image: data: URI", Content(image=square_data_uri)),
        ("text+image pair", Content(text="A green triangle pointing up.", image=triangle)),
    ]
    if args.image_url:
        # http(s) URLs are passed through and fetched by the server (not by this process);
        # EmbeddingClient(fetch_remote_images=True) fetches them here instead.
        documents.append(("image: http(s) URL", Content(image=args.image_url)))
    queries = ["a red circle", "a blue square", "green triangle"]

    with EmbeddingClient() as client:
        info = client.server_info()
        print(f"server: vLLM {info.version}, model {info.model}, {info.embedding_size} dims")
        warn_if_random_weights(info.model)

        # Documents and queries get different instructions (Qwen3-VL-Embedding is asymmetric).
        doc_vecs = np.array(client.embed([item for _, item in documents], input_type="document"))
        query_vecs = np.array(client.embed(queries, input_type="query"))
        # The same image given as a path and as a file:// URI is the same bytes: same vector.
        same = np.array(client.embed([triangle, Content(image=triangle.resolve().as_uri())]))

    print(f"\nembedded {len(documents)} documents and {len(queries)} queries")
    print(f"vector norms: {np.round(np.linalg.norm(doc_vecs, axis=1), 4).tolist()}")

    # Vectors come back L2-normalized, so a dot product is the cosine similarity.
    sims = query_vecs @ doc_vecs.T
    print("\ncosine similarity (rows: queries, columns: documents)")
    header = "".join(f"{'d' + str(j):>8}" for j in range(len(documents)))
    print(f"{'':<16}{header}")
    for q, row in zip(queries, sims, strict=True):
        print(f"{q:<16}" + "".join(f"{s:>8.3f}" for s in row))
    print()
    for j, (label, _) in enumerate(documents):
        print(f"  d{j} = {label}")
    print(f"\npath vs file:// URI of one image: cosine {float(same[0] @ same[1]):.4f}")
    print("done")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing VLLM_BASE_URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
