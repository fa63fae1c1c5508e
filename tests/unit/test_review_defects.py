"""Defects of the reliability review (issue 34) that need no server: each test failed before
its fix."""

from __future__ import annotations

import base64
import copy
import logging
import pickle

import httpx
import pytest

from vllm_multimodal_embeddings import (
    ClientSettings,
    ConfigurationError,
    EmbeddingClient,
    InputError,
)
from vllm_multimodal_embeddings.reranking import RerankerSettings


def _answering(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 512}]})

    return httpx.MockTransport(handler)


def test_settings_with_headers_pickle_and_copy() -> None:  # item 9
    s = ClientSettings(base_url="http://vllm.test", headers={"X-Tenant": "t-secret"})
    for other in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s), copy.copy(s)):
        assert other == s and dict(other.headers or {}) == {"X-Tenant": "t-secret"}
    with pytest.raises(TypeError):
        s.headers["X-Other"] = "no"  # type: ignore[index]
    assert "t-secret" not in repr(s.headers) and "t-secret" not in repr(s)
    reranker = RerankerSettings(base_url="http://vllm.test", headers={"X": "1"})
    assert copy.deepcopy(reranker) == reranker


def test_credentials_in_base_url_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    # item 10: httpx's INFO line printed the URL it was given, password included.
    caplog.set_level(logging.DEBUG)
    seen: list[httpx.Request] = []
    http = httpx.Client(transport=_answering(seen))
    with EmbeddingClient(base_url="http://user:pw-secret@vllm.test:8000", http_client=http) as c:
        c._transport.send(_models_call())
    assert seen and seen[0].url == "http://vllm.test:8000/v1/models"
    sent = seen[0].headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(b"user:pw-secret").decode()
    assert "pw-secret" not in caplog.text and "HTTP Request" in caplog.text
    http.close()


def _models_call():  # type: ignore[no-untyped-def]
    from vllm_multimodal_embeddings.transport._http import Call

    return Call("GET", "/v1/models")


@pytest.mark.parametrize(
    "url", ["http://vllm.test?tok=x", "http://vllm.test/v1?tok=x", "http://h#f"]
)
def test_a_base_url_with_a_query_string_is_refused(url: str) -> None:  # item 11
    with pytest.raises(ConfigurationError, match="no query string") as info:
        ClientSettings(base_url=url)
    assert "tok=x" not in str(info.value)


@pytest.mark.parametrize("bad", [5, 1.5, ["Find it."]])
def test_a_non_string_instruction_is_a_typed_error(bad: object) -> None:  # item 14
    c = EmbeddingClient(base_url="http://vllm.test")
    with pytest.raises(InputError, match="instruction must be a string or a TaskPreset"):
        c.embed(["a"], instruction=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="query_instruction"):
        ClientSettings(base_url="http://vllm.test", query_instruction=bad)  # type: ignore[arg-type]
    c.close()
