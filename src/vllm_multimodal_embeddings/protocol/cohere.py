"""``POST /v2/embed``: the Cohere Embed v2 schema as vLLM serves it (vLLM >= 0.18)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from ._decode import (
    MalformedResponseError,
    check_vectors,
    decode_float32_le,
    float_vector,
    packed_vector,
)

CohereTruncate = Literal["NONE", "START", "END"]
CohereEmbeddingType = Literal["base64", "float", "binary", "ubinary"]


def build_cohere_request(
    *,
    model: str,
    texts: Sequence[str] | None = None,
    images: Sequence[str] | None = None,
    inputs: Sequence[Sequence[dict[str, Any]]] | None = None,
    input_type: str | None,
    embedding_type: CohereEmbeddingType = "base64",
    output_dimension: int | None = None,
    truncate: CohereTruncate = "NONE",
) -> dict[str, Any]:
    """A ``/v2/embed`` body; exactly one of ``texts``, ``images``, ``inputs``.

    ``inputs`` items are content-part lists: ``{"type": "text", "text": ...}`` and
    ``{"type": "image_url", "image_url": {"url": ...}}``, rendered in list order.
    """
    given = [x for x in (texts, images, inputs) if x is not None]
    if len(given) != 1 or not given[0]:
        raise ValueError("exactly one non-empty of texts, images or inputs")
    body: dict[str, Any] = {
        "model": model,
        "embedding_types": [embedding_type],
        "truncate": truncate,
    }
    if texts is not None:
        body["texts"] = list(texts)
    elif images is not None:
        body["images"] = list(images)
    else:
        assert inputs is not None  # narrowed above
        body["inputs"] = [{"content": list(parts)} for parts in inputs]
    if input_type is not None:
        body["input_type"] = input_type
    if output_dimension is not None:
        body["output_dimension"] = output_dimension
    return body


class CohereEmbeddings(BaseModel):
    """Vectors by type; only the requested types are present."""

    model_config = ConfigDict(extra="allow")

    # builtins.float: inside this class body a bare ``float`` names the field itself (whose
    # default is None), and pydantic would then accept only null as a vector value.
    float: list[list[builtins.float]] | None = None
    """Float vectors as JSON lists."""
    base64: list[str] | None = None
    """Float vectors as base64 little-endian float32."""
    binary: list[list[int]] | None = None
    """Sign bits packed MSB-first, as signed int8 values (``dim / 8`` per vector)."""
    ubinary: list[list[int]] | None = None
    """Sign bits packed MSB-first, as unsigned bytes (``dim / 8`` per vector)."""


class CohereEmbedResponse(BaseModel):
    """Body of a successful ``/v2/embed`` response."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    """Server-side request id."""
    embeddings: CohereEmbeddings
    """The vectors, keyed by embedding type."""

    def vectors(
        self,
        embedding_type: CohereEmbeddingType,
        expected: int,
        dimension: int | None = None,
    ) -> list[npt.NDArray[Any]]:
        """The vectors of ``embedding_type`` in request order.

        Raises :class:`~._decode.MalformedResponseError` (a ``ValueError``) when the count
        is wrong or any vector is malformed, non-finite, of mixed size, or does not match
        ``dimension`` (the float dimension; packed types hold ``dimension / 8`` bytes).
        """
        raw = getattr(self.embeddings, embedding_type)
        if raw is None or len(raw) != expected:
            got = "none" if raw is None else len(raw)
            raise MalformedResponseError(
                f"expected {expected} {embedding_type} embeddings, got {got}"
            )
        if embedding_type == "base64":
            return check_vectors([decode_float32_le(s) for s in raw], dimension=dimension)
        if embedding_type == "float":
            return check_vectors([float_vector(v) for v in raw], dimension=dimension)
        dtype = np.int8 if embedding_type == "binary" else np.uint8
        packed = [packed_vector(v, dtype) for v in raw]
        return check_vectors(packed, dimension=dimension, packed=True)
