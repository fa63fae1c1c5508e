"""The byte-bounded window and the tuner inside the real client, over httpx.MockTransport."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from vllm_multimodal_embeddings import AsyncEmbeddingClient, EmbeddingClient, ImageLoadError
from vllm_multimodal_embeddings.embeddings._client import _settle
from vllm_multimodal_embeddings.embeddings._core import EmbeddingCore
from vllm_multimodal_embeddings.embeddings._pipeline import ByteBudget
from vllm_multimodal_embeddings.inputs._pool import large_enough

from .test_client_transport import FakeVLLM, vector_for


class Watched(FakeVLLM):
    """The fake server, noting the client's held bytes and requests in flight as it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.budget: ByteBudget | None = None
        self.held: list[int] = []
        self.inflight = self.most_inflight = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/embeddings" or self.budget is None:
            return super().__call__(request)
        with self._lock:
            self.inflight += 1
            self.most_inflight = max(self.most_inflight, self.inflight)
            self.held.append(self.budget.used)
        try:
            return super().__call__(request)
        finally:
            with self._lock:
                self.inflight -= 1


def client(fake: FakeVLLM, **options: Any) -> EmbeddingClient:
    http = httpx.Client(transport=httpx.MockTransport(fake))
    c = EmbeddingClient(base_url="http://vllm.test", http_client=http, **options)
    c.server_info()
    if isinstance(fake, Watched):
        fake.budget = c._budget
    return c


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vllm_multimodal_embeddings.transport._http.time.sleep", lambda s: None)


def test_prepared_bytes_stay_within_the_budget_and_results_keep_their_order() -> None:
    fake = Watched()
    texts = [f"{i:04d} " + "x" * 2000 for i in range(60)]  # ~2 kB prepared each
    with client(fake, batch_size=2, max_concurrency=8, max_inflight_bytes=10_000) as c:
        got = c.embed_array(texts)
    np.testing.assert_allclose(got, np.stack([vector_for(t) for t in texts]), atol=1e-6)
    # A chunk is ~4.1 kB: the window holds at most two at once (until the first chunk is
    # measured, an input is reckoned at 1 MiB: only the first chunk goes).
    assert max(fake.held) <= 10_000
    assert fake.most_inflight <= 2
    stats = c.stats
    assert stats.byte_waits > 0 and stats.mean_input_bytes is not None
    assert stats.mean_input_bytes > 2000


def test_an_input_bigger_than_the_budget_still_goes_alone() -> None:
    fake = Watched()
    texts = [f"{i} " + "y" * 500 for i in range(7)]
    with client(fake, max_inflight_bytes=10) as c:
        got = c.embed_array(texts)
    np.testing.assert_allclose(got, np.stack([vector_for(t) for t in texts]), atol=1e-6)
    assert fake.most_inflight == 1
    assert c._budget.used == 0  # every hold given back


def test_async_window_keeps_the_budget_too() -> None:
    fake = Watched()
    texts = [f"{i:04d} " + "z" * 2000 for i in range(40)]

    async def run() -> np.ndarray:
        http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
        async with AsyncEmbeddingClient(
            base_url="http://vllm.test", http_client=http, batch_size=2, max_inflight_bytes=10_000
        ) as c:
            await c.server_info()
            fake.budget = c._budget
            out = await c.embed_array(texts)
            assert c._budget.used == 0
        await http.aclose()
        return out

    got = asyncio.run(run())
    np.testing.assert_allclose(got, np.stack([vector_for(t) for t in texts]), atol=1e-6)
    assert max(fake.held) <= 10_000


def test_a_429_halves_the_tuned_concurrency_and_stats_say_why() -> None:
    fake = FakeVLLM()
    fake.failures = [httpx.Response(429, json={"error": {"message": "slow down"}})]
    # Texts of 4 kB: 8 of them fill a request, the starting batch (short ones would have the
    # batch sized to them, the newer reason).
    texts = [f"t{i} " + "x" * 4000 for i in range(5)]
    with client(fake) as c, c.iter_embed(texts) as stream:
        vectors = list(stream)
        stats = stream.stats
    assert len(vectors) == 5
    assert stats is not None
    assert stats.tuned == ("batch_size", "max_concurrency")
    assert (stats.overloads, stats.max_concurrency, stats.batch_size) == (1, 8, 8)
    assert stats.reason == "server answered 429: halved max_concurrency 16 -> 8"
    assert stats.requests == 1 and stats.inputs == 5


