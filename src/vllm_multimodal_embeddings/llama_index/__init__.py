"""LlamaIndex integration: one multimodal embedding model for text and image nodes
(``llama-index`` extra)."""

from .embedding import ImageNodeLike, VLLMMultiModalEmbedding
from .pdf import pdf_page_nodes
from .postprocessor import VLLMMultimodalReranker

__all__ = ["ImageNodeLike", "VLLMMultiModalEmbedding", "VLLMMultimodalReranker", "pdf_page_nodes"]
