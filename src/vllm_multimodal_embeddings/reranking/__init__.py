"""Reranking with Qwen3-VL-Reranker served by vLLM: the second stage after the embedder.

:class:`RerankClient` and :class:`AsyncRerankClient` score a query against documents (text,
images, text+image pairs) over ``POST /rerank``, sharing the embedding client's settings,
errors, retries and input preparation.
"""

from ._client import AsyncRerankClient, RerankClient
from ._core import ENV_RERANKER_BASE_URL, ENV_RERANKER_MODEL, RerankInput, RerankResult

__all__ = [
    "ENV_RERANKER_BASE_URL",
    "ENV_RERANKER_MODEL",
    "AsyncRerankClient",
    "RerankClient",
    "RerankInput",
    "RerankResult",
]
