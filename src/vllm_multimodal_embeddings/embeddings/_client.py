"""The sync and async embedding clients: threads, tasks and sockets over :class:`EmbeddingCore`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, Callable, Iterable, Sized
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from .. import _constants as C
from .._closing import AsyncClosing, Closing
from .._exceptions import ImageLoadError, UnsupportedFeatureError, VLLMEmbeddingError
from .._types import Content, EmbedInput, ImageInput, InputType, OutputDType, ProtocolName
from ..inputs._fetch import RemoteFetcher
from ..inputs._pool import (
    ProcessPreparer,
    StrAs,
    discard_pool,
    encoded_size,
    goes_to_process,
    process_pool,
)
from ..inputs._prepared import Fetcher, PreparedInput
from ..profiles import ModelProfile
from ..protocol._job import Chunk, ChunkResult, Job, Vector
from ..protocol._probe import probe
from ..protocol._server_info import ServerInfo
from ..transport._http import AsyncTransport, SyncTransport
from ..transport._memory import give_back_memory
from ._core import CallRun, EmbeddingCore
from ._pipeline import (
    AsyncEmbeddingStream,
    AsyncSlots,
    ByteBudget,
    EmbeddingStream,
    Hold,
    PreparePool,
    ProgressCallback,
    Slots,
    WindowLimits,
    arun_window,
    cancel_all,
    run_window,
    window_depth,
)
from ._settings import ClientSettings
from ._tuning import Tuner, TuningStats

__all__ = ["AsyncEmbeddingClient", "EmbeddingClient"]


Outcome = PreparedInput | VLLMEmbeddingError


class _Share:
    """One input of a group prepared by one pool task (the async client's small images): its
    place in the group future's list of outcomes."""

    __slots__ = ("group", "place")

    def __init__(self, group: Future[list[Outcome]], place: int) -> None:
        self.group, self.place = group, place


#: An input being prepared on a pool (alone or in a group), or already prepared in place.
Preparing = Future[Any] | _Share | Outcome


def _settle(result: Any, index: int, processes: int) -> Outcome:
    """A preparation's result; a worker process that died becomes a typed error naming the
    input (and the broken pool is dropped, so the next call starts a fresh one)."""
    if isinstance(result, BrokenProcessPool):
        discard_pool(processes)
        return ImageLoadError(
            "the process pool preparing it broke (a worker process died: out of memory, or a "
            "crash in an image decoder); set prepare_processes=0 to prepare on threads",
            index=index,
        )
    if isinstance(result, BaseException) and not isinstance(result, VLLMEmbeddingError):
        raise result  # a bug or a cancellation, not an input's fault (those are returned)
    outcome: Outcome = result
    return outcome


def _outcomes(preparing: list[Preparing], start: int, processes: int) -> list[Outcome]:
    """Each input's outcome, in order (waits for the pools where they are not done)."""
    out: list[Outcome] = []
    for k, part in enumerate(preparing):
        if isinstance(part, _Share):
            out.append(part.group.result()[part.place])  # thread work: outcomes, no raises
            continue
        if not isinstance(part, Future):  # prepared in place
            out.append(part)
            continue
        try:
            result = part.result()
        except BrokenProcessPool as exc:
            result = exc
        out.append(_settle(result, start + k, processes))
    return out


def _pending(preparing: list[Preparing]) -> list[Future[Any]]:
    """The pool tasks behind ``preparing``, each once."""
    seen: dict[int, Future[Any]] = {}
    for part in preparing:
        task = part.group if isinstance(part, _Share) else part
        if isinstance(task, Future):
            seen.setdefault(id(task), task)
    return list(seen.values())


def _text_only(item: object, str_as: str) -> bool:
    """Whether preparing ``item`` is only a text check: cheaper done in place than handed to
    a pool (a hand-off costs ~50 us; short texts ran at half the hand-written rate on a GPU)."""
    if isinstance(item, str):
        return str_as == "text"
    return (
        isinstance(item, Content) and item.image is None and item.video is None and not item.parts
    )


def _small_image(item: object, str_as: StrAs) -> bool:
    """Whether ``item`` is an encoded image of a few kB (bytes, a ``data:`` URI, a regular
    local file): its preparation is then a header check (~0.2 ms), also cheaper in place than
    handed to a pool. Larger ones may need decoding and resizing, which the pool spreads."""
    if isinstance(item, Content) and item.text is not None:
        return False
    if not goes_to_process(item, str_as):  # texts, URLs, PIL images, streams
        return False
    size = encoded_size(item)
    return size is not None and size <= C.INLINE_IMAGE_BYTES


# One thread at a time prepares in place (texts, small encoded images): that work holds the GIL
# anyway, and while several threads did it, each file read handed the GIL to a waiting thread
# and back (futex calls, context switches). 224 px JPEG files, 8 requests in flight against an
# instant stand-in: ~145 -> ~30 us of system CPU per image, ~600 -> ~320 us in all.
_IN_PLACE = threading.Lock()


def _prepare_group(
    core: EmbeddingCore, items: list[tuple[Any, int]], str_as: StrAs, fetch: Fetcher | None
) -> list[Outcome]:
    with _IN_PLACE:
        return [core.prepare(item, index, str_as, fetch) for item, index in items]


def _stack(vectors: list[Vector]) -> npt.NDArray[Any]:
    if not vectors:
        return np.empty((0, 0), dtype=np.float32)
    return np.stack(vectors)


class _ClientBase:
    """What both clients hold: settings, the core, the remote-image fetcher, the probe result."""

    #: Prepare small encoded images in the chunk's own thread (the sync client; the async
    #: one would block its event loop).
    _inline_images = False

    def __init__(self, settings: ClientSettings | None, options: dict[str, Any]) -> None:
        self.settings = ClientSettings.create(settings, **options)
        self._core = EmbeddingCore(self.settings)
        # Its own HTTP client: the server's key and headers never go to an image host.
        self._remote = RemoteFetcher.needed_by(self.settings)
        self._info: ServerInfo | None = None
        # The probe result a refusal was last checked against (see _plan).
        self._confirmed: ServerInfo | None = None
        self._prepare = PreparePool(self.settings.prepare_workers)
        s = self.settings
        self._tuner = Tuner(
            batch_size=s.batch_size,
            max_concurrency=s.max_concurrency,
            max_batch_bytes=s.max_batch_bytes,
            timeout=s.timeout,
        )
        self._budget = ByteBudget(s.max_inflight_bytes)
        self._processes = s.prepare_processes or 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"

    def __getstate__(self) -> Any:
        raise TypeError(
            f"{type(self).__name__} holds connections and cannot be pickled; pickle its "
            "settings (client.settings) and build a new client from them"
        )

    @property
    def base_url(self) -> str:
        """The server root."""
        return self.settings.base_url or ""

    @property
    def model(self) -> str | None:
        """The served model name (known after the first request when not given)."""
        return self._core.model

    @property
    def protocol(self) -> ProtocolName:
        """The wire protocol in use."""
        return self.settings.protocol

    @property
    def profile(self) -> ModelProfile:
        """The prompt layout and the effective instructions."""
        return self._core.profile

    @property
    def sends_instructions(self) -> bool:
        """Whether this client's protocol sends its instructions (``chat``); with ``cohere``
        the server's ``task_instructions`` pick one by ``input_type``."""
        return self._core.endpoint.sends_instructions

    def instruction_for(self, input_type: InputType, override: str | None = None) -> str | None:
        """The instruction a call of ``input_type`` sends (``override`` first), or ``None`` when
        the protocol sends none."""
        if not self.sends_instructions:
            return None
        return self._core.profile.instruction_for(input_type, override)

    @property
    def dimensions(self) -> int | None:
        """The client-wide output dimension."""
        return self.settings.dimensions

    @property
    def stats(self) -> TuningStats:
        """Batch size and concurrency now, whether they are tuned, and why they are what they
        are (also logged at DEBUG on each change)."""
        return self._tuner.stats()

    def _limits(self, str_as: StrAs) -> WindowLimits:
        tuner = self._tuner

        def estimate(chunk: Chunk) -> int:
            return tuner.estimate(len(chunk.items), text=_text_only(chunk.items[0], str_as))

        return WindowLimits(
            depth=lambda: window_depth(tuner.concurrency),
            budget=self._budget,
            estimate=estimate,
            on_byte_wait=tuner.byte_wait,
        )

    def _prepared(self, hold: Hold, chunk: Chunk, str_as: StrAs, good: list[PreparedInput]) -> int:
        """Count a chunk's prepared payload against the byte budget, and tell the tuner."""
        nbytes = sum(item.nbytes for item in good)
        # The tuner first: a smaller hold wakes a window whose next chunk waits for bytes, and
        # that chunk must then be reckoned by this chunk's measured size.
        self._tuner.prepared(len(good), nbytes, text=_text_only(chunk.items[0], str_as))
        hold.set(nbytes)
        return nbytes

    def _chunk_size(self, str_as: StrAs, inputs: object) -> Callable[[Any], int]:
        """How many inputs the chunk starting with a given input takes (media after texts
        start small, a short call's chunks share its inputs among the requests in flight:
        see :meth:`Tuner.batch_size_for`)."""
        tuner = self._tuner
        total = len(inputs) if isinstance(inputs, Sized) else None
        return lambda first: tuner.batch_size_for(_text_only(first, str_as), total)

    def _adopt(self, info: ServerInfo) -> None:
        """Use a probe result found by another client of the same settings (adapters)."""
        self._info = info
        self._core.model = info.model

    def _prepare_all(self, run: CallRun, chunk: Chunk) -> list[Preparing]:
        """Prepare a chunk's inputs: texts here and now, small encoded images here too (sync)
        or as one pool task (async: ~0.2 ms each would stall the event loop), large local
        images on the process pool when the client has one, the rest on the worker threads."""
        str_as, fetch, core = run.options.str_as, self._remote, self._core
        shares = {} if self._inline_images else self._group_small(chunk, str_as, fetch)
        out: list[Preparing] = []
        preparer: ProcessPreparer | None = None
        for k, item in enumerate(chunk.items):
            index = chunk.start + k
            if k in shares:
                out.append(shares[k])
            elif _text_only(item, str_as) or (self._inline_images and _small_image(item, str_as)):
                out.append(core.prepare(item, index, str_as, fetch))
            elif self._processes:
                if preparer is None:
                    preparer = ProcessPreparer(
                        process_pool(self._processes),
                        self._prepare.executor(),
                        core.images,
                        min_bytes=C.PROCESS_MIN_BYTES,
                    )
                out.append(preparer.submit(item, index, str_as, fetch))
            else:
                out.append(
                    self._prepare.executor().submit(core.prepare, item, index, str_as, fetch)
                )
        return out

    def _group_small(self, chunk: Chunk, str_as: StrAs, fetch: Fetcher | None) -> dict[int, _Share]:
        """The chunk's small encoded images as one pool task, by their place in the chunk:
        one hand-off per image cost more than their header checks."""
        places = [
            k
            for k, item in enumerate(chunk.items)
            if not _text_only(item, str_as) and _small_image(item, str_as)
        ]
        if not places:
            return {}
        items = [(chunk.items[k], chunk.start + k) for k in places]
        group = self._prepare.executor().submit(_prepare_group, self._core, items, str_as, fetch)
        return {k: _Share(group, place) for place, k in enumerate(places)}


class EmbeddingClient(_ClientBase, Closing):
    """Synchronous client for a vLLM server hosting a multimodal embedding model.

    Settings are those of :class:`ClientSettings`, given as keywords or as an object::

        client = EmbeddingClient(base_url="http://localhost:8000", dimensions=512)
        client = EmbeddingClient(settings)                    # a ClientSettings
        client = EmbeddingClient(settings, batch_size=32)     # ... with changes

    Example:
        >>> with EmbeddingClient(base_url="http://localhost:8000") as client:  # doctest: +SKIP
        ...     docs = client.embed(["A cat in the snow.", Content(image="cat.jpg")])
        ...     query = client.embed_query("snowy cat")
        ...     for vector in client.iter_embed_images(Path("photos").glob("*.jpg")):
        ...         ...  # one vector per photo, in order, in bounded memory
    """

    _inline_images = True

    def __init__(
        self,
        settings: ClientSettings | None = None,
        /,
        *,
        http_client: httpx.Client | None = None,
        **options: Any,
    ) -> None:
        """Create a client.

        Args:
            settings: a :class:`ClientSettings`; keywords change or give single settings.
            http_client: an ``httpx.Client`` for the server (proxies, TLS, transports); not
                closed by :meth:`close`, and never used for remote images.
        """
        super().__init__(settings, options)
        self._transport = SyncTransport(self.settings, http_client)
        self._transport.on_overload = self._tuner.overloaded
        self._slots = Slots(lambda: self._tuner.concurrency)
        self._lock = threading.Lock()
        self._chunk_pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Close the connection pool (unless passed in) and stop this client's threads."""
        with self._lock:
            pool, self._chunk_pool = self._chunk_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._prepare.close()
        self._transport.close()
        if self._remote is not None:
            self._remote.close()

    # -- public API -------------------------------------------------------------------------

    def server_info(self, *, refresh: bool = False) -> ServerInfo:
        """What the server and model support; probed once, then cached."""
        with self._lock:
            if self._info is None or refresh:
                self._adopt(self._transport.drive(probe(self._core.model)))
            assert self._info is not None
            return self._info

    def _plan(self, run: CallRun) -> Job:
        """The call's plan; a plan the cached probe result refuses is tried once more against a
        fresh probe (the server may have restarted with other flags since). A refusal the fresh
        probe confirmed raises at once next time: one probe per change of mind, not per call."""
        info = self.server_info()
        try:
            return run.plan(info)
        except UnsupportedFeatureError:
            if info is self._confirmed:
                raise
            fresh = self.server_info(refresh=self._info is info)
            self._confirmed = fresh
            if fresh == info:
                raise
            return run.plan(fresh)

    def iter_embed(
        self,
        inputs: Iterable[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> EmbeddingStream:
        """Stream one vector per input, in input order, as they complete, in bounded memory.

        ``inputs`` may be any iterable, a generator included: it is read as the pipeline
        needs more. Preparing images runs on ``prepare_workers`` threads while requests are
        in flight. A bad input raises, naming its index, after every vector before it.

        Args:
            inputs: texts (``str``), :class:`Content` items, or images (paths, bytes, PIL, ...).
            input_type: ``document`` (indexed items) or ``query`` (search queries).
            instruction: overrides the instruction for this call (chat protocol): text, a
                :class:`TaskPreset` or its name.
            dimensions: Matryoshka size for this call; default the client's.
            embedding_type: ``float``; ``int8`` (chat: the model's learned int8 code, see
                ``int8_scale``); with protocol ``cohere`` ``binary`` / ``ubinary``.
            on_progress: called with the number of inputs done as their vectors come out.
        """
        run = self._core.start(
            inputs,
            str_as="text",
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            embedding_type=embedding_type,
        )
        return EmbeddingStream(self._run(inputs, run, on_progress), self._tuner.stats)

    def iter_embed_images(
        self,
        images: Iterable[ImageInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> EmbeddingStream:
        """:meth:`iter_embed` where a ``str`` is an image path or URI, not text."""
        run = self._core.start(
            images,
            str_as="image",
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            embedding_type=embedding_type,
        )
        return EmbeddingStream(self._run(images, run, on_progress), self._tuner.stats)

    def embed(
        self,
        inputs: Iterable[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[list[float]]:
        """One vector per input, in input order (see :meth:`iter_embed`)."""
        with self.iter_embed(
            inputs,
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            on_progress=on_progress,
        ) as stream:
            return [vector.tolist() for vector in stream]

    def embed_array(
        self,
        inputs: Iterable[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> npt.NDArray[Any]:
        """Like :meth:`embed`, as a ``(len(inputs), dim)`` numpy array.

        Args:
            embedding_type: ``float`` (float32); ``int8`` (chat protocol: int8 codes with the
                model's learned step); or with protocol ``cohere`` ``binary`` (int8) /
                ``ubinary`` (uint8) sign bits packed eight per byte.
        """
        with self.iter_embed(
            inputs,
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            embedding_type=embedding_type,
            on_progress=on_progress,
        ) as stream:
            return _stack(list(stream))

    def embed_texts(
        self, texts: Iterable[str], *, input_type: InputType = "document", **kwargs: Any
    ) -> list[list[float]]:
        """Embed texts; every ``str`` is text."""
        return self.embed(texts, input_type=input_type, **kwargs)

    def embed_images(
        self, images: Iterable[ImageInput], *, input_type: InputType = "document", **kwargs: Any
    ) -> list[list[float]]:
        """Embed images; a ``str`` is a path or a ``file://``, ``http(s)://`` or ``data:`` URI."""
        with self.iter_embed_images(images, input_type=input_type, **kwargs) as stream:
            return [vector.tolist() for vector in stream]

    def embed_query(self, query: EmbedInput, **kwargs: Any) -> list[float]:
        """One query vector (the query instruction applies)."""
        return self.embed([query], input_type="query", **kwargs)[0]

    # -- I/O --------------------------------------------------------------------------------

    def _chunks_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._chunk_pool is None:
                self._chunk_pool = ThreadPoolExecutor(
                    # Sized for the most the tuner may allow; threads start only as needed.
                    max_workers=window_depth(self._tuner.max_concurrency),
                    thread_name_prefix="vmme-chunk",
                )
            return self._chunk_pool

    def _run(
        self, inputs: Iterable[Any], run: CallRun, on_progress: ProgressCallback | None
    ) -> Any:
        tuner = self._tuner
        chunks = self._core.chunks(inputs, self._chunk_size(run.options.str_as, inputs))
        pool = self._chunks_pool()
        closed = threading.Event()
        preparing: set[Future[Any]] = set()
        preparing_lock = threading.Lock()

        def run_chunk(chunk: Chunk, hold: Hold) -> ChunkResult:
            try:
                return send_chunk(chunk, hold)
            finally:
                hold.release()  # answered or failed: its payloads are gone

        def send_chunk(chunk: Chunk, hold: Hold) -> ChunkResult:
            if closed.is_set() or run.skip(chunk):
                return ChunkResult([])
            with _IN_PLACE:  # the chunk's other inputs are only handed to pools here
                parts = self._prepare_all(run, chunk)
            futures = _pending(parts)
            if futures:
                with preparing_lock:
                    preparing.update(futures)
                wait(futures)
                with preparing_lock:
                    # A done future holds its payload: keep none past its chunk, or the call
                    # would keep every prepared input alive until it ends.
                    preparing.difference_update(futures)
            del futures
            if closed.is_set() or run.skip(chunk):
                return ChunkResult([])
            good, error = run.triage(chunk, _outcomes(parts, chunk.start, self._processes))
            del parts
            nbytes = self._prepared(hold, chunk, run.options.str_as, good)
            if not good:
                return ChunkResult([], error)
            job = self._plan(run)
            waited = self._slots.acquire()
            try:
                if closed.is_set() or run.skip(chunk):  # while it waited for the slot
                    return ChunkResult([])
                started = tuner.now()
                result = self._transport.drive(run.send(job, chunk.start, good, error))
                tuner.answered(len(result.vectors), nbytes, started, waited=waited)
            finally:
                self._slots.release()
            del good
            if nbytes >= C.TRIM_AFTER_BYTES:
                give_back_memory()
            return result

        def on_close() -> None:
            closed.set()
            with preparing_lock:
                cancel_all(list(preparing))

        return run_window(
            chunks,
            lambda chunk, hold: pool.submit(run_chunk, chunk, hold),
            self._limits(run.options.str_as),
            on_progress,
            on_close,
        )


class AsyncEmbeddingClient(_ClientBase, AsyncClosing):
    """Asynchronous twin of :class:`EmbeddingClient`; image preparation runs on worker threads.

    Its ``httpx.AsyncClient`` belongs to the event loop that first uses it: create one client
    per loop (per ``asyncio.run``) and close it with ``aclose()`` or ``async with``.
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        /,
        *,
        http_client: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> None:
        """Create a client; see :class:`EmbeddingClient`.

        Args:
            http_client: an ``httpx.AsyncClient`` for the server; not closed by :meth:`aclose`.
        """
        super().__init__(settings, options)
        self._transport = AsyncTransport(self.settings, http_client)
        self._transport.on_overload = self._tuner.overloaded
        # Created on first use, inside the event loop that owns this client.
        self._info_lock: asyncio.Lock | None = None
        self._slots: AsyncSlots | None = None

    async def aclose(self) -> None:
        """Close the connection pool, unless it was passed in."""
        self._prepare.close()
        await self._transport.aclose()
        if self._remote is not None:
            self._remote.close()

    async def server_info(self, *, refresh: bool = False) -> ServerInfo:
        """What the server and model support; probed once, then cached."""
        if self._info_lock is None:
            self._info_lock = asyncio.Lock()
        async with self._info_lock:
            if self._info is None or refresh:
                self._adopt(await self._transport.drive(probe(self._core.model)))
            assert self._info is not None
            return self._info

    async def _plan(self, run: CallRun) -> Job:
        """:meth:`EmbeddingClient._plan`, awaiting the probe."""
        info = await self.server_info()
        try:
            return run.plan(info)
        except UnsupportedFeatureError:
            if info is self._confirmed:
                raise
            fresh = await self.server_info(refresh=self._info is info)
            self._confirmed = fresh
            if fresh == info:
                raise
            return run.plan(fresh)

    def iter_embed(
        self,
        inputs: Iterable[EmbedInput] | AsyncIterable[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> AsyncEmbeddingStream:
        """Stream vectors with ``async for``; see :meth:`EmbeddingClient.iter_embed`.

        ``inputs`` may also be an async iterable. Cancelling the iterating task stops the
        preparation of inputs not yet started.
        """
        run = self._core.start(
            inputs,
            str_as="text",
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            embedding_type=embedding_type,
        )
        return AsyncEmbeddingStream(self._run(inputs, run, on_progress), self._tuner.stats)

    def iter_embed_images(
        self,
        images: Iterable[ImageInput] | AsyncIterable[ImageInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> AsyncEmbeddingStream:
        """:meth:`iter_embed` where a ``str`` is an image path or URI, not text."""
        run = self._core.start(
            images,
            str_as="image",
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            embedding_type=embedding_type,
        )
        return AsyncEmbeddingStream(self._run(images, run, on_progress), self._tuner.stats)

    async def embed(
        self,
        inputs: Iterable[EmbedInput] | AsyncIterable[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[list[float]]:
        """One vector per input, in input order; see :meth:`EmbeddingClient.embed`."""
        async with self.iter_embed(
            inputs,
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            on_progress=on_progress,
        ) as stream:
            return [vector.tolist() async for vector in stream]

    async def embed_array(
        self,
        inputs: Iterable[EmbedInput] | AsyncIterable[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> npt.NDArray[Any]:
        """Like :meth:`embed`, as a ``(len(inputs), dim)`` numpy array."""
        async with self.iter_embed(
            inputs,
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            embedding_type=embedding_type,
            on_progress=on_progress,
        ) as stream:
            return _stack([vector async for vector in stream])

    async def embed_texts(
        self, texts: Iterable[str], *, input_type: InputType = "document", **kwargs: Any
    ) -> list[list[float]]:
        """Embed texts; every ``str`` is text."""
        return await self.embed(texts, input_type=input_type, **kwargs)

    async def embed_images(
        self,
        images: Iterable[ImageInput] | AsyncIterable[ImageInput],
        *,
        input_type: InputType = "document",
        **kwargs: Any,
    ) -> list[list[float]]:
        """Embed images; a ``str`` is a path or a ``file://``, ``http(s)://`` or ``data:`` URI."""
        async with self.iter_embed_images(images, input_type=input_type, **kwargs) as stream:
            return [vector.tolist() async for vector in stream]

    async def embed_query(self, query: EmbedInput, **kwargs: Any) -> list[float]:
        """One query vector (the query instruction applies)."""
        return (await self.embed([query], input_type="query", **kwargs))[0]

    # -- I/O --------------------------------------------------------------------------------

    async def _run(
        self,
        inputs: Iterable[Any] | AsyncIterable[Any],
        run: CallRun,
        on_progress: ProgressCallback | None,
    ) -> Any:
        core, tuner = self._core, self._tuner
        size = self._chunk_size(run.options.str_as, inputs)
        chunks: Any = (
            core.achunks(inputs, size)
            if isinstance(inputs, AsyncIterable)
            else core.chunks(inputs, size)
        )
        if self._slots is None:
            # One bound for every call on this client: frameworks start many calls at once.
            self._slots = AsyncSlots(lambda: tuner.concurrency)
        slots = self._slots
        processes = self._processes

        async def run_chunk(chunk: Chunk, hold: Hold) -> ChunkResult:
            try:
                return await send_chunk(chunk, hold)
            finally:
                hold.release()

        async def send_chunk(chunk: Chunk, hold: Hold) -> ChunkResult:
            loop = asyncio.get_running_loop()
            parts = self._prepare_all(run, chunk)
            # wrap_future: cancelling the gather cancels the preparations not yet started.
            await asyncio.gather(
                *(asyncio.wrap_future(f, loop=loop) for f in _pending(parts)),
                return_exceptions=True,
            )
            if run.skip(chunk):
                return ChunkResult([])
            prepared = _outcomes(parts, chunk.start, processes)  # all done: no waiting
            del parts
            good, error = run.triage(chunk, prepared)
            nbytes = self._prepared(hold, chunk, run.options.str_as, good)
            if not good:
                return ChunkResult([], error)
            job = await self._plan(run)
            waited = await slots.acquire()
            try:
                if run.skip(chunk):  # while it waited for the slot
                    return ChunkResult([])
                started = tuner.now()
                result = await self._transport.drive(run.send(job, chunk.start, good, error))
                tuner.answered(len(result.vectors), nbytes, started, waited=waited)
            finally:
                slots.release()
            del good
            if nbytes >= C.TRIM_AFTER_BYTES:
                # Off the event loop: a trim walks every heap (up to ~12 ms measured).
                await asyncio.to_thread(give_back_memory)
            return result

        async for vector in arun_window(
            chunks,
            lambda chunk, hold: asyncio.ensure_future(run_chunk(chunk, hold)),
            self._limits(run.options.str_as),
            on_progress,
        ):
            yield vector
