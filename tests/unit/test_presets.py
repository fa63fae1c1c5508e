"""Task presets: the official evaluation's instructions by name, and names that are no preset."""

from __future__ import annotations

import json

import pytest

from vllm_multimodal_embeddings import (
    ClientSettings,
    ConfigurationError,
    InputError,
    ModelProfile,
    TaskPreset,
    UnsupportedFeatureError,
)
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding
from vllm_multimodal_embeddings.profiles import resolve_instruction

from .test_core import INFO, core, play, response, texts, vectors_body

# The words as they stand in QwenLM/Qwen3-VL-Embedding at 8ce3aab1 (README lists the files).
# Pinned here so that an edit of the enum that changes what is sent cannot pass unnoticed.
OFFICIAL = {
    "default": "Represent the user's input.",
    "retrieval": "Retrieve images or text relevant to the user's query.",
    "visdoc": "Find a document image that matches the given query.",
    "video_retrieval": "Find a video that contains the following visual content.",
    "moment_retrieval": "Find the clip that corresponds to the described scene in the given video.",
    "video_classification": "Classify the video into the correct category.",
    "video_qa": "Given a video and a question, select the most accurate answer from the provided "
    "candidates. Return only the exact text of your chosen answer.",
    "image_retrieval": "Find images matching this description.",
    "image_classification": "Classify the object in this image.",
    "image_qa": "Find the answer to this question about the image.",
    "text_retrieval": "Retrieve passages that answer this question.",
}


def test_every_preset_is_the_official_text_and_nothing_else() -> None:
    assert {p.name.lower(): p.value for p in TaskPreset} == OFFICIAL


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_a_preset_member_and_its_name_resolve_to_the_same_text(name: str) -> None:
    member = TaskPreset[name.upper()]
    assert resolve_instruction(member) == OFFICIAL[name]
    assert resolve_instruction(name) == OFFICIAL[name]
    assert resolve_instruction(f" {name.upper().replace('_', '-')} ") == OFFICIAL[name]


def test_a_member_reads_as_its_text_wherever_a_str_goes() -> None:
    # A path that never resolves still sends the words, not "TaskPreset.VISDOC".
    assert str(TaskPreset.VISDOC) == OFFICIAL["visdoc"]
    assert f"{TaskPreset.VISDOC}" == OFFICIAL["visdoc"]
    assert json.loads(json.dumps({"i": TaskPreset.VISDOC})) == {"i": OFFICIAL["visdoc"]}


@pytest.mark.parametrize(
    "text",
    ["Find the product photo", "Summarize.", "visdoc?", "Find a video, quickly", "找到相关图片"],
)
def test_free_text_is_sent_as_written(text: str) -> None:
    assert resolve_instruction(text) == text


@pytest.mark.parametrize("typo", ["visdocs", "video-retreival", "VideoQA", "image_ret"])
def test_a_name_that_is_no_preset_is_refused_not_sent(typo: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"'{typo}' is no task preset.*visdoc"):
        resolve_instruction(typo)
    with pytest.raises(InputError, match="is no task preset"):
        resolve_instruction(typo, error=InputError)


def test_client_settings_take_presets_for_queries_and_documents() -> None:
    settings = ClientSettings(
        base_url="http://vllm.test",
        query_instruction="visdoc",
        document_instruction=TaskPreset.DEFAULT,
    )
    profile = settings.effective_profile()
    assert profile.query_instruction == OFFICIAL["visdoc"]
    assert profile.document_instruction == OFFICIAL["default"]


