"""Task presets and int8 output against a real vLLM server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.helpers import chat_vectors, recipe_messages
from vllm_multimodal_embeddings import EmbeddingClient, TaskPreset
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding

TEXTS = ["quarterly revenue table", "a cat on a mat", "how do I reset my router"]


@pytest.fixture(scope="module")
def client(vllm_server: Any) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(base_url=vllm_server.base_url, model=vllm_server.model) as c:
        yield c


@pytest.mark.parametrize("preset", [TaskPreset.VISDOC, TaskPreset.VIDEO_QA])
def test_a_preset_gives_the_vectors_of_its_literal_text(
    client: EmbeddingClient, vllm_server: Any, preset: TaskPreset
) -> None:
    literal = client.embed_array(TEXTS, input_type="query", instruction=preset.value)
    by_member = client.embed_array(TEXTS, input_type="query", instruction=preset)
    by_name = client.embed_array(TEXTS, input_type="query", instruction=preset.name.lower())
    np.testing.assert_array_equal(by_member, literal)
    np.testing.assert_array_equal(by_name, literal)
    # ...and those are the vectors of a hand-written request carrying the official words.
    reference = chat_vectors(
        vllm_server.base_url,
        vllm_server.model,
        [recipe_messages(text=t, instruction=preset.value) for t in TEXTS],
    )
    np.testing.assert_allclose(literal, reference, atol=1e-5)
    default = client.embed_array(TEXTS, input_type="query")
    assert not np.allclose(default, literal)  # the preset did change the instruction


def test_client_settings_presets_equal_the_literal_settings(vllm_server: Any) -> None:
    common = {"base_url": vllm_server.base_url, "model": vllm_server.model}
    with (
        EmbeddingClient(**common, query_instruction="video_retrieval") as named,
        EmbeddingClient(**common, query_instruction=TaskPreset.VIDEO_RETRIEVAL.value) as literal,
    ):
        np.testing.assert_array_equal(
            named.embed_array(TEXTS, input_type="query"),
            literal.embed_array(TEXTS, input_type="query"),
        )


@pytest.mark.parametrize("adapter", [VLLMMultimodalEmbeddings, VLLMMultiModalEmbedding])
def test_both_adapters_embed_queries_under_a_preset(vllm_server: Any, adapter: type) -> None:
    emb = adapter(
        base_url=vllm_server.base_url, model=vllm_server.model, query_instruction="visdoc"
    )
    try:
        if isinstance(emb, VLLMMultimodalEmbeddings):
            got = np.array(emb.embed_query(TEXTS[0]))
        else:
            got = np.array(emb.get_query_embedding(TEXTS[0]))
    finally:
        emb.close()
    reference = chat_vectors(
        vllm_server.base_url,
        vllm_server.model,
        recipe_messages(text=TEXTS[0], instruction=TaskPreset.VISDOC.value),
    )[0]
    np.testing.assert_allclose(got, reference, atol=1e-5)
