"""Errors survive a trip between processes, and the trip carries no API key.

LlamaIndex's ``IngestionPipeline(num_workers=...)``, ``multiprocessing`` pools and Ray pickle a
worker's exception to hand it to the parent: an error that cannot be rebuilt there turns a
clear "input 3: HTTP 400 ..." into a pickling traceback (or a hung pool).
"""

from __future__ import annotations

import multiprocessing
import pickle

import httpx
import pytest

from vllm_multimodal_embeddings import EmbeddingClient
from vllm_multimodal_embeddings._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ImageLoadError,
    InputError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    UnsupportedFeatureError,
    VLLMEmbeddingError,
)

KEY = "sk-pickle-secret-0123"
URL = "http://user:pw@vllm.internal:8000"


def _status_errors() -> list[APIStatusError]:
    request = httpx.Request(
        "POST",
        f"{URL}/v1/embeddings?sig=abc",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    response = httpx.Response(400, request=request, json={"error": {"message": "too long"}})
    response.read()
    body = {"error": {"message": "too long"}}
    return [
        cls("too long", response=response, body=body, index=2)
        for cls in (
            APIStatusError,
            BadRequestError,
            AuthenticationError,
            NotFoundError,
            RateLimitError,
            InternalServerError,
        )
    ]


def _every_error() -> list[VLLMEmbeddingError]:
    return [
        ConfigurationError("VLLM_BASE_URL is not set"),
        InputError("empty text", index=3),
        ImageLoadError("not found", index=1, source="/data/a.png"),
        UnsupportedFeatureError("needs --hf-overrides"),
        APIError("bad body", index=0),
        APIConnectionError("refused"),
        APITimeoutError("timed out", index=5),
        *_status_errors(),
    ]


@pytest.mark.parametrize("err", _every_error(), ids=lambda e: type(e).__name__)
def test_every_error_round_trips_through_pickle(err: VLLMEmbeddingError) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    for attr in ("index", "source", "status_code", "body", "message"):
        assert getattr(back, attr, None) == getattr(err, attr, None), attr
    if isinstance(err, APIStatusError):
        assert isinstance(back, APIStatusError)
        assert back.response.status_code == err.response.status_code
        assert back.response.json() == err.response.json()
        assert back.response.request.method == "POST"


def test_what_adapters_add_travels_and_their_bookkeeping_stays() -> None:
    import io

    li = pytest.importorskip("vllm_multimodal_embeddings.llama_index.embedding")
    for err in [InputError("empty", index=0), _status_errors()[1]]:
        # What the LlamaIndex adapter does to an error about a node in a pipeline: it remembers
        # the (here unpicklable) input beside the error, then re-points and names it.
        li._remember_item(err, [io.BytesIO(b"an unpicklable input")])
        err.message = f"node 'doc-7': {err.message}"
        err.index = 9
        back = pickle.loads(pickle.dumps(err))
        assert str(back) == str(err) and str(back).startswith("input 9: node 'doc-7': ")
        assert back.__dict__.keys() == err.__dict__.keys()


def test_a_pickled_status_error_carries_no_key_and_no_url_secrets() -> None:
    for err in _status_errors():
        data = pickle.dumps(err)
        assert KEY.encode() not in data
        assert b"pw@" not in data and b"sig=abc" not in data
        # The original error, still in this process, keeps its full request.
        assert err.response.request.headers["authorization"] == f"Bearer {KEY}"


def _raise_from_a_real_client(index: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "This model's maximum context"}})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    # A 400 on a one-input request names that input; index shifts it to a caller's position.
    with EmbeddingClient(
        base_url="http://127.0.0.1:9", model="m", api_key=KEY, http_client=http, max_retries=0
    ) as client:
        try:
            client.embed_texts(["x" * index])
        except BadRequestError as exc:
            exc.index = index
            raise


def test_an_error_raised_in_a_spawned_worker_reaches_the_parent_whole() -> None:
    # What IngestionPipeline(num_workers=2) does: a spawn pool, the worker's error re-raised here.
    # An error that cannot be unpickled kills the pool's result thread: the call would hang, so
    # it is bounded (a timeout here is that failure).
    with (
        multiprocessing.get_context("spawn").Pool(1) as pool,
        pytest.raises(BadRequestError) as info,
    ):
        pool.apply_async(_raise_from_a_real_client, (7,)).get(timeout=60)
    assert info.value.index == 7
    assert info.value.status_code == 400
    assert "maximum context" in str(info.value) and str(info.value).startswith("input 7: HTTP 400")
    assert KEY not in repr(info.value.response.request.headers)
