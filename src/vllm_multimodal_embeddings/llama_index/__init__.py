"""LlamaIndex integration: one multimodal embedding model for text and image nodes
(``llama-index`` extra)."""

from .embedding import ImageNodeLike, VLLMMultiModalEmbedding

__all__ = ["ImageNodeLike", "VLLMMultiModalEmbedding"]
