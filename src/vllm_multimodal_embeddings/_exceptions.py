"""Exceptions raised by the package.

::

    VLLMEmbeddingError
    ├── ConfigurationError          bad client settings, found at construction (also a ValueError)
    ├── InputError                  bad input, found before anything is sent (also a ValueError)
    │   └── ImageLoadError          an image that cannot be read or decoded
    │       └── RemoteUnavailableError  a remote medium's host failed for now (worth a retry)
    ├── UnsupportedFeatureError     the server cannot do what was asked (no Matryoshka, ...)
    └── APIError                    anything the server or the network said
        ├── APIConnectionError      no response at all
        │   └── APITimeoutError
        └── APIStatusError          a non-2xx response
            ├── BadRequestError         400, 422
            ├── AuthenticationError     401, 403
            ├── NotFoundError           404
            ├── RateLimitError          429
            └── InternalServerError     >= 500

Every error that concerns one input carries ``index``: its position in the caller's list.
"""

from __future__ import annotations

from typing import Any

import httpx

from ._redact import redact_url

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ImageLoadError",
    "InputError",
    "InternalServerError",
    "NotFoundError",
    "RateLimitError",
    "RemoteUnavailableError",
    "UnsupportedFeatureError",
    "VLLMEmbeddingError",
]


def _with_index(message: str, index: int | None) -> str:
    return f"input {index}: {message}" if index is not None else message


class VLLMEmbeddingError(Exception):
    """Base class of every error this package raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross processes pickled (multiprocessing pools, LlamaIndex's num_workers, Ray).
        # Rebuilt from args and state, not through __init__ (which may need more than args):
        # attributes set after construction (an index narrowed down, a node id added to the
        # message) travel with the state.
        return (_unpickle, (type(self), *self.args), self._pickled_state())

    def _pickled_state(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _unpickle(cls: type[VLLMEmbeddingError], *args: Any) -> VLLMEmbeddingError:
    """An error of ``cls`` with ``args``, made without ``__init__``; pickle restores the rest."""
    return cls.__new__(cls, *args)


class ConfigurationError(VLLMEmbeddingError, ValueError):
    """A client setting is invalid or missing (the message names the environment variable)."""


class InputError(VLLMEmbeddingError, ValueError):
    """An input is invalid; nothing was sent.

    Attributes:
        index: position of the offending input in the caller's list, when there is one.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.index = index
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return _with_index(self.message, self.index)


class ImageLoadError(InputError):
    """An image could not be read or decoded.

    Attributes:
        source: a short description of where the image came from (path, URL, type), with
            URL credentials and query strings (the signature of a pre-signed URL) redacted.
    """

    def __init__(
        self, message: str, *, index: int | None = None, source: str | None = None
    ) -> None:
        if source is not None:
            source = redact_url(source)
        self.source = source
        # The source is named once: a message that already quotes it needs no suffix.
        suffix = f" ({source})" if source and source not in message else ""
        super().__init__(message + suffix, index=index)


class RemoteUnavailableError(ImageLoadError):
    """A remote medium (an image or video by URL) could not be read because its host failed
    for now: the connection failed or broke, it timed out, or the host answered 408, 425,
    429 or 5xx, on every attempt. The input itself may be fine: the bulk ``embed`` command's
    ``--resume`` tries such inputs again."""


class UnsupportedFeatureError(VLLMEmbeddingError):
    """The server does not support what was asked; the message says which flag enables it."""


class APIError(VLLMEmbeddingError):
    """The server or the network failed the request.

    Attributes:
        message: what went wrong, with the server's own words where it sent any.
        index: position of the input the server rejected, when it could be pinned down.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.message = message
        self.index = index
        super().__init__(message)

    def __str__(self) -> str:
        # ``index`` may be set after construction, once a failing batch is narrowed down.
        return _with_index(self.message, self.index)


class APIConnectionError(APIError):
    """The server could not be reached or dropped the connection."""


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class APIStatusError(APIError):
    """The server answered with a non-2xx status.

    Attributes:
        status_code: the HTTP status.
        body: the decoded JSON error body, or the raw text.
        response: the ``httpx.Response``; request headers (and so the API key) are not in ``str()``.
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: Any = None,
        index: int | None = None,
    ) -> None:
        self.status_code = response.status_code
        self.response = response
        self.body = body
        super().__init__(f"HTTP {response.status_code}: {message}", index=index)

    def _pickled_state(self) -> dict[str, Any]:
        # The request the response carries holds the Authorization header: send a copy
        # without it.
        return {**super()._pickled_state(), "response": _shareable(self.response)}


def _shareable(response: httpx.Response) -> httpx.Response:
    """A copy of ``response`` with its body but no request headers (the API key stays here)."""
    try:
        content = response.content
    except httpx.ResponseNotRead:
        content = b""
    try:
        original = response.request
    except RuntimeError:  # a response built without a request
        return httpx.Response(response.status_code, headers=response.headers, content=content)
    request = httpx.Request(original.method, redact_url(str(original.url)))
    return httpx.Response(
        response.status_code, headers=response.headers, content=content, request=request
    )


class BadRequestError(APIStatusError):
    """400 or 422: the server refused the request's content."""


class AuthenticationError(APIStatusError):
    """401 or 403: missing or wrong API key."""


class NotFoundError(APIStatusError):
    """404: unknown model or endpoint."""


class RateLimitError(APIStatusError):
    """429: too many requests."""


class InternalServerError(APIStatusError):
    """5xx: the server failed."""
