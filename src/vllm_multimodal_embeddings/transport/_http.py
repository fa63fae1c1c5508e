"""The one HTTP layer: requests as data, sync and async transports, retries and error mapping.

The I/O-free steps of the package are generators ("sans-I/O"): they yield a :class:`Call` and
receive the ``httpx.Response`` (or have the mapped :class:`APIError` thrown in). A transport
only makes the request, retries it when that is safe, and maps failures to the package's
exceptions; :meth:`SyncTransport.drive` and :meth:`AsyncTransport.drive` run such a generator.
The embedding client and the reranking client share this layer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx

from .. import _constants as C
from .._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
)
from .._redact import redact_text, redact_url
from ._errors import parse_error_message
from ._json_body import JsonBody, json_body
from ._retry import RetryState
from ._settings import ConnectionSettings

__all__ = [
    "AsyncTransport",
    "Call",
    "Step",
    "SyncTransport",
    "json_or_text",
    "map_status_error",
]

log = logging.getLogger("vllm_multimodal_embeddings")
T = TypeVar("T")
_CONTEXT_LIMIT = re.compile(r"maximum context length is (\d+) tokens")


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request a sans-I/O step wants made."""

    method: Literal["GET", "POST"]
    path: str
    json: dict[str, Any] | None = None
    #: Probes read error statuses themselves instead of having them raised.
    raise_for_status: bool = True
    #: Probes of optional endpoints are not retried.
    retry: bool = True
    #: The body carries the client's ``data:`` URIs: they are spliced into the JSON bytes
    #: without the encoder's scan for characters to escape (:mod:`._json_body`).
    media: bool = False
    #: Most retries of a 5xx answer (``None``: the policy's). Fewer for requests whose 5xx
    #: may be one input's fault (an image URL the server cannot fetch): the caller narrows a
    #: batch down instead of spending the retry budget on it.
    server_error_retries: int | None = None


#: A sans-I/O step: yields calls, receives responses, returns a result.
Step = Generator[Call, httpx.Response, T]


def _encoded(
    call: Call, server_headers: dict[str, str]
) -> tuple[bytes | JsonBody | None, dict[str, str]]:
    """A call's body, encoded once for all its attempts (byte for byte what httpx's ``json=``
    sends), and the request's headers (``server_headers`` and the body's)."""
    headers = dict(server_headers)
    if call.json is None:
        return None, headers
    headers.setdefault("Content-Type", "application/json")
    body = json_body(call.json, splice=call.media)
    if isinstance(body, JsonBody):
        # Streamed, with its length: httpx would otherwise send it chunked.
        headers["Content-Length"] = str(len(body))
    return body, headers


def json_or_text(response: httpx.Response) -> Any:
    """The body as JSON when it parses, else as text."""
    try:
        return response.json()
    except ValueError:
        return response.text


def map_status_error(response: httpx.Response) -> APIStatusError:
    """The exception for a non-2xx response, carrying the server's own message."""
    body = json_or_text(response)
    # Servers quote the URLs they failed to fetch: never their credentials or signatures.
    message = redact_text(parse_error_message(body, response.reason_phrase or "error"))
    limit = _CONTEXT_LIMIT.search(message)
    if limit is not None:
        # vLLM words every over-long input alike ("at least limit + 1 tokens"): say it plainly.
        message = f"too long: over the model's limit of {limit.group(1)} tokens ({message})"
    status = response.status_code
    cls: type[APIStatusError]
    if status in (400, 422):
        cls = BadRequestError
    elif status in (401, 403):
        cls = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif status == 429:
        cls = RateLimitError
    elif status >= 500:
        cls = InternalServerError
    else:
        cls = APIStatusError
    return cls(message, response=response, body=body)


def _transport_error(
    call: Call, base_url: str, exc: httpx.TransportError | httpx.DecodingError
) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"request to {call.path} timed out")
    # The URL is shown without credentials; httpx's own message may repeat it, so strip it.
    detail = str(exc).replace(base_url, redact_url(base_url))
    return APIConnectionError(
        f"cannot reach {redact_url(base_url)}: {type(exc).__name__}: {detail}"
    )


def _settle(call: Call, response: httpx.Response) -> httpx.Response:
    if response.is_success or not call.raise_for_status:
        return response
    raise map_status_error(response)


# Failures that mean "no usable response". A body cut short or mangled in transit surfaces as
# a decoding or protocol error when it is read; the retry policy decides which are transient.
_NO_RESPONSE = (httpx.TransportError, httpx.DecodingError)


# Retries of a refused connection to a server this transport never reached: one, so that a
# mistyped URL or a stopped server is reported in a second, not after the whole retry budget.
_UNREACHED_CONNECT_RETRIES = 1


def _attempt_timeout(timeout: float, state: RetryState | None) -> float:
    """An attempt's timeout: the setting, cut to the retry budget left (at least a second),
    so that the attempts of one request never run past ``max_retry_time`` together."""
    return timeout if state is None else max(min(timeout, state.remaining), 1.0)


def _attempt_outcome(
    call: Call, state: RetryState | None, outcome: httpx.Response | Exception, reached: bool
) -> float | None:
    """Seconds to wait before trying ``call`` again, or ``None`` when done with it (a success,
    a failure another try cannot mend, or the retries and time budget spent)."""
    if state is None:
        return None
    if (
        call.server_error_retries is not None
        and isinstance(outcome, httpx.Response)
        and outcome.status_code >= 500
        and state.retries >= call.server_error_retries
    ):
        return None
    if (
        not reached
        and isinstance(outcome, httpx.ConnectError)
        and state.retries >= _UNREACHED_CONNECT_RETRIES
    ):
        return None
    delay = state.next_delay(outcome)
    if delay is not None:
        what = outcome.status_code if isinstance(outcome, httpx.Response) else type(outcome)
        log.debug("retrying %s after %s in %.2f s", call.path, what, delay)
    return delay


