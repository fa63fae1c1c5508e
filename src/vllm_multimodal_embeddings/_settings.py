"""Settings, declared once, in groups: the connection, the image bounds, the embedding call.

* :class:`ConnectionSettings` - where the server is and how to talk to it (URL, key, headers,
  timeouts, retries, concurrency); every client of the package has one, the reranker's too.
* :class:`ImageSettings` - how inputs are read, bounded and prepared; what input preparation
  takes.
* :class:`ClientSettings` - an embedding client's settings: both groups (by inheritance, so
  the flat keyword form ``ClientSettings(base_url=..., dimensions=...)`` keeps working) plus
  the embedding-only ones.

Each field is declared once, with its default, its check (:func:`setting`) and a docstring;
the framework adapters read the same declarations (``ClientSettings.names()``). Arguments
left ``None`` fall back to environment variables: ``base_url`` to ``VLLM_BASE_URL``
(required), ``api_key`` to ``VLLM_API_KEY``, ``model`` to ``VLLM_EMBEDDING_MODEL``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar, get_args
from urllib.parse import urlsplit

from . import _constants as C
from ._endpoints import ENDPOINTS, endpoint_for
from ._exceptions import ConfigurationError, InputError
from ._quantize import check_int8_scale
from ._redact import redact_url
from ._retry import RetryPolicy
from ._types import ProtocolName
from .profiles import ModelProfile, resolve_instruction
from .protocol.cohere import CohereTruncate

__all__ = [
    "ClientSettings",
    "ConnectionSettings",
    "ImageSettings",
    "check_not_bare",
    "default_workers",
    "resolve_base_url",
    "setting",
]

_TRUNCATE = get_args(CohereTruncate)
S = TypeVar("S", bound="_Group")
Check = Callable[[str, Any], None]


# -- field checks: each says what is wrong, naming the setting -------------------------------


def _integer(minimum: int) -> Check:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")

    return check


def _seconds(name: str, value: Any) -> None:
    # nan and inf pass a plain "> 0" test and fail much later, inside a sleep or a timer.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")


def _optional(check: Check) -> Check:
    def optional(name: str, value: Any) -> None:
        if value is not None:
            check(name, value)

    return optional


def _instruction(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")


def _hosts(name: str, value: Any) -> None:
    if not all(isinstance(host, str) and host.strip() for host in value):
        raise ConfigurationError(f"{name} must hold host names, addresses or networks as strings")


def _one_of(*allowed: object) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in allowed:
            raise ConfigurationError(
                f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
            )

    return check


POSITIVE = _integer(1)


def setting(default: Any = None, check: Check | None = None, *, secret: bool = False) -> Any:
    """One declared setting: its default and its check (run at construction).

    ``secret`` keeps it out of reprs (API keys, headers that may carry credentials).
    """
    return field(default=default, repr=not secret, metadata={"check": check})


class _Group:
    """What every settings group does: run the declared checks, say its names, copy itself."""

    def _check_fields(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = f.metadata.get("check")
            if check is not None:
                check(f.name, getattr(self, f.name))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def create(cls: type[S], base: S | None = None, /, **changes: Any) -> S:
        """``base`` (or the defaults) with ``changes``; unknown names raise ConfigurationError."""
        unknown = sorted(set(changes) - set(cls.names()))
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(cls.names())}"
            )
        if base is None:
            return cls(**changes)
        return dataclasses.replace(base, **changes)  # type: ignore[type-var]

    def part(self, group: type[S]) -> S:
        """The values of ``group``'s settings (a group this one includes) as that group."""
        return group(**{name: getattr(self, name) for name in group.names()})


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
    if not isinstance(url, str):
        raise ConfigurationError(f"base_url must be a string, got {type(url).__name__}")
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
class ConnectionSettings(_Group):
    """Where the server is and how requests to it are made, bounded and retried."""

    base_url: str | None = None
    """Server root, e.g. ``http://localhost:8000``; a trailing ``/v1`` is dropped."""
    api_key: str | None = setting(None, secret=True)
    """Bearer token when the server runs with ``--api-key``; never shown."""
    headers: Mapping[str, str] | None = setting(None, secret=True)
    """Extra headers for every request to the server (never for remote image hosts)."""
    timeout: float = setting(C.DEFAULT_TIMEOUT_S, _seconds)
    """Seconds per request."""
    max_retries: int = setting(C.DEFAULT_MAX_RETRIES, _integer(0))
    """Retries on connection errors, timeouts, mangled bodies, 408/409/429 and 5xx."""
    max_retry_time: float = setting(C.DEFAULT_MAX_RETRY_TIME_S, _seconds)
    """Seconds one request may spend on all its attempts and waits together."""
    max_concurrency: int | None = setting(None, _optional(POSITIVE))
    """Most requests in flight, across every call on one client; ``None``: chosen by the
    embedding client from what the server sustains (see ``_tuning.py``), 4 for the reranker."""

    def __post_init__(self) -> None:
        self._fill()
        self._check_fields()

    def _fill(self) -> None:
        """Environment fallbacks and normal forms, once (the dataclass is frozen)."""
        set_ = object.__setattr__
        set_(self, "base_url", resolve_base_url(self.base_url))
        if self.api_key is None:
            set_(self, "api_key", os.environ.get(C.ENV_API_KEY) or None)
        if self.headers is not None:
            if not isinstance(self.headers, Mapping):
                raise ConfigurationError("headers must be a mapping of names to values")
            set_(self, "headers", MappingProxyType(dict(self.headers)))

    def __repr__(self) -> str:
        # Never the key or headers, and no credentials or query string from the URL.
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.repr and f.name != "base_url" and getattr(self, f.name) != f.default
        )
        base = f"base_url={redact_url(self.base_url or '')!r}"
        return f"{type(self).__name__}({base}{', ' if shown else ''}{shown})"

    def fixed_concurrency(self) -> int:
        """``max_concurrency`` when set, else the fixed default (clients that do not tune)."""
        return self.max_concurrency or C.DEFAULT_MAX_CONCURRENCY

    def retry_policy(self) -> RetryPolicy:
        """When and how long requests to the server are retried."""
        return RetryPolicy(max_retries=self.max_retries, max_retry_time=self.max_retry_time)

    def request_headers(self) -> dict[str, str]:
        """Headers for every request to the server; the key goes in ``Authorization`` only."""
        out = {"Accept": "application/json", **(self.headers or {})}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out


