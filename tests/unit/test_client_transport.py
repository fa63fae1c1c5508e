"""Retry, error mapping and fallbacks that a healthy server cannot produce: httpx.MockTransport.

The fake server below speaks vLLM's wire format (base64 float32 vectors, both error shapes) and
scripts failures; everything else is the real client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import zlib
from typing import Any

import httpx
import numpy as np
import pytest

from vllm_multimodal_embeddings import (
    APIConnectionError,
    APITimeoutError,
    AsyncEmbeddingClient,
    AuthenticationError,
    BadRequestError,
    EmbeddingClient,
    InternalServerError,
    RateLimitError,
    UnsupportedFeatureError,
    VLLMEmbeddingError,
)

DIM = 8
SECRET = "sk-very-secret-key"


def vector_for(text: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    v = rng.standard_normal(DIM).astype("<f4")
    return v / np.linalg.norm(v)


def b64(v: np.ndarray) -> str:
    return base64.b64encode(v.astype("<f4").tobytes()).decode()


def text_of(conversation: list[dict[str, Any]]) -> str:
    user = next(m for m in conversation if m["role"] == "user")
    content = user["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content)


class FakeVLLM:
    """A scripted stand-in for vLLM's HTTP surface."""

    def __init__(self, *, batched: bool = True, matryoshka: bool = True) -> None:
        self.batched = batched
        self.matryoshka = matryoshka
        self.requests: list[httpx.Request] = []
        # Answers of the next /v1/embeddings requests, in order; None: answer it normally.
        self.failures: list[httpx.Response | Exception | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/v1/embeddings" and self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            if failure is not None:
                return failure
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 512}]})
        if path == "/version":
            return httpx.Response(200, json={"version": "0.20.0"})
        if path == "/v2/embed":
            return httpx.Response(404, json={"detail": "Not Found"})
        body = json.loads(request.content)
        if "input" in body:
            texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        elif body["messages"] and isinstance(body["messages"][0], list):
            if not self.batched:
                return httpx.Response(
                    400, json={"message": "messages: Input should be a valid dict", "type": "x"}
                )
            texts = [text_of(c) for c in body["messages"]]
        else:
            texts = [text_of(body["messages"])]
        dims = body.get("dimensions")
        if dims is not None and not self.matryoshka:
            return httpx.Response(
                400,
                json={
                    "error": {"message": "does not support Matryoshka", "type": "B", "code": 400}
                },
            )
        vectors = [vector_for(t) for t in texts]
        if dims is not None:
            vectors = [v[:dims] / np.linalg.norm(v[:dims]) for v in vectors]
        if body.get("encoding_format") == "base64":
            data = [{"index": i, "embedding": b64(v)} for i, v in enumerate(vectors)]
        else:
            data = [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        return httpx.Response(200, json={"data": data, "model": "m"})

    def embed_calls(self) -> int:
        return sum(1 for r in self.requests if r.url.path == "/v1/embeddings")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record retry delays instead of sleeping them."""
    delays: list[float] = []
    monkeypatch.setattr("vllm_multimodal_embeddings.transport._http.time.sleep", delays.append)
    return delays


def make(fake: FakeVLLM, **options: Any) -> EmbeddingClient:
    http = httpx.Client(transport=httpx.MockTransport(fake))
    return EmbeddingClient(base_url="http://vllm.test", api_key=SECRET, http_client=http, **options)


def probed(fake: FakeVLLM, **options: Any) -> EmbeddingClient:
    client = make(fake, **options)
    client.server_info()
    fake.requests.clear()
    return client


def test_vectors_are_decoded_in_input_order() -> None:
    fake = FakeVLLM()
    client = probed(fake, batch_size=2, max_concurrency=3)
    texts = [f"t{i}" for i in range(7)]
    got = client.embed_array(texts)
    np.testing.assert_allclose(got, np.stack([vector_for(t) for t in texts]), atol=1e-6)
    assert fake.embed_calls() == 4


def test_old_server_without_batched_conversations_gets_single_requests() -> None:
    fake = FakeVLLM(batched=False)
    client = make(fake, batch_size=8)
    assert client.server_info().batched_conversations is False
    fake.requests.clear()
    texts = ["a", "b", "c"]
    got = client.embed_array(texts)
    np.testing.assert_allclose(got, np.stack([vector_for(t) for t in texts]), atol=1e-6)
    bodies = [json.loads(r.content) for r in fake.requests]
    assert len(bodies) == 3
    assert all(isinstance(b["messages"][0], dict) for b in bodies)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_statuses_are_retried(status: int, no_sleep: list[float]) -> None:
    fake = FakeVLLM()
    client = probed(fake, max_retries=2)
    fake.failures = [httpx.Response(status, json={"error": {"message": "busy"}})]
    assert len(client.embed(["x"])) == 1
    assert fake.embed_calls() == 2
    assert len(no_sleep) == 1


def test_retry_after_is_honoured(no_sleep: list[float]) -> None:
    fake = FakeVLLM()
    client = probed(fake)
    fake.failures = [httpx.Response(429, headers={"Retry-After": "3"}, json={"error": "slow down"})]
    client.embed(["x"])
    assert no_sleep == [3.0]


def test_retries_give_up_with_the_typed_error(no_sleep: list[float]) -> None:
    fake = FakeVLLM()
    client = probed(fake, max_retries=2)
    fake.failures = [httpx.Response(503, json={"error": {"message": "overloaded"}})] * 3
    with pytest.raises(InternalServerError, match="overloaded") as info:
        client.embed(["x"])
    assert info.value.status_code == 503
    assert fake.embed_calls() == 3
    assert len(no_sleep) == 2
    # Backoff grows but stays bounded.
    assert all(0 <= d <= 8.0 for d in no_sleep)


def test_other_4xx_are_not_retried() -> None:
    fake = FakeVLLM()
    client = probed(fake, max_retries=5)
    refused = httpx.Response(400, json={"error": {"message": "Failed to load image"}})
    fake.failures = [refused, None, refused]
    with pytest.raises(BadRequestError, match="Failed to load image") as info:
        client.embed(["x"])
    # Not retried: the requests after it are the control ("." alone), which passes, and the
    # input once more, refused again: that pins the refusal on input 0.
    assert fake.embed_calls() == 3
    sent = [text_of(json.loads(r.content)["messages"][0]) for r in fake.requests[-3:]]
    assert sent == ["x", ".", "x"]
    assert info.value.index == 0
    # Refused once only (the server was briefly failing): the input's vector comes back.
    fake.failures = [refused]
    assert len(client.embed(["x"])) == 1


def test_connection_errors_and_timeouts() -> None:
    fake = FakeVLLM()
    client = probed(fake, max_retries=1)
    fake.failures = [httpx.ConnectError("refused")] * 2
    with pytest.raises(APIConnectionError, match="cannot reach"):
        client.embed(["x"])
    fake.failures = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]
    with pytest.raises(APITimeoutError):
        client.embed(["x"])
    fake.failures = [httpx.ReadTimeout("slow")]
    assert len(client.embed(["x"])) == 1


def test_bare_401_and_both_error_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vllm_multimodal_embeddings.transport._http.time.sleep", lambda s: None)
    fake = FakeVLLM()
    client = probed(fake, max_retries=2)
    fake.failures = [httpx.Response(401, json={"error": "Unauthorized"})]
    with pytest.raises(AuthenticationError, match="Unauthorized"):
        client.embed(["x"])
    flat = httpx.Response(400, json={"message": "old flat shape", "type": "BadRequestError"})
    fake.failures = [flat, None, flat]  # the input, the control, the input again
    with pytest.raises(BadRequestError, match="old flat shape"):
        client.embed(["x"])
    fake.failures = [httpx.Response(429, json={"error": {"message": "later"}})] * 3
    with pytest.raises(RateLimitError):
        client.embed(["x"])


def test_api_key_is_sent_but_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="vllm_multimodal_embeddings")
    fake = FakeVLLM()
    client = probed(fake)
    fake.failures = [httpx.Response(401, json={"error": "Unauthorized"})]
    with pytest.raises(AuthenticationError) as info:
        client.embed(["x"])
    assert fake.requests[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(client)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert SECRET not in caplog.text


def test_matryoshka_refused_raises_unless_client_side_is_asked_for() -> None:
    fake = FakeVLLM(matryoshka=False)
    client = make(fake)
    with pytest.raises(UnsupportedFeatureError, match="is_matryoshka"):
        client.embed(["x"], dimensions=4)
    local = make(FakeVLLM(matryoshka=False), client_side_dimensions=True)
    got = np.array(local.embed(["x"], dimensions=4)[0])
    full = vector_for("x")
    np.testing.assert_allclose(got, full[:4] / np.linalg.norm(full[:4]), atol=1e-6)


def test_a_refused_batch_is_split_until_the_bad_input_is_named() -> None:
    fake = FakeVLLM()
    client = probed(fake, batch_size=8)
    original = fake.__call__

    def refuse_poison(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/embeddings" and b"poison" in request.content:
            fake.requests.append(request)
            return httpx.Response(400, json={"error": {"message": "too long"}})
        return original(request)

    client._transport._http = httpx.Client(transport=httpx.MockTransport(refuse_poison))
    with pytest.raises(BadRequestError, match="too long") as info:
        client.embed(["a", "b", "c", "d", "poison", "f"])
    assert info.value.index == 4
    assert str(info.value).startswith("input 4:")


def test_missing_base_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    with pytest.raises(VLLMEmbeddingError, match="VLLM_BASE_URL"):
        EmbeddingClient()
    monkeypatch.setenv("VLLM_BASE_URL", "http://env.test/v1/")
    assert EmbeddingClient().base_url == "http://env.test"


@pytest.mark.parametrize(
    "bad",
    [
        {"protocol": "grpc"},
        {"batch_size": 0},
        {"max_concurrency": 0},
        {"timeout": 0},
        {"truncate": "MIDDLE"},
        {"dimensions": -1},
    ],
)
def test_bad_settings_fail_at_construction(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EmbeddingClient(base_url="http://x.test", **bad)


def test_async_client_retries_and_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeVLLM()
    fake.failures = [httpx.Response(503, json={"error": {"message": "busy"}})]
    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)

    async def run() -> np.ndarray:
        http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
        async with AsyncEmbeddingClient(
            base_url="http://vllm.test", http_client=http, batch_size=2
        ) as client:
            result = await client.embed_array([f"t{i}" for i in range(5)])
        await http.aclose()
        return result

    monkeypatch.setattr("vllm_multimodal_embeddings.transport._http.asyncio.sleep", fake_sleep)
    got = asyncio.run(run())
    np.testing.assert_allclose(got, np.stack([vector_for(f"t{i}") for i in range(5)]), atol=1e-6)
    assert len(sleeps) == 1


def test_async_concurrency_is_bounded_across_calls() -> None:
    in_flight = 0
    peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.url.path == "/v1/embeddings" and b'"messages"' in request.content:
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
        return FakeVLLM()(request)

    async def run() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(slow))
        async with AsyncEmbeddingClient(
            base_url="http://vllm.test", http_client=http, batch_size=1, max_concurrency=3
        ) as client:
            await client.server_info()
            # Ten calls at once, as LlamaIndex's async batch methods make them.
            await asyncio.gather(*(client.embed([f"t{i}", f"u{i}"]) for i in range(10)))
        await http.aclose()

    asyncio.run(run())
    assert peak == 3


def test_a_bulk_job_through_a_flaky_link_loses_nothing(no_sleep: list[float]) -> None:
    """3000 texts, default settings, each attempt failing with 8% 503, 4% 429 (with a
    malformed Retry-After) and 4% connection resets: every vector, once, in order."""
    import random

    fake = FakeVLLM()
    rng = random.Random(7)
    faults = {"503": 0, "429": 0, "reset": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/embeddings":
            draw = rng.random()
            if draw < 0.08:
                faults["503"] += 1
                return httpx.Response(503, json={"error": {"message": "overloaded"}})
            if draw < 0.12:
                faults["429"] += 1
                after = rng.choice(["nan", "soon", "-1", "inf"])
                return httpx.Response(429, headers={"Retry-After": after}, json={})
            if draw < 0.16:
                faults["reset"] += 1
                raise httpx.RemoteProtocolError("connection reset by peer", request=request)
        return fake(request)

    http = httpx.Client(transport=httpx.MockTransport(flaky))
    texts = [f"item {i}" for i in range(3000)]
    with EmbeddingClient(base_url="http://vllm.test", http_client=http) as client:
        vectors = client.embed_array(texts)
    expected = np.stack([vector_for(t) for t in texts])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert min(faults.values()) > 0  # every kind of fault happened
    assert all(np.isfinite(d) and 0 <= d <= 120 for d in no_sleep)  # no NaN or endless sleep


def test_a_server_never_reached_fails_fast_one_that_was_is_retried(no_sleep: list[float]) -> None:
    fake = FakeVLLM()
    refused = [0]

    def down(request: httpx.Request) -> httpx.Response:
        refused[0] += 1
        raise httpx.ConnectError("connection refused", request=request)

    with (
        EmbeddingClient(
            base_url="http://vllm.test",
            http_client=httpx.Client(transport=httpx.MockTransport(down)),
        ) as client,
        pytest.raises(APIConnectionError),
    ):
        client.embed(["x"])
    assert refused[0] == 2  # one retry, not the bulk budget of 8: a typo'd URL fails at once

    client = probed(fake)  # this one has reached the server
    fake.failures = [httpx.ConnectError("restarting")] * 5
    assert len(client.embed(["x"])) == 1  # an outage mid-job is ridden out


def test_a_capability_the_server_gained_is_probed_again() -> None:
    # Probed while the server refused dimensions; restarted with is_matryoshka since: the
    # plan's refusal is checked against a fresh probe instead of being cached for ever.
    fake = FakeVLLM(matryoshka=False)
    client = probed(fake)
    assert client.server_info().matryoshka is False
    fake.matryoshka = True
    vectors = client.embed(["x"], dimensions=2)
    assert len(vectors[0]) == 2 and client.server_info().matryoshka is True


def test_a_capability_still_missing_raises_after_one_fresh_probe() -> None:
    fake = FakeVLLM(matryoshka=False)
    client = probed(fake)
    with pytest.raises(UnsupportedFeatureError, match="is_matryoshka"):
        client.embed(["x"], dimensions=2)
    models = [r for r in fake.requests if r.url.path == "/v1/models"]
    assert len(models) == 1  # one fresh probe, not one per chunk
    with pytest.raises(UnsupportedFeatureError, match="is_matryoshka"):
        client.embed(["y"], dimensions=2)
    models = [r for r in fake.requests if r.url.path == "/v1/models"]
    assert len(models) == 1  # the confirmed refusal is not probed again on every call


def _jpeg_files(folder: Any, count: int) -> list[Any]:
    """``count`` small JPEG files of distinct colours."""
    import io

    from PIL import Image

    paths = []
    for i in range(count):
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (i * 20 % 240, i // 12 * 40, 0)).save(buf, format="JPEG")
        paths.append(folder / f"{i}.jpg")
        paths[-1].write_bytes(buf.getvalue())
    return paths


def _image_server(request: httpx.Request) -> httpx.Response:
    """A server whose vector for each conversation is a function of its user image."""
    if request.url.path == "/v1/models":
        return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 512}]})
    if request.url.path != "/v1/embeddings":
        return httpx.Response(404, json={"detail": "Not Found"})
    body = json.loads(request.content)
    if "messages" not in body:  # the probe's text request
        return httpx.Response(200, json={"data": [{"index": 0, "embedding": b64(vector_for(""))}]})

    def image_of(conversation: list[dict[str, Any]]) -> str:
        user = next(m for m in conversation if m["role"] == "user")
        return "".join(p["image_url"]["url"] for p in user["content"] if "image_url" in p)

    data = [
        {"index": i, "embedding": b64(vector_for(image_of(c)))}
        for i, c in enumerate(body["messages"])
    ]
    return httpx.Response(200, json={"data": data, "model": "m"})


def test_async_small_images_go_to_the_pool_as_one_task_per_chunk(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The async client hands a chunk's small encoded images to one worker task (one per
    image cost more than their checks); vectors still come back in order, and a bad image is
    still named by its index."""
    from concurrent.futures import ThreadPoolExecutor

    from vllm_multimodal_embeddings import ImageLoadError
    from vllm_multimodal_embeddings.embeddings._pipeline import PreparePool

    paths = _jpeg_files(tmp_path, 7)
    handler = _image_server

    submitted: list[int] = []
    pool = ThreadPoolExecutor(2)
    real_submit = pool.submit

    def submit(fn: Any, *args: Any) -> Any:
        submitted.append(len(args[1]) if fn.__name__ == "_prepare_group" else 1)
        return real_submit(fn, *args)

    monkeypatch.setattr(pool, "submit", submit)
    monkeypatch.setattr(PreparePool, "executor", lambda self: pool)

    async def run(images: list[Any]) -> np.ndarray:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncEmbeddingClient(
            base_url="http://vllm.test", http_client=http, batch_size=3, prepare_processes=0
        ) as client:
            return await client.embed_array(images, input_type="document")

    async def sync_reference() -> np.ndarray:
        with EmbeddingClient(
            base_url="http://vllm.test",
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
            batch_size=3,
        ) as client:
            return client.embed_array(paths)

    got = asyncio.run(run(paths))
    assert sorted(submitted) == [1, 3, 3]  # chunks of 3, 3, 1: one task each
    np.testing.assert_array_equal(got, asyncio.run(sync_reference()))
    assert len({row.tobytes() for row in got}) == len(paths)

    paths[4].write_bytes(b"\xff\xd8 not a jpeg at all")
    with pytest.raises(ImageLoadError, match=r"^input 4: "):
        asyncio.run(run(paths))
    pool.shutdown()


def test_one_thread_at_a_time_prepares_in_place(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small images are prepared by one thread at a time, sync chunk threads and async pool
    tasks alike (several only fought over the GIL); vectors stay one per input, in order."""
    import threading
    import time

    from vllm_multimodal_embeddings.embeddings._core import EmbeddingCore

    paths = _jpeg_files(tmp_path, 12)
    handler = _image_server

    busy = most = 0
    lock = threading.Lock()
    real_prepare = EmbeddingCore.prepare

    def prepare(self: EmbeddingCore, item: Any, *args: Any) -> Any:
        nonlocal busy, most
        with lock:
            busy += 1
            most = max(most, busy)
        time.sleep(0.002)  # lets another thread in, were any allowed
        try:
            return real_prepare(self, item, *args)
        finally:
            with lock:
                busy -= 1

    monkeypatch.setattr(EmbeddingCore, "prepare", prepare)
    settings = {"base_url": "http://vllm.test", "batch_size": 2, "max_concurrency": 4}
    with EmbeddingClient(
        http_client=httpx.Client(transport=httpx.MockTransport(handler)), **settings
    ) as client:
        got = client.embed_array(paths)
    assert most == 1
    assert got.shape == (12, DIM) and len({row.tobytes() for row in got}) == 12

    async def run() -> np.ndarray:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncEmbeddingClient(http_client=http, prepare_processes=0, **settings) as c:
            return await c.embed_array(paths)

    most = 0
    np.testing.assert_array_equal(asyncio.run(run()), got)
    assert most == 1


def _embed_after_a_query(client_kind: str, inputs: Any, sizes: list[int]) -> tuple[int, np.ndarray]:
    """Embed a query, then ``inputs`` on the same client (sync or async) of the image server:
    the batch the query left, and the vectors of ``inputs``; ``sizes`` gets the inputs of each
    embedding request of ``inputs``."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/embeddings":
            sizes.append(len(json.loads(request.content).get("messages") or [None]))
        return _image_server(request)

    settings = {"base_url": "http://vllm.test", "prepare_processes": 0}
    if client_kind == "sync":
        with EmbeddingClient(
            http_client=httpx.Client(transport=httpx.MockTransport(handler)), **settings
        ) as client:
            client.embed(["a query"])
            sizes.clear()
            return client.stats.batch_size, client.embed_array(inputs)

    async def run() -> tuple[int, np.ndarray]:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncEmbeddingClient(http_client=http, **settings) as client:
            await client.embed(["a query"])
            sizes.clear()
            return client.stats.batch_size, await client.embed_array(inputs)

    return asyncio.run(run())


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_images_after_a_query_start_in_small_chunks(tmp_path: Any, client_kind: str) -> None:
    """A query sizes the batch for texts (hundreds per request); the images of the next call
    must not all go in one chunk of that size (one request slot, ~75 MB for camera photos,
    and no vector out before all of them are answered): their first chunk is the starting 8.
    They go as a stream (a generator, no length to share among the requests), so that this
    rule alone keeps the chunk small: a list of 40 would get 8 a chunk from its share anyway."""
    paths = _jpeg_files(tmp_path, 40)
    sizes: list[int] = []
    text_batch, got = _embed_after_a_query(client_kind, (p for p in paths), sizes)
    assert text_batch == 256
    assert sizes[0] == 8 and sum(sizes) == 40
    assert got.shape == (40, DIM) and len({row.tobytes() for row in got}) == 40


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_a_short_call_shares_its_inputs_among_the_requests_in_flight(
    tmp_path: Any, client_kind: str
) -> None:
    """A list has a length: 300 tiny images, whose batch is sized to 256, go at most
    ceil(300 / 16) = 19 to a request, so that they fill the 16 slots instead of two. (The
    concurrency may move to 32 during the call, 10 a request then: never more than 19.)"""
    paths = _jpeg_files(tmp_path, 300)
    sizes: list[int] = []
    _, got = _embed_after_a_query(client_kind, paths, sizes)
    assert sizes[0] == 8  # cut before any image was prepared
    assert 8 < max(sizes) <= 19 and sum(sizes) == 300
    assert got.shape == (300, DIM)  # (the 300 colours repeat: no check that they differ)
