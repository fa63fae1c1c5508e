"""int8 output: LSQ's code of the un-normalized vector with the model's published step."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import pytest

from vllm_multimodal_embeddings import (
    ClientSettings,
    ConfigurationError,
    EmbeddingClient,
    InputError,
    UnsupportedFeatureError,
)
from vllm_multimodal_embeddings.embeddings._core import truncate_vectors
from vllm_multimodal_embeddings.protocol._quantize import int8_scale_for, quantize_int8
from vllm_multimodal_embeddings.transport._http import Call

from .test_core import INFO, core, play, response, texts

STEP_2B, STEP_8B = 0.2656, 0.2891


def test_codes_round_to_the_nearest_step_and_saturate() -> None:
    raw = np.array([0.0, 0.13, 0.14, -0.2656 * 2.6, 0.2656 * 127.4, 0.2656 * 500, -1e9])
    codes = quantize_int8(raw, STEP_2B)
    assert codes.dtype == np.int8
    assert codes.tolist() == [0, 0, 1, -3, 127, 127, -128]


@pytest.mark.parametrize(
    ("model", "size", "step"),
    [
        ("Qwen/Qwen3-VL-Embedding-2B", 2048, STEP_2B),
        ("qwen3-vl-embedding-2b", 2048, STEP_2B),
        ("/models/Qwen3-VL-Embedding-8B/", 4096, STEP_8B),
    ],
)
def test_the_published_step_is_chosen_by_served_model(model: str, size: int, step: float) -> None:
    assert int8_scale_for(model, size, None) == step


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("tiny-qwen3-vl-embedding", 128),  # the test server's checkpoint
        ("Qwen/Qwen3-VL-Embedding-2B", 4096),  # the name says 2B, the vectors say otherwise
        ("acme/Qwen3-VL-Embedding-2B-finetuned", 2048),  # a fine-tune may have moved
        ("embed", 2048),  # served under another name
    ],
)
def test_any_other_checkpoint_needs_a_step_and_gets_no_guess(model: str, size: int) -> None:
    with pytest.raises(
        ConfigurationError, match=rf"'{model}' \({size} dims\) is neither.*int8_scale"
    ):
        int8_scale_for(model, size, None)
    assert int8_scale_for(model, size, 0.5) == 0.5


@pytest.mark.parametrize("bad", [0, -0.1, math.nan, math.inf, True, "0.3"])
def test_the_step_setting_is_checked_at_construction(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="int8_scale must be a finite number > 0"):
        ClientSettings(base_url="http://vllm.test", int8_scale=bad)


def raw_body(rows: list[list[float]]) -> dict[str, Any]:
    data = [
        {"index": i, "embedding": base64.b64encode(np.asarray(r, "<f4").tobytes()).decode()}
        for i, r in enumerate(rows)
    ]
    return {"data": data, "model": "m"}


RAW = [1.0, -0.26, 40.0, 0.1]  # un-normalized, as vLLM sends it with use_activation false


def int8_call(c: Any, items: list[Any], **call: Any) -> tuple[Any, list[Call]]:
    run = c.start(
        [],
        str_as="text",
        input_type="document",
        instruction=None,
        dimensions=call.get("dimensions"),
        embedding_type="int8",
    )
    job = run.plan(call.get("info", INFO))
    return play(run.send(job, 0, items), lambda c_: response(c_, body=raw_body([RAW] * len(items))))


def test_int8_asks_for_the_raw_vector_and_returns_its_codes() -> None:
    result, calls = int8_call(core(int8_scale=0.25), texts("a", "b"))
    body = calls[0].json or {}
    assert body["use_activation"] is False
    assert body["encoding_format"] == "base64"
    expected = [4, -1, 127, 0]  # 1/0.25, -0.26/0.25 -> -1, 160 saturates, 0.4 -> 0
    assert [v.tolist() for v in result.vectors] == [expected, expected]
    assert all(v.dtype == np.int8 for v in result.vectors)


def test_float_calls_leave_normalization_on() -> None:
    c = core(int8_scale=0.25)
    run = c.start(
        [], str_as="text", input_type="document", instruction=None, dimensions=None,
        embedding_type="float",
    )  # fmt: skip
    vec = [0.6, 0.8, 0.0, 0.0]
    _, calls = play(
        run.send(run.plan(INFO), 0, texts("a")), lambda c_: response(c_, body=raw_body([vec]))
    )
    assert "use_activation" not in (calls[0].json or {})


def test_int8_without_a_known_step_fails_at_planning_naming_the_setting() -> None:
    c = core()  # the served model is "m": no published step
    run = c.start(
        [], str_as="text", input_type="document", instruction=None, dimensions=None,
        embedding_type="int8",
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match=r"'m' .* is neither: pass int8_scale="):
        run.plan(INFO)


def test_int8_dimensions_go_to_the_server_and_need_no_multiple_of_eight() -> None:
    _, calls = int8_call(core(int8_scale=0.25), texts("a"), dimensions=3)
    assert (calls[0].json or {})["dimensions"] == 3


def test_client_side_dimensions_keep_the_first_codes() -> None:
    codes = quantize_int8(np.array([RAW, RAW]), 0.25)
    cut = truncate_vectors(codes, 2, "int8")
    assert cut.dtype == np.int8 and cut.tolist() == [[4, -1], [4, -1]]
    # The step is global: the prefix's own codes are the same codes.
    assert cut.tolist() == quantize_int8(np.array([RAW[:2]] * 2), 0.25).tolist()


def test_cohere_refuses_int8_before_anything_is_read() -> None:
    c = core(protocol="cohere", int8_scale=0.25)
    with pytest.raises(UnsupportedFeatureError, match="int8' needs protocol='chat'"):
        c.start(
            [], str_as="text", input_type="document", instruction=None, dimensions=None,
            embedding_type="int8",
        )  # fmt: skip


def test_binary_still_needs_cohere_and_unknown_types_are_named() -> None:
    with pytest.raises(UnsupportedFeatureError, match="needs protocol='cohere'"):
        core().start(
            [], str_as="text", input_type="document", instruction=None, dimensions=None,
            embedding_type="binary",
        )  # fmt: skip
    with pytest.raises(InputError, match="'float', 'int8', 'binary' or 'ubinary', got 'int4'"):
        core().start(
            [], str_as="text", input_type="document", instruction=None, dimensions=None,
            embedding_type="int4",  # type: ignore[arg-type]
        )  # fmt: skip


def test_the_client_takes_the_setting() -> None:
    with EmbeddingClient(base_url="http://vllm.test", int8_scale=0.3) as client:
        assert client.settings.int8_scale == 0.3