def test_explicit_settings_are_reported_as_fixed() -> None:
    fake = FakeVLLM()
    fake.failures = [httpx.Response(503, json={"error": {"message": "busy"}})]
    with client(fake, batch_size=3, max_concurrency=5) as c:
        assert len(c.embed([f"t{i}" for i in range(7)])) == 7
        stats = c.stats
    assert (stats.batch_size, stats.max_concurrency, stats.tuned) == (3, 5, ())
    assert stats.overloads == 1 and stats.reason == "fixed by the settings"


def test_a_broken_process_pool_becomes_a_typed_error_naming_the_input() -> None:
    error = _settle(BrokenProcessPool("a child process terminated abruptly"), 7, 4)
    assert isinstance(error, ImageLoadError) and error.index == 7
    assert str(error).startswith("input 7: the process pool preparing it broke")
    assert "prepare_processes=0" in str(error)
    bad = ImageLoadError("not a recognized image", index=2)
    assert _settle(bad, 2, 4) is bad  # an input's own error passes through
    with pytest.raises(KeyError):
        _settle(KeyError("a bug"), 0, 4)


def test_only_large_local_images_are_worth_a_process(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jpg", tmp_path / "big.jpg"
    small.write_bytes(b"x" * 1000)
    big.write_bytes(b"x" * 5000)
    assert not large_enough(small, 4096) and large_enough(big, 4096)
    assert large_enough(str(big), 4096)
    assert large_enough(b"x" * 4096, 4096) and not large_enough(b"x" * 10, 4096)
    assert large_enough("data:image/jpeg;base64," + "A" * 8000, 4096)
    assert not large_enough(tmp_path / "missing.jpg", 4096)  # the threads report it
    assert large_enough(small, 0)


class SlowHead(FakeVLLM):
    """A server that holds the request of ``text 0`` until ``others`` more have come (or a
    few seconds went by): a slow request at the head of the window."""

    def __init__(self, others: int) -> None:
        super().__init__()
        self.others = others
        self.after_head: list[str] = []
        self.head_waited_out = False

    def _is_head(self, request: httpx.Request) -> bool:
        if request.url.path != "/v1/embeddings" or b'"text ' not in request.content:
            return False  # not one of the call's requests (the client's probe)
        if b'"text 0"' in request.content:
            return True
        self.after_head.append(request.content.decode())
        return False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self._is_head(request):
            deadline = time.monotonic() + 5
            while len(self.after_head) < self.others and time.monotonic() < deadline:
                time.sleep(0.005)
            self.head_waited_out = len(self.after_head) < self.others
        return super().__call__(request)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        if self._is_head(request):
            deadline = time.monotonic() + 5
            while len(self.after_head) < self.others and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            self.head_waited_out = len(self.after_head) < self.others
        return super().__call__(request)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_a_slow_head_does_not_hold_back_the_chunks_after_it(client_kind: str) -> None:
    """Concurrency 2, depth 4: while the first request is out, answered chunks behind it stop
    counting, so 5 more requests go (at most 2 x depth chunks wait in all); vectors still
    come out in input order."""
    fake = SlowHead(others=5)
    texts = [f"text {i}" for i in range(20)]
    options: dict[str, Any] = {"batch_size": 1, "max_concurrency": 2}
    if client_kind == "sync":
        with client(fake, **options) as c:
            got = c.embed_array(texts)
    else:

        async def run() -> Any:
            http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle_async))
            async with AsyncEmbeddingClient(
                base_url="http://vllm.test", http_client=http, **options
            ) as c:
                return await c.embed_array(texts)

        got = asyncio.run(run())
    assert not fake.head_waited_out
    np.testing.assert_allclose(got, np.stack([vector_for(t) for t in texts]), atol=1e-6)


