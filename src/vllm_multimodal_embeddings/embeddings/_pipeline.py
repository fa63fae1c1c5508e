"""The streaming pipeline: inputs read lazily, prepared by workers, sent while others prepare.

One call is a window of :class:`~..protocol._job.Chunk` tasks (one request's inputs each). A task
prepares its inputs on the worker pool, waits for one of the client's request slots
(:class:`Slots`), then sends them; the caller takes results in input order, and each one taken
lets more chunks in. The window is bounded twice, so that memory does not grow with the corpus:

* by count: at most ``concurrency + 2`` chunks in progress (one per request in flight, and
  two being prepared so that the workers never wait for a straggler); vectors wait only for
  the chunks before them, and chunks answered behind a slow one stop counting (at most
  twice the depth in all);
* by bytes: a chunk is let in only while the client's prepared-but-unanswered payloads
  (:class:`ByteBudget`, ``max_inflight_bytes``) leave room for it, reckoned from the bytes
  per input seen so far. An empty window always takes one chunk, so an input larger than the
  whole budget still goes, alone, and nothing waits forever. A chunk held back is let in
  again as soon as a chunk's hold shrinks (prepared smaller than reckoned, or answered).

Batch size and concurrency come from the client's :class:`~._tuning.Tuner`: fixed when set,
adapted to what the server sustains when left ``None``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .._closing import AsyncClosing, Closing
from .._settings import default_workers
from ..protocol._job import Chunk, ChunkResult, Vector
from ._tuning import TuningStats

__all__ = [
    "AsyncEmbeddingStream",
    "AsyncSlots",
    "ByteBudget",
    "EmbeddingStream",
    "Hold",
    "PreparePool",
    "ProgressCallback",
    "Slots",
    "WindowLimits",
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


class ByteBudget:
    """The prepared-but-unanswered payload bytes of one client, across its calls."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Bytes held now."""
        return self._used

    def hold(
        self, nbytes: int, *, force: bool, on_shrink: Callable[[], None] | None = None
    ) -> Hold | None:
        """Hold ``nbytes`` if they fit (or ``force``: an empty window must make progress);
        ``on_shrink`` is called each time the hold gets smaller."""
        with self._lock:
            if not force and self._used + nbytes > self.limit:
                return None
            self._used += nbytes
        return Hold(self, nbytes, on_shrink)

    def _change(self, delta: int) -> None:
        with self._lock:
            self._used += delta


class Hold:
    """One chunk's share of a :class:`ByteBudget`: an estimate until it is prepared."""

    def __init__(
        self, budget: ByteBudget, nbytes: int, on_shrink: Callable[[], None] | None = None
    ) -> None:
        self._budget = budget
        self._nbytes = nbytes
        self._on_shrink = on_shrink
        self._lock = threading.Lock()

    def set(self, nbytes: int) -> None:
        """The chunk now holds ``nbytes`` (its prepared size, or 0 once answered)."""
        with self._lock:
            delta, self._nbytes = nbytes - self._nbytes, nbytes
        self._budget._change(delta)
        if delta < 0 and self._on_shrink is not None:
            self._on_shrink()

    def release(self) -> None:
        """Give the bytes back (idempotent: the task and the window's cleanup may both)."""
        self.set(0)


@dataclass(frozen=True, slots=True)
class WindowLimits:
    """What bounds one call's window: a depth read live, and the client's byte budget."""

    depth: Callable[[], int]
    budget: ByteBudget
    #: Bytes a chunk will likely take once prepared (by the size of its kind of inputs).
    estimate: Callable[[Chunk], int]
    #: Told each time a chunk is held back for bytes.
    on_byte_wait: Callable[[], None]


class Slots:
    """Requests in flight across a client's threads, at most ``limit()`` (read live: the
    tuner may change it while threads wait)."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._busy = 0
        self._cond = threading.Condition()

    def acquire(self) -> bool:
        """Take a slot; whether it had to wait for one."""
        waited = False
        with self._cond:
            while self._busy >= self._limit():
                waited = True
                self._cond.wait()
            self._busy += 1
        return waited

    def release(self) -> None:
        """Give a slot back; waiters re-read the limit."""
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()


class AsyncSlots:
    """:class:`Slots` for the tasks of one event loop; :meth:`release` needs no await, so a
    cancelled task gives its slot back in a ``finally`` without suspending."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._busy = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self) -> bool:
        """Take a slot; whether it had to wait for one."""
        waited = False
        while self._busy >= self._limit():
            waited = True
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._busy += 1
        return waited

    def release(self) -> None:
        """Give a slot back; every waiter re-reads the limit."""
        self._busy -= 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class EmbeddingStream(Iterator[Vector], Closing):
    """The vectors of one call, one per input, in input order, as they complete.

    Iterate it (``for vector in stream``); leaving early, ``close()`` or a ``with`` block stops
    reading inputs and cancels the work not yet started. Vectors are 1-D numpy arrays
    (float32, or packed int8/uint8 bits for binary embedding types).
    """

    def __init__(
        self,
        run: Generator[Vector, None, None],
        stats: Callable[[], TuningStats] | None = None,
    ) -> None:
        self._run = run
        self._stats = stats

    @property
    def stats(self) -> TuningStats | None:
        """What the client chose for batch size and concurrency so far, and why."""
        return None if self._stats is None else self._stats()

    def __iter__(self) -> EmbeddingStream:
        return self

    def __next__(self) -> Vector:
        return next(self._run)

    def close(self) -> None:
        """Stop: read no more inputs, cancel queued work, drop results not yet taken."""
        self._run.close()


