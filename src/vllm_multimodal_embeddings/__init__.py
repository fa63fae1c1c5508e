"""Text and image embeddings from a vLLM server hosting Qwen3-VL-Embedding.

>>> from vllm_multimodal_embeddings import Content, EmbeddingClient
>>> client = EmbeddingClient(base_url="http://localhost:8000")  # doctest: +SKIP
>>> vectors = client.embed(["a red bicycle", Content(image="bike.jpg")])  # doctest: +SKIP

LangChain: ``vllm_multimodal_embeddings.langchain.VLLMMultimodalEmbeddings``;
LlamaIndex: ``vllm_multimodal_embeddings.llama_index.VLLMMultiModalEmbedding``;
Haystack: ``vllm_multimodal_embeddings.haystack`` (text and document embedders, a ranker).
"""

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ImageLoadError,
    InputError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RemoteUnavailableError,
    UnsupportedFeatureError,
    VLLMEmbeddingError,
)
from ._types import (
    Content,
    EmbedInput,
    ImageInput,
    InputType,
    OutputDType,
    PdfPage,
    ProtocolName,
)
from ._version import __version__
from .embeddings._client import AsyncEmbeddingClient, EmbeddingClient
from .embeddings._pipeline import AsyncEmbeddingStream, EmbeddingStream
from .embeddings._settings import ClientSettings
from .embeddings._tuning import TuningStats
from .inputs._passwords import PdfPasswords
from .inputs._pdf import pdf_page_count, pdf_pages
from .profiles import ModelProfile, RerankPreset, TaskPreset
from .protocol._quantize import int8_scale_for, quantize_int8
from .protocol._server_info import ServerInfo

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncEmbeddingClient",
    "AsyncEmbeddingStream",
    "AuthenticationError",
    "BadRequestError",
    "ClientSettings",
    "ConfigurationError",
    "Content",
    "EmbedInput",
    "EmbeddingClient",
    "EmbeddingStream",
    "ImageInput",
    "ImageLoadError",
    "InputError",
    "InputType",
    "InternalServerError",
    "ModelProfile",
    "NotFoundError",
    "OutputDType",
    "PdfPage",
    "PdfPasswords",
    "ProtocolName",
    "RateLimitError",
    "RemoteUnavailableError",
    "RerankPreset",
    "ServerInfo",
    "TaskPreset",
    "TuningStats",
    "UnsupportedFeatureError",
    "VLLMEmbeddingError",
    "__version__",
    "int8_scale_for",
    "pdf_page_count",
    "pdf_pages",
    "quantize_int8",
]
