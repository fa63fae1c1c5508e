"""The vLLM wire contract the package relies on, pinned with hand-written httpx requests.

Vectors come from random weights: these tests compare requests with each other, never meanings.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import (
    chat_embed_request,
    chat_vectors,
    cosine,
    data_uri,
    error_message,
    image_png,
    list_models,
    post,
    recipe_messages,
    v2_vectors,
)
from vllm_multimodal_embeddings._constants import QWEN_QUERY_INSTRUCTION

SAME = 0.9999  # cosine above which two vectors count as the same rendering

IMG_A = data_uri(image_png(1))
IMG_B = data_uri(image_png(2))


def test_chat_recipe_returns_one_unit_vector(vllm_server):
    vecs = chat_vectors(vllm_server.base_url, vllm_server.model, recipe_messages(image=IMG_A))
    assert vecs.shape[0] == 1
    assert vecs.shape[1] > 1
    assert np.linalg.norm(vecs[0]) == pytest.approx(1.0, abs=1e-3)


def test_batched_conversations_keep_order_and_equal_single_requests(vllm_server):
    convs = [
        recipe_messages(image=IMG_A),
        recipe_messages(text="A cat in the snow."),
        recipe_messages(image=IMG_B, text="A dog on the beach."),
    ]
    batch = chat_vectors(vllm_server.base_url, vllm_server.model, convs)
    assert batch.shape[0] == len(convs)
    singles = [chat_vectors(vllm_server.base_url, vllm_server.model, c)[0] for c in convs]
    for i, single in enumerate(singles):
        assert cosine(batch[i], single) > SAME, f"batch item {i} differs from its single request"
    # The inputs differ, so a shuffled batch would not pass the loop above.
    assert cosine(singles[0], singles[1]) < SAME


def test_v2_texts_images_and_inputs(vllm_server):
    url, model = vllm_server.base_url, vllm_server.model
    texts = v2_vectors(url, model, texts=["one", "two"])
    images = v2_vectors(url, model, images=[IMG_A, IMG_B])
    mixed = v2_vectors(
        url,
        model,
        inputs=[{"content": [{"type": "image_url", "image_url": {"url": IMG_A}},
                             {"type": "text", "text": "caption"}]}],
    )  # fmt: skip
    assert texts.shape[0] == 2
    assert images.shape[0] == 2
    assert mixed.shape[0] == 1
    for vec in [*texts, *images, *mixed]:
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-3)
    assert cosine(images[0], images[1]) < SAME


def test_v2_input_type_selects_the_instruction(vllm_server):
    url, model = vllm_server.base_url, vllm_server.model
    query = v2_vectors(url, model, texts=["a red car"], input_type="query")[0]
    document = v2_vectors(url, model, texts=["a red car"], input_type="document")[0]
    assert cosine(query, document) < SAME
    # The query instruction lands in the system turn, exactly like the chat recipe's.
    recipe = chat_vectors(
        url, model, recipe_messages(text="a red car", instruction=QWEN_QUERY_INSTRUCTION)
    )[0]
    assert cosine(query, recipe) > SAME


def test_v2_unknown_input_type_lists_the_supported_ones(vllm_server):
    resp = post(
        vllm_server.base_url,
        "/v2/embed",
        {"model": vllm_server.model, "texts": ["x"], "input_type": "bogus"},
    )
    assert resp.status_code == 400
    message = error_message(resp)
    assert "query" in message
    assert "document" in message


@pytest.mark.parametrize("input_type", [None, "document"])
def test_v2_image_equals_chat_recipe(vllm_server, input_type):
    """Parity, thanks to the server's chat template: no input_type means the default instruction."""
    url, model = vllm_server.base_url, vllm_server.model
    extra = {"input_type": input_type} if input_type else {}
    v2 = v2_vectors(url, model, images=[IMG_A], **extra)[0]
    recipe = chat_vectors(url, model, recipe_messages(image=IMG_A))[0]
    assert cosine(v2, recipe) > SAME


def test_v2_query_image_equals_chat_recipe_with_query_instruction(vllm_server):
    url, model = vllm_server.base_url, vllm_server.model
    v2 = v2_vectors(url, model, images=[IMG_A], input_type="query")[0]
    recipe = chat_vectors(
        url, model, recipe_messages(image=IMG_A, instruction=QWEN_QUERY_INSTRUCTION)
    )[0]
    assert cosine(v2, recipe) > SAME


def test_v2_inputs_keep_part_order_and_equal_chat_recipe(vllm_server):
    url, model = vllm_server.base_url, vllm_server.model
    image_part = {"type": "image_url", "image_url": {"url": IMG_A}}
    text_part = {"type": "text", "text": "A cat in the snow."}
    v2 = v2_vectors(url, model, inputs=[{"content": [image_part, text_part]}])[0]
    swapped = v2_vectors(url, model, inputs=[{"content": [text_part, image_part]}])[0]
    recipe = chat_vectors(url, model, recipe_messages(image=IMG_A, text="A cat in the snow."))[0]
    assert cosine(v2, recipe) > SAME
    assert cosine(v2, swapped) < SAME


