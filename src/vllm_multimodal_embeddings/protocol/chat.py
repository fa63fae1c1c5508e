"""``POST /v1/embeddings`` with chat ``messages`` (one or a batch of conversations)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from ._decode import MalformedResponseError, check_vectors, decode_float32_le, float_vector

Conversation = list[dict[str, Any]]


def build_chat_request(
    *,
    model: str,
    conversations: Sequence[Conversation],
    batched: bool,
    options: dict[str, Any],
    dimensions: int | None,
    truncate_prompt_tokens: int | None = None,
    truncation_side: str | None = None,
) -> dict[str, Any]:
    """A ``/v1/embeddings`` body asking for little-endian float32 base64 vectors.

    Args:
        conversations: one conversation per input; exactly one unless ``batched``.
        batched: send ``messages`` as a list of conversations (vLLM >= 0.24).
        options: chat options from the model profile (``continue_final_message``, ...).
    """
    if not batched and len(conversations) != 1:
        raise ValueError("an unbatched chat request carries exactly one conversation")
    body: dict[str, Any] = {
        "model": model,
        "messages": list(conversations) if batched else conversations[0],
        "encoding_format": "base64",
        "embed_dtype": "float32",
        "endianness": "little",
        **options,
    }
    if dimensions is not None:
        body["dimensions"] = dimensions
    if truncate_prompt_tokens is not None:
        body["truncate_prompt_tokens"] = truncate_prompt_tokens
    if truncation_side is not None:
        body["truncation_side"] = truncation_side
    return body


class ChatEmbeddingData(BaseModel):
    """One vector of a ``/v1/embeddings`` response."""

    model_config = ConfigDict(extra="allow")

    index: int
    """Position of the conversation in the request."""
    embedding: list[float] | str
    """The vector: floats, or base64 when ``encoding_format`` was ``base64``."""


class ChatEmbeddingResponse(BaseModel):
    """Body of a successful ``/v1/embeddings`` response."""

    model_config = ConfigDict(extra="allow")

    data: list[ChatEmbeddingData]
    """One entry per conversation, carrying its request index."""
    model: str | None = None
    """The model that produced the vectors."""

    def vectors(self, expected: int, dimension: int | None = None) -> list[npt.NDArray[np.float32]]:
        """The vectors in request order.

        Raises :class:`~._decode.MalformedResponseError` (a ``ValueError``) when any is
        missing, duplicated, malformed, non-finite, of mixed sizes, or not ``dimension`` long.
        """
        out: list[npt.NDArray[np.float32] | None] = [None] * expected
        for item in self.data:
            if not 0 <= item.index < expected or out[item.index] is not None:
                raise MalformedResponseError(f"unexpected embedding index {item.index} in response")
            if isinstance(item.embedding, str):
                out[item.index] = decode_float32_le(item.embedding)
            else:
                out[item.index] = float_vector(item.embedding)
        missing = [i for i, v in enumerate(out) if v is None]
        if missing:
            raise MalformedResponseError(
                f"response lacks embeddings for request positions {missing}"
            )
        return check_vectors([v for v in out if v is not None], dimension=dimension)