#: Told of each answer that says "slow down" (429, 503, a timeout) and when its attempt began.
OverloadHook = Callable[[str, float], None]


def _overload(outcome: httpx.Response | Exception) -> str | None:
    """What an attempt's outcome says about the server's load, when it says "slow down"."""
    if isinstance(outcome, httpx.Response):
        status = outcome.status_code
        return f"server answered {status}" if status in (429, 503) else None
    return "a request timed out" if isinstance(outcome, httpx.TimeoutException) else None


def _ceiling(settings: ConnectionSettings) -> int:
    # Left None, concurrency is the embedding client's to tune, below this ceiling.
    return settings.max_concurrency or C.AUTO_MAX_CONCURRENCY


class SyncTransport:
    """Blocking requests to one server, with retries, at most ``max_concurrency`` at a time
    across every thread that uses it."""

    def __init__(self, settings: ConnectionSettings, http_client: httpx.Client | None) -> None:
        self.settings = settings
        self._owns = http_client is None
        self._http = http_client or httpx.Client(timeout=settings.timeout)
        self._limit = threading.BoundedSemaphore(_ceiling(settings))
        self.on_overload: OverloadHook | None = None
        self._policy = settings.retry_policy()
        self._root = settings.server_root()
        self._headers = settings.request_headers()  # the settings are frozen: built once
        self._reached = False  # any response yet: later refusals are outages, worth retrying

    def close(self) -> None:
        """Close the connection pool, unless it was passed in."""
        if self._owns:
            self._http.close()

    def send(self, call: Call) -> httpx.Response:
        """Make ``call``, retrying transient failures; raise the package's error otherwise."""
        s = self.settings
        state = self._policy.start() if call.retry else None
        url = f"{self._root}{call.path}"
        content, headers = _encoded(call, self._headers)
        while True:
            outcome: httpx.Response | Exception
            try:
                with self._limit:  # held for the request only, never while backing off
                    started = time.monotonic()
                    outcome = self._http.request(
                        call.method,
                        url,
                        content=content,
                        headers=headers,
                        timeout=_attempt_timeout(s.timeout, state),
                    )
            except _NO_RESPONSE as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response):
                self._reached = True
            slow_down = _overload(outcome)
            if slow_down is not None and self.on_overload is not None:
                self.on_overload(slow_down, started)
            delay = _attempt_outcome(call, state, outcome, self._reached)
            if delay is not None:
                time.sleep(delay)
                continue
            if isinstance(outcome, Exception):
                raise _transport_error(call, url, outcome) from outcome
            return _settle(call, outcome)

    def drive(self, step: Generator[Call, httpx.Response, T]) -> T:
        """Run a sans-I/O step to its result, making each request it yields."""
        try:
            call = next(step)
            while True:
                try:
                    response = self.send(call)
                except APIError as exc:
                    call = step.throw(exc)
                    continue
                call = step.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result


class AsyncTransport:
    """Awaitable requests to one server, with retries, at most ``max_concurrency`` at a time;
    bound to the event loop that first uses it (its connection pool and semaphore are)."""

    def __init__(self, settings: ConnectionSettings, http_client: httpx.AsyncClient | None) -> None:
        self.settings = settings
        self._owns = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=settings.timeout)
        # Created lazily: before Python 3.10 a semaphore bound itself to the loop at creation.
        self._limit: asyncio.Semaphore | None = None
        self.on_overload: OverloadHook | None = None
        self._policy = settings.retry_policy()
        self._root = settings.server_root()
        self._headers = settings.request_headers()  # the settings are frozen: built once
        self._reached = False  # any response yet: later refusals are outages, worth retrying

    async def aclose(self) -> None:
        """Close the connection pool, unless it was passed in."""
        if self._owns:
            await self._http.aclose()

    async def send(self, call: Call) -> httpx.Response:
        """Make ``call``, retrying transient failures; raise the package's error otherwise."""
        s = self.settings
        state = self._policy.start() if call.retry else None
        url = f"{self._root}{call.path}"
        body, headers = _encoded(call, self._headers)
        content = body.aiter() if isinstance(body, JsonBody) else body
        while True:
            outcome: httpx.Response | Exception
            if self._limit is None:
                self._limit = asyncio.Semaphore(_ceiling(s))
            try:
                async with self._limit:  # held for the request only, never while backing off
                    started = time.monotonic()
                    outcome = await self._http.request(
                        call.method,
                        url,
                        content=content,
                        headers=headers,
                        timeout=_attempt_timeout(s.timeout, state),
                    )
            except _NO_RESPONSE as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response):
                self._reached = True
            slow_down = _overload(outcome)
            if slow_down is not None and self.on_overload is not None:
                self.on_overload(slow_down, started)
            delay = _attempt_outcome(call, state, outcome, self._reached)
            if delay is not None:
                await asyncio.sleep(delay)
                continue
            if isinstance(outcome, Exception):
                raise _transport_error(call, url, outcome) from outcome
            return _settle(call, outcome)

    async def drive(self, step: Generator[Call, httpx.Response, T]) -> T:
        """Run a sans-I/O step to its result, awaiting each request it yields."""
        try:
            call = next(step)
            while True:
                try:
                    response = await self.send(call)
                except APIError as exc:
                    call = step.throw(exc)
                    continue
                call = step.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result