def test_images_after_texts_are_reckoned_at_their_own_size(tmp_path: Path) -> None:
    # Issue 34, item 4: one running mean for every input let images in at the texts' few bytes
    # each once texts had gone first: 40 JPEGs of ~0.5 MB under a 6 MiB budget peaked at
    # 29.4 MiB on a client that had embedded texts, 6.3 MiB on a fresh one.
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(40):
        path = tmp_path / f"noise{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    limit = 6 * 1024 * 1024
    peaks = []
    for warm in (False, True):
        fake = Watched()
        with client(fake, max_inflight_bytes=limit, prepare_processes=0) as c:
            if warm:
                c.embed([f"a short text {i}" for i in range(40)])
            fake.held.clear()
            assert len(c.embed(paths)) == 40
        peaks.append(max(fake.held))
    one_image = max(p.stat().st_size for p in paths) * 4 // 3 + 1024  # as a data URI
    # After texts as on a fresh client (measured: 8.8 MiB both; 13.2 MiB after texts before).
    assert peaks[1] <= peaks[0] + one_image, peaks
    # Within the budget, or one chunk (16 images) alone: an empty window always takes one.
    assert peaks[0] <= max(limit, 16 * one_image), peaks


class FirstWaits(FakeVLLM):
    """The fake server, holding its first embedding request until a second one arrives (at
    most 5 s), and noting whether one did."""

    def __init__(self) -> None:
        super().__init__()
        self.second = threading.Event()
        self.overlapped: bool | None = None
        self.armed = False  # after the probe
        self._seen = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.armed and request.url.path == "/v1/embeddings":
            with self._lock:
                self._seen += 1
                first = self._seen == 1
            if first:
                self.overlapped = self.second.wait(5.0)
            else:
                self.second.set()
        return super().__call__(request)


def test_a_chunk_held_back_for_bytes_goes_once_the_first_is_prepared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before any input is measured, one is reckoned at 1 MiB: a chunk of 256 takes the whole
    default budget, so the second waits. It must go once the first chunk is prepared (a few
    kB), not once the first request is answered: at 256 images per request on an H200 the
    first request went alone and the package ran at 0.6-0.7x a hand-written client."""
    fake = FirstWaits()
    texts = [f"text {i}" for i in range(1024)]
    prepare = EmbeddingCore.prepare

    def slow_first(self: EmbeddingCore, item: Any, index: int, *args: Any) -> Any:
        if index == 0:  # the window reads the next chunk before the first one is prepared
            threading.Event().wait(0.2)  # time.sleep is a no-op here (the no_sleep fixture)
        return prepare(self, item, index, *args)

    monkeypatch.setattr(EmbeddingCore, "prepare", slow_first)
    with client(fake, batch_size=256, max_concurrency=4) as c:
        fake.armed = True
        got = c.embed_array(texts)
    assert fake.overlapped is True
    np.testing.assert_allclose(got, np.stack([vector_for(t) for t in texts]), atol=1e-6)
    assert c.stats.byte_waits >= 1  # the case this is about: a chunk was held back


def test_async_a_chunk_held_back_for_bytes_goes_once_the_first_is_prepared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The async window wakes on a prepared chunk too (see the sync test above)."""
    fake = FakeVLLM()
    second = asyncio.Event()
    overlapped: list[bool] = []
    armed = [False]
    seen = [0]

    async def handler(request: httpx.Request) -> httpx.Response:
        if armed[0] and request.url.path == "/v1/embeddings":
            seen[0] += 1
            if seen[0] == 1:
                try:
                    await asyncio.wait_for(second.wait(), 5.0)
                    overlapped.append(True)
                except asyncio.TimeoutError:
                    overlapped.append(False)
            else:
                second.set()
        return fake(request)

    texts = [f"text {i}" for i in range(1024)]
    prepare = EmbeddingCore.prepare

    def slow_first(self: EmbeddingCore, item: Any, index: int, *args: Any) -> Any:
        if index == 0:
            threading.Event().wait(0.2)
        return prepare(self, item, index, *args)

    monkeypatch.setattr(EmbeddingCore, "prepare", slow_first)

    async def run() -> np.ndarray:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncEmbeddingClient(
            base_url="http://vllm.test", http_client=http, batch_size=256, max_concurrency=4
        ) as c:
            await c.server_info()
            armed[0] = True
            out = await c.embed_array(texts)
            assert c.stats.byte_waits >= 1
        await http.aclose()
        return out

    got = asyncio.run(run())
    assert overlapped == [True]
    np.testing.assert_allclose(got, np.stack([vector_for(t) for t in texts]), atol=1e-6)