class AsyncEmbeddingStream(AsyncIterator[Vector], AsyncClosing):
    """Async twin of :class:`EmbeddingStream`: ``async for``, ``aclose()``, ``async with``.

    Cancelling the task that iterates it cancels the preparation of inputs not yet started.
    """

    def __init__(
        self,
        run: AsyncGenerator[Vector, None],
        stats: Callable[[], TuningStats] | None = None,
    ) -> None:
        self._run = run
        self._stats = stats

    @property
    def stats(self) -> TuningStats | None:
        """What the client chose for batch size and concurrency so far, and why."""
        return None if self._stats is None else self._stats()

    def __aiter__(self) -> AsyncEmbeddingStream:
        return self

    async def __anext__(self) -> Vector:
        return await self._run.__anext__()

    async def aclose(self) -> None:
        """Stop: read no more inputs, cancel queued work, drop results not yet taken."""
        await self._run.aclose()


# Chunks the window may hold in all, answered or not, per chunk it keeps in progress: answered
# chunks behind a slow head hold only their vectors, and at most this many times the depth.
_LAG = 2


def run_window(
    chunks: Iterator[Chunk],
    submit: Callable[[Chunk, Hold], Future[ChunkResult]],
    limits: WindowLimits,
    on_progress: ProgressCallback | None,
    on_close: Callable[[], None],
) -> Generator[Vector, None, None]:
    """Keep the window full (by count and bytes); hand out vectors in order; stop at an error.

    A chunk answered while an earlier one is still out stops counting toward the depth (its
    payload is gone; its vectors wait for their turn), so a slow request at the head does not
    hold the next chunks back: a server that answers a wave of requests together otherwise
    idled while the window refilled only behind the last of them.
    """
    window: deque[tuple[Future[ChunkResult], Hold]] = deque()
    waiting: list[Chunk] = []  # a chunk read but held back for bytes
    # Set by every chunk that ends, and by a hold that shrinks while a chunk waits for bytes.
    answered = threading.Event()

    def shrunk() -> None:
        # Until the first chunk is prepared, an input is reckoned at a camera photo's size:
        # 256 small images per request took the whole budget, so the second chunk waited
        # for the first one's answer, not its preparation (a 2,048-image job at 256 x 16 ran
        # its first request alone: 0.6-0.7x a hand-written client on an H200).
        if waiting:
            answered.set()

    def top_up() -> None:
        depth = limits.depth()
        busy = sum(1 for future, _ in window if not future.done())
        while busy < depth and len(window) < _LAG * depth:
            chunk = waiting.pop() if waiting else next(chunks, None)
            if chunk is None:
                return
            hold = limits.budget.hold(limits.estimate(chunk), force=not window, on_shrink=shrunk)
            if hold is None:
                waiting.append(chunk)
                limits.on_byte_wait()
                return
            future = submit(chunk, hold)
            future.add_done_callback(lambda _: answered.set())
            window.append((future, hold))
            busy += 1

    try:
        top_up()
        while window:
            future, hold = window[0]
            if not future.done():
                # Cleared before looking: a chunk that ends from here on wakes the wait.
                answered.clear()
                top_up()
                if not future.done():
                    answered.wait()
                continue
            result = future.result()
            window.popleft()
            hold.release()
            top_up()  # before handing out: the pool keeps working while the caller does
            yield from result.vectors
            if on_progress is not None and result.vectors:
                on_progress(len(result.vectors))
            if result.error is not None:
                raise result.error
    finally:
        on_close()
        for future, hold in window:
            future.cancel()
            if future.cancelled():
                hold.release()  # a running task releases its own when it ends


async def arun_window(
    chunks: Iterator[Chunk] | AsyncIterator[Chunk],
    start: Callable[[Chunk, Hold], asyncio.Task[ChunkResult]],
    limits: WindowLimits,
    on_progress: ProgressCallback | None,
) -> AsyncGenerator[Vector, None]:
    """Async :func:`run_window`: chunk tasks on the running loop, cancelled on exit."""
    window: deque[tuple[asyncio.Task[ChunkResult], Hold]] = deque()
    waiting: list[Chunk] = []
    answered = asyncio.Event()

    def shrunk() -> None:
        # See run_window; holds change in the loop's own tasks, so the event may be set here.
        if waiting:
            answered.set()

    async def next_chunk() -> Chunk | None:
        if waiting:
            return waiting.pop()
        if isinstance(chunks, AsyncIterator):
            return await anext(chunks, None)
        return next(chunks, None)

    async def top_up() -> None:
        depth = limits.depth()
        busy = sum(1 for task, _ in window if not task.done())
        while busy < depth and len(window) < _LAG * depth:
            chunk = await next_chunk()
            if chunk is None:
                return
            hold = limits.budget.hold(limits.estimate(chunk), force=not window, on_shrink=shrunk)
            if hold is None:
                waiting.append(chunk)
                limits.on_byte_wait()
                return
            task = start(chunk, hold)
            task.add_done_callback(lambda _: answered.set())
            window.append((task, hold))
            busy += 1

    try:
        await top_up()
        while window:
            task, hold = window[0]
            if not task.done():
                answered.clear()
                await top_up()
                if not task.done():
                    await answered.wait()
                continue
            result = task.result()
            window.popleft()
            hold.release()
            await top_up()
            for vector in result.vectors:
                yield vector
            if on_progress is not None and result.vectors:
                on_progress(len(result.vectors))
            if result.error is not None:
                raise result.error
    finally:
        for task, _ in window:
            task.cancel()
        if window:
            # Let the cancellations land, so no task outlives the call.
            await asyncio.gather(*(task for task, _ in window), return_exceptions=True)
        for _, hold in window:
            hold.release()


def cancel_all(futures: list[Future[Any]]) -> None:
    """Cancel every future not yet started (those running finish on their own)."""
    for future in futures:
        future.cancel()
