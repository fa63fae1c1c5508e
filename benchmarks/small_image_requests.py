"""Big requests of small images, package vs hand-written, against a real HTTP stand-in server.

On an H200 (issue #36) the package at 256 224 px JPEGs per request x 16 in flight reached
215/240 images/s where a hand-written client reached 316/415 at the same setting (at 128 x 16
they matched). The GPU is not the difference, so this runs both clients at fixed settings
against a stand-in for vLLM's front end: uvicorn + FastAPI (the stack vLLM serves with), which
reads the whole body, parses the JSON and answers canned base64 vectors. It reports, per
strategy, images/s, the client's CPU per image and the server's CPU per image (read from
/proc), since a GPU server with 8 API processes is bound by the front end's CPU as much as by
the model.

    python benchmarks/small_image_requests.py [--images 2048] [--settings 256x16,128x16]

The stand-in runs in the server's virtual environment (uvicorn and fastapi), started by this
script with ``--serve PORT`` under ``--server-python`` (default: the test server's venv).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_API_SERVERS = 8
_SERVER_PYTHON = Path.home() / ".cache/vllm-multimodal-embeddings/server-venv/bin/python"


def serve(port: int, dims: int, rate: float) -> None:
    """The stand-in: /v1/models, and /v1/embeddings answering one vector per conversation
    after the time a GPU server's front end takes: ``rate`` inputs a second in all, spread
    over 8 API processes that each take one request at a time (``--api-server-count 8``:
    a request's images are prepared by one of them), so a request alone gets 1/8 of it."""
    import asyncio
    import random

    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response

    rng = random.Random(0)

    def unit() -> bytes:
        values = [rng.gauss(0.0, 1.0) for _ in range(dims)]
        norm = sum(v * v for v in values) ** 0.5
        return struct.pack(f"<{dims}f", *(v / norm for v in values))

    vectors = [base64.b64encode(unit()).decode() for _ in range(16)]
    floats = [1.0 / dims**0.5] * dims
    app = FastAPI()
    api_servers = asyncio.Semaphore(_API_SERVERS)

    async def models(request: Any) -> Response:
        model = {"id": "m", "object": "model", "max_model_len": 8192}
        return JSONResponse({"object": "list", "data": [model]})

    # Plain routes: FastAPI cannot resolve this module's postponed annotations in a closure.
    async def embeddings(request: Any) -> Response:
        body = json.loads(await request.body())
        if "dimensions" in body:  # the client's probe: no Matryoshka here
            return JSONResponse({"error": {"message": "no matryoshka"}}, status_code=400)
        if "messages" in body:
            n = len(body["messages"]) if isinstance(body["messages"][0], list) else 1
        else:
            n = len(body["input"]) if isinstance(body["input"], list) else 1
        if rate:
            async with api_servers:
                await asyncio.sleep(n * _API_SERVERS / rate)
        as_float = body.get("encoding_format", "float") == "float"
        data = [
            {"index": i, "object": "embedding", "embedding": floats if as_float else vec}
            for i, vec in zip(range(n), itertools.cycle(vectors))
        ]
        out = {"object": "list", "model": "m", "data": data, "usage": {"prompt_tokens": n}}
        return Response(json.dumps(out), media_type="application/json")

    async def health(request: Any) -> Response:
        return Response()

    app.add_route("/health", health, methods=["GET"])
    app.add_route("/v1/models", models, methods=["GET"])
    app.add_route("/v1/embeddings", embeddings, methods=["POST"])

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_images(n: int) -> list[str]:
    """``n`` 224x224 JPEG files made as the GPU bench makes them (~9 KB each)."""
    sys.path.insert(0, str(Path(__file__).parent / "gpu"))
    from bench import _jpeg, camera_like

    folder = tempfile.mkdtemp(prefix="small-images-")
    paths = []
    for i in range(n):
        paths.append(f"{folder}/{i}.jpg")
        Path(paths[-1]).write_bytes(_jpeg(camera_like(i, 224, 224), 90))
    return paths


def hand_written(base_url: str, paths: list[str], batch: int, inflight: int) -> int:
    """What a user writes: files read and base64-encoded, httpx's json=, threads, vectors
    decoded from base64."""
    import httpx
    import numpy as np

    http = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=inflight))

    def part(path: str) -> dict[str, Any]:
        with open(path, "rb") as f:
            uri = "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()
        return {"type": "image_url", "image_url": {"url": uri}}

    def one(chunk: list[str]) -> int:
        body = {
            "model": "m",
            "messages": [[{"role": "user", "content": [part(p)]}] for p in chunk],
            "encoding_format": "base64",
        }
        resp = http.post(f"{base_url}/v1/embeddings", json=body)
        resp.raise_for_status()
        # The vectors, as any caller needs them (the package decodes every one too).
        data = sorted(resp.json()["data"], key=lambda d: d["index"])
        vectors = [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in data]
        return len(vectors)

    chunks = [paths[i : i + batch] for i in range(0, len(paths), batch)]
    with ThreadPoolExecutor(inflight) as pool:
        done = sum(pool.map(one, chunks))
    http.close()
    return done


