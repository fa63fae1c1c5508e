"""``GET /v1/models``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ModelCard(BaseModel):
    """One served model."""

    model_config = ConfigDict(extra="allow")

    id: str
    """The served model name, to send as ``model``."""
    root: str | None = None
    """The checkpoint it was loaded from."""
    max_model_len: int | None = None
    """The context length in tokens, vLLM-specific."""


class ModelList(BaseModel):
    """Body of ``GET /v1/models``."""

    model_config = ConfigDict(extra="allow")

    data: list[ModelCard]
    """The served models."""
