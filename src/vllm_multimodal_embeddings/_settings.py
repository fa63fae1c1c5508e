"""Client settings, declared once: defaults, environment fallbacks and checks.

Both clients, both framework adapters and the doctor build a :class:`ClientSettings`; nothing
else restates a default. The adapters map their framework's field names onto these names
(``ADAPTER_FIELD_NAMES`` in each adapter), and a unit test keeps them covering every field.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, get_args
from urllib.parse import urlsplit

from . import _constants as C
from ._exceptions import ConfigurationError
from ._inputs import ImageOptions
from ._redact import redact_url
from ._retry import RetryPolicy
from ._types import ProtocolName
from .profiles import ModelProfile
from .protocol.cohere import CohereTruncate

__all__ = ["ClientSettings", "default_workers", "resolve_base_url"]

_TRUNCATE = get_args(CohereTruncate)
_PROTOCOLS = get_args(ProtocolName)


def default_workers() -> int:
    """The CPU cores this process may use: image preparation scales with them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def resolve_base_url(base_url: str | None) -> str:
    """The server root, from the argument or ``VLLM_BASE_URL``; ``/v1`` suffixes are dropped."""
    url = base_url if base_url is not None else os.environ.get(C.ENV_BASE_URL)
    if not url:
        raise ConfigurationError(
            f"no server URL: pass base_url= or set the {C.ENV_BASE_URL} environment variable"
        )
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"base_url must start with http:// or https://, got {redact_url(url)!r}"
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ConfigurationError(f"base_url is not a valid URL: {redact_url(url)!r}") from exc
    if not parts.hostname:
        raise ConfigurationError(f"base_url has no host: {redact_url(url)!r}")
    return url


