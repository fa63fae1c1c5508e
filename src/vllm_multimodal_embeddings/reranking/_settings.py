"""A reranking client's settings: the connection, image and batching groups plus the reranker's own.

The reranker usually runs on a server of its own, so its environment variables come first:
``base_url`` falls back to ``VLLM_RERANKER_BASE_URL``, then ``VLLM_BASE_URL``; ``model`` to
``VLLM_RERANKER_MODEL``, then the server's first model - never ``VLLM_EMBEDDING_MODEL``, which
names the embedding server's model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .._settings import flag, instruction, setting
from ..inputs._settings import ImageSettings
from ..profiles import RerankPreset, resolve_instruction
from ..protocol._settings import BatchSettings
from ..transport._settings import ConnectionSettings

__all__ = ["ENV_RERANKER_BASE_URL", "ENV_RERANKER_MODEL", "RerankerSettings"]

ENV_RERANKER_MODEL = "VLLM_RERANKER_MODEL"
"""Served reranker name when ``model`` is not given (else the server's first model)."""
ENV_RERANKER_BASE_URL = "VLLM_RERANKER_BASE_URL"
"""Reranker server root when ``base_url`` is not given (else ``VLLM_BASE_URL``)."""


@dataclass(frozen=True, repr=False)
class RerankerSettings(BatchSettings, ImageSettings, ConnectionSettings):
    """A reranking client's settings, validated at construction (see the module docstring)."""

    __repr__ = ConnectionSettings.__repr__

    model: str | None = setting(None, env=ENV_RERANKER_MODEL)
    """Served reranker name; ``None``: the server's first."""
    instruction: str | None = setting(None, instruction)
    """The task instruction of every call: free text, a :class:`~..profiles.RerankPreset` or
    its name (``"visdoc"``); ``None``: the server template's (the official default,
    ``RerankPreset.DEFAULT``)."""
    recipe_images: bool = setting(True, flag)
    """Resize images here exactly as the official recipe does (sides multiples of 32 within
    4,096..1,843,200 pixels, bicubic) and send them losslessly, so vLLM scores the recipe's
    pixels; ``False`` sends them as the embedder prepares them and lets vLLM resize (drifts
    from the recipe by up to ~1e-3)."""

    def __post_init__(self) -> None:
        # The reranker's own server first; ConnectionSettings then falls back to VLLM_BASE_URL.
        if self.base_url is None:
            object.__setattr__(self, "base_url", os.environ.get(ENV_RERANKER_BASE_URL) or None)
        self._fill()
        self._fill_images()
        self._fill_batches()
        self._check_fields()
        self._check_images()
        if self.instruction is not None:
            text = resolve_instruction(self.instruction, presets=RerankPreset)
            object.__setattr__(self, "instruction", text)

    @classmethod
    def of(cls, settings: object = None, /, **changes: Any) -> RerankerSettings:
        """Settings for a reranker from ``settings`` (reranker settings, or any group that
        shares some: an embedding client's ``ClientSettings``) with ``changes``.

        From other groups only the shared settings are taken: an embedding client's ``model``
        names the embedding model, never the reranker.
        """
        if settings is None or isinstance(settings, cls):
            return cls.create(settings, **changes)
        names = getattr(type(settings), "names", None)
        if names is None:
            raise TypeError(
                f"settings must be RerankerSettings or ClientSettings, got {settings!r}"
            )
        shared = {n: getattr(settings, n) for n in set(names()) & set(cls.names()) - {"model"}}
        return cls.create(**{**shared, **changes})
