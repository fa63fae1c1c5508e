"""LangChain embeddings for a vLLM server hosting Qwen3-VL-Embedding: texts, images, or both.

Needs the ``langchain`` extra (``pip install "vllm-multimodal-embeddings[langchain]"``). A thin
adapter over :class:`~vllm_multimodal_embeddings.EmbeddingClient` and
:class:`~vllm_multimodal_embeddings.AsyncEmbeddingClient`: no HTTP of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from langchain_core.embeddings import Embeddings
from langchain_core.utils import secret_from_env
from pydantic import (
    AliasChoices,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    model_validator,
)

from .. import _constants as C
from .._exceptions import InputError
from .._types import Content, EmbedInput, InputType
from ..adapters._base import AdapterBase
from ..adapters._clients import AdapterClients, settings_from
from ..adapters._fields import EmbeddingFields, declared
from ..embeddings._client import AsyncEmbeddingClient, EmbeddingClient
from ..embeddings._settings import ClientSettings
from ..profiles import ModelProfile

__all__ = ["MultimodalItem", "VLLMMultimodalEmbeddings"]

#: One item for :meth:`VLLMMultimodalEmbeddings.embed_multimodal`: a :class:`Content`, a mapping
#: with the keys ``text`` / ``image`` / ``video``, or a ``str`` (text).
MultimodalItem = Content | Mapping[str, Any] | str

_CONTENT_KEYS = frozenset({"text", "image", "video"})
# Defaults come from ClientSettings, the one place that declares them.
_DEFAULT: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ClientSettings)}
#: ClientSettings names this adapter spells differently (LangChain's conventions).
RENAMED = {"headers": "default_headers"}


class VLLMMultimodalEmbeddings(AdapterBase, EmbeddingFields, Embeddings):
    """Qwen3-VL-Embedding on a vLLM server: texts, images and text+image pairs in one space.

    Setup:
        Serve the model with vLLM (``--runner pooling``), then::

            pip install "vllm-multimodal-embeddings[langchain]"
            export VLLM_BASE_URL="http://localhost:8000"
            export VLLM_API_KEY="..."  # only when the server runs with --api-key

    Key init args:
        model: served model name (alias ``model_name``); ``None``: ``VLLM_EMBEDDING_MODEL``,
            else the server's first model.
        base_url: server root; default ``VLLM_BASE_URL``.
        api_key: bearer token; default ``VLLM_API_KEY``; never shown in reprs or errors.
        dimensions: Matryoshka output size (the server needs ``is_matryoshka``).
        query_instruction / document_instruction: the instructions for queries
            (:meth:`embed_query`) and for stored items (everything else); chat protocol only.
        protocol: ``chat`` (``/v1/embeddings``, default) or ``cohere`` (``/v2/embed``).

    Instantiate:
        .. code-block:: python

            from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings

            embeddings = VLLMMultimodalEmbeddings(
                base_url="http://localhost:8000", model="Qwen/Qwen3-VL-Embedding-2B"
            )

    Embed single text:
        .. code-block:: python

            vector = embeddings.embed_query("a red bicycle")  # the query instruction

    Embed multiple texts:
        .. code-block:: python

            vectors = embeddings.embed_documents(["A cat in the snow.", "A red bicycle."])

    Embed images:
        .. code-block:: python

            # Paths, file://, http(s):// or data: URIs; the document instruction applies.
            vectors = embeddings.embed_image(uris=["cat.jpg", "https://example.com/bike.png"])

            # A multimodal vector store calls embed_image itself:
            from langchain_chroma import Chroma

            store = Chroma(collection_name="photos", embedding_function=embeddings)
            store.add_images(uris=["cat.jpg", "bike.png"])
            store.similarity_search_by_image(uri="cat.jpg")  # the same image comes first
            store.similarity_search("a snowy cat")  # text to image

            # Text and image together as one vector:
            from vllm_multimodal_embeddings import Content

            embeddings.embed_multimodal([Content(text="Our cat", image="cat.jpg")])

    Async:
        .. code-block:: python

            vector = await embeddings.aembed_query("a red bicycle")
            vectors = await embeddings.aembed_documents(["A cat in the snow."])
            vectors = await embeddings.aembed_image(["cat.jpg"])
            await embeddings.aclose()

    Instructions: ``embed_query`` uses the query instruction; ``embed_documents``,
    ``embed_image`` and ``embed_multimodal`` (by default) the document instruction. Chroma's
    ``similarity_search_by_image`` also goes through ``embed_image``, so an image query gets the
    document instruction: an indexed image used as the query has the same vector and comes back
    first. Use ``embed_multimodal(..., input_type="query")`` for an image query under the query
    instruction.

    Caching: pass :attr:`cache_namespace` to ``CacheBackedEmbeddings.from_bytes_store``; it
    changes with every setting that changes the vectors. Do not use its
    ``query_embedding_cache=True``: that shares the document keys, and query and document
    vectors of one text differ here; pass a separate store instead.

    Settings are read when the first call creates the clients; assigning a field afterwards
    drops them, so the next call uses the new settings.
    """

    model: str | None = declared(
        ClientSettings, "model", validation_alias=AliasChoices("model", "model_name")
    )
    base_url: str | None = declared(ClientSettings, "base_url")
    api_key: SecretStr | None = declared(
        ClientSettings, "api_key", default_factory=secret_from_env(C.ENV_API_KEY, default=None)
    )
    profile: ModelProfile | None = declared(ClientSettings, "profile")
    default_headers: dict[str, str] | None = declared(
        ClientSettings, "headers", repr=False, exclude=True
    )
    http_client: httpx.Client | None = Field(
        default=None, exclude=True, repr=False, description="httpx.Client to use; not closed."
    )
    http_async_client: httpx.AsyncClient | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="httpx.AsyncClient to use; not closed.",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    # Rebuilt when a field changes; one async client per event loop.
    _clients: AdapterClients = PrivateAttr(default_factory=AdapterClients)

    @model_validator(mode="after")
    def _check_settings(self) -> VLLMMultimodalEmbeddings:
        # ClientSettings validates (protocol, instructions, URL) without I/O: fail at
        # construction, not at the first embed call. Its ConfigurationError is a ValueError,
        # which pydantic reports as a ValidationError.
        self.settings()
        return self

    # -- clients ----------------------------------------------------------------------------

    def settings(self) -> ClientSettings:
        """The client settings these fields stand for."""
        return self._once(lambda: settings_from(self, RENAMED))

    def _sync_client(self) -> EmbeddingClient:
        return self._clients.sync(self.settings(), self.http_client)

    def _aclient(self) -> AsyncEmbeddingClient:
        return self._clients.async_(self.settings(), self.http_async_client)

    # -- LangChain Embeddings -----------------------------------------------------------------

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed stored texts under the document instruction."""
        return self._sync_client().embed_texts(texts, input_type="document")

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query under the query instruction."""
        return self._sync_client().embed_texts([text], input_type="query")[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`."""
        return await self._aclient().embed_texts(texts, input_type="document")

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self._aclient().embed_texts([text], input_type="query"))[0]

    # -- images and mixed content ----------------------------------------------------------

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed images under the document instruction; what LangChain's image stores call.

        Args:
            uris: paths, or ``file://``, ``http(s)://`` or ``data:`` URIs.

        Raises:
            ImageLoadError: an image cannot be read; ``index`` and ``source`` name it.
        """
        return self._sync_client().embed_images(uris, input_type="document")

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image`."""
        return await self._aclient().embed_images(uris, input_type="document")

    def embed_multimodal(
        self, items: Sequence[MultimodalItem], *, input_type: InputType = "document"
    ) -> list[list[float]]:
        """One vector per item; an item may hold text, an image and a video together.

        Args:
            items: :class:`Content` objects, mappings with ``text`` / ``image`` / ``video``
                keys (an ``image`` given as ``str`` is a path or URI), or plain texts.
            input_type: ``document`` (stored items, default) or ``query``.
        """
        return self._sync_client().embed(_to_inputs(items), input_type=input_type)

    async def aembed_multimodal(
        self, items: Sequence[MultimodalItem], *, input_type: InputType = "document"
    ) -> list[list[float]]:
        """Async :meth:`embed_multimodal`."""
        return await self._aclient().embed(_to_inputs(items), input_type=input_type)

    # -- caching ----------------------------------------------------------------------------

    @property
    def cache_namespace(self) -> str:
        """A ``CacheBackedEmbeddings`` namespace that changes with anything that changes vectors.

        It holds the model, protocol, effective instructions, dimensions and truncation; the
        server URL is left out so replicas of one deployment share a cache. When ``model`` is
        unset, the server is asked for its model once.
        """
        client = self._sync_client()
        model = client.model or client.server_info().model
        profile = client.profile
        settings = {
            "model": model,
            "protocol": self.protocol,
            "query_instruction": profile.query_instruction if client.sends_instructions else None,
            "document_instruction": (
                profile.document_instruction if client.sends_instructions else None
            ),
            "dimensions": self.dimensions,
            "client_side_dimensions": self.client_side_dimensions,
            "truncate": self.truncate,
        }
        digest = hashlib.sha256(
            json.dumps(settings, sort_keys=True, ensure_ascii=False).encode("utf-8")
        ).hexdigest()[:16]
        dims = self.dimensions if self.dimensions is not None else "full"
        return f"vllm-mm:{model}:{self.protocol}:{dims}:{digest}:"


def _to_inputs(items: Sequence[MultimodalItem]) -> list[EmbedInput]:
    """Mappings become :class:`Content`; anything else passes through to the client."""
    out: list[EmbedInput] = []
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            unknown = set(item) - _CONTENT_KEYS
            if unknown:
                raise InputError(
                    f"unknown keys {sorted(unknown)}; use text, image, video", index=index
                )
            try:
                out.append(Content(**item))
            except ValueError as exc:
                raise InputError(str(exc), index=index) from exc
        else:
            out.append(item)
    return out
