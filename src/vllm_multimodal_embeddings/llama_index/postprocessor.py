"""LlamaIndex node postprocessor: rerank text and image nodes with Qwen3-VL-Reranker on vLLM.

Needs the ``llama-index`` extra. A thin adapter over
:class:`~vllm_multimodal_embeddings.reranking.RerankClient`: no HTTP of its own.
"""

from __future__ import annotations

from typing import Any

import httpx
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle
from pydantic import InstanceOf

from .._exceptions import InputError
from .._types import Content
from ..adapters._base import AdapterBase
from ..adapters._clients import RerankerClients, reranker_setup
from ..adapters._fields import RerankerFields, declared
from ..embeddings._settings import ClientSettings
from ..reranking import AsyncRerankClient, RerankClient, RerankInput, RerankResult
from ..reranking._settings import RerankerSettings

__all__ = ["VLLMMultimodalReranker"]


class VLLMMultimodalReranker(AdapterBase, RerankerFields, BaseNodePostprocessor):
    """Qwen3-VL-Reranker on a vLLM server as a LlamaIndex node postprocessor.

    Text nodes are scored by their content; image nodes (``ImageNode``, ``ImageDocument``) by
    their image (``image`` base64, else ``image_path``, else ``image_url``), together with their
    text when :attr:`text_with_image` and the text is not empty. The query is the query string,
    with the bundle's ``image_path`` when it has one. The best :attr:`top_n` nodes come back,
    best first, their ``score`` replaced by the reranker's.

    Example:
        .. code-block:: python

            rerank = VLLMMultimodalReranker(base_url="http://localhost:8001", top_n=3)
            engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank])
            nodes = rerank.postprocess_nodes(retriever.retrieve("a red car"), query_str="a red car")

    Server and model come from the arguments, else ``VLLM_RERANKER_BASE_URL`` (then
    ``VLLM_BASE_URL``) and ``VLLM_RERANKER_MODEL`` (then the server's first model).
    """

    # None: the environment is read when the client is made (LlamaIndex's convention).
    model: str | None = declared(RerankerSettings, "model", default=None)
    base_url: str | None = declared(RerankerSettings, "base_url", default=None)
    api_key: SecretStr | None = declared(
        RerankerSettings, "api_key", default=None, exclude=True, repr=False
    )
    top_n: int | None = Field(default=3, ge=1, description="Nodes kept; None keeps all.")
    text_with_image: bool = Field(
        default=True, description="Score an image node's text together with its image."
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
        description="httpx.Client for sync requests (proxies, TLS, event hooks); not closed here.",
    )
    async_http_client: InstanceOf[httpx.AsyncClient] | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="httpx.AsyncClient for async requests; not closed here.",
    )

    http_fields = ("http_client", "async_http_client")  # LlamaIndex's names
    # Rebuilt when a field changes; one async client per event loop.
    _clients: RerankerClients = PrivateAttr(default_factory=RerankerClients)

    @classmethod
    def class_name(cls) -> str:
        return "VLLMMultimodalReranker"

    def setup(self) -> RerankerSettings:
        """What the reranking clients are built from: these fields over :attr:`settings`."""
        return self._once(lambda: reranker_setup(self, self.settings))

    def _sync(self) -> RerankClient:
        return self._clients.sync(self.setup(), self.http_client)

    def _async(self) -> AsyncRerankClient:
        return self._clients.async_(self.setup(), self.async_http_client)

    def node_input(self, node: Any) -> RerankInput:
        """What one node is scored as: an image node's image (and text), else its text."""
        text: str = node.get_content(metadata_mode=MetadataMode.NONE)
        if isinstance(node, ImageNode):
            image = _node_image(node)
            if image is not None:
                keep = self.text_with_image and text.strip()
                return Content(text=text if keep else None, image=image)
        return text

    def _inputs(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[RerankInput, list[RerankInput]]:
        if query_bundle is None:
            raise ValueError("VLLMMultimodalReranker needs a query (query_bundle or query_str)")
        image_path = getattr(query_bundle, "image_path", None)
        query: RerankInput = (
            Content(text=query_bundle.query_str or None, image=image_path)
            if image_path
            else query_bundle.query_str
        )
        inputs = []
        for i, n in enumerate(nodes):
            try:
                inputs.append(self.node_input(n.node))
            except InputError as exc:
                exc.index = i
                raise
        return query, inputs

    def _results(
        self, nodes: list[NodeWithScore], results: list[RerankResult]
    ) -> list[NodeWithScore]:
        return [NodeWithScore(node=nodes[r.index].node, score=r.score) for r in results]

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query, inputs = self._inputs(nodes, query_bundle)
        return self._results(nodes, self._sync().rerank(query, inputs, top_n=self.top_n))

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query, inputs = self._inputs(nodes, query_bundle)
        results = await self._async().rerank(query, inputs, top_n=self.top_n)
        return self._results(nodes, results)


def _node_image(node: ImageNode) -> str | None:
    if node.image:
        mime = node.image_mimetype or ""
        mime = mime if mime.startswith("image/") else ""
        return f"data:{mime};base64,{node.image}"
    return node.image_path or node.image_url or None
