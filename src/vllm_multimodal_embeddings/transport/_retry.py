"""When to retry a request and how long to wait: a pure policy, no I/O.

:class:`RetryPolicy` decides; :class:`RetryState` carries one request's attempts and
elapsed time so that every retry of that request draws on one shared time budget.

Why the defaults (``max_retries=8``, ``max_retry_time=300`` s): the fault mix a bulk job
must survive is 8% 503 + 4% 429 + 4% connection resets, i.e. each attempt fails with
p = 0.16, independently. A request is lost only when all ``1 + r`` attempts fail:
``p ** (1 + r)``. A 3000-item call makes about 190 requests in batches of 16, or 3000
unbatched ones; the chance that it loses any request is ``1 - (1 - p ** (1 + r)) ** n``:

====  ===================  ===================
 r    n = 190 (batched)    n = 3000 (single)
====  ===================  ===================
 2    0.54                 1.00   (the old default)
 4    0.020                0.27
 6    5.1e-4               8.0e-3
 8    1.3e-5               2.1e-4
====  ===================  ===================

``benchmarks/retry_budget.py`` checks this by simulation (10,000 such jobs: none lost a
request with r = 8, 54% did with r = 2) and with a real 3000-item job against a
fault-injecting loopback server (nothing lost, duplicated or reordered). The backoff of
eight retries sums to at most 0.5+1+2+4+8*4 = 39.5 s. The budget is two request timeouts
(120 s each) and a minute more: a request that timed out is retried once, as a request that
met a 503 is, and there is room for the backoff and a few honest ``Retry-After`` answers. A
120 s budget, the timeout itself, was spent by the first timed-out attempt. No attempt runs
past the budget (its timeout is cut to what is left), so it still bounds a dead server's cost.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from .._constants import DEFAULT_MAX_RETRY_TIME_S, RETRY_BASE_DELAY_S, RETRY_MAX_DELAY_S
from .._exceptions import APIConnectionError, APIStatusError

__all__ = [
    "BULK_MAX_RETRIES",
    "RETRYABLE_STATUS",
    "RetryPolicy",
    "RetryState",
    "parse_retry_after",
]

#: Retries that make a 3000-item job at 16% faults lose nothing (see the table above).
BULK_MAX_RETRIES = 8

#: Statuses worth another try: timeout, conflict, rate limit (all 5xx are retried too).
RETRYABLE_STATUS = frozenset({408, 409, 429})
_SECONDS = re.compile(r"^\d+(?:\.\d+)?$")
# Errors that mean *we* sent something wrong: another try cannot help.
_NOT_TRANSIENT: tuple[type[BaseException], ...] = (
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.InvalidURL,
)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for, or ``None`` when it is absent or malformed.

    Accepts delta-seconds (``"3"``, ``"1.5"``) and HTTP dates. ``nan``, ``inf``, negative
    numbers, words and garbage are malformed; a date in the past means "now" (0.0).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.match(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:  # HTTP dates are always GMT; no zone = not one
        return None
    now = time.time() if now is None else now
    return max(when.timestamp() - now, 0.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times and how long to retry one request.

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        base_delay: first backoff, doubled on every retry.
        max_delay: largest backoff (``Retry-After`` may ask for more, up to the budget).
        max_retry_time: seconds one request may take, all attempts and waits together;
            no retry starts once it is spent, and no wait runs past it.
    """

    max_retries: int = BULK_MAX_RETRIES
    base_delay: float = RETRY_BASE_DELAY_S
    max_delay: float = RETRY_MAX_DELAY_S
    max_retry_time: float = DEFAULT_MAX_RETRY_TIME_S

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries!r}")
        for name in ("base_delay", "max_delay", "max_retry_time"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Exponential backoff before retry ``attempt`` (1-based), with equal jitter.

        Half the step is fixed so that a 429 is never answered at once; the random half
        spreads out clients that failed together.
        """
        step = min(self.base_delay * 2.0 ** max(attempt - 1, 0), self.max_delay)
        return step / 2.0 + rng() * step / 2.0

    def delay(
        self,
        attempt: int,
        response: httpx.Response | None = None,
        *,
        remaining: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retry ``attempt`` (1-based), or ``None`` to give up.

        A well-formed ``Retry-After`` on ``response`` wins over backoff; a malformed one
        falls back to backoff. The wait is capped at ``remaining`` (the budget left), and
        ``None`` comes back when the retries or the budget are spent.
        """
        if attempt > self.max_retries:
            return None
        if remaining is not None and remaining <= 0:
            return None
        wait = None
        if response is not None:
            wait = _retry_after_ms(response.headers.get("retry-after-ms"))
            if wait is None:
                wait = parse_retry_after(response.headers.get("retry-after"))
        if wait is None:
            wait = self.backoff(attempt, rng)
        # A huge (or, from 309 digits on, infinite) Retry-After is cut to the budget.
        return min(wait, self.max_retry_time if remaining is None else remaining)

    def is_retryable(self, outcome: httpx.Response | BaseException) -> bool:
        """Whether another attempt may succeed where ``outcome`` failed.

        Retried: transport failures (connection refused or reset, timeouts, a peer closing
        mid-body, ``httpx.DecodingError`` from a corrupt compressed body), a body cut off
        mid-JSON, the package's :class:`APIConnectionError`, and 408/409/429/5xx. Never other
        4xx, bad URLs, or errors raised by our own code.
        """
        if isinstance(outcome, httpx.Response):
            if _is_truncated(outcome):
                return True
            return _retryable_status(outcome.status_code)
        if isinstance(outcome, _NOT_TRANSIENT):
            return False
        if isinstance(outcome, (httpx.TransportError, httpx.DecodingError, APIConnectionError)):
            return True
        if isinstance(outcome, APIStatusError):
            return _retryable_status(outcome.status_code)
        if isinstance(outcome, json.JSONDecodeError):
            return _cut_off(outcome)
        return False

    def start(self, clock: Callable[[], float] = time.monotonic) -> RetryState:
        """A fresh state for one request; call before its first attempt."""
        return RetryState(policy=self, clock=clock)


@dataclass(slots=True)
class RetryState:
    """One request's retries: how many were made and how much of the budget is left."""

    policy: RetryPolicy
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    retries: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def elapsed(self) -> float:
        """Seconds since the first attempt started."""
        return self.clock() - self.started

    @property
    def remaining(self) -> float:
        """Seconds of the budget left (never negative)."""
        return max(self.policy.max_retry_time - self.elapsed, 0.0)

    def next_delay(
        self,
        outcome: httpx.Response | BaseException,
        *,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None``: give up, report ``outcome``.

        Counts the retry when it returns a delay, so call it once per failed attempt.
        """
        if not self.policy.is_retryable(outcome):
            return None
        response = outcome if isinstance(outcome, httpx.Response) else None
        wait = self.policy.delay(self.retries + 1, response, remaining=self.remaining, rng=rng)
        if wait is not None:
            self.retries += 1
        return wait


def _retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or 500 <= status <= 599


def _retry_after_ms(value: str | None) -> float | None:
    # A non-standard header some proxies and APIs send; same rules, milliseconds.
    if value is None or not _SECONDS.match(value.strip()):
        return None
    return float(value.strip()) / 1000.0


def _is_truncated(response: httpx.Response) -> bool:
    """A read body shorter than its ``Content-Length``: the connection dropped mid-body."""
    if not response.is_success:
        return False
    declared = response.headers.get("content-length")
    if declared is None or not declared.isdigit() or "content-encoding" in response.headers:
        return False
    try:
        body = response.content
    except httpx.ResponseNotRead:  # a streamed response nobody read: nothing to judge
        return False
    return len(body) < int(declared)


def _cut_off(exc: json.JSONDecodeError) -> bool:
    """True when JSON parsing failed because the text ended, not because it is not JSON."""
    if exc.msg.startswith("Unterminated string"):
        return True
    return exc.pos >= len(exc.doc.rstrip())
