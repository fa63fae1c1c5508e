"""Input preparation in worker processes, for images whose preparation threads cannot spread.

The pipeline prepares inputs on a pool of threads
(:func:`..embeddings._pipeline.worker_pool`). For camera photos that is decode, resize and
re-encode; Pillow releases the GIL for those, but not for everything around them, so threads
stop scaling before the cores run out. A
:class:`ProcessPreparer` sends the inputs whose preparation is pixel work, and which cross a
process boundary cheaply (paths, ``bytes``, ``data:`` URIs), to a pool of processes, and
prepares everything else (texts, PIL images, streams, ``http(s)`` URLs and their fetcher,
``Content`` items) on the threads, as before. Either way the future's result is what
``EmbeddingCore.prepare`` returns: the prepared input, or the error naming it.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, Literal

from .._exceptions import VLLMEmbeddingError
from .._types import Content
from ._prepared import Fetcher, PreparedInput
from ._read import prepare_input
from ._settings import ImageSettings

__all__ = [
    "Outcome",
    "ProcessPreparer",
    "discard_pool",
    "encoded_size",
    "goes_to_process",
    "large_enough",
    "prepare_outcome",
    "process_pool",
]

Outcome = PreparedInput | VLLMEmbeddingError
StrAs = Literal["text", "image"]

_pools: dict[int, ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def prepare_outcome(
    item: Any, index: int, options: ImageSettings, str_as: StrAs, fetch: Fetcher | None = None
) -> Outcome:
    """One input prepared, or the error that names it (returned, so it reaches its place)."""
    try:
        return prepare_input(item, index=index, options=options, str_as=str_as, fetch=fetch)
    except VLLMEmbeddingError as exc:
        return exc


def goes_to_process(item: object, str_as: StrAs) -> bool:
    """Whether ``item`` is worth a worker process: pixel work, and cheap to send there.

    Texts are cheap anywhere; PIL images would cross as raw pixels; streams and fetchers do not
    pickle; ``http(s)`` URLs are passed through or fetched, which is I/O, not pixels.
    """
    if isinstance(item, Content):
        # How the adapters hand images over (LlamaIndex wraps every path; its photos were
        # prepared on threads, 12.7/s against 15.2/s on an H100): the pixel work is the
        # image's. With a video or interleaved parts it stays on the threads.
        return (
            item.image is not None
            and item.video is None
            and not item.parts
            and goes_to_process(item.image, "image")
        )
    if isinstance(item, (bytes, bytearray, os.PathLike)):
        return True
    if isinstance(item, str) and str_as == "image":
        return not item[:8].lower().startswith(("http://", "https://"))
    return False


def large_enough(item: object, min_bytes: int) -> bool:
    """Whether ``item`` (one :func:`goes_to_process` accepts) has ``min_bytes`` or more, so the
    pixel work outweighs the round trip to a process (a 640x480 JPEG does not, a photo does).
    A path that cannot be read stays on the threads, which report it."""
    if min_bytes <= 0:
        return True
    size = encoded_size(item)
    return size is not None and size >= min_bytes


def encoded_size(item: object) -> int | None:
    """The encoded bytes of ``item`` (one :func:`goes_to_process` accepts), ``None`` for a
    path that is no regular file (missing, a directory, a PDF page reference, a FIFO)."""
    if isinstance(item, Content):
        return encoded_size(item.image)
    if isinstance(item, (bytes, bytearray)):
        return len(item)
    if isinstance(item, str) and item[:5].lower() == "data:":
        return len(item) * 3 // 4
    try:
        info = os.stat(item)  # type: ignore[arg-type]
    except (OSError, ValueError, TypeError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def discard_pool(workers: int) -> None:
    """Forget the pool of ``workers`` (a broken one): the next :func:`process_pool` starts anew."""
    with _pools_lock:
        pool = _pools.pop(workers, None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """The process-wide pool of ``workers`` preparing processes (started on first use).

    ``forkserver`` (``spawn`` where there is none): forking a process that runs HTTP threads
    could copy a lock some thread holds. The fork server imports this module (and with it
    Pillow and numpy) once, so each worker starts as a fork with them loaded: 8 workers were
    ready for pixel work 1.0-1.8 s after the first submit instead of 3.3-4.9 s (2 busy
    cores), time a job of a few hundred photos otherwise spends waiting. Workers then stay.
    """
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            methods = multiprocessing.get_all_start_methods()
            method = "forkserver" if "forkserver" in methods else "spawn"
            context = multiprocessing.get_context(method)
            if method == "forkserver":
                # "__main__" is the default preload, kept; a fork server already running (the
                # application's) is left as it is.
                context.set_forkserver_preload(["__main__", __name__])
            pool = ProcessPoolExecutor(workers, mp_context=context)
            _pools[workers] = pool
        return pool


class ProcessPreparer:
    """Prepare inputs on processes where that pays, on ``threads`` otherwise.

    Args:
        processes: the pool for pixel work (:func:`process_pool`).
        threads: the pool for everything else (the pipeline's ``worker_pool``).
        options: how images are prepared.
        min_bytes: inputs smaller than this stay on the threads (see :func:`large_enough`).
    """

    def __init__(
        self,
        processes: ProcessPoolExecutor,
        threads: Executor,
        options: ImageSettings,
        *,
        min_bytes: int = 0,
    ) -> None:
        self._processes = processes
        self._threads = threads
        self._options = options
        self._min_bytes = min_bytes

    def submit(
        self, item: Any, index: int, str_as: StrAs, fetch: Fetcher | None = None
    ) -> Future[Outcome]:
        """Start preparing one input; the future gives what :func:`prepare_outcome` returns."""
        if goes_to_process(item, str_as) and large_enough(item, self._min_bytes):
            return self._processes.submit(prepare_outcome, item, index, self._options, str_as)
        return self._threads.submit(prepare_outcome, item, index, self._options, str_as, fetch)
