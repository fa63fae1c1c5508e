"""LlamaIndex's hand-over size vs the streaming client, side by side, in interleaved rounds.

LlamaIndex cuts a batch into ``embed_batch_size`` inputs and calls the model once per slice, one
after another: each call fills the client's window and then drains it, and the server idles
through every drain. On an H100 (2026-12-06) 8192 short texts ran at 890/s through
``get_text_embedding_batch`` (256 per hand-over) against 1345/s through the client itself.

    VLLM_BASE_URL=... python benchmarks/llama_index_batch.py [--texts 4096] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from vllm_multimodal_embeddings import EmbeddingClient
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", default=os.environ.get("VLLM_BASE_URL"))
    p.add_argument("--texts", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sizes", default="256,1024,2048", help="embed_batch_size values")
    args = p.parse_args()
    texts = [
        f"item {i}: " + " ".join(f"word{(i * 7 + j) % 97}" for j in range(22))
        for i in range(args.texts)
    ]
    client = EmbeddingClient(base_url=args.base_url)
    runs: dict[str, Callable[[], Any]] = {"EmbeddingClient.embed": lambda: client.embed(texts)}
    for size in (int(x) for x in args.sizes.split(",")):
        emb = VLLMMultiModalEmbedding(base_url=args.base_url, embed_batch_size=size)
        runs[f"LlamaIndex embed_batch_size={size}"] = lambda emb=emb: emb.get_text_embedding_batch(
            texts
        )
    for fn in runs.values():  # warm: probes, pools, the tuner
        fn()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            out = fn()
            assert len(out) == len(texts)
            rates[name].append(len(texts) / (time.perf_counter() - t0))
    best = statistics.median(rates["EmbeddingClient.embed"])
    print(f"{args.texts} short texts, median of {args.rounds} interleaved rounds")
    print("| path | texts/s | vs client |\n|---|---:|---:|")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"| {name} | {med:.0f} | {med / best:.2f}x |")


if __name__ == "__main__":
    main()
