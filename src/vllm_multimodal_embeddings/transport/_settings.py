"""The connection group: where the server is and how requests to it are made, bounded and retried.

It knows nothing of endpoints, profiles or images: every client of the package has one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

from .. import _constants as C
from .._exceptions import ConfigurationError
from .._redact import redact_url
from .._settings import POSITIVE, Group, integer, optional, seconds, setting
from ._retry import RetryPolicy

__all__ = ["ConnectionSettings", "resolve_base_url"]


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
class ConnectionSettings(Group):
    """Where the server is and how requests to it are made, bounded and retried."""

    base_url: str | None = setting(None, env=C.ENV_BASE_URL)
    """Server root, e.g. ``http://localhost:8000``; a trailing ``/v1`` is dropped."""
    api_key: str | None = setting(None, secret=True, env=C.ENV_API_KEY)
    """Bearer token when the server runs with ``--api-key``; never shown."""
    headers: Mapping[str, str] | None = setting(None, secret=True)
    """Extra headers for every request to the server (never for remote image hosts)."""
    timeout: float = setting(C.DEFAULT_TIMEOUT_S, seconds)
    """Seconds per request."""
    max_retries: int = setting(C.DEFAULT_MAX_RETRIES, integer(0))
    """Retries on connection errors, timeouts, mangled bodies, 408/409/429 and 5xx."""
    max_retry_time: float = setting(C.DEFAULT_MAX_RETRY_TIME_S, seconds)
    """Seconds one request may spend on all its attempts and waits together."""
    max_concurrency: int | None = setting(None, optional(POSITIVE))
    """Most requests in flight, across every call on one client; ``None``: chosen by the
    embedding client from what the server sustains (see ``_tuning.py``), 4 for the reranker."""

    def __post_init__(self) -> None:
        self._fill()
        self._check_fields()

    def _fill(self) -> None:
        """Environment fallbacks and normal forms, once (the dataclass is frozen)."""
        set_ = object.__setattr__
        self._fill_env()
        set_(self, "base_url", resolve_base_url(self.base_url))
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

    @property
    def connection(self) -> ConnectionSettings:
        """The connection group of these settings (of a group that includes it)."""
        return self if type(self) is ConnectionSettings else self.part(ConnectionSettings)
