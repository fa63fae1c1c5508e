"""Framework adapters that are used and dropped without ``close()``, as most users do: their
connections close when the adapter is collected, so no socket is left for the garbage
collector to warn about (a ``ResourceWarning`` each, an error under ``-W error``)."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from typing import Any

from haystack import Document as HaystackDocument
from langchain_core.documents import Document as LangChainDocument
from llama_index.core.schema import NodeWithScore, TextNode

from vllm_multimodal_embeddings.haystack import (
    VLLMMultimodalRanker,
    VLLMMultimodalTextEmbedder,
)
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings, VLLMMultimodalReranker
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding
from vllm_multimodal_embeddings.llama_index import VLLMMultimodalReranker as LlamaReranker


def unclosed_after(use: Callable[[], None]) -> list[str]:
    """The ResourceWarnings raised once ``use`` returned and its objects were collected."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        use()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_embedders_dropped_unclosed_leave_no_socket(vllm_server: Any) -> None:
    where = {"base_url": vllm_server.base_url}

    def langchain() -> None:
        emb = VLLMMultimodalEmbeddings(**where, model=vllm_server.model)
        assert len(emb.embed_documents(["a", "b"])) == 2

    def llama_index() -> None:
        emb = VLLMMultiModalEmbedding(**where, model_name=vllm_server.model)
        assert len(emb.get_text_embedding("a")) > 0

    def haystack() -> None:
        emb = VLLMMultimodalTextEmbedder(**where, model=vllm_server.model)
        assert len(emb.run("a")["embedding"]) > 0

    for use in (langchain, llama_index, haystack):
        assert unclosed_after(use) == [], use.__name__


def test_rerankers_dropped_unclosed_leave_no_socket(vllm_reranker_server: Any) -> None:
    where = {"base_url": vllm_reranker_server.base_url, "model": vllm_reranker_server.model}

    def langchain() -> None:
        rerank = VLLMMultimodalReranker(**where, top_n=None)
        docs = [LangChainDocument(page_content=t) for t in ("a", "b")]
        assert len(rerank.compress_documents(docs, "a")) == 2

    def llama_index() -> None:
        rerank = LlamaReranker(**where, top_n=None)
        nodes = [NodeWithScore(node=TextNode(text=t), score=0.0) for t in ("a", "b")]
        assert len(rerank.postprocess_nodes(nodes, query_str="a")) == 2

    def haystack() -> None:
        rank = VLLMMultimodalRanker(**where)
        docs = [HaystackDocument(content=t) for t in ("a", "b")]
        assert len(rank.run(query="a", documents=docs)["documents"]) == 2

    for use in (langchain, llama_index, haystack):
        assert unclosed_after(use) == [], use.__name__
