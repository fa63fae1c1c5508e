"""An embedding client's settings: the connection, image and batching groups plus the embedding
call's own.

Arguments left ``None`` fall back to environment variables: ``base_url`` to ``VLLM_BASE_URL``
(required), ``api_key`` to ``VLLM_API_KEY``, ``model`` to ``VLLM_EMBEDDING_MODEL``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import get_args

from .. import _constants as C
from .._settings import (
    POSITIVE,
    default_workers,
    flag,
    instruction,
    integer,
    one_of,
    optional,
    setting,
)
from .._types import ProtocolName
from ..inputs._settings import ImageSettings
from ..profiles import ModelProfile, resolve_instruction
from ..protocol._endpoints import ENDPOINTS, endpoint_for
from ..protocol._quantize import check_int8_scale
from ..protocol._settings import BatchSettings
from ..protocol.cohere import CohereTruncate
from ..transport._settings import ConnectionSettings

__all__ = ["ClientSettings"]

_TRUNCATE = get_args(CohereTruncate)


@dataclass(frozen=True, repr=False)
class ClientSettings(BatchSettings, ImageSettings, ConnectionSettings):
    """An embedding client's settings: the connection, the image bounds and the embedding
    call's own, validated at construction (see the module docstring)."""

    __repr__ = ConnectionSettings.__repr__

    model: str | None = setting(None, env=C.ENV_MODEL)
    """Served model name; ``None``: the server's first model."""
    protocol: ProtocolName = setting("chat", one_of(*ENDPOINTS))
    """``chat`` (``/v1/embeddings``, the official recipe) or ``cohere`` (``/v2/embed``)."""
    profile: ModelProfile | None = None
    """Prompt layout; ``None``: :meth:`ModelProfile.qwen3_vl_embedding`."""
    query_instruction: str | None = setting(None, instruction)
    """Instruction for queries (chat protocol); ``None``: the profile's."""
    document_instruction: str | None = setting(None, instruction)
    """Instruction for indexed items (chat protocol); ``None``: the profile's."""
    dimensions: int | None = setting(None, optional(POSITIVE))
    """Matryoshka output size for every call; ``None``: the model's full size."""
    client_side_dimensions: bool = setting(False, flag)
    """When the server refuses ``dimensions``, truncate and re-normalize here instead."""
    truncate: CohereTruncate = setting("NONE", one_of(*_TRUNCATE))
    """Over-long inputs: ``NONE`` raises, ``END`` / ``START`` cut there."""
    max_inflight_bytes: int = setting(C.DEFAULT_MAX_INFLIGHT_BYTES, POSITIVE)
    """Most prepared payload bytes (encoded images, texts) held by the streaming pipeline
    before the server answers them, across every call on one client. Batches and requests
    in flight grow freely for texts and small images while camera photos stay within this
    memory; one input larger than it still goes, alone."""
    int8_scale: float | None = setting(None, check_int8_scale)
    """Quantization step of ``embedding_type="int8"``; ``None``: the published one of
    Qwen3-VL-Embedding-2B/8B, and an error for any other model."""
    prepare_processes: int | None = setting(None, optional(integer(0)))
    """Processes that prepare large local images (paths, ``bytes``, ``data:`` URIs over
    1 MiB); ``0``: threads only; ``None``: the CPU cores when there are more than two
    (threads stop scaling there: Pillow's JPEG encoder holds the GIL), else threads."""

    def __post_init__(self) -> None:
        self._fill()
        self._fill_images()
        self._fill_batches()
        if self.prepare_processes is None:
            cores = default_workers()
            object.__setattr__(self, "prepare_processes", cores if cores > 2 else 0)
        self._check_fields()
        self._check_images()
        endpoint_for(self.protocol).check_settings(
            query_instruction=self.query_instruction,
            document_instruction=self.document_instruction,
        )
        for name in ("query_instruction", "document_instruction"):
            if getattr(self, name) is not None:  # an unknown preset name fails here
                resolve_instruction(getattr(self, name), name=name)

    def effective_profile(self) -> ModelProfile:
        """The profile with this client's instructions applied."""
        base = self.profile or ModelProfile.qwen3_vl_embedding()
        return dataclasses.replace(
            base,
            query_instruction=self.query_instruction or base.query_instruction,
            document_instruction=self.document_instruction or base.document_instruction,
            extra_request_fields=dict(base.extra_request_fields),
        )
