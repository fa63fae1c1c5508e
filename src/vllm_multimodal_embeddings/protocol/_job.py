"""The data of one embedding call: its checked options, its plan, its chunks and their results.

Plain values shared by the core (which makes them), the endpoints (which read a plan), the
pipeline (which moves chunks) and the clients; this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy.typing as npt

from .._exceptions import VLLMEmbeddingError
from .._types import InputType, OutputDType

__all__ = ["CallOptions", "Chunk", "ChunkResult", "Job", "StrAs", "Vector"]

Vector = npt.NDArray[Any]
#: What a bare ``str`` input is: text (``embed``) or an image reference (``embed_images``).
StrAs = Literal["text", "image"]


@dataclass(frozen=True, slots=True)
class CallOptions:
    """The per-call arguments of one embedding call, checked."""

    str_as: StrAs
    input_type: InputType
    instruction: str | None
    dimensions: int | None
    embedding_type: OutputDType


@dataclass(frozen=True, slots=True)
class Job:
    """One call after planning against the server: what to send and how to finish vectors."""

    input_type: InputType
    instruction: str | None
    server_dimensions: int | None
    local_dimensions: int | None
    embedding_type: OutputDType
    str_as: StrAs
    #: Several conversations per ``/v1/embeddings`` request (the server allows it).
    batched: bool
    #: Inputs per request.
    batch_size: int
    #: The vector length every response must have (``None``: binary, checked by bytes).
    expected_size: int | None
    #: The quantization step of ``int8`` vectors (``None`` for other types).
    int8_scale: float | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive raw inputs, the unit of work of the pipeline: ``items[k]`` is input
    ``start + k`` of the caller's sequence."""

    start: int
    items: Sequence[Any]


@dataclass(slots=True)
class ChunkResult:
    """The vectors of a chunk's inputs, in order; on failure, those before the failing input
    and the error, which names that input."""

    vectors: list[Vector]
    error: VLLMEmbeddingError | None = None
