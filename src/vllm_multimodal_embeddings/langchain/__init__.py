"""LangChain integration: embeddings for text, images and both (``langchain`` extra)."""

from .embeddings import MultimodalItem, VLLMMultimodalEmbeddings
from .pdf import PdfPageImageLoader
from .reranker import VLLMMultimodalReranker

__all__ = [
    "MultimodalItem",
    "PdfPageImageLoader",
    "VLLMMultimodalEmbeddings",
    "VLLMMultimodalReranker",
]
