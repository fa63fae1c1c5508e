"""LlamaIndex adapter: :class:`VLLMMultiModalEmbedding`, one model for text and images.

Needs the ``llama-index`` extra (``pip install 'vllm-multimodal-embeddings[llama-index]'``).
Every request goes through :class:`~vllm_multimodal_embeddings.EmbeddingClient` or
:class:`~vllm_multimodal_embeddings.AsyncEmbeddingClient`; this module makes no HTTP of its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

import httpx
import llama_index.core.instrumentation as instrument
from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    model_validator,
)
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from llama_index.core.schema import BaseNode, ImageDocument, ImageNode, ImageType, MetadataMode
from llama_index.core.utils import get_tqdm_iterable

from .._exceptions import APIError, InputError
from .._redact import redact_url
from .._types import Content, EmbedInput, ImageInput
from ..adapters._base import AdapterBase
from ..adapters._clients import AdapterClients, settings_from
from ..adapters._fields import EmbeddingFields, declared
from ..embeddings._client import AsyncEmbeddingClient, EmbeddingClient
from ..embeddings._settings import ClientSettings
from ..profiles import ModelProfile

__all__ = ["ImageNodeLike", "VLLMMultiModalEmbedding"]

#: What :meth:`VLLMMultiModalEmbedding.embed_image_nodes` takes. ``ImageDocument`` is not an
#: ``ImageNode`` in llama-index-core >= 0.12 (it wraps a ``MediaResource``) but offers the same
#: ``image`` / ``image_path`` / ``image_url`` / ``image_mimetype`` properties.
ImageNodeLike = ImageNode | ImageDocument

# Re-exported from llama_index_instrumentation without __all__ (mypy's implicit re-export rule).
dispatcher = instrument.get_dispatcher(__name__)  # type: ignore[attr-defined]

# Defaults come from ClientSettings, the one place that declares them.
_DEFAULT: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ClientSettings)}
# LlamaIndex's default (10) would mean a callback event every 10 inputs, and with an embeddings
# cache or a rate limiter (LlamaIndex's own slice-by-slice loop) a pipeline stop as often.
_EMBED_BATCH_SIZE = 256
#: ClientSettings names this adapter spells differently (LlamaIndex's conventions).
RENAMED = {"model": "model_name"}


class VLLMMultiModalEmbedding(AdapterBase, EmbeddingFields, MultiModalEmbedding):
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
        ``get_text_embedding_batch`` and ``get_image_embedding_batch`` (and their async twins)
        stream the whole list through one call of the client: ``batch_size`` inputs per
        request, ``max_concurrency`` requests in flight, both tuned to the server when left
        ``None``, images prepared meanwhile. ``embed_batch_size`` (default 256) is the slice
        that LlamaIndex's callbacks and instrumentation events report, one event per slice
        as before; it no longer stops the pipeline between slices. With an
        ``embeddings_cache`` or a ``rate_limiter`` set, LlamaIndex's own slice-by-slice path
        runs instead. An error's ``index`` counts within the list given to the public method
        (``get_image_embedding_batch``, :meth:`embed_image_nodes`, ...).
    """

    # None: VLLM_BASE_URL / VLLM_API_KEY / VLLM_EMBEDDING_MODEL are read when the client is made.
    base_url: str | None = declared(ClientSettings, "base_url", default=None)
    api_key: SecretStr | None = declared(
        ClientSettings, "api_key", default=None, exclude=True, repr=False
    )
    model_name: str = declared(ClientSettings, "model", default="")  # LlamaIndex: a str
    profile: ModelProfile | None = declared(ClientSettings, "profile", exclude=True)
    embed_batch_size: int = Field(
        default=_EMBED_BATCH_SIZE,
        gt=0,
        le=2048,
        description="Inputs per callback event; one client stream runs across the slices.",
    )
    headers: dict[str, str] | None = declared(ClientSettings, "headers", exclude=True, repr=False)
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

    http_fields = ("http_client", "async_http_client")  # LlamaIndex's names
    # Rebuilt when a field changes; one async client per event loop.
    _clients: AdapterClients = PrivateAttr(default_factory=AdapterClients)

    @classmethod
    def class_name(cls) -> str:
        return "VLLMMultiModalEmbedding"

    @model_validator(mode="after")
    def _check_settings(self) -> VLLMMultiModalEmbedding:
        # What only ClientSettings knows (a URL without a scheme, an instruction the cohere
        # protocol cannot carry, an unknown preset name) fails here, not at the first embed
        # call deep inside an ingestion pipeline. Its ConfigurationError is a ValueError:
        # pydantic reports it as a ValidationError.
        self.settings()
        return self

    # -- clients ----------------------------------------------------------------------------

    def settings(self) -> ClientSettings:
        """The client settings these fields stand for."""
        return self._once(lambda: settings_from(self, RENAMED))

    def _sync_client(self) -> EmbeddingClient:
        return self._clients.sync(self.settings(), self.http_client)

    def _async_client(self) -> AsyncEmbeddingClient:
        return self._clients.async_(self.settings(), self.async_http_client)

    def _remember_model(self, client: EmbeddingClient | AsyncEmbeddingClient) -> None:
        # Observability payloads carry model_name: fill it in once the server named it. The
        # clients stay: naming the model the server chose asks for the same client.
        if not self.model_name and client.model:
            self.model_name = client.model

    def to_payload(self) -> dict[str, Any]:
        """What callbacks and instrumentation events see: no key, no headers."""
        return {
            **super().to_payload(),
            "base_url": redact_url(self.base_url) if self.base_url else None,
            "protocol": self.protocol,
            "dimensions": self.dimensions,
        }

    # -- the hooks LlamaIndex calls (it owns batching, callbacks and instrumentation) ------

    def _embed(
        self, inputs: Sequence[Any], input_type: Literal["query", "document"]
    ) -> list[Embedding]:
        client = self._sync_client()
        try:
            vectors = client.embed(inputs, input_type=input_type)
        except (InputError, APIError) as exc:
            _remember_item(exc, inputs)
            raise
        self._remember_model(client)
        return vectors

    async def _aembed(
        self, inputs: Sequence[Any], input_type: Literal["query", "document"]
    ) -> list[Embedding]:
        client = self._async_client()
        try:
            vectors = await client.embed(inputs, input_type=input_type)
        except (InputError, APIError) as exc:
            _remember_item(exc, inputs)
            raise
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

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._embed([_image(img_file_path)], "document")[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return (await self._aembed([_image(img_file_path)], "document"))[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._embed([_image(p) for p in img_file_paths], "document")

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await self._aembed([_image(p) for p in img_file_paths], "document")

    # -- public batch methods: one stream, events per slice, errors at the caller's index --
    #
    # LlamaIndex's own batch methods call the hooks above once per embed_batch_size slice and
    # wait for each: the client's window drained at every slice (on an H100, LlamaIndex ran
    # short texts at 0.66x the client). These stream the whole list through one client call
    # and report each slice to callbacks and instrumentation as its vectors arrive, so an
    # error's index is already the caller's.

    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed ``texts`` (the indexed side) as one stream; see the class's Batching."""
        if self._per_slice():
            return _indexed(
                texts,
                lambda: super(VLLMMultiModalEmbedding, self).get_text_embedding_batch(
                    texts, show_progress, **kwargs
                ),
            )
        return self._streamed(texts, texts, show_progress, instrumented=True)

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Async twin of :meth:`get_text_embedding_batch`."""
        if self._per_slice():
            try:
                return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)
            except (InputError, APIError) as exc:
                _reindex(exc, texts)
                raise
        return await self._astreamed(texts, texts, show_progress, instrumented=True)

    def get_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed images as one stream, an error's ``index`` counted in ``img_file_paths``."""
        inputs = [_image(p) for p in img_file_paths]
        return self._streamed(img_file_paths, inputs, show_progress, instrumented=False)

    async def aget_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Async twin of :meth:`get_image_embedding_batch`."""
        inputs = [_image(p) for p in img_file_paths]
        return await self._astreamed(img_file_paths, inputs, show_progress, instrumented=False)

    def _per_slice(self) -> bool:
        # A cache answers some texts without a request and a rate limiter paces each slice:
        # both live in LlamaIndex's own loop, which then runs as it is.
        return self.embeddings_cache is not None or self.rate_limiter is not None

    def _slices(self, items: Sequence[Any], show_progress: bool) -> Iterator[Sequence[Any]]:
        size = self.embed_batch_size
        starts = range(0, len(items), size)
        for start in get_tqdm_iterable(starts, show_progress, "Generating embeddings"):
            yield items[start : start + size]

    @contextmanager
    def _event(self, chunk: Sequence[Any], *, instrumented: bool) -> Iterator[list[Embedding]]:
        """One slice's callback event (and instrumentation events for texts, as LlamaIndex
        sends them): the caller fills the list it is given."""
        payload, chunks = self.to_payload(), list(chunk)
        if instrumented:
            dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        embeddings: list[Embedding] = []
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        ) as event:
            yield embeddings
            event.on_end(payload={EventPayload.CHUNKS: chunks, EventPayload.EMBEDDINGS: embeddings})
        if instrumented:
            # Built without validation: pydantic checked every float of the slice again (256
            # vectors of 2048: ~5 ms a slice, ~40 us a text, a sixth of the adapter's CPU on
            # short texts); these are the lists of Python floats just made. Defaults (time,
            # id, span, a fresh tags dict) are filled in as by the constructor.
            end = EmbeddingEndEvent.model_construct(chunks=chunks, embeddings=embeddings)
            dispatcher.event(end)

    def _streamed(
        self, items: Sequence[Any], inputs: list[Any], show_progress: bool, *, instrumented: bool
    ) -> list[Embedding]:
        client = self._sync_client()
        out: list[Embedding] = []
        with client.iter_embed(inputs, input_type="document") as stream:
            for chunk in self._slices(items, show_progress):
                with self._event(chunk, instrumented=instrumented) as embeddings:
                    embeddings.extend(v.tolist() for v in itertools.islice(stream, len(chunk)))
                out.extend(embeddings)
        self._remember_model(client)
        return out

    async def _astreamed(
        self, items: Sequence[Any], inputs: list[Any], show_progress: bool, *, instrumented: bool
    ) -> list[Embedding]:
        client = self._async_client()
        out: list[Embedding] = []
        async with client.iter_embed(inputs, input_type="document") as stream:
            for chunk in self._slices(items, show_progress):
                with self._event(chunk, instrumented=instrumented) as embeddings:
                    for _ in chunk:
                        embeddings.append((await anext(stream)).tolist())
                out.extend(embeddings)
        self._remember_model(client)
        return out

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
        try:
            return self.get_image_embedding_batch(inputs, show_progress)  # type: ignore[arg-type]
        except (InputError, APIError) as exc:
            _annotate(exc, nodes)
            raise

    async def aembed_image_nodes(
        self, nodes: Sequence[ImageNodeLike], show_progress: bool = False
    ) -> list[Embedding]:
        """Async twin of :meth:`embed_image_nodes`."""
        inputs = _node_inputs(self, nodes)
        try:
            return await self.aget_image_embedding_batch(inputs, show_progress)  # type: ignore[arg-type]
        except (InputError, APIError) as exc:
            _annotate(exc, nodes)
            raise

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Embed nodes in a pipeline: image nodes by their image, the rest by their text.

        An error names the node: its id in the message, its position in ``nodes`` as ``index``.
        """
        images, texts = _split(nodes)
        if images:
            with _at_nodes(nodes, images):
                vectors = self.embed_image_nodes(
                    [cast(ImageNodeLike, nodes[i]) for i in images],
                    show_progress=kwargs.get("show_progress", False),
                )
            for i, vector in zip(images, vectors, strict=True):
                nodes[i].embedding = vector
        if texts:
            contents = [nodes[i].get_content(metadata_mode=MetadataMode.EMBED) for i in texts]
            with _at_nodes(nodes, texts, sent=contents):
                vectors = self.get_text_embedding_batch(contents, **kwargs)
            for i, vector in zip(texts, vectors, strict=True):
                nodes[i].embedding = vector
        return nodes

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Async twin of :meth:`__call__`."""
        images, texts = _split(nodes)
        if images:
            with _at_nodes(nodes, images):
                vectors = await self.aembed_image_nodes(
                    [cast(ImageNodeLike, nodes[i]) for i in images],
                    show_progress=kwargs.get("show_progress", False),
                )
            for i, vector in zip(images, vectors, strict=True):
                nodes[i].embedding = vector
        if texts:
            contents = [nodes[i].get_content(metadata_mode=MetadataMode.EMBED) for i in texts]
            with _at_nodes(nodes, texts, sent=contents):
                vectors = await self.aget_text_embedding_batch(contents, **kwargs)
            for i, vector in zip(texts, vectors, strict=True):
                nodes[i].embedding = vector
        return nodes


@contextmanager
def _at_nodes(
    nodes: Sequence[BaseNode], positions: list[int], *, sent: Sequence[str] | None = None
) -> Iterator[None]:
    """Re-point an error about item ``k`` of a group at ``nodes[positions[k]]``.

    ``sent``: the group went out as these texts through the base class's batching, so the
    error is first placed among them and then given the node id (image-node errors come back
    from :meth:`embed_image_nodes` already placed and named).
    """
    try:
        yield
    except (InputError, APIError) as exc:
        if sent is not None:
            _reindex(exc, sent)
        if exc.index is not None and 0 <= exc.index < len(positions):
            exc.index = positions[exc.index]
            if sent is not None:
                _annotate(exc, nodes)
        raise


def _image(item: Any) -> Any:
    """An image as the client takes it: a ``str`` is a path or URI here, never text."""
    return Content(image=item) if isinstance(item, str) else item


# The input an error names, as the hook that raised it saw it. A hook sees one slice of the
# caller's list (LlamaIndex cuts it by embed_batch_size, and its embeddings cache re-slices
# it to the uncached texts), so only the public method can say where the item sits in the
# whole list. Kept beside the error, weakly, so that the error itself carries (and pickles)
# nothing but its index.
_FAILED_ITEM: weakref.WeakKeyDictionary[BaseException, Any] = weakref.WeakKeyDictionary()


def _remember_item(exc: InputError | APIError, inputs: Sequence[Any]) -> None:
    if exc.index is not None and 0 <= exc.index < len(inputs):
        _FAILED_ITEM[exc] = inputs[exc.index]


def _reindex(exc: InputError | APIError, items: Sequence[Any]) -> None:
    item = _FAILED_ITEM.pop(exc, None)
    if item is None:
        return
    for position, candidate in enumerate(items):
        if (
            candidate is item
            or _image(candidate) is item
            or (isinstance(item, Content) and item.image is candidate)
        ):
            exc.index = position
            return


def _indexed(items: Sequence[Any], run: Callable[[], list[Embedding]]) -> list[Embedding]:
    try:
        return run()
    except (InputError, APIError) as exc:
        _reindex(exc, items)
        raise


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


def _has_image(node: BaseNode) -> bool:
    return isinstance(node, (ImageNode, ImageDocument)) and bool(
        node.image or node.image_path or node.image_url
    )


def _split(nodes: Sequence[BaseNode]) -> tuple[list[int], list[int]]:
    images = [i for i, n in enumerate(nodes) if _has_image(n)]
    image_set = set(images)
    return images, [i for i in range(len(nodes)) if i not in image_set]
