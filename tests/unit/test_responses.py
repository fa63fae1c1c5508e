"""Response validation in protocol/: every broken body is a MalformedResponseError."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import pytest

from vllm_multimodal_embeddings.protocol import (
    ChatEmbeddingResponse,
    CohereEmbedResponse,
    MalformedResponseError,
    ModelList,
    parse_body,
)


def b64(values: list[float]) -> str:
    with np.errstate(over="ignore"):  # 1e39 is meant to overflow float32 into inf
        return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def chat(*embeddings: Any) -> ChatEmbeddingResponse:
    data = [{"index": i, "embedding": e} for i, e in enumerate(embeddings)]
    return ChatEmbeddingResponse.model_validate({"data": data})


def cohere(kind: str, vectors: list[Any]) -> CohereEmbedResponse:
    return CohereEmbedResponse.model_validate({"embeddings": {kind: vectors}})


def test_good_responses_decode() -> None:
    out = chat(b64([0.6, 0.8]), [1.0, 0.0]).vectors(2, dimension=2)
    assert [v.tolist() for v in out] == [pytest.approx([0.6, 0.8]), [1.0, 0.0]]
    # Float vectors from /v2/embed (the field named ``float`` used to accept only nulls).
    floats = cohere("float", [[0.6, 0.8]]).vectors("float", 1, dimension=2)
    assert floats[0].tolist() == pytest.approx([0.6, 0.8])
    packed = cohere("ubinary", [[255, 0], [1, 2]]).vectors("ubinary", 2, dimension=16)
    assert packed[0].dtype == np.uint8 and packed[0].tolist() == [255, 0]


def test_malformed_response_error_is_a_value_error() -> None:
    # The client maps ValueError from a body to APIError; this keeps that contract.
    assert issubclass(MalformedResponseError, ValueError)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e39])
def test_non_finite_float_values_are_refused(bad: float) -> None:
    with pytest.raises(MalformedResponseError, match="NaN or infinity"):
        chat([0.1, bad]).vectors(1)
    with pytest.raises(MalformedResponseError, match="NaN or infinity"):
        chat(b64([0.1, 0.2]), b64([bad, 0.2])).vectors(2)
    with pytest.raises(MalformedResponseError, match="NaN or infinity"):
        cohere("float", [[bad, 0.0]]).vectors("float", 1)


def test_wrong_dimension_is_refused() -> None:
    with pytest.raises(MalformedResponseError, match="has 3 values, expected 4"):
        chat(b64([0.1, 0.2, 0.3])).vectors(1, dimension=4)
    with pytest.raises(MalformedResponseError, match="has 3 values, expected 2"):
        cohere("base64", [b64([0.1, 0.2, 0.3])]).vectors("base64", 1, dimension=2)
    with pytest.raises(MalformedResponseError, match="has 1 bytes, expected 2"):
        cohere("binary", [[-1]]).vectors("binary", 1, dimension=16)


def test_mixed_sizes_are_refused_even_without_a_dimension() -> None:
    with pytest.raises(MalformedResponseError, match=r"mixed sizes \[2, 3\]"):
        chat(b64([0.1, 0.2]), b64([0.1, 0.2, 0.3])).vectors(2)
    with pytest.raises(MalformedResponseError, match="mixed sizes"):
        cohere("float", [[0.1], [0.1, 0.2]]).vectors("float", 2)


def test_empty_vector_is_refused() -> None:
    with pytest.raises(MalformedResponseError):
        chat([]).vectors(1)
    with pytest.raises(MalformedResponseError):
        chat("").vectors(1)


@pytest.mark.parametrize(
    "text",
    [
        b64([0.1, 0.2])[:-1] + "!",  # a stray character
        "AAAA AAAA",  # whitespace inside
        b64([0.1, 0.2]) + "QQ==",  # one byte too many: not a whole float32
        "AAA",  # wrong padding
    ],
)
def test_bad_base64_is_refused(text: str) -> None:
    with pytest.raises(MalformedResponseError):
        chat(text).vectors(1)


def test_index_and_count_errors() -> None:
    dup = ChatEmbeddingResponse.model_validate(
        {"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]}
    )
    with pytest.raises(MalformedResponseError, match="unexpected embedding index 0"):
        dup.vectors(2)
    with pytest.raises(MalformedResponseError, match=r"positions \[1\]"):
        chat([1.0]).vectors(2)
    with pytest.raises(MalformedResponseError, match="expected 2 float embeddings, got 1"):
        cohere("float", [[1.0]]).vectors("float", 2)


def test_packed_values_out_of_range_are_refused() -> None:
    with pytest.raises(MalformedResponseError, match="out of range for int8"):
        cohere("binary", [[200]]).vectors("binary", 1)
    with pytest.raises(MalformedResponseError, match="out of range for uint8"):
        cohere("ubinary", [[-1]]).vectors("ubinary", 1)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "not JSON.*'<html><body>502"),
        (b'{"data": [{"id": "m"', "not JSON"),
        (b'{"data": "nope"}', r"does not match ModelList: data: "),
        (b"", "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
    ],
)
def test_parse_body_turns_every_bad_body_into_one_error(body: bytes, match: str) -> None:
    with pytest.raises(MalformedResponseError, match=match) as info:
        parse_body(ModelList, body)
    assert "\n" not in str(info.value)


def test_parse_body_parses_good_json() -> None:
    models = parse_body(ModelList, b'{"data": [{"id": "m", "max_model_len": 2048}]}')
    assert models.data[0].max_model_len == 2048
