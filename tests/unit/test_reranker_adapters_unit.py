"""How the LangChain and LlamaIndex rerankers turn documents and nodes into rerank inputs."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document
from llama_index.core.schema import ImageNode, NodeWithScore, TextNode

from vllm_multimodal_embeddings import Content
from vllm_multimodal_embeddings.langchain import VLLMMultimodalReranker
from vllm_multimodal_embeddings.llama_index import VLLMMultimodalReranker as LlamaReranker

URL = "http://reranker.test"


def test_langchain_document_inputs() -> None:
    r = VLLMMultimodalReranker(base_url=URL, model="m")
    assert r.document_input(Document(page_content="just text")) == "just text"
    pair = r.document_input(Document(page_content="caption", metadata={"image": "a.png"}))
    assert pair == Content(text="caption", image="a.png")
    only = r.document_input(Document(page_content="  ", metadata={"image": "a.png"}))
    assert only == Content(image="a.png")
    base64_store = VLLMMultimodalReranker(base_url=URL, model="m", text_with_image=False)
    chroma_doc = Document(page_content="iVBORw0KGgo...", metadata={"image": "a.png"})
    assert base64_store.document_input(chroma_doc) == Content(image="a.png")
    custom = VLLMMultimodalReranker(base_url=URL, model="m", image_key="uri")
    assert custom.document_input(Document(page_content="t", metadata={"image": "a.png"})) == "t"


def test_langchain_settings_and_secrets(monkeypatch) -> None:
    monkeypatch.setenv("VLLM_RERANKER_BASE_URL", "http://from-env:8001")
    monkeypatch.setenv("VLLM_API_KEY", "sk-secret")
    r = VLLMMultimodalReranker()
    assert r.base_url == "http://from-env:8001"
    assert "sk-secret" not in repr(r) and "sk-secret" not in str(r.model_dump())
    assert r._sync().settings.api_key == "sk-secret"
    with pytest.raises(ValueError):
        VLLMMultimodalReranker(base_url=URL, top_n=0)
    assert VLLMMultimodalReranker(base_url=URL).compress_documents([], "q") == []


def test_llama_index_node_inputs() -> None:
    r = LlamaReranker(base_url=URL, model="m")
    assert r.node_input(TextNode(text="hello", metadata={"k": "v"})) == "hello"
    assert r.node_input(ImageNode(image_path="a.png")) == Content(image="a.png")
    assert r.node_input(ImageNode(image_path="a.png", text="cap")) == Content(
        text="cap", image="a.png"
    )
    assert LlamaReranker(base_url=URL, text_with_image=False).node_input(
        ImageNode(image_path="a.png", text="cap")
    ) == Content(image="a.png")
    inline = r.node_input(ImageNode(image="aGVsbG8=", image_mimetype="image/png"))
    assert inline == Content(image="data:image/png;base64,aGVsbG8=")
    assert LlamaReranker.class_name() == "VLLMMultimodalReranker"


def test_llama_index_needs_a_query_and_keeps_empty_input_local() -> None:
    r = LlamaReranker(base_url=URL, model="m")
    assert r.postprocess_nodes([]) == []
    with pytest.raises(ValueError, match="needs a query"):
        r.postprocess_nodes([NodeWithScore(node=TextNode(text="x"), score=1.0)])


CREDENTIALED = "http://user:pa55word@reranker.test:8001/"  # a query string is refused (issue 34)


@pytest.mark.parametrize("cls", [VLLMMultimodalReranker, LlamaReranker])
def test_base_url_credentials_never_shown(cls) -> None:
    r = cls(base_url=CREDENTIALED, model="m", api_key="sk-secret")
    shown = [repr(r), str(r), r.model_dump_json(), str(r.model_dump())]
    if hasattr(r, "to_json"):  # LlamaIndex components serialize themselves
        shown += [r.to_json(), str(r.to_dict())]
    for text in shown:
        for secret in ("pa55word", "sk-secret"):
            assert secret not in text, text
    assert "reranker.test:8001" in repr(r)
    # The clients still get the real URL.
    assert r._sync().settings.base_url == CREDENTIALED.rstrip("/")


@pytest.mark.parametrize("cls", [VLLMMultimodalReranker, LlamaReranker])
def test_clients_follow_fields_and_event_loops(cls) -> None:
    r = cls(base_url=URL, model="m")
    sync = r._sync()
    assert r._sync() is sync
    r.instruction = "Another task."
    rebuilt = r._sync()
    assert rebuilt is not sync and rebuilt.instruction == "Another task."
    assert sync._transport._http.is_closed  # the stale one is closed

    async def in_a_loop():
        client = r._async()
        assert r._async() is client  # one per loop
        return client

    first, second = asyncio.run(in_a_loop()), asyncio.run(in_a_loop())
    assert first is not second
    # Each loop closed its own client's pool on its way out.
    assert first._transport._http.is_closed and second._transport._http.is_closed
    assert second.instruction == "Another task."
    r.close()


@pytest.mark.parametrize("cls", [VLLMMultimodalReranker, LlamaReranker])
def test_settings_escape_hatch_under_the_fields(cls: type, monkeypatch) -> None:
    from vllm_multimodal_embeddings import ClientSettings

    monkeypatch.delenv("VLLM_RERANKER_BASE_URL", raising=False)
    monkeypatch.setenv("VLLM_BASE_URL", "http://from-env:8001")
    monkeypatch.setenv("VLLM_API_KEY", "sk-env")
    shared = ClientSettings(
        headers={"X-Tenant": "t-secret"}, max_image_pixels=200_000, batch_size=4, timeout=9.0
    )
    r = cls(model="m", settings=shared, timeout=3.0)
    s = r.setup()
    # From settings: what the adapter has no field for, and fields left at their default.
    assert dict(s.headers or {}) == {"X-Tenant": "t-secret"}
    assert (s.max_image_pixels, s.batch_size) == (200_000, 4)
    # From the fields: what the user set, and the environment where settings say nothing.
    assert (s.timeout, s.base_url, s.api_key) == (3.0, "http://from-env:8001", "sk-env")
    text = repr(r) + str(r.model_dump())
    assert "t-secret" not in text and "sk-env" not in text
    assert cls(model="m").setup().batch_size == 16  # no settings: the field default
    with pytest.raises(ValueError):
        cls(model="m", settings={"batch_size": 4})  # a ClientSettings, not a dict


@pytest.mark.parametrize("cls", [VLLMMultimodalReranker, LlamaReranker])
def test_embedding_settings_never_name_the_reranker_model(cls: type, monkeypatch) -> None:
    # An embedding client's settings lend the connection and image settings, never its model:
    # with VLLM_EMBEDDING_MODEL set, that model was sent to /rerank.
    from vllm_multimodal_embeddings import ClientSettings
    from vllm_multimodal_embeddings.reranking import RerankerSettings

    monkeypatch.setenv("VLLM_EMBEDDING_MODEL", "the-embedder")
    monkeypatch.delenv("VLLM_RERANKER_MODEL", raising=False)
    shared = ClientSettings(base_url=URL, timeout=7.0)
    assert shared.model == "the-embedder"
    r = cls(settings=shared)
    assert r.setup().model is None and r.setup().timeout == 7.0  # the server's first model
    monkeypatch.setenv("VLLM_RERANKER_MODEL", "the-reranker")
    assert cls(settings=shared).setup().model == "the-reranker"
    # Reranker settings are the reranker's own: their model and instruction count.
    own = RerankerSettings(base_url=URL, model="named", instruction="Find the diagram.")
    assert (cls(settings=own).setup().model, cls(settings=own).setup().instruction) == (
        "named",
        "Find the diagram.",
    )
    assert cls(settings=own, model="field").setup().model == "field"  # a set field wins
