"""The sync and async reranking clients: threads, tasks and sockets over :class:`RerankCore`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .._closing import AsyncClosing, Closing
from .._exceptions import InputError
from ..embeddings._pipeline import worker_pool
from ..embeddings._settings import ClientSettings
from ..inputs._fetch import RemoteFetcher
from ..inputs._prepared import PreparedInput
from ..protocol._requests import Batch
from ..transport._http import AsyncTransport, SyncTransport
from ._core import (
    RerankCore,
    RerankInput,
    RerankResult,
    call_instruction,
    check_top_n,
    rank,
)
from ._settings import RerankerSettings

__all__ = ["AsyncRerankClient", "RerankClient"]


# Keywords of the clients that mean "as the settings say" when left None.
_CALL_DEFAULTS = frozenset({"model", "instruction", "recipe_images"})


class _RerankBase:
    """What both clients hold: settings, the core and the remote-image fetcher."""

    def __init__(self, settings: object, options: dict[str, Any]) -> None:
        # model / instruction / recipe_images left None keep what ``settings`` says.
        given = {k: v for k, v in options.items() if v is not None or k not in _CALL_DEFAULTS}
        self.settings = RerankerSettings.of(settings, **given)  # its checks run here
        self._core = RerankCore(self.settings)
        # Its own HTTP client: the server's key and headers never go to an image host.
        self._remote = RemoteFetcher.needed_by(self._core.image_options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self._core.model!r}, {self.settings!r})"

    def __getstate__(self) -> Any:
        raise TypeError(
            f"{type(self).__name__} holds connections and cannot be pickled; build a new "
            "client from its settings"
        )

    @property
    def model(self) -> str | None:
        """The served reranker name (known after the first request when not given)."""
        return self._core.model

    @property
    def instruction(self) -> str | None:
        """The client-wide instruction; ``None``: the server template's (the official one)."""
        return self.settings.instruction

    def _check(
        self, documents: object, top_n: int | None, instruction: str | None
    ) -> tuple[list[RerankInput], str | None]:
        if isinstance(documents, (str, bytes, bytearray)) or not isinstance(documents, Sequence):
            raise InputError(
                f"documents must be a list, got {type(documents).__name__}; wrap one in a list"
            )
        check_top_n(top_n)
        return list(documents), call_instruction(instruction)

    def _prepare(
        self, query: RerankInput, documents: list[RerankInput]
    ) -> tuple[PreparedInput, list[PreparedInput]]:
        """Prepare the query and every document in the worker pool; the first bad one raises."""
        fetch = self._remote
        prepared_query = self._core.prepare_query(query, fetch)
        pool = worker_pool(self.settings.prepare_workers or 1)
        futures = [
            pool.submit(self._core.prepare, doc, i, fetch) for i, doc in enumerate(documents)
        ]
        try:
            return prepared_query, [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()


class RerankClient(_RerankBase, Closing):
    """Synchronous client for a vLLM server hosting Qwen3-VL-Reranker (``POST /rerank``).

    Settings are those of :class:`~vllm_multimodal_embeddings.ClientSettings` (``base_url``,
    ``api_key``, ``timeout``, ``max_retries``, ``batch_size``, ``max_concurrency``, image
    options, ...); the embedding-only ones are ignored. The server is ``base_url``, else
    ``VLLM_RERANKER_BASE_URL``, else ``VLLM_BASE_URL``; the model is ``model``, else
    ``VLLM_RERANKER_MODEL``, else the server's first model (never ``VLLM_EMBEDDING_MODEL``).

    Queries and documents take every input form the embedder takes: ``str`` (text), images
    (paths, URIs, bytes, streams, PIL images) and ``Content(text=..., image=...)`` pairs.

    Example:
        >>> docs = [Path("car.jpg"), Content(text="A red car", image="b.png"), "A bus."]
        >>> with RerankClient(base_url="http://localhost:8001") as client:  # doctest: +SKIP
        ...     best = client.rerank("a red car", docs, top_n=2)
        ...     [(r.index, r.score) for r in best]
    """

    def __init__(
        self,
        settings: RerankerSettings | ClientSettings | None = None,
        /,
        *,
        model: str | None = None,
        instruction: str | None = None,
        recipe_images: bool | None = None,
        http_client: httpx.Client | None = None,
        **options: Any,
    ) -> None:
        """Create a client.

        Args:
            settings: a ``ClientSettings``; keywords change or give single settings.
            model: the served reranker name (see the class docstring for the fallbacks).
            instruction: the task instruction for every call; ``None`` leaves the server's
                (the official "Given a search query, retrieve relevant candidates ...").
            recipe_images: resize images here exactly as the official recipe does (sides
                multiples of 32 within 4,096..1,843,200 pixels, bicubic) and send them
                losslessly, so vLLM scores the recipe's pixels; ``False`` sends them as the
                embedder prepares them (downscaled to ``max_image_pixels``) and lets vLLM
                resize, which drifts from the recipe by up to ~1e-3. ``http(s)`` images the
                server fetches itself are never resized here (see ``fetch_remote_images``).
            http_client: an ``httpx.Client`` for the server; not closed by :meth:`close`.
        """
        calls = {"model": model, "instruction": instruction, "recipe_images": recipe_images}
        super().__init__(settings, {**options, **calls})
        self._transport = SyncTransport(self.settings, http_client)

    def close(self) -> None:
        """Close the connection pool (unless passed in)."""
        self._transport.close()
        if self._remote is not None:
            self._remote.close()

    def score(
        self,
        query: RerankInput,
        documents: Sequence[RerankInput],
        *,
        instruction: str | None = None,
    ) -> list[float]:
        """Every document's relevance to ``query``, in the order of ``documents``."""
        docs, instruction = self._check(documents, None, instruction)
        if not docs:
            return []
        prepared_query, prepared = self._prepare(query, docs)
        self._transport.drive(self._core.resolve_model())
        batches = self._core.batches(prepared_query, prepared)

        def run(batch: Batch) -> list[float]:
            return self._transport.drive(self._core.score_batch(prepared_query, batch, instruction))

        if len(batches) == 1:
            return run(batches[0])
        workers = min(len(batches), self.settings.fixed_concurrency())
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vmme-rerank") as pool:
            return [s for scores in pool.map(run, batches) for s in scores]

    def rerank(
        self,
        query: RerankInput,
        documents: Sequence[RerankInput],
        *,
        top_n: int | None = None,
        instruction: str | None = None,
    ) -> list[RerankResult]:
        """The documents best first as ``RerankResult(index, score)``, at most ``top_n``."""
        check_top_n(top_n)
        return rank(self.score(query, documents, instruction=instruction), top_n)


class AsyncRerankClient(_RerankBase, AsyncClosing):
    """Asynchronous twin of :class:`RerankClient`; image preparation runs in worker threads."""

    def __init__(
        self,
        settings: RerankerSettings | ClientSettings | None = None,
        /,
        *,
        model: str | None = None,
        instruction: str | None = None,
        recipe_images: bool | None = None,
        http_client: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> None:
        """Create a client; the arguments are :class:`RerankClient`'s."""
        calls = {"model": model, "instruction": instruction, "recipe_images": recipe_images}
        super().__init__(settings, {**options, **calls})
        self._transport = AsyncTransport(self.settings, http_client)

    async def aclose(self) -> None:
        """Close the connection pool (unless passed in)."""
        await self._transport.aclose()
        if self._remote is not None:
            await asyncio.to_thread(self._remote.close)

    async def score(
        self,
        query: RerankInput,
        documents: Sequence[RerankInput],
        *,
        instruction: str | None = None,
    ) -> list[float]:
        """Every document's relevance to ``query``, in the order of ``documents``."""
        docs, instruction = self._check(documents, None, instruction)
        if not docs:
            return []
        prepared_query, prepared = await asyncio.to_thread(self._prepare, query, docs)
        await self._transport.drive(self._core.resolve_model())
        batches = self._core.batches(prepared_query, prepared)
        results = await asyncio.gather(
            *(
                self._transport.drive(self._core.score_batch(prepared_query, b, instruction))
                for b in batches
            )
        )
        return [s for scores in results for s in scores]

    async def rerank(
        self,
        query: RerankInput,
        documents: Sequence[RerankInput],
        *,
        top_n: int | None = None,
        instruction: str | None = None,
    ) -> list[RerankResult]:
        """The documents best first as ``RerankResult(index, score)``, at most ``top_n``."""
        check_top_n(top_n)
        return rank(await self.score(query, documents, instruction=instruction), top_n)