#: What the tuner chose in the last package run with its defaults (printed below the table).
TUNED: list[str] = []


def package(base_url: str, paths: list[str], batch: int | None, inflight: int | None) -> int:
    from vllm_multimodal_embeddings import EmbeddingClient

    with EmbeddingClient(
        base_url=base_url, model="m", batch_size=batch, max_concurrency=inflight
    ) as client:
        done = len(list(client.iter_embed_images(paths)))
        if batch is None:
            st = client.stats
            TUNED.append(f"{st.batch_size} x {st.max_concurrency}: {st.reason}")
        return done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--dims", type=int, default=2048)
    p.add_argument("--settings", default="256x16,128x16")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--defaults", action="store_true", help="also the package's self-tuning")
    p.add_argument("--port", type=int, default=18231)
    p.add_argument(
        "--server-rate",
        type=float,
        default=1000.0,
        help="inputs/s the stand-in's 8 API processes take in all (0: no time)",
    )
    p.add_argument("--server-python", default=str(_SERVER_PYTHON))
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.dims, args.server_rate)
        return
    server = subprocess.Popen(
        [
            *(args.server_python, __file__, "--serve", str(args.port), "--dims", str(args.dims)),
            *("--server-rate", str(args.server_rate)),
        ]
    )
    base_url = f"http://127.0.0.1:{args.port}"
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"{base_url}/v1/models").raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        paths = make_images(args.images)
        runs: dict[str, Callable[[], int]] = {}
        if args.defaults:
            runs["package defaults (self-tuning)"] = lambda: package(base_url, paths, None, None)
        for setting in args.settings.split(","):
            batch, inflight = (int(x) for x in setting.split("x"))
            runs[f"hand-written {setting}"] = lambda b=batch, c=inflight: hand_written(
                base_url, paths, b, c
            )
            runs[f"package {setting}"] = lambda b=batch, c=inflight: package(base_url, paths, b, c)
        rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
        for _ in range(args.rounds):  # interleaved: the machine's load hits every strategy
            for name, fn in runs.items():
                c0, s0, t0 = time.process_time(), _cpu_seconds(server.pid), time.perf_counter()
                assert fn() == len(paths)
                wall = time.perf_counter() - t0
                client_cpu = (time.process_time() - c0) / len(paths) * 1e6
                server_cpu = (_cpu_seconds(server.pid) - s0) / len(paths) * 1e6
                rows[name].append((len(paths) / wall, client_cpu, server_cpu))
        print(
            f"{args.images} 224x224 JPEG files, {args.dims}-dim vectors, stand-in model "
            f"{args.server_rate:.0f}/s, best of {args.rounds} interleaved rounds"
        )
        print("| strategy | images/s | client CPU us/image | server CPU us/image |")
        print("|---|---:|---:|---:|")
        for name, got in rows.items():
            rate = max(r[0] for r in got)
            client_cpu = min(r[1] for r in got)
            server_cpu = min(r[2] for r in got)
            print(f"| {name} | {rate:.0f} | {client_cpu:.0f} | {server_cpu:.0f} |", flush=True)
        for line in TUNED:
            print(f"tuned to {line}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