@dataclass(frozen=True)
class ImageSettings(_Group):
    """How inputs are read, bounded and prepared before sending."""

    max_image_pixels: int = setting(C.DEFAULT_MAX_PIXELS, POSITIVE)
    """Images with more pixels are downscaled (aspect ratio kept) before sending."""
    max_source_pixels: int = setting(C.DEFAULT_MAX_SOURCE_PIXELS, POSITIVE)
    """Images whose header declares more pixels are refused before decoding."""
    max_image_bytes: int = setting(C.DEFAULT_MAX_IMAGE_BYTES, POSITIVE)
    """Largest encoded image read from a file, a stream or a ``data:`` URI."""
    fetch_remote_images: bool = setting(False, _flag)
    """Fetch ``http(s)`` images here and send the bytes, instead of passing the URL on."""
    remote_image_max_bytes: int = setting(C.DEFAULT_REMOTE_IMAGE_MAX_BYTES, POSITIVE)
    """Largest image fetched client-side, counted on the wire."""
    remote_image_timeout: float = setting(C.DEFAULT_REMOTE_IMAGE_TIMEOUT_S, _seconds)
    """Seconds for one whole client-side fetch, redirects included."""
    remote_allowed_hosts: tuple[str, ...] = setting((), _hosts)
    """Hosts, addresses or networks client-side fetching may reach although they are
    loopback, private or link-local (refused otherwise)."""
    allow_private_networks: bool = setting(False, _flag)
    """Let client-side fetching reach any address (trusted networks only)."""
    page_max_pixels: int | None = setting(None, _optional(POSITIVE))
    """The pixel budget PDF pages are rendered to fill; ``None``: ``max_image_pixels``. (The
    reranker lifts ``max_image_pixels`` to keep photos' own pixels for its resize; a page has
    none, so it renders at the recipe's budget instead.)"""

    def __post_init__(self) -> None:
        self._fill_images()
        self._check_fields()
        self._check_images()

    def _fill_images(self) -> None:
        hosts = self.remote_allowed_hosts
        # A bare string would be read as one-letter host names; a list would be unhashable.
        object.__setattr__(
            self, "remote_allowed_hosts", (hosts,) if isinstance(hosts, str) else tuple(hosts)
        )

    def _check_images(self) -> None:
        if self.max_source_pixels < self.max_image_pixels:
            raise ConfigurationError(
                f"max_source_pixels ({self.max_source_pixels}) must be >= max_image_pixels "
                f"({self.max_image_pixels})"
            )