def test_v2_texts_without_input_type_are_raw_text(vllm_server):
    """No input_type: vLLM skips the chat template, so texts equal plain ``input`` strings."""
    url, model = vllm_server.base_url, vllm_server.model
    v2 = v2_vectors(url, model, texts=["A cat in the snow."])[0]
    resp = post(url, "/v1/embeddings", {"model": model, "input": ["A cat in the snow."]})
    resp.raise_for_status()
    plain = np.array(resp.json()["data"][0]["embedding"])
    recipe = chat_vectors(url, model, recipe_messages(text="A cat in the snow."))[0]
    assert cosine(v2, plain) > SAME
    assert cosine(v2, recipe) < SAME


@pytest.mark.parametrize("dims", [1, 16])
def test_matryoshka_dimensions_truncate_and_renormalize(vllm_server, dims):
    url, model = vllm_server.base_url, vllm_server.model
    full = chat_vectors(url, model, recipe_messages(image=IMG_A))[0]
    short = chat_vectors(url, model, recipe_messages(image=IMG_A), dimensions=dims)[0]
    v2_short = v2_vectors(url, model, images=[IMG_A], output_dimension=dims)[0]
    assert short.shape == (dims,)
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(short, full[:dims] / np.linalg.norm(full[:dims]), atol=1e-4)
    np.testing.assert_allclose(v2_short, short, atol=1e-4)


def test_matryoshka_out_of_range_is_400(vllm_server):
    url, model = vllm_server.base_url, vllm_server.model
    dim = chat_vectors(url, model, recipe_messages(text="x")).shape[1]
    resp = post(
        url,
        "/v1/embeddings",
        chat_embed_request(model, recipe_messages(text="x"), dimensions=dim + 1),
    )
    assert resp.status_code == 400
    assert f"[1, {dim}]" in error_message(resp)
    resp = post(url, "/v2/embed", {"model": model, "texts": ["x"], "output_dimension": 0})
    assert resp.status_code == 400


def test_bad_image_is_400(vllm_server):
    broken = "data:image/png;base64,AAAAAAAA"
    resp = post(
        vllm_server.base_url,
        "/v1/embeddings",
        chat_embed_request(vllm_server.model, recipe_messages(image=broken)),
    )
    assert resp.status_code == 400
    assert "image" in error_message(resp).lower()
    resp = post(vllm_server.base_url, "/v2/embed", {"model": vllm_server.model, "images": [broken]})
    assert resp.status_code == 400


def test_unknown_model_is_404(vllm_server):
    resp = post(
        vllm_server.base_url,
        "/v1/embeddings",
        chat_embed_request("no-such-model", recipe_messages(text="x")),
    )
    assert resp.status_code == 404
    resp = post(vllm_server.base_url, "/v2/embed", {"model": "no-such-model", "texts": ["x"]})
    assert resp.status_code == 404


def test_over_long_input_is_400_naming_the_context_length(vllm_server):
    models = list_models(vllm_server.base_url)
    max_len = next(m["max_model_len"] for m in models if m["id"] == vllm_server.model)
    too_long = "word " * (max_len + 10)
    resp = post(
        vllm_server.base_url,
        "/v1/embeddings",
        chat_embed_request(vllm_server.model, recipe_messages(text=too_long)),
    )
    assert resp.status_code == 400
    assert str(max_len) in error_message(resp)
    # /v2/embed truncates by default (truncate=END); NONE turns the same input into a 400.
    body = {"model": vllm_server.model, "texts": [too_long]}
    assert post(vllm_server.base_url, "/v2/embed", body).status_code == 200
    resp = post(vllm_server.base_url, "/v2/embed", {**body, "truncate": "NONE"})
    assert resp.status_code == 400
    assert str(max_len) in error_message(resp)


# --- A server started without our flags: each test proves one flag matters. -----------------


def test_server_without_matryoshka_refuses_dimensions(bare_vllm_server):
    server = bare_vllm_server
    ok = chat_vectors(server.base_url, server.model, recipe_messages(text="x"))
    assert ok.shape[0] == 1
    resp = post(
        server.base_url,
        "/v1/embeddings",
        chat_embed_request(server.model, recipe_messages(text="x"), dimensions=8),
    )
    assert resp.status_code == 400
    resp = post(
        server.base_url,
        "/v2/embed",
        {"model": server.model, "texts": ["x"], "output_dimension": 8},
    )
    assert resp.status_code == 400


def test_server_without_our_chat_template_breaks_v2_image_parity(bare_vllm_server):
    server = bare_vllm_server
    v2 = v2_vectors(server.base_url, server.model, images=[IMG_A])[0]
    recipe = chat_vectors(server.base_url, server.model, recipe_messages(image=IMG_A))[0]
    assert cosine(v2, recipe) < 0.99
