"""Reranking with Qwen3-VL-Reranker served by vLLM: the second stage after the embedder.

:class:`RerankClient` and :class:`AsyncRerankClient` score a query against documents (text,
images, text+image pairs) over ``POST /rerank``, sharing the embedding client's transport,
errors, retries, input preparation, batching and narrowing. :class:`RerankerSettings` holds
their settings: the connection, image and batching groups the embedder has too, plus the
reranker's model, instruction and image recipe.
"""

from ._client import AsyncRerankClient, RerankClient
from ._core import RerankInput, RerankResult
from ._settings import ENV_RERANKER_BASE_URL, ENV_RERANKER_MODEL, RerankerSettings

__all__ = [
    "ENV_RERANKER_BASE_URL",
    "ENV_RERANKER_MODEL",
    "AsyncRerankClient",
    "RerankClient",
    "RerankInput",
    "RerankResult",
    "RerankerSettings",
]