@dataclass(frozen=True, repr=False)
class ClientSettings(ImageSettings, ConnectionSettings):
    """An embedding client's settings: the connection, the image bounds and the embedding
    call's own, validated at construction (see the module docstring)."""

    __repr__ = ConnectionSettings.__repr__

    model: str | None = None
    """Served model name; ``None``: the server's first model."""
    protocol: ProtocolName = setting("chat", _one_of(*ENDPOINTS))
    """``chat`` (``/v1/embeddings``, the official recipe) or ``cohere`` (``/v2/embed``)."""
    profile: ModelProfile | None = None
    """Prompt layout; ``None``: :meth:`ModelProfile.qwen3_vl_embedding`."""
    query_instruction: str | None = setting(None, _instruction)
    """Instruction for queries (chat protocol); ``None``: the profile's."""
    document_instruction: str | None = setting(None, _instruction)
    """Instruction for indexed items (chat protocol); ``None``: the profile's."""
    dimensions: int | None = setting(None, _optional(POSITIVE))
    """Matryoshka output size for every call; ``None``: the model's full size."""
    client_side_dimensions: bool = setting(False, _flag)
    """When the server refuses ``dimensions``, truncate and re-normalize here instead."""
    truncate: CohereTruncate = setting("NONE", _one_of(*_TRUNCATE))
    """Over-long inputs: ``NONE`` raises, ``END`` / ``START`` cut there."""
    batch_size: int | None = setting(None, _optional(POSITIVE))
    """Most inputs per request; ``None``: the embedding client adapts it to what the server
    sustains (starting at 16), the reranker sends 16."""
    max_batch_bytes: int = setting(C.DEFAULT_MAX_BATCH_BYTES, POSITIVE)
    """Most encoded bytes per request (images dominate)."""
    max_inflight_bytes: int = setting(C.DEFAULT_MAX_INFLIGHT_BYTES, POSITIVE)
    """Most prepared payload bytes (encoded images, texts) held by the streaming pipeline
    before the server answers them, across every call on one client. Batches and requests
    in flight grow freely for texts and small images while camera photos stay within this
    memory; one input larger than it still goes, alone."""
    prepare_workers: int | None = setting(None, _optional(POSITIVE))
    """Threads that decode, resize and encode images; ``None``: the CPU cores available."""
    int8_scale: float | None = setting(None, check_int8_scale)
    """Quantization step of ``embedding_type="int8"``; ``None``: the published one of
    Qwen3-VL-Embedding-2B/8B, and an error for any other model."""
    prepare_processes: int | None = setting(None, _optional(_integer(0)))
    """Processes that prepare large local images (paths, ``bytes``, ``data:`` URIs over
    1 MiB); ``0``: threads only; ``None``: the CPU cores when there are more than two
    (threads stop scaling there: Pillow's JPEG encoder holds the GIL), else threads."""

    def __post_init__(self) -> None:
        self._fill()
        self._fill_images()
        if self.model is None:
            object.__setattr__(self, "model", os.environ.get(C.ENV_MODEL) or None)
        if self.prepare_workers is None:
            object.__setattr__(self, "prepare_workers", default_workers())
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

    def fixed_batch_size(self) -> int:
        """``batch_size`` when set, else the fixed default (clients that do not tune)."""
        return self.batch_size or C.DEFAULT_BATCH_SIZE

    @property
    def connection(self) -> ConnectionSettings:
        """The connection group of these settings."""
        return self.part(ConnectionSettings)

    @property
    def images(self) -> ImageSettings:
        """The image group of these settings (what input preparation takes)."""
        return self.part(ImageSettings)

    def effective_profile(self) -> ModelProfile:
        """The profile with this client's instructions applied."""
        base = self.profile or ModelProfile.qwen3_vl_embedding()
        return dataclasses.replace(
            base,
            query_instruction=self.query_instruction or base.query_instruction,
            document_instruction=self.document_instruction or base.document_instruction,
            extra_request_fields=dict(base.extra_request_fields),
        )


def check_not_bare(inputs: object) -> None:
    """A bare string is iterable too; iterating it would embed one character at a time."""
    if isinstance(inputs, (str, bytes, bytearray)):
        raise InputError(
            f"expected a list of inputs, got a single {type(inputs).__name__}; wrap it in a list"
        )
