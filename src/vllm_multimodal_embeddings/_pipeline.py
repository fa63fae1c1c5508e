"""The streaming pipeline: inputs read lazily, prepared by workers, sent while others prepare.

One call is a window of :class:`~._job.Chunk` tasks (``batch_size`` inputs each). A
task prepares its inputs on the shared worker pool, then sends them; the caller takes results
in input order, and each one taken lets one more chunk in. So, whatever the corpus size, at
most ``max_concurrency + 2`` chunks hold prepared payloads per client (one per request in
flight, and two being prepared so that the workers never wait for a straggler), and vectors
wait only for the chunks before them. With the defaults (16 x 6) that is 96 camera photos, or
about 100 MB of payloads.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

from ._job import Chunk, ChunkResult, Vector
from ._settings import default_workers

__all__ = [
    "AsyncEmbeddingStream",
    "EmbeddingStream",
    "PreparePool",
    "ProgressCallback",
    "worker_pool",
]

#: Called with the number of inputs done, in input order, as their vectors are handed out.
ProgressCallback = Callable[[int], None]

_shared: ThreadPoolExecutor | None = None
_shared_lock = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ThreadPoolExecutor(
                max_workers=default_workers(), thread_name_prefix="vmme-prepare"
            )
        return _shared


class PreparePool:
    """The threads that prepare one client's inputs.

    Image preparation is CPU work (Pillow releases the GIL while decoding and resizing), so
    every client with the default size (the CPU cores) shares one process-wide pool: more
    pools than cores would only contend. A client that asks for another size gets a pool of
    its own, shut down by :meth:`close` (or when the client is collected), so clients with
    odd sizes never pile up threads in the process.
    """

    def __init__(self, workers: int | None) -> None:
        self.workers = workers or default_workers()
        self._own: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        """The pool to submit preparation work to."""
        if self.workers == default_workers():
            return _shared_pool()
        with self._lock:
            if self._own is None:
                self._own = ThreadPoolExecutor(
                    max_workers=self.workers, thread_name_prefix="vmme-prepare"
                )
            return self._own

    def close(self) -> None:
        """Stop this client's own threads (the shared pool lives as long as the process)."""
        with self._lock:
            own, self._own = self._own, None
        if own is not None:
            own.shutdown(wait=False, cancel_futures=True)


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """The shared pool when ``workers`` is the default size; kept for the reranking client,
    which submits a few documents per call (a pool of another size there is the shared one)."""
    return _shared_pool()


def window_depth(max_concurrency: int) -> int:
    """Chunks in progress: one per request in flight, and two being prepared."""
    return max_concurrency + 2


class EmbeddingStream(Iterator[Vector]):
    """The vectors of one call, one per input, in input order, as they complete.

    Iterate it (``for vector in stream``); leaving early, ``close()`` or a ``with`` block stops
    reading inputs and cancels the work not yet started. Vectors are 1-D numpy arrays
    (float32, or packed int8/uint8 bits for binary embedding types).
    """

    def __init__(self, run: Generator[Vector, None, None]) -> None:
        self._run = run

    def __iter__(self) -> EmbeddingStream:
        return self

    def __next__(self) -> Vector:
        return next(self._run)

    def close(self) -> None:
        """Stop: read no more inputs, cancel queued work, drop results not yet taken."""
        self._run.close()

    def __enter__(self) -> EmbeddingStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEmbeddingStream(AsyncIterator[Vector]):
    """Async twin of :class:`EmbeddingStream`: ``async for``, ``aclose()``, ``async with``.

    Cancelling the task that iterates it cancels the preparation of inputs not yet started.
    """

    def __init__(self, run: AsyncGenerator[Vector, None]) -> None:
        self._run = run

    def __aiter__(self) -> AsyncEmbeddingStream:
        return self

    async def __anext__(self) -> Vector:
        return await self._run.__anext__()

    async def aclose(self) -> None:
        """Stop: read no more inputs, cancel queued work, drop results not yet taken."""
        await self._run.aclose()

    async def __aenter__(self) -> AsyncEmbeddingStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def run_window(
    chunks: Iterator[Chunk],
    submit: Callable[[Chunk], Future[ChunkResult]],
    depth: int,
    on_progress: ProgressCallback | None,
    on_close: Callable[[], None],
) -> Generator[Vector, None, None]:
    """Keep ``depth`` chunk tasks going; hand out their vectors in order; stop at an error."""
    window: deque[Future[ChunkResult]] = deque()

    def top_up() -> None:
        while len(window) < depth:
            chunk = next(chunks, None)
            if chunk is None:
                return
            window.append(submit(chunk))

    try:
        top_up()
        while window:
            result = window[0].result()
            window.popleft()
            top_up()  # before handing out: the pool keeps working while the caller does
            yield from result.vectors
            if on_progress is not None and result.vectors:
                on_progress(len(result.vectors))
            if result.error is not None:
                raise result.error
    finally:
        on_close()
        for future in window:
            future.cancel()


async def arun_window(
    chunks: Iterator[Chunk] | AsyncIterator[Chunk],
    start: Callable[[Chunk], asyncio.Task[ChunkResult]],
    depth: int,
    on_progress: ProgressCallback | None,
) -> AsyncGenerator[Vector, None]:
    """Async :func:`run_window`: chunk tasks on the running loop, cancelled on exit."""
    window: deque[asyncio.Task[ChunkResult]] = deque()

    async def next_chunk() -> Chunk | None:
        if isinstance(chunks, AsyncIterator):
            return await anext(chunks, None)
        return next(chunks, None)

    async def top_up() -> None:
        while len(window) < depth:
            chunk = await next_chunk()
            if chunk is None:
                return
            window.append(start(chunk))

    try:
        await top_up()
        while window:
            result = await window[0]
            window.popleft()
            await top_up()
            for vector in result.vectors:
                yield vector
            if on_progress is not None and result.vectors:
                on_progress(len(result.vectors))
            if result.error is not None:
                raise result.error
    finally:
        for task in window:
            task.cancel()
        if window:
            # Let the cancellations land, so no task outlives the call.
            await asyncio.gather(*window, return_exceptions=True)


def cancel_all(futures: list[Future[Any]]) -> None:
    """Cancel every future not yet started (those running finish on their own)."""
    for future in futures:
        future.cancel()
