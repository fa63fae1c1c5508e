"""The sync and async clients: I/O only, over :class:`ClientCore`."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Generator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any, Literal, TypedDict, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
from typing_extensions import Unpack

from . import _constants as C
from ._base_client import (
    Batch,
    Call,
    ClientCore,
    Job,
    ProgressCallback,
    Truncate,
    Vector,
    next_delay,
    settle,
    transport_error,
)
from ._exceptions import APIError, ImageLoadError
from ._inputs import PreparedInput
from ._server_info import ServerInfo
from ._types import EmbedInput, ImageInput, InputType, OutputDType, ProtocolName
from .profiles import ModelProfile

__all__ = ["AsyncEmbeddingClient", "EmbeddingClient"]

log = logging.getLogger("vllm_multimodal_embeddings")
T = TypeVar("T")


class ClientOptions(TypedDict, total=False):
    """Settings shared by :class:`EmbeddingClient` and :class:`AsyncEmbeddingClient`.

    Attributes:
        base_url: server root, e.g. ``http://localhost:8000``; default ``VLLM_BASE_URL``.
        api_key: bearer token; default ``VLLM_API_KEY``; never logged or shown.
        model: served model name; default ``VLLM_EMBEDDING_MODEL``, else the server's first.
        protocol: ``chat`` (``/v1/embeddings``, matches the official embedder; default) or
            ``cohere`` (``/v2/embed``; the server's task instructions apply).
        profile: prompt layout; default :meth:`ModelProfile.qwen3_vl_embedding`.
        query_instruction: instruction for queries (chat only); default the profile's.
        document_instruction: instruction for documents (chat only); default the profile's.
        dimensions: Matryoshka output size for every call; ``None`` = full size.
        client_side_dimensions: when the server refuses ``dimensions``, truncate and
            re-normalize here instead of raising.
        truncate: over-long inputs: ``NONE`` (default) raises, ``END``/``START`` cut there.
        batch_size: most inputs per request.
        max_batch_bytes: most encoded bytes per request (images dominate).
        max_concurrency: most requests in flight.
        timeout: seconds per request.
        max_retries: retries on connection errors, timeouts, 408/409/429/5xx.
        headers: extra headers for every request.
        max_image_pixels: images above this many pixels are downscaled before sending.
        fetch_remote_images: fetch ``http(s)`` images here and send the bytes, instead of
            letting the server fetch the URL.
    """

    base_url: str | None
    api_key: str | None
    model: str | None
    protocol: ProtocolName
    profile: ModelProfile | None
    query_instruction: str | None
    document_instruction: str | None
    dimensions: int | None
    client_side_dimensions: bool
    truncate: Truncate
    batch_size: int
    max_batch_bytes: int
    max_concurrency: int
    timeout: float
    max_retries: int
    headers: dict[str, str] | None
    max_image_pixels: int
    fetch_remote_images: bool


def _make_core(options: ClientOptions) -> ClientCore:
    return ClientCore(
        base_url=options.get("base_url"),
        api_key=options.get("api_key"),
        model=options.get("model"),
        protocol=options.get("protocol", "chat"),
        profile=options.get("profile"),
        query_instruction=options.get("query_instruction"),
        document_instruction=options.get("document_instruction"),
        dimensions=options.get("dimensions"),
        client_side_dimensions=options.get("client_side_dimensions", False),
        truncate=options.get("truncate", "NONE"),
        batch_size=options.get("batch_size", C.DEFAULT_BATCH_SIZE),
        max_batch_bytes=options.get("max_batch_bytes", C.DEFAULT_MAX_BATCH_BYTES),
        max_concurrency=options.get("max_concurrency", C.DEFAULT_MAX_CONCURRENCY),
        timeout=options.get("timeout", C.DEFAULT_TIMEOUT_S),
        max_retries=options.get("max_retries", C.DEFAULT_MAX_RETRIES),
        headers=options.get("headers"),
        max_image_pixels=options.get("max_image_pixels", C.DEFAULT_MAX_PIXELS),
        fetch_remote_images=options.get("fetch_remote_images", False),
    )


class _ClientBase:
    """Properties and helpers of both clients."""

    _core: ClientCore

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._core!r})"

    @property
    def base_url(self) -> str:
        """The server root."""
        return self._core.base_url

    @property
    def model(self) -> str | None:
        """The served model name (known after the first request when not given)."""
        return self._core.model

    @property
    def protocol(self) -> ProtocolName:
        """The wire protocol in use."""
        return self._core.protocol

    @property
    def profile(self) -> ModelProfile:
        """The prompt layout and the effective instructions."""
        return self._core.profile

    @property
    def dimensions(self) -> int | None:
        """The client-wide output dimension."""
        return self._core.dimensions

    def _fetch_with(self, client: httpx.Client) -> Any:
        """A fetcher for client-side remote images, bounded in size and time."""
        options = self._core.image_options

        def fetch(url: str) -> bytes:
            with client.stream(
                "GET", url, timeout=options.remote_timeout, follow_redirects=True
            ) as response:
                response.raise_for_status()
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > options.remote_max_bytes:
                        raise ImageLoadError(
                            f"image larger than {options.remote_max_bytes} bytes", source=url
                        )
                    chunks.append(chunk)
                return b"".join(chunks)

        return fetch


def _drive_sync(step: Generator[Call, httpx.Response, T], send: Any) -> T:
    """Run a core generator, making each request it yields with ``send``."""
    try:
        call = next(step)
        while True:
            try:
                response = send(call)
            except APIError as exc:
                call = step.throw(exc)
                continue
            call = step.send(response)
    except StopIteration as stop:
        result: T = stop.value
        return result


class EmbeddingClient(_ClientBase):
    """Synchronous client for a vLLM server hosting a multimodal embedding model.

    Example:
        >>> with EmbeddingClient(base_url="http://localhost:8000") as client:  # doctest: +SKIP
        ...     docs = client.embed(["A cat in the snow.", Content(image="cat.jpg")])
        ...     query = client.embed_query("snowy cat")
    """

    def __init__(
        self, *, http_client: httpx.Client | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        """Create a client; the settings are those of :class:`ClientOptions`.

        Args:
            http_client: an ``httpx.Client`` to use (proxies, TLS, transports); not closed
                by :meth:`close`.
        """
        self._core = _make_core(options)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=self._core.timeout)
        self._fetch = self._fetch_with(self._http)
        self._info_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP connection pool, unless it was passed in."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> EmbeddingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API -------------------------------------------------------------------------

    def server_info(self, *, refresh: bool = False) -> ServerInfo:
        """What the server and model support; probed once, then cached."""
        with self._info_lock:
            info = self._core.info
            if info is None or refresh:
                info = _drive_sync(self._core.probe(), self._send)
            return info

    def embed(
        self,
        inputs: Sequence[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[list[float]]:
        """One vector per input, in input order.

        Args:
            inputs: texts (``str``), :class:`Content` items, or images (paths, bytes, PIL, ...).
            input_type: ``document`` (indexed items) or ``query`` (search queries).
            instruction: overrides the instruction for this call (chat protocol).
            dimensions: Matryoshka size for this call; default the client's.
            on_progress: called with the number of inputs done as each request completes.
        """
        vectors: list[list[float]] = self.embed_array(
            inputs,
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            on_progress=on_progress,
        ).tolist()
        return vectors

    def embed_array(
        self,
        inputs: Sequence[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> npt.NDArray[Any]:
        """Like :meth:`embed`, as a ``(len(inputs), dim)`` numpy array.

        Args:
            embedding_type: ``float`` (float32), or with protocol ``cohere`` ``binary``
                (int8) / ``ubinary`` (uint8) sign bits packed eight per byte.
        """
        return self._embed_array(
            inputs,
            str_as="text",
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            embedding_type=embedding_type,
            on_progress=on_progress,
        )

    def _embed_array(
        self,
        inputs: Sequence[Any],
        *,
        str_as: Literal["text", "image"],
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> npt.NDArray[Any]:
        """Validate, prepare, plan and run one call; ``str_as`` says what a ``str`` is."""
        core = self._core
        dims = core.check_call(
            input_type=input_type,
            dimensions=dimensions,
            embedding_type=embedding_type,
            instruction=instruction,
        )
        prepared = core.prepare(inputs, str_as=str_as, fetch=self._fetch)
        if not prepared:
            return np.empty((0, 0), dtype=np.float32)
        job = core.plan(
            prepared,
            info=self.server_info(),
            input_type=input_type,
            instruction=instruction,
            dimensions=dims,
            embedding_type=embedding_type,
        )
        return core.finish(job, self._run(job, on_progress))

    def embed_texts(
        self, texts: Sequence[str], *, input_type: InputType = "document", **kwargs: Any
    ) -> list[list[float]]:
        """Embed texts; every ``str`` is text."""
        return self.embed(texts, input_type=input_type, **kwargs)

    def embed_images(
        self, images: Sequence[ImageInput], *, input_type: InputType = "document", **kwargs: Any
    ) -> list[list[float]]:
        """Embed images; a ``str`` is a path or a ``file://``, ``http(s)://`` or ``data:`` URI."""
        vectors: list[list[float]] = self._embed_array(
            images, str_as="image", input_type=input_type, **kwargs
        ).tolist()
        return vectors

    def embed_query(self, query: EmbedInput, **kwargs: Any) -> list[float]:
        """One query vector (the query instruction applies)."""
        return self.embed([query], input_type="query", **kwargs)[0]

    # -- I/O --------------------------------------------------------------------------------

    def _run(
        self, job: Job, on_progress: ProgressCallback | None
    ) -> list[tuple[Batch, list[Vector]]]:
        def one(batch: Batch) -> tuple[Batch, list[Vector]]:
            vectors = _drive_sync(self._core.run_batch(job, batch), self._send)
            if on_progress is not None:
                on_progress(len(batch.items))
            return batch, vectors

        workers = min(self._core.max_concurrency, len(job.batches))
        if workers <= 1:
            return [one(b) for b in job.batches]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vmme") as pool:
            futures = [pool.submit(one, b) for b in job.batches]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
            return [f.result() for f in futures]

    def _send(self, call: Call) -> httpx.Response:
        core = self._core
        attempts = core.max_retries + 1 if call.retry else 1
        for attempt in range(1, attempts + 1):
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = self._http.request(
                    call.method,
                    core.url(call.path),
                    json=call.json,
                    headers=core.headers(),
                    timeout=core.timeout,
                )
            except httpx.TransportError as exc:
                outcome = exc
            delay = next_delay(call, attempt, attempts, outcome)
            if delay is not None:
                time.sleep(delay)
                continue
            if isinstance(outcome, httpx.TransportError):
                raise transport_error(call, core.base_url, outcome) from outcome
            return settle(call, outcome)
        raise AssertionError("unreachable: the last attempt returns or raises")


class AsyncEmbeddingClient(_ClientBase):
    """Asynchronous twin of :class:`EmbeddingClient`; image encoding runs off the event loop.

    Its ``httpx.AsyncClient`` belongs to the event loop that first uses it: create one client
    per loop (per ``asyncio.run``) and close it with ``aclose()`` or ``async with``.
    """

    def __init__(
        self, *, http_client: httpx.AsyncClient | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        """Create a client; the settings are those of :class:`ClientOptions`.

        Args:
            http_client: an ``httpx.AsyncClient`` to use; not closed by :meth:`aclose`.
        """
        self._core = _make_core(options)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self._core.timeout)
        # Client-side image fetching runs in worker threads, next to the image decoding.
        self._fetch_http: httpx.Client | None = None
        # Created on first use, inside the event loop that owns this client.
        self._info_lock: asyncio.Lock | None = None
        self._semaphore: asyncio.Semaphore | None = None

    async def aclose(self) -> None:
        """Close the HTTP connection pools, unless passed in."""
        if self._owns_http:
            await self._http.aclose()
        if self._fetch_http is not None:
            self._fetch_http.close()

    async def __aenter__(self) -> AsyncEmbeddingClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def server_info(self, *, refresh: bool = False) -> ServerInfo:
        """What the server and model support; probed once, then cached."""
        if self._info_lock is None:
            self._info_lock = asyncio.Lock()
        async with self._info_lock:
            info = self._core.info
            if info is None or refresh:
                info = await self._drive(self._core.probe())
            return info

    async def embed(
        self,
        inputs: Sequence[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[list[float]]:
        """One vector per input, in input order; see :meth:`EmbeddingClient.embed`."""
        array = await self.embed_array(
            inputs,
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            on_progress=on_progress,
        )
        return array.tolist()  # type: ignore[no-any-return]

    async def embed_array(
        self,
        inputs: Sequence[EmbedInput],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> npt.NDArray[Any]:
        """Like :meth:`embed`, as a ``(len(inputs), dim)`` numpy array.

        Args:
            embedding_type: ``float`` (float32), or with protocol ``cohere`` ``binary``
                (int8) / ``ubinary`` (uint8) sign bits packed eight per byte.
        """
        return await self._embed_array(
            inputs,
            str_as="text",
            input_type=input_type,
            instruction=instruction,
            dimensions=dimensions,
            embedding_type=embedding_type,
            on_progress=on_progress,
        )

    async def _embed_array(
        self,
        inputs: Sequence[Any],
        *,
        str_as: Literal["text", "image"],
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        embedding_type: OutputDType = "float",
        on_progress: ProgressCallback | None = None,
    ) -> npt.NDArray[Any]:
        """Validate, prepare (in a worker thread), plan and run one call."""
        core = self._core
        dims = core.check_call(
            input_type=input_type,
            dimensions=dimensions,
            embedding_type=embedding_type,
            instruction=instruction,
        )
        fetch = None
        if core.image_options.fetch_remote:
            if self._fetch_http is None:
                self._fetch_http = httpx.Client(timeout=core.timeout)
            fetch = self._fetch_with(self._fetch_http)
        # Decoding and resizing images is CPU work: keep it off the event loop.
        prepared: list[PreparedInput] = await asyncio.to_thread(
            core.prepare, inputs, str_as=str_as, fetch=fetch
        )
        if not prepared:
            return np.empty((0, 0), dtype=np.float32)
        job = core.plan(
            prepared,
            info=await self.server_info(),
            input_type=input_type,
            instruction=instruction,
            dimensions=dims,
            embedding_type=embedding_type,
        )
        # One bound for every call on this client: frameworks start many calls at once.
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(core.max_concurrency)
        semaphore = self._semaphore

        async def one(batch: Batch) -> tuple[Batch, list[Vector]]:
            async with semaphore:
                vectors: list[Vector] = await self._drive(core.run_batch(job, batch))
            if on_progress is not None:
                on_progress(len(batch.items))
            return batch, vectors

        tasks = [asyncio.ensure_future(one(b)) for b in job.batches]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return core.finish(job, list(results))

    async def embed_texts(
        self, texts: Sequence[str], *, input_type: InputType = "document", **kwargs: Any
    ) -> list[list[float]]:
        """Embed texts; every ``str`` is text."""
        return await self.embed(texts, input_type=input_type, **kwargs)

    async def embed_images(
        self, images: Sequence[ImageInput], *, input_type: InputType = "document", **kwargs: Any
    ) -> list[list[float]]:
        """Embed images; a ``str`` is a path or a ``file://``, ``http(s)://`` or ``data:`` URI."""
        array = await self._embed_array(images, str_as="image", input_type=input_type, **kwargs)
        return array.tolist()  # type: ignore[no-any-return]

    async def embed_query(self, query: EmbedInput, **kwargs: Any) -> list[float]:
        """One query vector (the query instruction applies)."""
        return (await self.embed([query], input_type="query", **kwargs))[0]

    # -- I/O --------------------------------------------------------------------------------

    async def _drive(self, step: Generator[Call, httpx.Response, T]) -> T:
        try:
            call = next(step)
            while True:
                try:
                    response = await self._send(call)
                except APIError as exc:
                    call = step.throw(exc)
                    continue
                call = step.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def _send(self, call: Call) -> httpx.Response:
        core = self._core
        attempts = core.max_retries + 1 if call.retry else 1
        for attempt in range(1, attempts + 1):
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = await self._http.request(
                    call.method,
                    core.url(call.path),
                    json=call.json,
                    headers=core.headers(),
                    timeout=core.timeout,
                )
            except httpx.TransportError as exc:
                outcome = exc
            delay = next_delay(call, attempt, attempts, outcome)
            if delay is not None:
                await asyncio.sleep(delay)
                continue
            if isinstance(outcome, httpx.TransportError):
                raise transport_error(call, core.base_url, outcome) from outcome
            return settle(call, outcome)
        raise AssertionError("unreachable: the last attempt returns or raises")