@pytest.mark.parametrize("field", ["query_instruction", "document_instruction"])
def test_client_settings_refuse_an_unknown_preset_at_construction(field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{field}='visdocs' is no task preset"):
        ClientSettings(base_url="http://vllm.test", **{field: "visdocs"})


def test_a_profile_holds_the_text_of_a_preset_name() -> None:
    profile = ModelProfile.qwen3_vl_embedding(query_instruction="video_qa")
    assert profile.query_instruction == OFFICIAL["video_qa"]
    with pytest.raises(ConfigurationError, match="no task preset"):
        ModelProfile.generic(document_instruction="videoqa")


def system_text(body: dict[str, object]) -> str:
    messages = body["messages"]
    assert isinstance(messages, list)
    return str(messages[0][0]["content"][0]["text"])


@pytest.mark.parametrize("instruction", [TaskPreset.VIDEO_RETRIEVAL, "video_retrieval"])
def test_a_per_call_preset_sends_its_text(instruction: str) -> None:
    c = core()
    run = c.start(
        [],
        str_as="text",
        input_type="query",
        instruction=instruction,
        dimensions=None,
        embedding_type="float",
    )
    step = run.send(run.plan(INFO), 0, texts("a dog"))
    _, calls = play(step, lambda call: response(call, body=vectors_body(1)))
    assert system_text(calls[0].json or {}) == OFFICIAL["video_retrieval"]


def test_a_per_call_unknown_preset_fails_before_anything_is_read() -> None:
    def never() -> object:
        raise AssertionError("inputs were read")
        yield

    with pytest.raises(InputError, match="'visdocs' is no task preset"):
        core().start(
            never(),
            str_as="text",
            input_type="query",
            instruction="visdocs",
            dimensions=None,
            embedding_type="float",
        )


@pytest.mark.parametrize("adapter", [VLLMMultimodalEmbeddings, VLLMMultiModalEmbedding])
def test_both_adapters_take_a_preset_member_or_name(adapter: type) -> None:
    emb = adapter(
        base_url="http://vllm.test",
        query_instruction=TaskPreset.VISDOC,
        document_instruction="default",
    )
    profile = emb._sync_client().profile  # the client the adapter embeds through
    assert profile.query_instruction == OFFICIAL["visdoc"]
    assert profile.document_instruction == OFFICIAL["default"]
    emb.close()
    # LangChain's adapter checks at construction (pydantic wraps the error in its own
    # ValueError), LlamaIndex's when its client is made: both before any request.
    with pytest.raises(ValueError, match="'visdocs' is no task preset"):
        adapter(base_url="http://vllm.test", query_instruction="visdocs")._sync_client()


def test_cohere_says_it_takes_no_instruction_before_judging_the_name() -> None:
    # /v2/embed refuses every instruction: that is the error worth reading, not "no preset".
    with pytest.raises(ConfigurationError, match="apply to protocol='chat' only"):
        ClientSettings(base_url="http://vllm.test", protocol="cohere", query_instruction="x")
    with pytest.raises(UnsupportedFeatureError, match="per-call instructions need protocol='chat'"):
        core(protocol="cohere").start(
            [], str_as="text", input_type="query", instruction="Custom", dimensions=None,
            embedding_type="float",
        )  # fmt: skip


# --- the reranker's presets ---


def test_reranker_presets_resolve_in_settings_and_adapters() -> None:
    from vllm_multimodal_embeddings import RerankPreset
    from vllm_multimodal_embeddings.langchain import VLLMMultimodalReranker
    from vllm_multimodal_embeddings.llama_index import VLLMMultimodalReranker as LlamaReranker
    from vllm_multimodal_embeddings.reranking import RerankerSettings

    url = "http://127.0.0.1:9"
    for given in (RerankPreset.VISDOC, "visdoc", "VisDoc", " visdoc "):
        settings = RerankerSettings(base_url=url, instruction=given)
        assert settings.instruction == "Find a document image that matches the given query."
        for adapter in (VLLMMultimodalReranker, LlamaReranker):
            assert adapter(base_url=url, instruction=given).setup().instruction == (
                RerankPreset.VISDOC.value
            )
    # The two kinds keep their own texts under one name: the embedder's DEFAULT is not the
    # reranker's.
    assert RerankerSettings(base_url=url, instruction="default").instruction == (
        "Given a search query, retrieve relevant candidates that answer the query."
    )
    assert str(RerankPreset.PASSAGES) == RerankPreset.PASSAGES.value
    # Free text passes as written (the official reranker adds no period).
    assert RerankerSettings(base_url=url, instruction="Find numbers").instruction == "Find numbers"
    with pytest.raises(ConfigurationError, match=r"'visdocs' is no reranker preset.*passages"):
        RerankerSettings(base_url=url, instruction="visdocs")
