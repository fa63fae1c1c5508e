"""Reranking client fault paths a real server cannot produce on demand (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from vllm_multimodal_embeddings import Content
from vllm_multimodal_embeddings._exceptions import (
    APIError,
    BadRequestError,
    InternalServerError,
)
from vllm_multimodal_embeddings.inputs._prepared import PreparedInput
from vllm_multimodal_embeddings.protocol._endpoints import RERANK
from vllm_multimodal_embeddings.reranking import AsyncRerankClient, RerankClient
from vllm_multimodal_embeddings.reranking._core import rank

URL = "http://reranker.test"
RED_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4"
    "z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def fake_score(document: object) -> float:
    """A deterministic score per document, so order mistakes show."""
    text = json.dumps(document, sort_keys=True)
    return (sum(map(ord, text)) % 97) / 100


class FakeServer:
    """Scores documents; refuses (400) any document containing "BAD"; counts requests."""

    def __init__(self, status_for=None) -> None:
        self.bodies: list[dict] = []
        self.status_for = status_for or (lambda body, attempt: None)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "served-reranker"}]})
        body = json.loads(request.content)
        self.bodies.append(body)
        status = self.status_for(body, len(self.bodies))
        if status is not None:
            return httpx.Response(status, json={"error": {"message": f"refused ({status})"}})
        if any("BAD" in json.dumps(d) for d in body["documents"]):
            return httpx.Response(400, json={"error": {"message": "Failed to load image"}})
        results = [
            {"index": i, "relevance_score": fake_score(d), "document": {}}
            for i, d in enumerate(body["documents"])
        ]
        results.sort(key=lambda r: -r["relevance_score"])
        return httpx.Response(200, json={"id": "x", "model": body["model"], "results": results})


def client(server: FakeServer, **options) -> RerankClient:
    http = httpx.Client(transport=httpx.MockTransport(server))
    return RerankClient(base_url=URL, http_client=http, **options)


DOCS = [f"doc {i}" for i in range(7)]


def test_scores_in_input_order_across_batches() -> None:
    server = FakeServer()
    with client(server, model="m", batch_size=3) as c:
        scores = c.score("q", DOCS)
    assert scores == [fake_score(d) for d in DOCS]
    # Batches go concurrently: they may arrive in any order.
    assert sorted(len(b["documents"]) for b in server.bodies) == [1, 3, 3]
    assert all(b["query"] == "q" and b["model"] == "m" for b in server.bodies)
    # No top_n on the wire: the best n are chosen over every batch's scores here.
    assert all("top_n" not in b and "instruction" not in b for b in server.bodies)


def test_top_n_is_chosen_over_all_batches() -> None:
    with client(FakeServer(), model="m", batch_size=2) as c:
        ranked = c.rerank("q", DOCS, top_n=3)
    want = sorted(range(len(DOCS)), key=lambda i: (-fake_score(DOCS[i]), i))[:3]
    assert [r.index for r in ranked] == want


def test_model_is_asked_of_the_server_once(monkeypatch) -> None:
    monkeypatch.setenv("VLLM_EMBEDDING_MODEL", "the-embedder")
    monkeypatch.delenv("VLLM_RERANKER_MODEL", raising=False)
    server = FakeServer()
    with client(server, batch_size=2) as c:
        c.score("q", DOCS)
        assert c.model == "served-reranker"
    assert {b["model"] for b in server.bodies} == {"served-reranker"}


def test_reranker_model_variable(monkeypatch) -> None:
    monkeypatch.setenv("VLLM_RERANKER_MODEL", "from-env")
    server = FakeServer()
    with client(server) as c:
        c.score("q", ["d"])
    assert server.bodies[0]["model"] == "from-env"


def test_refused_document_is_narrowed_down() -> None:
    server = FakeServer()
    docs = [*DOCS[:5], "BAD one", DOCS[5]]
    with client(server, model="m") as c, pytest.raises(BadRequestError) as info:
        c.score("q", docs)
    assert info.value.index == 5
    assert "Failed to load image" in str(info.value) and str(info.value).startswith("input 5:")


def test_refusal_of_a_media_query_blames_no_document() -> None:
    # The server cannot take the query's image (every request carries it): narrowing reaches
    # one document, the control request passes, the query beside the shortest document is
    # refused too, so the query is named, not the document.
    server = FakeServer(status_for=lambda body, n: 400 if isinstance(body["query"], dict) else None)
    with client(server, model="m") as c, pytest.raises(BadRequestError) as info:
        c.score(Content(image=RED_PNG), DOCS)
    assert info.value.index is None and str(info.value).startswith("query: ")
    assert [len(b["documents"]) for b in server.bodies] == [7, 3, 1, 1, 1]
    assert server.bodies[3]["query"] == "." and server.bodies[4]["documents"] == ["."]


def test_a_server_failing_as_a_whole_mid_call_blames_no_document() -> None:
    # Requests of 2; the server takes the first two, then refuses everything: the control
    # request is refused too, so the error names neither a document nor the query.
    server = FakeServer(status_for=lambda body, n: 400 if n > 2 else None)
    with (
        client(server, model="m", batch_size=2, max_concurrency=1) as c,
        pytest.raises(BadRequestError) as info,
    ):
        c.score("q", DOCS[:6])
    assert info.value.index is None and "as a whole" in str(info.value)
    assert server.bodies[-1]["query"] == "." and server.bodies[-1]["documents"] == ["."]


def test_interleaved_parts_all_reach_the_reranker_in_order() -> None:
    # Content.of(text, image, text, image): both images in their order, then the texts as one
    # (the recipe renders an item's text parts back to back; vLLM puts media first anyway).
    blue = RED_PNG.replace("DJ/pLv", "DJ/pLw")
    server = FakeServer()
    with client(server, model="m", recipe_images=False) as c:
        c.score("q", [Content.of("a red ", Content(image=RED_PNG), "square", Content(image=blue))])
    parts = server.bodies[0]["documents"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert [p["image_url"]["url"] for p in parts[:2]] == [RED_PNG, blue]
    assert parts[2]["text"] == "a red square"


def test_batch_refused_as_a_whole_is_halved_until_it_fits() -> None:
    # 413 for more than two documents: halving gets every score through.
    server = FakeServer(
        status_for=lambda body, attempt: 413 if len(body["documents"]) > 2 else None
    )
    with client(server, model="m") as c:
        assert c.score("q", DOCS[:5]) == [fake_score(d) for d in DOCS[:5]]


def test_server_errors_are_retried_then_raised() -> None:
    flaky = FakeServer(status_for=lambda body, attempt: 503 if attempt == 1 else None)
    with client(flaky, model="m") as c:
        assert c.score("q", ["d"]) == [fake_score("d")]
    down = FakeServer(status_for=lambda body, attempt: 500)
    with client(down, model="m", max_retries=1) as c, pytest.raises(InternalServerError):
        c.score("q", ["d"])
    assert len(down.bodies) == 2


def test_response_missing_a_document_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 0.5}]})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    c = RerankClient(base_url=URL, model="m", http_client=http)
    with c, pytest.raises(APIError, match=r"lacks scores for documents \[1\]"):
        c.score("q", ["a", "b"])


def test_instruction_goes_on_the_wire() -> None:
    server = FakeServer()
    with client(server, model="m", instruction="Client-wide.") as c:
        c.score("q", ["d"])
        c.score("q", ["d"], instruction="Per call.")
    assert [b["instruction"] for b in server.bodies] == ["Client-wide.", "Per call."]
    with pytest.raises(ValueError, match="instruction"):
        RerankClient(base_url=URL, instruction="  ")


def test_image_documents_go_as_content_parts_image_first() -> None:
    server = FakeServer()
    with client(server, model="m") as c:
        c.score("q", [Content(text="caption", image=RED_PNG)])
    (doc,) = server.bodies[0]["documents"]
    assert [p["type"] for p in doc["content"]] == ["image_url", "text"]
    assert doc["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_empty_documents_need_no_server() -> None:
    server = FakeServer()
    with client(server, model="m") as c:
        assert c.score("q", []) == []
        assert c.rerank("q", [], top_n=2) == []
    assert server.bodies == []


def test_async_client_matches_and_batches_concurrently() -> None:
    server = FakeServer()

    async def main():
        http = httpx.AsyncClient(transport=httpx.MockTransport(server))
        async with AsyncRerankClient(base_url=URL, model="m", http_client=http, batch_size=2) as c:
            return await c.score("q", DOCS)

    assert asyncio.run(main()) == [fake_score(d) for d in DOCS]
    assert len(server.bodies) == 4


def test_repr_hides_the_key() -> None:
    c = RerankClient(base_url=URL, model="m", api_key="sk-secret")
    assert "sk-secret" not in repr(c)
    assert "m" in repr(c)


def test_batches_by_bytes_count_the_query_in_each() -> None:
    server = FakeServer()
    with client(server, model="m", max_batch_bytes=200) as c:
        c.score("q" * 100, ["x" * 30] * 4)
    # ~148 bytes of query + two documents of ~78 would pass 200: one document per request.
    assert [len(b["documents"]) for b in server.bodies] == [1, 1, 1, 1]


def test_rank_breaks_ties_by_input_order() -> None:
    assert [r.index for r in rank([0.5, 0.7, 0.5, 0.7], None)] == [1, 3, 0, 2]
    assert [r.index for r in rank([0.5, 0.7, 0.5], 1)] == [1]


def test_prepared_text_only_goes_as_a_plain_string() -> None:
    assert RERANK.item(PreparedInput(text="hello")) == "hello"


def test_reranker_base_url_variable_comes_before_vllm_base_url(monkeypatch) -> None:
    monkeypatch.setenv("VLLM_BASE_URL", "http://embedder.test:8000")
    monkeypatch.setenv("VLLM_RERANKER_BASE_URL", "http://reranker.test:8001/v1")
    assert RerankClient(model="m").settings.base_url == "http://reranker.test:8001"
    monkeypatch.delenv("VLLM_RERANKER_BASE_URL")
    assert RerankClient(model="m").settings.base_url == "http://embedder.test:8000"
    assert RerankClient(model="m", base_url=URL).settings.base_url == URL


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_score_is_a_malformed_response_naming_the_document(bad: str) -> None:
    # Python servers may write NaN/Infinity into JSON; a NaN would scramble the ranking.
    def handler(request: httpx.Request) -> httpx.Response:
        scores = ["0.2", "0.9", bad, "0.4"]
        results = ",".join(
            f'{{"index": {i}, "relevance_score": {x}}}' for i, x in enumerate(scores)
        )
        return httpx.Response(200, content=f'{{"results": [{results}]}}'.encode())

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with RerankClient(base_url=URL, model="m", http_client=http, batch_size=4) as c:
        with pytest.raises(APIError, match="malformed response") as info:
            c.rerank("q", ["a", "b", "c", "d"])
        assert info.value.index == 2
        assert "document 2" in str(info.value)


def test_non_finite_score_names_the_document_in_the_callers_list() -> None:
    # The second batch's first document is the caller's document 2.
    def handler(request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content)["documents"])
        first = "NaN" if json.loads(request.content)["documents"][0] == "c" else "0.5"
        results = [f'{{"index": 0, "relevance_score": {first}}}'] + [
            f'{{"index": {i}, "relevance_score": 0.1}}' for i in range(1, n)
        ]
        return httpx.Response(200, content=f'{{"results": [{",".join(results)}]}}'.encode())

    http = httpx.Client(transport=httpx.MockTransport(handler))
    c = RerankClient(base_url=URL, model="m", http_client=http, batch_size=2)
    with c, pytest.raises(APIError) as info:
        c.score("q", ["a", "b", "c", "d"])
    assert info.value.index == 2


def test_refused_query_blames_no_document_and_probes_once() -> None:
    # Every request carrying the query is refused, whatever its documents.
    server = FakeServer(status_for=lambda body, attempt: 400 if body["query"] == "LONG" else None)
    with client(server, model="m") as c, pytest.raises(BadRequestError) as info:
        c.score("LONG", DOCS[:4])
    assert info.value.index is None
    assert str(info.value).startswith("query: HTTP 400")
    # 4 -> 2 -> 1 documents, the control request, then the query with the shortest document.
    assert [b["documents"] for b in server.bodies][-2:] == [["."], ["."]]
    assert [b["query"] for b in server.bodies][-2:] == [".", "LONG"]
    assert len(server.bodies) == 5
    # A refused document keeps the blame: the query alone passes.
    with client(FakeServer(), model="m") as c, pytest.raises(BadRequestError) as info:
        c.score("q", ["a", "BAD"])
    assert info.value.index == 1


def test_a_dead_image_url_is_narrowed_down_without_retrying_every_level(monkeypatch) -> None:
    # As the embedder: a request of several documents with server-fetched URLs gets no 5xx
    # retry (narrowing finds the dead one), one document alone two at most.
    monkeypatch.setattr("vllm_multimodal_embeddings.transport._http.time.sleep", lambda s: None)
    dead = "http://img.test/dead.png"
    server = FakeServer(status_for=lambda body, n: 500 if dead in json.dumps(body) else None)
    with client(server, model="m") as c, pytest.raises(InternalServerError) as info:
        c.score("q", ["a", Content(image=dead), "b"])
    assert info.value.index == 1
    # [a, dead, b] once; [a]; [dead, b] once; [dead] 1 + 2 retries; the control; the query
    # beside the shortest document; [dead] asked again.
    assert len(server.bodies) == 9, [len(b["documents"]) for b in server.bodies]
