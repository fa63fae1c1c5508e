"""The connection group: where the server is and how requests to it are made, bounded and retried.

It knows nothing of endpoints, profiles or images: every client of the package has one.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .. import _constants as C
from .._exceptions import ConfigurationError
from .._redact import redact_url
from .._settings import POSITIVE, Group, integer, optional, seconds, setting
from ._retry import RetryPolicy

__all__ = ["ConnectionSettings", "Headers", "resolve_base_url"]


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
    if parts.query or parts.fragment:
        # Paths are appended to the root: "...?tok=x" would become "...?tok=x/v1/models".
        raise ConfigurationError(
            f"base_url takes no query string or fragment, got {redact_url(url)!r}; pass a "
            "token as api_key= or in headers="
        )
    return url


class Headers(Mapping[str, str]):
    """Extra request headers, read-only, that pickle and copy (a ``MappingProxyType`` does
    neither); their repr names the headers, never their values."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = dict(items)

    def __getitem__(self, name: str) -> str:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other.items())

    def __repr__(self) -> str:
        return f"Headers({sorted(self._items)})"

    def __reduce__(self) -> tuple[type[Headers], tuple[dict[str, str]]]:
        return (Headers, (self._items,))


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
            set_(self, "headers", Headers(self.headers))

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
        """Headers for every request to the server; the key goes in ``Authorization`` only
        (``user:password@`` in ``base_url`` as Basic credentials when there is no key)."""
        out = {"Accept": "application/json", **(self.headers or {})}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        else:
            parts = urlsplit(self.base_url or "")
            if parts.username is not None:
                pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                out["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return out

    def server_root(self) -> str:
        """``base_url`` without credentials: what requests go to, so that neither httpx's
        log lines nor errors ever carry them (:meth:`request_headers` sends them)."""
        parts = urlsplit(self.base_url or "")
        if parts.username is None and parts.password is None:
            return self.base_url or ""
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def connection(self) -> ConnectionSettings:
        """The connection group of these settings (of a group that includes it)."""
        return self if type(self) is ConnectionSettings else self.part(ConnectionSettings)
