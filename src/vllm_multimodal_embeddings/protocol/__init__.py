"""Wire models and request builders for vLLM's embedding endpoints.

Pure data: nothing here does I/O. Responses tolerate unknown fields (``extra="allow"``)
because vLLM adds fields between releases.
"""

from ._decode import MalformedResponseError, parse_body
from .chat import ChatEmbeddingResponse, build_chat_request
from .cohere import CohereEmbedResponse, build_cohere_request
from .errors import parse_error_message
from .models import ModelCard, ModelList

__all__ = [
    "ChatEmbeddingResponse",
    "CohereEmbedResponse",
    "MalformedResponseError",
    "ModelCard",
    "ModelList",
    "build_chat_request",
    "build_cohere_request",
    "parse_body",
    "parse_error_message",
]
