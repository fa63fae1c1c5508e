"""LlamaIndex adapter: :class:`VLLMMultiModalEmbedding`, one model for text and images.

Needs the ``llama-index`` extra (``pip install 'vllm-multimodal-embeddings[llama-index]'``).
Every request goes through :class:`~vllm_multimodal_embeddings.EmbeddingClient` or
:class:`~vllm_multimodal_embeddings.AsyncEmbeddingClient`; this module makes no HTTP of its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import httpx
from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import BaseNode, ImageDocument, ImageNode, ImageType, MetadataMode

from . import _constants as C
from ._adapter_clients import AdapterClients
from ._client import AsyncEmbeddingClient, ClientOptions, EmbeddingClient
from ._exceptions import APIError, InputError
from ._types import Content, EmbedInput, ImageInput

__all__ = ["ImageNodeLike", "VLLMMultiModalEmbedding"]

#: What :meth:`VLLMMultiModalEmbedding.embed_image_nodes` takes. ``ImageDocument`` is not an
#: ``ImageNode`` in llama-index-core >= 0.12 (it wraps a ``MediaResource``) but offers the same
#: ``image`` / ``image_path`` / ``image_url`` / ``image_mimetype`` properties.
ImageNodeLike = ImageNode | ImageDocument


class VLLMMultiModalEmbedding(MultiModalEmbedding):
    """Text and image embeddings from a vLLM server hosting Qwen3-VL-Embedding.

    One model serves both sides of a ``MultiModalVectorStoreIndex``: pass it as
    ``embed_model`` and ``image_embed_model``. Queries are embedded under the query
    instruction; texts and images (the indexed side) under the document instruction.

    Setup:
        ``pip install 'vllm-multimodal-embeddings[llama-index]'``; a vLLM server running
        ``--runner pooling``. Settings left ``None`` fall back to ``VLLM_BASE_URL``,
        ``VLLM_API_KEY`` and ``VLLM_EMBEDDING_MODEL``.

    Instantiate:
        >>> emb = VLLMMultiModalEmbedding(base_url="http://localhost:8000")  # doctest: +SKIP
        >>> index = MultiModalVectorStoreIndex.from_documents(  # doctest: +SKIP
        ...     docs, embed_model=emb, image_embed_model=emb, storage_context=ctx)

    Images:
        ``get_image_embedding`` takes what LlamaIndex hands over: a path (``str`` or
        ``Path``), an ``http(s)``/``file://``/``data:`` URI, a ``BytesIO``, raw bytes or a PIL
        image. :meth:`embed_image_nodes` takes ``ImageNode``/``ImageDocument`` objects.

    Batching:
        ``embed_batch_size`` is the most inputs per HTTP request. An image batch goes to the
        core client as one call, which sends its requests ``max_concurrency`` at a time.
    """

    base_url: str | None = Field(
        default=None, description="Server root, e.g. http://localhost:8000; None = VLLM_BASE_URL."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Bearer token; None = VLLM_API_KEY. Never serialized or shown.",
        exclude=True,
        repr=False,
    )
    model_name: str = Field(
        default="",
        description="Served model name; empty = VLLM_EMBEDDING_MODEL, else the server's first.",
    )
    protocol: Literal["chat", "cohere"] = Field(
        default="chat",
        description="chat: /v1/embeddings (matches the official embedder); cohere: /v2/embed.",
    )
    query_instruction: str | None = Field(
        default=None, description="Instruction for queries (chat protocol); None = the model's."
    )
    document_instruction: str | None = Field(
        default=None,
        description="Instruction for texts and images being indexed; None = the model's.",
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="Matryoshka output size; None = the model's full size."
    )
    client_side_dimensions: bool = Field(
        default=False,
        description="When the server refuses `dimensions`, truncate and re-normalize here.",
    )
    truncate: Literal["NONE", "START", "END"] = Field(
        default="NONE", description="Over-long inputs: NONE raises, START/END cut there."
    )
    embed_batch_size: int = Field(
        default=C.DEFAULT_BATCH_SIZE,
        ge=1,
        le=2048,
        description="Most inputs per HTTP request.",
    )
    max_batch_bytes: int = Field(
        default=C.DEFAULT_MAX_BATCH_BYTES,
        ge=1,
        description="Most encoded bytes per request (images dominate).",
    )
    max_concurrency: int = Field(
        default=C.DEFAULT_MAX_CONCURRENCY, ge=1, description="Most requests in flight per call."
    )
    timeout: float = Field(default=C.DEFAULT_TIMEOUT_S, gt=0, description="Seconds per request.")
    max_retries: int = Field(
        default=C.DEFAULT_MAX_RETRIES,
        ge=0,
        description="Retries on connection errors, timeouts, 408/409/429/5xx.",
    )
    headers: dict[str, str] | None = Field(
        default=None,
        description="Extra headers for every request; not serialized (they may hold secrets).",
        exclude=True,
        repr=False,
    )
    max_image_pixels: int = Field(
        default=C.DEFAULT_MAX_PIXELS,
        ge=1,
        description="Images above this many pixels are downscaled before sending.",
    )
    fetch_remote_images: bool = Field(
        default=False,
        description="Fetch http(s) images here and send the bytes instead of the URL.",
    )
    embed_node_text_with_image: bool = Field(
        default=False,
        description="Embed an image node's text together with its image as one vector.",
    )
    http_client: httpx.Client | None = Field(
        default=None,
        description="httpx.Client for sync requests (proxies, TLS, event hooks); not closed here.",
        exclude=True,
        repr=False,
    )
    async_http_client: httpx.AsyncClient | None = Field(
        default=None,
        description="httpx.AsyncClient for async requests; not closed here.",
        exclude=True,
        repr=False,
    )

    # Rebuilt when a field changes; one async client per event loop.
    _clients: AdapterClients = PrivateAttr(default_factory=AdapterClients)

    @classmethod
    def class_name(cls) -> str:
        return "VLLMMultiModalEmbedding"

    # -- clients ----------------------------------------------------------------------------

    def _options(self) -> ClientOptions:
        return ClientOptions(
            base_url=self.base_url,
            api_key=self.api_key.get_secret_value() if self.api_key is not None else None,
            model=self.model_name or None,
            protocol=self.protocol,
            query_instruction=self.query_instruction,
            document_instruction=self.document_instruction,
            dimensions=self.dimensions,
            client_side_dimensions=self.client_side_dimensions,
            truncate=self.truncate,
            batch_size=self.embed_batch_size,
            max_batch_bytes=self.max_batch_bytes,
            max_concurrency=self.max_concurrency,
            timeout=self.timeout,
            max_retries=self.max_retries,
            headers=self.headers,
            max_image_pixels=self.max_image_pixels,
            fetch_remote_images=self.fetch_remote_images,
        )

    def _sync_client(self) -> EmbeddingClient:
        return self._clients.sync(self._options(), self.http_client)

    def _async_client(self) -> AsyncEmbeddingClient:
        return self._clients.async_(self._options(), self.async_http_client)

    def _remember_model(self, client: EmbeddingClient | AsyncEmbeddingClient) -> None:
        # Observability payloads carry model_name: fill it in once the server named it. The
        # clients stay: naming the model the server chose asks for the same client.
        if not self.model_name and client.model:
            self.model_name = client.model

    def close(self) -> None:
        """Close the sync client's connection pool (an injected ``http_client`` stays open)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close both clients' pools (injected HTTP clients stay open)."""
        await self._clients.aclose()

    def to_payload(self) -> dict[str, Any]:
        """What callbacks and instrumentation events see: no key, no headers."""
        return {
            **super().to_payload(),
            "base_url": self.base_url,
            "protocol": self.protocol,
            "dimensions": self.dimensions,
        }

    # -- text -------------------------------------------------------------------------------

    def _embed(
        self, inputs: Sequence[EmbedInput], input_type: Literal["query", "document"]
    ) -> list[Embedding]:
        client = self._sync_client()
        vectors = client.embed(inputs, input_type=input_type)
        self._remember_model(client)
        return vectors

    async def _aembed(
        self, inputs: Sequence[EmbedInput], input_type: Literal["query", "document"]
    ) -> list[Embedding]:
        client = self._async_client()
        vectors = await client.embed(inputs, input_type=input_type)
        self._remember_model(client)
        return vectors

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query], "query")[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aembed([query], "query"))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text], "document")[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aembed([text], "document"))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts, "document")

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed(texts, "document")

    # -- images -----------------------------------------------------------------------------

    def _images(self, images: Sequence[ImageType], show_progress: bool) -> list[Embedding]:
        client = self._sync_client()
        vectors = client.embed_images(
            list(images), input_type="document", on_progress=_progress(show_progress, len(images))
        )
        self._remember_model(client)
        return vectors

    async def _aimages(self, images: Sequence[ImageType], show_progress: bool) -> list[Embedding]:
        client = self._async_client()
        vectors = await client.embed_images(
            list(images), input_type="document", on_progress=_progress(show_progress, len(images))
        )
        self._remember_model(client)
        return vectors

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._images([img_file_path], False)[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return (await self._aimages([img_file_path], False))[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._images(img_file_paths, False)

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await self._aimages(img_file_paths, False)

    def get_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed images in one core call: ``embed_batch_size`` per request, run concurrently.

        One callback event per ``embed_batch_size`` chunk, as in the base class; an error's
        ``index`` is the position in ``img_file_paths``.
        """
        return self._with_events(
            img_file_paths, lambda: self._images(img_file_paths, show_progress)
        )

    async def aget_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Async twin of :meth:`get_image_embedding_batch`."""
        events = self._start_events(img_file_paths)
        vectors = await self._aimages(img_file_paths, show_progress)
        self._end_events(events, vectors)
        return vectors

    # -- image nodes ------------------------------------------------------------------------

    def node_input(self, node: ImageNodeLike) -> EmbedInput:
        """What one image node is embedded as.

        The image comes from ``node.image`` (base64, typed by ``image_mimetype``), else
        ``image_path``, else ``image_url`` (the server fetches it unless
        ``fetch_remote_images``). With ``embed_node_text_with_image`` the node's text joins
        the image in one vector.

        Raises:
            InputError: the node has no image source.
        """
        image = _node_image(node)
        if self.embed_node_text_with_image:
            text = node.get_content(metadata_mode=MetadataMode.EMBED)
            if text.strip():
                return Content(text=text, image=image)
        return Content(image=image)

    def embed_image_nodes(
        self, nodes: Sequence[ImageNodeLike], show_progress: bool = False
    ) -> list[Embedding]:
        """One vector per image node, in order; errors name the node's position and id."""
        inputs = _node_inputs(self, nodes)
        client = self._sync_client()
        return self._with_events(
            inputs,
            lambda: _named(
                nodes,
                lambda: client.embed(
                    inputs,
                    input_type="document",
                    on_progress=_progress(show_progress, len(inputs)),
                ),
            ),
        )

    async def aembed_image_nodes(
        self, nodes: Sequence[ImageNodeLike], show_progress: bool = False
    ) -> list[Embedding]:
        """Async twin of :meth:`embed_image_nodes`."""
        inputs = _node_inputs(self, nodes)
        client = self._async_client()
        events = self._start_events(inputs)
        try:
            vectors = await client.embed(
                inputs, input_type="document", on_progress=_progress(show_progress, len(inputs))
            )
        except (InputError, APIError) as exc:
            _annotate(exc, nodes)
            raise
        self._end_events(events, vectors)
        return vectors

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Embed nodes in a pipeline: image nodes by their image, the rest by their text."""
        images, texts = _split(nodes)
        if images:
            vectors = self.embed_image_nodes(
                [cast(ImageNodeLike, nodes[i]) for i in images],
                show_progress=kwargs.get("show_progress", False),
            )
            for i, vector in zip(images, vectors, strict=True):
                nodes[i].embedding = vector
        if texts:
            vectors = self.get_text_embedding_batch(
                [nodes[i].get_content(metadata_mode=MetadataMode.EMBED) for i in texts], **kwargs
            )
            for i, vector in zip(texts, vectors, strict=True):
                nodes[i].embedding = vector
        return nodes

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Async twin of :meth:`__call__`."""
        images, texts = _split(nodes)
        if images:
            vectors = await self.aembed_image_nodes(
                [cast(ImageNodeLike, nodes[i]) for i in images],
                show_progress=kwargs.get("show_progress", False),
            )
            for i, vector in zip(images, vectors, strict=True):
                nodes[i].embedding = vector
        if texts:
            vectors = await self.aget_text_embedding_batch(
                [nodes[i].get_content(metadata_mode=MetadataMode.EMBED) for i in texts], **kwargs
            )
            for i, vector in zip(texts, vectors, strict=True):
                nodes[i].embedding = vector
        return nodes

    # -- callback events --------------------------------------------------------------------

    def _start_events(self, items: Sequence[Any]) -> list[tuple[str, list[Any]]]:
        # One event per embed_batch_size chunk, opened before the call, as the base class does.
        payload: dict[str, Any] = {EventPayload.SERIALIZED: self.to_payload()}
        step = self.embed_batch_size
        return [
            (
                self.callback_manager.on_event_start(CBEventType.EMBEDDING, payload=payload),
                list(items[i : i + step]),
            )
            for i in range(0, len(items), step)
        ]

    def _end_events(self, events: list[tuple[str, list[Any]]], vectors: list[Embedding]) -> None:
        start = 0
        for event_id, chunk in events:
            self.callback_manager.on_event_end(
                CBEventType.EMBEDDING,
                payload={
                    EventPayload.CHUNKS: chunk,
                    EventPayload.EMBEDDINGS: vectors[start : start + len(chunk)],
                },
                event_id=event_id,
            )
            start += len(chunk)

    def _with_events(
        self, items: Sequence[Any], run: Callable[[], list[Embedding]]
    ) -> list[Embedding]:
        events = self._start_events(items)
        vectors = run()
        self._end_events(events, vectors)
        return vectors