@dataclass(frozen=True)
class ClientSettings:
    """Everything a client needs to know, validated at construction.

    Arguments left ``None`` fall back to environment variables: ``base_url`` to
    ``VLLM_BASE_URL`` (required), ``api_key`` to ``VLLM_API_KEY``, ``model`` to
    ``VLLM_EMBEDDING_MODEL`` (else the server's first model).
    """

    base_url: str | None = None
    """Server root, e.g. ``http://localhost:8000``; a trailing ``/v1`` is dropped."""
    api_key: str | None = field(default=None, repr=False)
    """Bearer token when the server runs with ``--api-key``; never shown."""
    model: str | None = None
    """Served model name; ``None``: the server's first model."""
    protocol: ProtocolName = "chat"
    """``chat`` (``/v1/embeddings``, the official recipe) or ``cohere`` (``/v2/embed``)."""
    profile: ModelProfile | None = None
    """Prompt layout; ``None``: :meth:`ModelProfile.qwen3_vl_embedding`."""
    query_instruction: str | None = None
    """Instruction for queries (chat protocol); ``None``: the profile's."""
    document_instruction: str | None = None
    """Instruction for indexed items (chat protocol); ``None``: the profile's."""
    dimensions: int | None = None
    """Matryoshka output size for every call; ``None``: the model's full size."""
    client_side_dimensions: bool = False
    """When the server refuses ``dimensions``, truncate and re-normalize here instead."""
    truncate: CohereTruncate = "NONE"
    """Over-long inputs: ``NONE`` raises, ``END`` / ``START`` cut there."""
    batch_size: int = C.DEFAULT_BATCH_SIZE
    """Most inputs per request."""
    max_batch_bytes: int = C.DEFAULT_MAX_BATCH_BYTES
    """Most encoded bytes per request (images dominate)."""
    max_concurrency: int = C.DEFAULT_MAX_CONCURRENCY
    """Most requests in flight, across every call on one client."""
    prepare_workers: int | None = None
    """Threads that decode, resize and encode images; ``None``: the CPU cores available."""
    timeout: float = C.DEFAULT_TIMEOUT_S
    """Seconds per request."""
    max_retries: int = C.DEFAULT_MAX_RETRIES
    """Retries on connection errors, timeouts, mangled bodies, 408/409/429 and 5xx."""
    max_retry_time: float = C.DEFAULT_MAX_RETRY_TIME_S
    """Seconds one request may spend on all its attempts and waits together."""
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    """Extra headers for every request to the server (never for remote image hosts)."""
    max_image_pixels: int = C.DEFAULT_MAX_PIXELS
    """Images with more pixels are downscaled before sending."""
    max_source_pixels: int = C.DEFAULT_MAX_SOURCE_PIXELS
    """Images whose header declares more pixels are refused before decoding."""
    max_image_bytes: int = C.DEFAULT_MAX_IMAGE_BYTES
    """Largest encoded image read from a file, a stream or a ``data:`` URI."""
    fetch_remote_images: bool = False
    """Fetch ``http(s)`` images here and send the bytes, instead of passing the URL on."""
    remote_image_max_bytes: int = C.DEFAULT_REMOTE_IMAGE_MAX_BYTES
    """Largest image fetched client-side, counted on the wire."""
    remote_image_timeout: float = C.DEFAULT_REMOTE_IMAGE_TIMEOUT_S
    """Seconds for one whole client-side fetch, redirects included."""
    remote_allowed_hosts: tuple[str, ...] = ()
    """Hosts, addresses or networks client-side fetching may reach although they are
    loopback, private or link-local (refused otherwise)."""
    allow_private_networks: bool = False
    """Let client-side fetching reach any address (trusted networks only)."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: fill in the environment fallbacks once
        set_(self, "base_url", resolve_base_url(self.base_url))
        if self.api_key is None:
            set_(self, "api_key", os.environ.get(C.ENV_API_KEY) or None)
        if self.model is None:
            set_(self, "model", os.environ.get(C.ENV_MODEL) or None)
        if self.prepare_workers is None:
            set_(self, "prepare_workers", default_workers())
        if self.headers is not None:
            set_(self, "headers", MappingProxyType(dict(self.headers)))
        hosts = self.remote_allowed_hosts
        set_(self, "remote_allowed_hosts", (hosts,) if isinstance(hosts, str) else tuple(hosts))
        self._check()

    def _check(self) -> None:
        if self.protocol not in _PROTOCOLS:
            raise ConfigurationError(f"protocol must be 'chat' or 'cohere', got {self.protocol!r}")
        if self.truncate not in _TRUNCATE:
            raise ConfigurationError(f"truncate must be NONE, START or END, got {self.truncate!r}")
        positive = {
            "batch_size": self.batch_size,
            "max_batch_bytes": self.max_batch_bytes,
            "max_concurrency": self.max_concurrency,
            "prepare_workers": self.prepare_workers,
            "max_image_pixels": self.max_image_pixels,
            "max_source_pixels": self.max_source_pixels,
            "max_image_bytes": self.max_image_bytes,
            "remote_image_max_bytes": self.remote_image_max_bytes,
        }
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        if self.dimensions is not None and (
            isinstance(self.dimensions, bool)
            or not isinstance(self.dimensions, int)
            or self.dimensions < 1
        ):
            raise ConfigurationError(
                f"dimensions must be a positive integer, got {self.dimensions!r}"
            )
        if isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries!r}")
        for name in ("timeout", "max_retry_time", "remote_image_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_source_pixels < self.max_image_pixels:
            raise ConfigurationError(
                f"max_source_pixels ({self.max_source_pixels}) must be >= max_image_pixels "
                f"({self.max_image_pixels})"
            )
        if self.protocol == "cohere" and (self.query_instruction or self.document_instruction):
            # /v2/embed takes only the server's task_instructions, by input_type name.
            raise ConfigurationError(
                "query_instruction/document_instruction apply to protocol='chat' only; with "
                "'cohere' the server's task_instructions decide (see the docker/ flags)"
            )
        for name in ("query_instruction", "document_instruction"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ConfigurationError(f"{name} is empty")

    def __repr__(self) -> str:
        # Never the key or headers, and no credentials or query string from the URL.
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.repr and f.name != "base_url" and getattr(self, f.name) != f.default
        )
        base = f"base_url={redact_url(self.base_url or '')!r}"
        return f"ClientSettings({base}{', ' if shown else ''}{shown})"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def create(cls, base: ClientSettings | None = None, /, **changes: Any) -> ClientSettings:
        """``base`` (or the defaults) with ``changes``; unknown names raise ConfigurationError."""
        unknown = sorted(set(changes) - set(cls.names()))
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(cls.names())}"
            )
        if base is None:
            return cls(**changes)
        return dataclasses.replace(base, **changes)

    def image_options(self) -> ImageOptions:
        """How inputs are read, bounded and prepared."""
        return ImageOptions(
            max_pixels=self.max_image_pixels,
            fetch_remote=self.fetch_remote_images,
            remote_max_bytes=self.remote_image_max_bytes,
            remote_timeout=self.remote_image_timeout,
            max_source_pixels=self.max_source_pixels,
            max_image_bytes=self.max_image_bytes,
            remote_allowed_hosts=self.remote_allowed_hosts,
            allow_private_networks=self.allow_private_networks,
        )

    def retry_policy(self) -> RetryPolicy:
        """When and how long requests to the server are retried."""
        return RetryPolicy(max_retries=self.max_retries, max_retry_time=self.max_retry_time)

    def effective_profile(self) -> ModelProfile:
        """The profile with this client's instructions applied."""
        base = self.profile or ModelProfile.qwen3_vl_embedding()
        return dataclasses.replace(
            base,
            query_instruction=self.query_instruction or base.query_instruction,
            document_instruction=self.document_instruction or base.document_instruction,
            extra_request_fields=dict(base.extra_request_fields),
        )

    def request_headers(self) -> dict[str, str]:
        """Headers for every request to the server; the key goes in ``Authorization`` only."""
        out = {"Accept": "application/json", **(self.headers or {})}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out
