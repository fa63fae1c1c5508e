"""LangChain document compressor: rerank retrieved documents with Qwen3-VL-Reranker on vLLM.

Needs the ``langchain`` extra. A thin adapter over
:class:`~vllm_multimodal_embeddings.reranking.RerankClient`: no HTTP of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from langchain_core.callbacks import Callbacks
from langchain_core.documents import Document
from langchain_core.documents.compressor import BaseDocumentCompressor
from langchain_core.utils import from_env, secret_from_env
from pydantic import ConfigDict, Field, InstanceOf, PrivateAttr, SecretStr

from .. import _constants as C
from .._types import Content
from ..adapters._base import AdapterBase
from ..adapters._clients import RerankerClients, reranker_setup
from ..adapters._fields import RerankerFields, declared
from ..embeddings._settings import ClientSettings
from ..reranking import AsyncRerankClient, RerankClient, RerankInput, RerankResult
from ..reranking._settings import ENV_RERANKER_BASE_URL, RerankerSettings

__all__ = ["VLLMMultimodalReranker"]


class VLLMMultimodalReranker(AdapterBase, RerankerFields, BaseDocumentCompressor):
    """Qwen3-VL-Reranker on a vLLM server as a LangChain document compressor.

    Documents are scored as their ``page_content`` (text), or, when their metadata carries an
    image (path, ``file://``/``http(s)://``/``data:`` URI) under :attr:`image_key`, as that
    image together with the text (:attr:`text_with_image`). The best :attr:`top_n` come back,
    best first, as copies whose metadata holds the score under :attr:`score_key`.

    Setup:
        Serve the reranker (``docker compose --profile reranker up -d``, port 8001), then
        ``export VLLM_RERANKER_BASE_URL=http://localhost:8001``.

    Instantiate:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from vllm_multimodal_embeddings.langchain import VLLMMultimodalReranker

            reranker = VLLMMultimodalReranker(top_n=3)
            retriever = ContextualCompressionRetriever(
                base_compressor=reranker, base_retriever=store.as_retriever(search_kwargs={"k": 20})
            )
            docs = retriever.invoke("a red bicycle")  # docs[0].metadata["relevance_score"]

    Chroma's ``add_images`` stores the image itself, base64, as ``page_content``: index with
    ``metadatas=[{"image": uri}, ...]`` and set ``text_with_image=False``.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str | None = declared(RerankerSettings, "model")
    base_url: str | None = declared(
        RerankerSettings,
        "base_url",
        # The reranker's own server first (LangChain reads the environment into the field).
        default_factory=from_env([ENV_RERANKER_BASE_URL, C.ENV_BASE_URL], default=None),
    )
    api_key: SecretStr | None = declared(
        RerankerSettings, "api_key", default_factory=secret_from_env(C.ENV_API_KEY, default=None)
    )
    top_n: int | None = Field(default=3, ge=1, description="Documents kept; None keeps all.")
    image_key: str = Field(default="image", description="Metadata key holding a document image.")
    text_with_image: bool = Field(
        default=True, description="Score page_content together with the metadata image."
    )
    score_key: str = Field(
        default="relevance_score", description="Metadata key the score is written to."
    )
    settings: InstanceOf[RerankerSettings] | InstanceOf[ClientSettings] | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="Every other client setting (headers, image bounds, retry time); "
        "the fields above win where set.",
    )
    http_client: InstanceOf[httpx.Client] | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="httpx.Client for the reranker (proxies, TLS, event hooks); not closed.",
    )
    http_async_client: InstanceOf[httpx.AsyncClient] | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="httpx.AsyncClient for the reranker; not closed.",
    )

    # Rebuilt when a field changes; one async client per event loop.
    _clients: RerankerClients = PrivateAttr(default_factory=RerankerClients)

    def setup(self) -> RerankerSettings:
        """What the reranking clients are built from: these fields over :attr:`settings`."""
        return self._once(lambda: reranker_setup(self, self.settings))

    def _sync(self) -> RerankClient:
        return self._clients.sync(self.setup(), self.http_client)

    def _async(self) -> AsyncRerankClient:
        return self._clients.async_(self.setup(), self.http_async_client)

    def document_input(self, document: Document) -> RerankInput:
        """What one document is scored as: its metadata image (with its text), else its text."""
        image = document.metadata.get(self.image_key)
        if image is None:
            return document.page_content
        text = document.page_content if self.text_with_image else None
        return Content(text=text if text and text.strip() else None, image=image)

    def _results(
        self, documents: Sequence[Document], results: list[RerankResult]
    ) -> list[Document]:
        out = []
        for r in results:
            doc = documents[r.index]
            metadata = {**doc.metadata, self.score_key: r.score}
            out.append(doc.model_copy(update={"metadata": metadata}))
        return out

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The best ``top_n`` documents for ``query``, best first, scores in metadata."""
        if not documents:
            return []
        inputs = [self.document_input(d) for d in documents]
        results = self._sync().rerank(query, inputs, top_n=self.top_n)
        return self._results(documents, results)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async twin of :meth:`compress_documents`."""
        if not documents:
            return []
        inputs = [self.document_input(d) for d in documents]
        results = await self._async().rerank(query, inputs, top_n=self.top_n)
        return self._results(documents, results)