def _node_image(node: ImageNodeLike) -> ImageInput:
    if node.image:
        mime = node.image_mimetype or ""
        # The core validates the base64 and the image; a non-image mimetype would be refused,
        # and the bytes say what they are anyway.
        mime = mime if mime.startswith("image/") else ""
        return f"data:{mime};base64,{node.image}"
    if node.image_path:
        return node.image_path
    if node.image_url:
        return node.image_url
    raise InputError(f"node {node.node_id!r} has no image, image_path or image_url")


def _node_inputs(emb: VLLMMultiModalEmbedding, nodes: Sequence[ImageNodeLike]) -> list[EmbedInput]:
    inputs: list[EmbedInput] = []
    for i, node in enumerate(nodes):
        try:
            inputs.append(emb.node_input(node))
        except InputError as exc:
            exc.index = i
            raise
    return inputs


def _annotate(exc: InputError | APIError, nodes: Sequence[BaseNode]) -> None:
    """Put the node id in an error the core raised about input ``exc.index``."""
    if exc.index is not None and 0 <= exc.index < len(nodes):
        exc.message = f"node {nodes[exc.index].node_id!r}: {exc.message}"


def _named(nodes: Sequence[BaseNode], run: Callable[[], list[Embedding]]) -> list[Embedding]:
    try:
        return run()
    except (InputError, APIError) as exc:
        _annotate(exc, nodes)
        raise


def _has_image(node: BaseNode) -> bool:
    return isinstance(node, (ImageNode, ImageDocument)) and bool(
        node.image or node.image_path or node.image_url
    )


def _split(nodes: Sequence[BaseNode]) -> tuple[list[int], list[int]]:
    images = [i for i, n in enumerate(nodes) if _has_image(n)]
    image_set = set(images)
    return images, [i for i in range(len(nodes)) if i not in image_set]


def _progress(show: bool, total: int) -> Callable[[int], None] | None:
    """A tqdm bar fed by the core's per-request progress, when asked for and installed."""
    if not show:
        return None
    try:
        # tqdm is optional and untyped: bind it as Any.
        tqdm: Any = importlib.import_module("tqdm.auto").tqdm
    except ImportError:
        return None
    bar = tqdm(total=total, desc="Generating embeddings")

    def update(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return update
