"""Wire models and request builders for vLLM's embedding endpoints.

Pure data: nothing here does I/O. Responses tolerate unknown fields (``extra="allow"``)
because vLLM adds fields between releases.
"""

from .chat import ChatEmbeddingResponse, build_chat_request
from .cohere import CohereEmbedResponse, build_cohere_request
from .errors import parse_error_message
from .models import ModelCard, ModelList

__all__ = [
    "ChatEmbeddingResponse",
    "CohereEmbedResponse",
    "ModelCard",
    "ModelList",
    "build_chat_request",
    "build_cohere_request",
    "parse_error_message",
]
