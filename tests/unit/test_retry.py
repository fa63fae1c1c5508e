"""RetryPolicy / RetryState: Retry-After parsing, budget, what is retryable."""

from __future__ import annotations

import email.utils
import json
import random

import httpx
import pytest

from vllm_multimodal_embeddings._exceptions import (
    APIConnectionError,
    BadRequestError,
    RateLimitError,
)
from vllm_multimodal_embeddings.transport._retry import RetryPolicy, RetryState, parse_retry_after


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", "http://x/"))


def _half(_: object = None) -> float:
    return 0.5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), (" 1.5 ", 1.5), ("0", 0.0)],
)
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-inf", "-3", "soon", "", "  ", "1e3", "0x10", "3 s"]
)
def test_malformed_retry_after_is_none(value: str) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(7.0)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "soon", "Tue, 99 Foo 2024 xx"])
def test_malformed_retry_after_falls_back_to_backoff(value: str) -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    wait = policy.delay(3, _response(429, **{"retry-after": value}), rng=_half)
    # Backoff for retry 3: step 4 s, equal jitter -> 2 + 0.5 * 2.
    assert wait == 3.0


def test_well_formed_retry_after_wins_over_backoff() -> None:
    policy = RetryPolicy(base_delay=0.5)
    assert policy.delay(1, _response(429, **{"retry-after": "5"})) == 5.0
    assert policy.delay(1, _response(503, **{"retry-after-ms": "250"})) == 0.25


@pytest.mark.parametrize("value", ["99999999", "1" * 400])
def test_huge_retry_after_is_capped_at_budget(value: str) -> None:
    policy = RetryPolicy(max_retry_time=30.0)
    response = _response(429, **{"retry-after": value})
    assert policy.delay(1, response, remaining=12.5) == 12.5
    assert policy.delay(1, response) == 30.0


def test_backoff_doubles_up_to_max_with_jitter_in_range() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    lows = [policy.backoff(n, rng=lambda: 0.0) for n in range(1, 7)]
    highs = [policy.backoff(n, rng=lambda: 1.0) for n in range(1, 7)]
    assert lows == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert highs == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    rng = random.Random(1)
    for _ in range(100):
        assert 1.0 <= policy.backoff(3, rng.random) <= 2.0


def test_delay_none_after_max_retries_or_spent_budget() -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.delay(2) is not None
    assert policy.delay(3) is None
    assert policy.delay(1, remaining=0.0) is None


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_are_retryable(status: int) -> None:
    assert RetryPolicy().is_retryable(_response(status))


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 413, 422])
def test_other_statuses_are_not(status: int) -> None:
    assert not RetryPolicy().is_retryable(_response(status))


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("peer closed connection without sending complete body"),
        httpx.ReadTimeout("timed out"),
        httpx.DecodingError("invalid gzip"),
        APIConnectionError("cannot reach http://x"),
    ],
)
def test_transport_and_decoding_errors_are_retryable(exc: BaseException) -> None:
    assert RetryPolicy().is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.UnsupportedProtocol("ftp"),
        httpx.LocalProtocolError("bad header"),
        httpx.InvalidURL("http://[::1"),
        ValueError("ours"),
        KeyError("x"),
    ],
)
def test_our_own_errors_are_not_retryable(exc: BaseException) -> None:
    assert not RetryPolicy().is_retryable(exc)


def test_status_errors_follow_their_status() -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(RateLimitError("slow down", response=_response(429)))
    assert not policy.is_retryable(BadRequestError("bad", response=_response(400)))


def _json_error(text: str) -> json.JSONDecodeError:
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(text)
    return info.value


def test_cut_off_json_is_retryable_but_html_is_not() -> None:
    policy = RetryPolicy()
    full = '{"data": [{"index": 0, "embedding": "AAAAAAAAgD8="}]}'
    for cut in (12, 30, 45, len(full) - 1):
        assert policy.is_retryable(_json_error(full[:cut])), full[:cut]
    assert not policy.is_retryable(_json_error("<html><body>Bad gateway</body></html>"))
    assert not policy.is_retryable(_json_error('{"a": 1} trailing'))


def test_body_shorter_than_content_length_is_retryable() -> None:
    request = httpx.Request("POST", "http://x/")
    cut = httpx.Response(200, headers={"content-length": "100"}, content=b"{}", request=request)
    # httpx recomputes nothing for a response built from bytes: the header stays as sent.
    cut.headers["content-length"] = "100"
    whole = httpx.Response(200, content=b"{}", request=request)
    assert RetryPolicy().is_retryable(cut)
    assert not RetryPolicy().is_retryable(whole)
    unread = httpx.Response(
        200, headers={"content-length": "100"}, stream=httpx.ByteStream(b"{}"), request=request
    )
    assert not RetryPolicy().is_retryable(unread)  # nothing read yet: nothing to judge


def test_state_shares_one_budget_across_attempts() -> None:
    clock = FakeClock()
    state = RetryPolicy(max_retries=10, max_retry_time=10.0).start(clock)
    assert isinstance(state, RetryState)
    failure = _response(503, **{"retry-after": "4"})
    waits = []
    while (wait := state.next_delay(failure)) is not None:
        waits.append(wait)
        clock.now += wait + 0.5  # the wait, then an attempt that takes 0.5 s
    # 4 + 0.5, 4 + 0.5, then only 1.0 s of the budget is left for the third wait.
    assert waits == [4.0, 4.0, 1.0]
    assert state.retries == 3
    assert state.remaining == 0.0


def test_state_counts_retries_up_to_max() -> None:
    state = RetryPolicy(max_retries=3, base_delay=0.0).start(FakeClock())
    waits = [state.next_delay(httpx.ReadError("reset")) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, None, None]
    assert state.retries == 3


def test_state_never_retries_a_final_answer() -> None:
    state = RetryPolicy().start(FakeClock())
    assert state.next_delay(_response(400)) is None
    assert state.retries == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"base_delay": float("nan")},
        {"max_delay": -1.0},
        {"max_retry_time": float("inf")},
    ],
)
def test_policy_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_defaults_survive_the_fault_mix() -> None:
    # 16% of attempts fail (8% 503, 4% 429, 4% resets); 3000 unbatched requests, worst case.
    policy = RetryPolicy()
    p_loss_any = 3000 * 0.16 ** (1 + policy.max_retries)
    assert p_loss_any < 1e-3
    worst_backoff = sum(policy.backoff(n, rng=lambda: 1.0) for n in range(1, 9))
    assert worst_backoff < policy.max_retry_time / 2
