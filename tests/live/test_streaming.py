"""The streaming pipeline against a real vLLM server: lazy reading, order, errors mid-stream,
early close and cancellation release everything."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.helpers import image_png
from vllm_multimodal_embeddings import (
    AsyncEmbeddingClient,
    Content,
    EmbeddingClient,
    ImageLoadError,
)


class CountingStream(io.BytesIO):
    """An image stream that counts how often the client started reading it (preparing)."""

    reads = 0
    lock = threading.Lock()

    def read(self, size: int | None = -1) -> bytes:
        with CountingStream.lock:
            CountingStream.reads += 1
        return super().read(size)


def counted_images(n: int, pulled: list[int]) -> Iterator[Any]:
    """A lazy corpus: records how many items the client has taken from it."""
    for i in range(n):
        pulled[0] += 1
        yield CountingStream(image_png(i % 7, (48, 48)))


# The most a window of batch_size 4 x max_concurrency 2 reads ahead: 2 + 2 chunks in progress,
# as many again answered behind a slow first one (their vectors wait their turn), and the
# chunk being pulled. An unbounded window would take thousands.
WINDOW_ITEMS = 2 * (2 + 2) * 4 + 4


def test_stream_is_lazy_ordered_and_equals_embed(vllm_server: Any) -> None:
    texts = [f"document number {i}" for i in range(150)]
    pulled = [0]

    def lazy() -> Iterator[str]:
        for text in texts:
            pulled[0] += 1
            yield text

    with EmbeddingClient(base_url=vllm_server.base_url, batch_size=4, max_concurrency=2) as c:
        stream = c.iter_embed(lazy())
        first = next(stream)
        # Only the window was read.
        assert pulled[0] <= WINDOW_ITEMS
        rest = list(stream)
        whole = c.embed_array(texts)
    streamed = np.stack([first, *rest])
    assert streamed.shape == whole.shape == (150, whole.shape[1])
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    # Distinct texts, distinct vectors: a reordering would show.
    assert np.max(np.abs(streamed @ streamed.T - np.eye(150))) < 0.9999


def test_error_mid_stream_comes_after_every_vector_before_it(
    vllm_server: Any, tmp_path: Path
) -> None:
    sent: list[bytes] = []
    http = httpx.Client(event_hooks={"request": [lambda r: sent.append(r.read())]})
    missing = tmp_path / "nope.jpg"
    items: list[Any] = [f"text {i}" for i in range(40)]
    items[6] = missing
    got: list[np.ndarray] = []
    with EmbeddingClient(base_url=vllm_server.base_url, http_client=http, batch_size=4) as c:
        with pytest.raises(ImageLoadError) as info:
            for vector in c.iter_embed(items):
                got.append(vector)
        count = len(sent)
        time.sleep(1.0)
        # Once the error is out, nothing more is sent.
        assert len(sent) == count
        alone = c.embed_array(items[:6])
    http.close()
    assert info.value.index == 6 and str(missing) in str(info.value)
    # Every vector before the bad input came out, right; its chunk stopped at it (chunks
    # further on may have gone out while it was being prepared: the pipeline overlaps).
    np.testing.assert_allclose(np.stack(got), alone, atol=1e-5)
    assert not any(b"text 7" in body for body in sent[:count])


def test_early_break_and_close_stop_reading_and_preparing(vllm_server: Any) -> None:
    pulled = [0]
    CountingStream.reads = 0
    with EmbeddingClient(
        base_url=vllm_server.base_url, batch_size=4, max_concurrency=2, prepare_workers=2
    ) as c:
        with c.iter_embed(counted_images(10_000, pulled)) as stream:
            for _ in stream:
                break
        taken, prepared = pulled[0], CountingStream.reads
        time.sleep(1.5)
        # Nothing more is read or prepared once the stream is closed ...
        assert pulled[0] == taken
        assert CountingStream.reads <= prepared + 2  # at most the workers' items in hand
        # ... and only the window was ever read from a corpus of 10,000.
        assert taken <= WINDOW_ITEMS
        # The client still works: nothing was left holding its threads.
        assert len(c.embed(["after"])) == 1


def test_async_stream_matches_sync_and_takes_async_iterables(vllm_server: Any) -> None:
    texts = [f"async text {i}" for i in range(40)]

    async def agen() -> Any:
        for text in texts:
            await asyncio.sleep(0)
            yield text

    async def run() -> tuple[np.ndarray, np.ndarray]:
        async with AsyncEmbeddingClient(base_url=vllm_server.base_url, batch_size=8) as c:
            streamed = [v async for v in c.iter_embed(agen())]
            listed = await c.embed_array(texts)
        return np.stack(streamed), listed

    streamed, listed = asyncio.run(run())
    with EmbeddingClient(base_url=vllm_server.base_url) as c:
        sync = c.embed_array(texts)
    np.testing.assert_allclose(streamed, listed, atol=1e-5)
    np.testing.assert_allclose(streamed, sync, atol=1e-5)


def test_async_cancellation_stops_preparing(vllm_server: Any) -> None:
    pulled, consumed = [0], [0]
    CountingStream.reads = 0
    first = asyncio.Event

    async def run() -> tuple[int, int, int, int]:
        started = first()
        async with AsyncEmbeddingClient(
            base_url=vllm_server.base_url, batch_size=4, max_concurrency=2, prepare_workers=2
        ) as c:

            async def consume() -> None:
                async for _ in c.iter_embed(counted_images(10_000, pulled)):
                    consumed[0] += 1
                    started.set()

            task = asyncio.create_task(consume())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            taken, prepared = pulled[0], CountingStream.reads
            await asyncio.sleep(1.5)
            return taken, prepared, pulled[0], CountingStream.reads

    taken, prepared, taken_later, prepared_later = asyncio.run(run())
    assert taken_later == taken
    assert prepared_later <= prepared + 2  # only what the two workers had in hand
    # What the consumer had (how many vectors came before the cancel is up to the scheduler:
    # a loaded CI machine let it take 8 chunks once), plus the window.
    assert taken <= consumed[0] + WINDOW_ITEMS, (taken, consumed[0])


def test_on_progress_counts_in_order_and_images_stream(vllm_server: Any) -> None:
    done: list[int] = []
    images = [Content(image=image_png(i)) for i in range(9)]
    with EmbeddingClient(base_url=vllm_server.base_url, batch_size=2) as c:
        vectors = list(c.iter_embed(images, on_progress=done.append))
    assert len(vectors) == 9 and sum(done) == 9 and all(n <= 2 for n in done)
