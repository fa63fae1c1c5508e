"""Framework adapter fields made from the settings' declarations.

The adapters are pydantic models: each offers the client settings as fields, because that is
how LangChain and LlamaIndex users configure components (constructor keywords, ``model_dump``,
serialization). :func:`declared` makes such a field from a setting's one declaration: its
default (or its environment variable), its bounds and its doc. :class:`EmbeddingFields` and
:class:`RerankerFields` hold the fields every adapter of a kind shares, written once with the
type annotation that static type checkers and editors read; an adapter adds only the fields its
framework names or defaults its own way (the URL, the key, the model, the headers).
``tests/unit/test_settings_surfaces.py`` checks each field against its declaration.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, Field, field_validator

from .. import _constants as C
from .._settings import Group, declarations
from .._types import ProtocolName
from ..embeddings._settings import ClientSettings
from ..inputs._passwords import PdfPasswords
from ..inputs._settings import ImageSettings
from ..profiles import RerankPreset, resolve_instruction
from ..protocol._settings import BatchSettings
from ..protocol.cohere import CohereTruncate
from ..reranking._settings import RerankerSettings
from ..transport._settings import ConnectionSettings

__all__ = ["EmbeddingFields", "InputFields", "RerankerFields", "declared"]


def declared(group: type[Group], name: str, **extra: Any) -> Any:
    """A pydantic field for setting ``name`` of ``group``, from its declaration.

    ``extra`` adds to it or overrides it (``exclude=True`` for a secret, a ``default_factory``
    that wraps the environment's value in ``SecretStr``, a framework's own default).
    """
    d = declarations(group)[name]
    spec: dict[str, Any] = {"description": d.doc, **d.bounds}
    if d.env is not None:
        env = d.env
        spec["default_factory"] = lambda: os.environ.get(env) or d.default
    else:
        spec["default"] = d.default
    if "default" in extra or "default_factory" in extra:
        spec.pop("default", None)
        spec.pop("default_factory", None)
    spec.update(extra)
    return Field(**spec)


class InputFields(BaseModel):
    """The settings of reading, preparing and sending inputs that the embedding and reranking
    clients share (images, PDF pages, remote media, request bytes, retry time), as fields."""

    max_image_pixels: int = declared(ImageSettings, "max_image_pixels")
    max_source_pixels: int = declared(ImageSettings, "max_source_pixels")
    max_image_bytes: int = declared(ImageSettings, "max_image_bytes")
    fetch_remote_images: bool = declared(ImageSettings, "fetch_remote_images")
    remote_image_max_bytes: int = declared(ImageSettings, "remote_image_max_bytes")
    remote_image_timeout: float = declared(ImageSettings, "remote_image_timeout")
    remote_allowed_hosts: tuple[str, ...] = declared(ImageSettings, "remote_allowed_hosts")
    allow_private_networks: bool = declared(ImageSettings, "allow_private_networks")
    remote_video_headers: bool = declared(ImageSettings, "remote_video_headers")
    pdf_passwords: PdfPasswords | None = declared(
        ImageSettings, "pdf_passwords", exclude=True, repr=False
    )
    page_max_pixels: int | None = declared(ImageSettings, "page_max_pixels")
    max_batch_bytes: int = declared(BatchSettings, "max_batch_bytes")
    prepare_workers: int | None = declared(BatchSettings, "prepare_workers")
    max_retry_time: float = declared(ConnectionSettings, "max_retry_time")


class EmbeddingFields(InputFields):
    """The embedding client's settings every embedding adapter offers as fields."""

    dimensions: int | None = declared(ClientSettings, "dimensions")
    int8_scale: float | None = declared(ClientSettings, "int8_scale")
    query_instruction: str | None = declared(ClientSettings, "query_instruction")
    document_instruction: str | None = declared(ClientSettings, "document_instruction")
    protocol: ProtocolName = declared(ClientSettings, "protocol")
    batch_size: int | None = declared(ClientSettings, "batch_size")
    max_inflight_bytes: int = declared(ClientSettings, "max_inflight_bytes")
    max_concurrency: int | None = declared(ClientSettings, "max_concurrency")
    prepare_processes: int | None = declared(ClientSettings, "prepare_processes")
    timeout: float = declared(ClientSettings, "timeout")
    max_retries: int = declared(ClientSettings, "max_retries")
    client_side_dimensions: bool = declared(ClientSettings, "client_side_dimensions")
    truncate: CohereTruncate = declared(ClientSettings, "truncate")


class RerankerFields(BaseModel):
    """The reranking client's settings every reranker adapter offers as fields (the reranker
    sends fixed requests: its fixed batch size and concurrency are the defaults, not "tune")."""

    instruction: str | None = declared(RerankerSettings, "instruction")
    batch_size: int = declared(RerankerSettings, "batch_size", default=C.DEFAULT_BATCH_SIZE)
    max_concurrency: int = declared(
        RerankerSettings, "max_concurrency", default=C.DEFAULT_MAX_CONCURRENCY
    )
    timeout: float = declared(RerankerSettings, "timeout")
    max_retries: int = declared(RerankerSettings, "max_retries")

    @field_validator("instruction", mode="before")
    @classmethod
    def _preset_text(cls, value: Any) -> Any:
        # A preset's name or member becomes its text at construction: a misspelt name fails
        # here (a ValueError pydantic reports), not at the first call.
        if value is None or not isinstance(value, str) or not value.strip():
            return value
        return resolve_instruction(value, presets=RerankPreset)
