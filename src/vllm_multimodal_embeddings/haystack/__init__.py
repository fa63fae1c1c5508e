"""Haystack integration: text and document embedders and a ranker (``haystack`` extra)."""

from .components import (
    VLLMMultimodalDocumentEmbedder,
    VLLMMultimodalRanker,
    VLLMMultimodalTextEmbedder,
)

__all__ = [
    "VLLMMultimodalDocumentEmbedder",
    "VLLMMultimodalRanker",
    "VLLMMultimodalTextEmbedder",
]
