"""The /rerank wire layer: request builder and response model, no server (sans-I/O)."""

from __future__ import annotations

import pytest

from vllm_multimodal_embeddings.protocol.rerank import RerankResponse, build_rerank_request

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def test_body_carries_query_documents_and_options() -> None:
    body = build_rerank_request(
        model="m",
        query="red circle",
        documents=["a", [IMAGE], [IMAGE, {"type": "text", "text": "b"}]],
        instruction="Find shapes.",
        top_n=2,
    )
    assert body == {
        "model": "m",
        "query": "red circle",
        "documents": [
            "a",
            {"content": [IMAGE]},
            {"content": [IMAGE, {"type": "text", "text": "b"}]},
        ],
        "instruction": "Find shapes.",
        "top_n": 2,
    }


def test_unset_options_stay_off_the_wire() -> None:
    # No instruction: the server template's default applies. No top_n: all results.
    body = build_rerank_request(model="m", query=[IMAGE], documents=["a"])
    assert body == {"model": "m", "query": {"content": [IMAGE]}, "documents": ["a"]}


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ([], "at least one document"),
        (["a", []], r"documents\[1\]: empty content-part list"),
        (
            ["a", "b", [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]],
            r"documents\[2\]: more than one text part",
        ),
        ([[{"type": "input_audio"}]], r"documents\[0\]: unsupported content-part types"),
    ],
)
def test_bad_documents_are_named(documents: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_rerank_request(model="m", query="q", documents=documents)


def test_bad_query_is_named() -> None:
    with pytest.raises(ValueError, match="query: empty content-part list"):
        build_rerank_request(model="m", query=[], documents=["a"])


def test_documents_must_not_be_one_string() -> None:
    # A str is a Sequence: without this check "abc" would become three documents.
    with pytest.raises(TypeError, match="not one string"):
        build_rerank_request(model="m", query="q", documents="abc")


@pytest.mark.parametrize("top_n", [0, -1])
def test_top_n_below_one_is_refused(top_n: int) -> None:
    # On the wire 0 means "all": a computed 0 must not silently return everything.
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        build_rerank_request(model="m", query="q", documents=["a"], top_n=top_n)


def _response(*pairs: tuple[int, float]) -> RerankResponse:
    return RerankResponse.model_validate(
        {
            "id": "rerank-1",
            "model": "m",
            "usage": {"prompt_tokens": 7, "total_tokens": 7, "future": 1},
            "results": [
                {"index": i, "relevance_score": s, "document": {"text": f"d{i}"}} for i, s in pairs
            ],
            "new_field": True,
        }
    )


def test_scores_come_back_in_request_order() -> None:
    resp = _response((2, 0.9), (0, 0.5), (1, 0.1))
    assert resp.scores(3) == [0.5, 0.1, 0.9]
    assert resp.ranked(3) == [(2, 0.9), (0, 0.5), (1, 0.1)]
    assert resp.usage is not None and resp.usage.prompt_tokens == 7
    assert resp.results[0].document is not None and resp.results[0].document.text == "d2"


def test_ties_rank_by_request_order() -> None:
    assert _response((1, 0.5), (0, 0.5)).ranked(2) == [(0, 0.5), (1, 0.5)]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (((0, 0.5),), r"lacks scores for documents \[1\]"),
        (((0, 0.5), (0, 0.4)), "unexpected result index 0"),
        (((0, 0.5), (2, 0.4)), "unexpected result index 2"),
    ],
)
def test_incomplete_or_foreign_results_are_errors(pairs: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _response(*pairs).scores(2)


def test_top_n_response_ranks_without_needing_every_document() -> None:
    resp = _response((3, 0.8), (1, 0.7))
    assert resp.ranked(4) == [(3, 0.8), (1, 0.7)]
    with pytest.raises(ValueError, match="unexpected result index 4"):
        _response((4, 0.8)).ranked(4)
