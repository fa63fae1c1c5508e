"""A real server started with an API key: no key is an AuthenticationError through the client and
both adapters, the right key works, and the key appears in no output."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from vllm_multimodal_embeddings import (
    AsyncEmbeddingClient,
    AuthenticationError,
    EmbeddingClient,
    NotFoundError,
)
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding

KEY = "sk-vmme-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def keyed_server(vllm_server_factory: Any) -> Iterator[Any]:
    with vllm_server_factory(api_key=KEY) as server:
        yield server


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert KEY not in text


def test_no_key_is_an_authentication_error_everywhere(
    keyed_server: Any, no_env_key: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = keyed_server.base_url
    with EmbeddingClient(base_url=url) as client, pytest.raises(AuthenticationError) as sync:
        client.embed(["hello"])

    async def run() -> AuthenticationError:
        async with AsyncEmbeddingClient(base_url=url) as client:
            with pytest.raises(AuthenticationError) as info:
                await client.embed(["hello"])
            return info.value

    async_error = asyncio.run(run())
    lc = VLLMMultimodalEmbeddings(base_url=url)
    li = VLLMMultiModalEmbedding(base_url=url)
    try:
        with pytest.raises(AuthenticationError):
            lc.embed_query("hello")
        with pytest.raises(AuthenticationError):
            li.get_query_embedding("hello")
    finally:
        lc.close()
        li.close()
    assert sync.value.status_code == async_error.status_code == 401
    with (
        EmbeddingClient(base_url=url, api_key="sk-wrong") as client,
        pytest.raises(AuthenticationError),
    ):
        client.embed(["hello"])


def test_the_key_works_and_is_never_shown(
    keyed_server: Any, no_env_key: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = keyed_server.base_url
    with EmbeddingClient(base_url=url, api_key=KEY) as client:
        vector = client.embed_query("hello")
        shown = [repr(client), str(client.settings), repr(client.server_info())]
    lc = VLLMMultimodalEmbeddings(base_url=url, api_key=KEY)
    li = VLLMMultiModalEmbedding(base_url=url, api_key=KEY)
    try:
        assert lc.embed_query("hello") == pytest.approx(vector, abs=1e-5)
        assert li.get_query_embedding("hello") == pytest.approx(vector, abs=1e-5)
    finally:
        lc.close()
        li.close()
    shown += [repr(lc), lc.model_dump_json(), str(lc.model_dump()), repr(li), li.to_json()]
    # An error raised with the key set says nothing of it either.
    with (
        EmbeddingClient(base_url=url, api_key=KEY, model="no-such-model") as client,
        pytest.raises(NotFoundError) as info,
    ):
        client.embed(["hello"])
    shown.append(str(info.value))
    assert_hidden(*shown, caplog.text)


def test_no_file_of_the_run_is_named_after_the_key(
    keyed_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The factory names each server's log after its settings; a key must not end up there.
    names = [str(p) for p in tmp_path_factory.getbasetemp().rglob("*")]
    assert names and not any(KEY in name for name in names)
