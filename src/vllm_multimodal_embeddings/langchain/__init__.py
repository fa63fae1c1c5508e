"""LangChain integration: embeddings for text, images and both (``langchain`` extra)."""

from .embeddings import MultimodalItem, VLLMMultimodalEmbeddings

__all__ = ["MultimodalItem", "VLLMMultimodalEmbeddings"]
