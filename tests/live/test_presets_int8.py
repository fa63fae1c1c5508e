"""Task presets and int8 output against a real vLLM server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.helpers import chat_vectors, error_message, post, recipe_messages
from vllm_multimodal_embeddings import (
    AsyncEmbeddingClient,
    ConfigurationError,
    EmbeddingClient,
    TaskPreset,
    UnsupportedFeatureError,
)
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


# -- int8 ----------------------------------------------------------------------------------------

STEP = 0.05  # the test model has no published step; its raw elements are O(1)


def raw_vectors(server: Any, texts: list[str], **extra: Any) -> np.ndarray:
    """The pooled vectors before L2 normalization, from a hand-written request."""
    return chat_vectors(
        server.base_url,
        server.model,
        [recipe_messages(text=t) for t in texts],
        use_activation=False,
        **extra,
    )


def test_int8_codes_are_the_rounded_raw_vector_over_the_step(vllm_server: Any) -> None:
    raw = raw_vectors(vllm_server, TEXTS)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)  # really un-normalized
    with EmbeddingClient(
        base_url=vllm_server.base_url, model=vllm_server.model, int8_scale=STEP
    ) as c:
        codes = c.embed_array(TEXTS, embedding_type="int8")
        floats = c.embed_array(TEXTS)
    assert codes.dtype == np.int8 and codes.shape == raw.shape
    np.testing.assert_array_equal(codes, np.clip(np.rint(raw / STEP), -128, 127))
    # The codes point where the float vectors do.
    unit = codes / np.linalg.norm(codes.astype(np.float32), axis=1, keepdims=True)
    assert np.min(np.sum(unit * floats, axis=1)) > 0.99


def test_int8_matryoshka_codes_are_the_full_codes_prefix(vllm_server: Any) -> None:
    with EmbeddingClient(
        base_url=vllm_server.base_url, model=vllm_server.model, int8_scale=STEP
    ) as c:
        full = c.embed_array(TEXTS, embedding_type="int8")
        cut = c.embed_array(TEXTS, embedding_type="int8", dimensions=36)
    np.testing.assert_array_equal(cut, full[:, :36])


def test_int8_on_a_model_with_no_published_step_asks_for_one(
    client: EmbeddingClient, vllm_server: Any
) -> None:
    with pytest.raises(ConfigurationError, match=rf"'{vllm_server.model}' .*pass int8_scale="):
        client.embed_array(TEXTS, embedding_type="int8")


def test_v2_embed_has_no_int8_and_the_client_says_so_first(vllm_server: Any) -> None:
    # vLLM 0.32's /v2/embed refuses int8 outright: the reason int8 is a chat-path feature.
    resp = post(
        vllm_server.base_url,
        "/v2/embed",
        {"model": vllm_server.model, "texts": TEXTS, "embedding_types": ["int8"]},
    )
    assert resp.status_code == 400 and "int8" in error_message(resp)
    with (
        EmbeddingClient(
            base_url=vllm_server.base_url, model=vllm_server.model, protocol="cohere",
            int8_scale=STEP,
        ) as c,
        pytest.raises(UnsupportedFeatureError, match="needs protocol='chat'"),
    ):  # fmt: skip
        c.embed_array(TEXTS, embedding_type="int8")


def test_async_int8_and_preset_equal_the_sync_ones(vllm_server: Any) -> None:
    common = {"base_url": vllm_server.base_url, "model": vllm_server.model, "int8_scale": STEP}

    async def both() -> tuple[np.ndarray, np.ndarray]:
        async with AsyncEmbeddingClient(**common) as c:
            codes = await c.embed_array(TEXTS, embedding_type="int8")
            visdoc = await c.embed_array(TEXTS, input_type="query", instruction="visdoc")
        return codes, visdoc

    codes, visdoc = asyncio.run(both())
    with EmbeddingClient(**common) as c:
        np.testing.assert_array_equal(codes, c.embed_array(TEXTS, embedding_type="int8"))
        literal = c.embed_array(TEXTS, input_type="query", instruction=TaskPreset.VISDOC.value)
    np.testing.assert_allclose(visdoc, literal, atol=1e-6)
