"""The client's own CPU per input, with the server taken out of the picture.

An in-process stand-in answers ``/v1/embeddings`` at once with canned base64 vectors of the
2B model's size (2048), through ``httpx.MockTransport``: what is left is the client's work
(preparing, request JSON, decoding, checks, list conversion) and the stand-in's (the same for
every strategy). A GPU server answers short texts faster than a GIL-bound client prepares them
(issue 20: 2718 texts/s hand-written vs 1345/s through the package on an H100), so this number
is the package's limit there. Not a test of behaviour: the live suite runs a real server.

    python benchmarks/client_overhead.py [--texts 4096] [--dims 2048] [--repeat 5]
    python benchmarks/client_overhead.py --only LangChain,LlamaIndex   # rows whose name has one
    python benchmarks/client_overhead.py --images 2048    # 224x224 JPEG files instead (+ async)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from vllm_multimodal_embeddings import AsyncEmbeddingClient, EmbeddingClient


def stand_in(dims: int) -> Callable[[httpx.Request], httpx.Response]:
    rng = np.random.default_rng(0)
    pool = rng.random((256, dims)).astype("<f4")
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    encoded = [base64.b64encode(v.tobytes()).decode() for v in pool]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            model = {"id": "m", "object": "model", "max_model_len": 8192}
            return httpx.Response(200, json={"object": "list", "data": [model]})
        if request.url.path != "/v1/embeddings":
            return httpx.Response(404, json={"error": "not here"})
        body = json.loads(request.content)
        if "messages" in body:
            n = len(body["messages"]) if isinstance(body["messages"][0], list) else 1
        else:
            n = len(body["input"]) if isinstance(body.get("input"), list) else 1
        data = [
            {"index": i, "object": "embedding", "embedding": encoded[i % 256]} for i in range(n)
        ]
        usage = {"prompt_tokens": n, "total_tokens": n}
        return httpx.Response(
            200, json={"object": "list", "model": "m", "data": data, "usage": usage}
        )

    return handler


def hand_written_run(
    handler: Callable[[httpx.Request], httpx.Response],
    items: list[str],
    to_part: Callable[[str], dict[str, Any]],
    batch: int,
    inflight: int,
) -> list[np.ndarray]:
    """What a user writes: batched conversations, base64 vectors, numpy out."""
    http = httpx.Client(transport=httpx.MockTransport(handler))

    def one(chunk: list[str]) -> list[np.ndarray]:
        body = {
            "model": "m",
            "messages": [[{"role": "user", "content": [to_part(x)]}] for x in chunk],
            "encoding_format": "base64",
        }
        got = http.post("http://stand-in:8000/v1/embeddings", json=body).json()["data"]
        return [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in got]

    chunks = [items[i : i + batch] for i in range(0, len(items), batch)]
    with ThreadPoolExecutor(inflight) as pool:
        return [v for vs in pool.map(one, chunks) for v in vs]


def measure(fn: Callable[[], Any], n: int, repeat: int) -> tuple[float, float]:
    """Best of ``repeat``: CPU microseconds per input and inputs per second."""
    cpu, rate = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append((time.process_time() - c0) / n * 1e6)
        rate.append(n / (time.perf_counter() - t0))
    return min(cpu), max(rate)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--texts", type=int, default=4096)
    p.add_argument("--dims", type=int, default=2048)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--images", type=int, default=0, help="224x224 JPEG files instead of texts")
    p.add_argument("--only", default="", help="comma-separated words: rows naming one of them")
    args = p.parse_args()
    if args.images:
        images_main(args)
        return
    handler = stand_in(args.dims)
    texts = [
        f"item {i}: " + " ".join(f"word{(i * 7 + j) % 97}" for j in range(22))
        for i in range(args.texts)
    ]

    def package(method: str, **settings: Any) -> Callable[[], Any]:
        def run() -> Any:
            http = httpx.Client(transport=httpx.MockTransport(handler))
            with EmbeddingClient(
                base_url="http://stand-in:8000", model="m", http_client=http, **settings
            ) as client:
                return getattr(client, method)(texts)

        return run

    def hand_written() -> Any:
        return hand_written_run(handler, texts, lambda t: {"type": "text", "text": t}, 128, 8)

    def langchain() -> Any:
        from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings

        http = httpx.Client(transport=httpx.MockTransport(handler))
        with VLLMMultimodalEmbeddings(
            base_url="http://stand-in:8000", model="m", http_client=http
        ) as emb:
            return emb.embed_documents(texts)

    def llama_index() -> Any:
        from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding

        http = httpx.Client(transport=httpx.MockTransport(handler))
        with VLLMMultiModalEmbedding(
            base_url="http://stand-in:8000", model_name="m", http_client=http
        ) as emb:
            return emb.get_text_embedding_batch(texts)

    rows = [
        ("hand-written (128 per request, 8 in flight)", hand_written),
        ("EmbeddingClient.embed_array, defaults", package("embed_array")),
        ("LangChain embed_documents, defaults", langchain),
        ("LlamaIndex get_text_embedding_batch, defaults", llama_index),
        (
            "EmbeddingClient.embed_array, 128 x 8",
            package("embed_array", batch_size=128, max_concurrency=8),
        ),
        ("EmbeddingClient.embed (lists), defaults", package("embed")),
        (
            "EmbeddingClient.embed (lists), 128 x 8",
            package("embed", batch_size=128, max_concurrency=8),
        ),
    ]
    if args.only:
        words = args.only.split(",")
        rows = [row for row in rows if any(w in row[0] for w in words)]
    print(f"{args.texts} short texts, {args.dims}-dim vectors, best of {args.repeat}")
    print("| strategy | client CPU us/text | texts/s |\n|---|---:|---:|")
    for name, fn in rows:
        fn()  # warm: imports, pools, the probe
        cpu, rate = measure(fn, len(texts), args.repeat)
        print(f"| {name} | {cpu:.0f} | {rate:.0f} |", flush=True)


def images_main(args: argparse.Namespace) -> None:
    """224x224 JPEG files (sent as they are): the client's CPU per image vs a hand-written one."""
    from PIL import Image

    handler = stand_in(args.dims)
    rng = np.random.default_rng(0)
    folder = tempfile.mkdtemp(prefix="overhead-")
    paths = []
    for i in range(args.images):
        pixels = rng.integers(0, 40, (224, 224, 3)) + np.linspace(0, 200, 224)[None, :, None]
        paths.append(f"{folder}/{i}.jpg")
        Image.fromarray(pixels.astype(np.uint8)).save(paths[-1], quality=90)

    def part(path: str) -> dict[str, Any]:
        with open(path, "rb") as f:
            uri = "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()
        return {"type": "image_url", "image_url": {"url": uri}}

    def hand_written() -> Any:
        return hand_written_run(handler, paths, part, 64, 8)

    def package(**settings: Any) -> Callable[[], Any]:
        def run() -> Any:
            http = httpx.Client(transport=httpx.MockTransport(handler))
            with (
                EmbeddingClient(
                    base_url="http://stand-in:8000", model="m", http_client=http, **settings
                ) as client,
                client.iter_embed_images(paths) as stream,
            ):
                return list(stream)

        return run

    def package_async(**settings: Any) -> Callable[[], Any]:
        async def go() -> Any:
            http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
            async with AsyncEmbeddingClient(
                base_url="http://stand-in:8000", model="m", http_client=http, **settings
            ) as client:
                return await client.embed_images(paths)

        return lambda: asyncio.run(go())

    rows = [
        ("hand-written (64 per request, 8 in flight)", hand_written),
        ("EmbeddingClient.iter_embed_images, defaults", package()),
        ("EmbeddingClient.iter_embed_images, 64 x 8", package(batch_size=64, max_concurrency=8)),
        ("AsyncEmbeddingClient.embed_images, defaults", package_async()),
    ]
    print(f"{args.images} 224x224 JPEG files, {args.dims}-dim vectors, best of {args.repeat}")
    print("| strategy | client CPU us/image | images/s |\n|---|---:|---:|")
    for name, fn in rows:
        fn()
        cpu, rate = measure(fn, len(paths), args.repeat)
        print(f"| {name} | {cpu:.0f} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
