"""Both adapters map their fields onto ClientSettings; they pickle and keep secrets out."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from vllm_multimodal_embeddings import ClientSettings
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings
from vllm_multimodal_embeddings.langchain.embeddings import RENAMED as LC_RENAMED
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding
from vllm_multimodal_embeddings.llama_index.embedding import RENAMED as LI_RENAMED

URL = "http://user:pw@vllm.test:8000"


@pytest.mark.parametrize(
    ("cls", "renamed"),
    [(VLLMMultimodalEmbeddings, LC_RENAMED), (VLLMMultiModalEmbedding, LI_RENAMED)],
)
def test_every_setting_has_a_field(cls: type, renamed: dict[str, str]) -> None:
    fields = set(cls.model_fields)
    missing = [n for n in ClientSettings.names() if renamed.get(n, n) not in fields]
    assert missing == []


def test_fields_become_the_settings() -> None:
    lc = VLLMMultimodalEmbeddings(
        base_url="http://x.test", default_headers={"X-A": "1"}, batch_size=3, prepare_workers=2
    )
    s = lc.settings()
    assert (s.batch_size, s.prepare_workers, dict(s.headers or {})) == (3, 2, {"X-A": "1"})
    li = VLLMMultiModalEmbedding(base_url="http://x.test", model_name="", batch_size=5)
    assert (li.settings().model, li.settings().batch_size) == (None, 5)


def test_langchain_secrets_stay_out_of_reprs_and_dumps() -> None:
    lc = VLLMMultimodalEmbeddings(
        base_url=URL, api_key="sk-secret", default_headers={"X-Token": "tok-secret"}
    )
    for text in (repr(lc), str(lc), str(lc.model_dump()), lc.model_dump_json()):
        assert "sk-secret" not in text and "tok-secret" not in text and "pw" not in text
    assert "vllm.test:8000" in lc.model_dump()["base_url"]


def test_llama_index_secrets_stay_out_of_reprs_and_json() -> None:
    li = VLLMMultiModalEmbedding(base_url=URL, api_key="sk-secret", headers={"X": "tok-secret"})
    for text in (repr(li), li.to_json(), str(li.to_payload())):
        assert "sk-secret" not in text and "tok-secret" not in text and "pw" not in text


def test_client_settings_repr_hides_secrets() -> None:
    s = ClientSettings(base_url=URL + "/v1", api_key="sk-secret", headers={"X": "t0k"})
    assert "sk-secret" not in repr(s) and "t0k" not in repr(s)
    assert "pw" not in repr(s)


@pytest.mark.parametrize("cls", [VLLMMultimodalEmbeddings, VLLMMultiModalEmbedding])
def test_adapters_pickle_and_keep_their_settings(cls: type) -> None:
    emb = cls(base_url="http://x.test", dimensions=32, batch_size=4)
    emb._sync_client()  # holds a live client with a lock and a connection pool
    copy = pickle.loads(pickle.dumps(emb))
    assert copy.settings() == emb.settings()
    assert copy._sync_client() is not emb._sync_client()


@pytest.mark.parametrize(
    "cls",
    [
        VLLMMultimodalEmbeddings,
        VLLMMultiModalEmbedding,
        pytest.param("langchain-reranker", id="langchain-reranker"),
        pytest.param("llama-reranker", id="llama-reranker"),
    ],
)
def test_every_adapter_copies_with_its_own_clients_and_shares_injected_ones(cls: Any) -> None:
    # One base (adapters/_base.py) for all four: a copy builds its own clients, a deep copy
    # keeps the caller's httpx client, and neither shows the URL's credentials.
    import copy

    import httpx

    from vllm_multimodal_embeddings.langchain import VLLMMultimodalReranker as LangChainReranker
    from vllm_multimodal_embeddings.llama_index import VLLMMultimodalReranker as LlamaReranker

    cls = {"langchain-reranker": LangChainReranker, "llama-reranker": LlamaReranker}.get(cls, cls)
    injected = httpx.Client()
    adapter = cls(base_url=URL, http_client=injected)
    for other in (adapter.model_copy(), copy.copy(adapter), copy.deepcopy(adapter)):
        assert other._clients is not adapter._clients
        assert other.http_client is injected
        assert "pw" not in repr(other) and "pw" not in str(other.model_dump())
    adapter.close()
    assert not injected.is_closed  # the caller's, never closed here
    injected.close()
