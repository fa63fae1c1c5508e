"""The Haystack components in real Haystack pipelines against the CPU servers: ImageFileToDocument
and PDF pages -> document embedder -> DocumentWriter -> InMemoryDocumentStore; text embedder ->
InMemoryEmbeddingRetriever -> ranker.

The weights are random: the tests check that every vector equals the client's for the same
input and settings, that scores equal the reranking client's, order, self-retrieval, and that a
pipeline loaded back from YAML gives the same results, never meaning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.converters.image import ImageFileToDocument
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import DuplicatePolicy
from PIL import Image, ImageDraw

from tests.pdfs import write_pdf
from vllm_multimodal_embeddings import Content, EmbeddingClient, ImageLoadError, PdfPage
from vllm_multimodal_embeddings.haystack import (
    VLLMMultimodalDocumentEmbedder,
    VLLMMultimodalRanker,
    VLLMMultimodalTextEmbedder,
)
from vllm_multimodal_embeddings.reranking import RerankClient

ALLOWED = ["vllm_multimodal_embeddings.haystack.*"]
CAPTIONS = ["A red rectangle.", "A blue ellipse.", "A green line."]
QUERY = "a red shape"


def close(a: Any, b: Any) -> bool:
    return len(a) == len(b) and bool(np.allclose(a, b, atol=1e-5))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three images and a two-page PDF in one folder (the pipelines' root_path)."""
    folder = tmp_path_factory.mktemp("haystack-corpus")
    for i, color in enumerate(["red", "blue", "green"]):
        img = Image.new("RGB", (96, 64), "white")
        ImageDraw.Draw(img).rectangle((8 * i, 8, 60 + 8 * i, 50), fill=color)
        img.save(folder / f"{color}.png")
    write_pdf(folder / "report.pdf", ["Quarterly revenue", "Harbour timetable"], size=(300, 400))
    return folder


@pytest.fixture(scope="module")
def client(vllm_server: Any) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(base_url=vllm_server.base_url, model=vllm_server.model) as c:
        yield c


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Components and pipelines to close after the test (their clients hold sockets)."""
    made: list[Any] = []
    yield made
    for item in made:
        item.close()


def server(vllm_server: Any) -> dict[str, str]:
    return {"base_url": vllm_server.base_url, "model": vllm_server.model}


def image_docs(corpus: Path) -> list[Document]:
    """Documents as Haystack's converter makes them: empty, meta["file_path"] the file name."""
    sources = [corpus / f"{c}.png" for c in ("red", "blue", "green")]
    return ImageFileToDocument().run(sources=sources)["documents"]


def page_docs() -> list[Document]:
    return [Document(meta={"file_path": "report.pdf", "page_number": n}) for n in (1, 2)]


def indexing(vllm_server: Any, corpus: Path, store: InMemoryDocumentStore, **kw: Any) -> Pipeline:
    pipe = Pipeline()
    pipe.add_component(
        "embedder",
        VLLMMultimodalDocumentEmbedder(
            **server(vllm_server), root_path=str(corpus), progress_bar=False, **kw
        ),
    )
    pipe.add_component("writer", DocumentWriter(document_store=store))
    pipe.connect("embedder.documents", "writer.documents")
    return pipe


def test_indexing_pipeline_embeds_images_pdf_pages_and_texts_as_the_client(
    vllm_server, corpus, client, closing
):
    store = InMemoryDocumentStore()
    texts = [Document(content=c, meta={"title": f"t{i}"}) for i, c in enumerate(CAPTIONS)]
    docs = image_docs(corpus) + page_docs() + texts
    pipe = indexing(vllm_server, corpus, store, meta_fields_to_embed=["title"])
    closing.append(pipe)
    assert pipe.run({"embedder": {"documents": docs}})["writer"]["documents_written"] == 8

    stored = {d.id: d for d in store.filter_documents()}
    assert set(stored) == {d.id for d in docs}  # none lost, ids kept
    expected = client.embed(
        [Content(image=corpus / f"{c}.png") for c in ("red", "blue", "green")]
        + [Content(image=PdfPage(corpus / "report.pdf", n)) for n in (1, 2)]
        + [f"t{i}\n{c}" for i, c in enumerate(CAPTIONS)]
    )
    for doc, vector in zip(docs, expected, strict=True):
        assert close(stored[doc.id].embedding, vector), doc.meta
    sources = [stored[d.id].meta["embedding_source"] for d in docs]
    assert sources[:5] == [{"type": "image", "file_path_meta_field": "file_path"}] * 5
    assert sources[5:] == [{"type": "text"}] * 3
    # The two pages of one PDF are two different vectors.
    assert not close(stored[docs[3].id].embedding, stored[docs[4].id].embedding)


def test_text_with_image_dimensions_and_the_cohere_protocol(vllm_server, corpus, client, closing):
    doc = Document(content="A red rectangle.", meta={"file_path": "red.png"})
    pair = Content(text="A red rectangle.", image=corpus / "red.png")
    both = VLLMMultimodalDocumentEmbedder(
        **server(vllm_server), root_path=str(corpus), text_with_image=True, dimensions=32
    )
    closing.append(both)
    [out] = both.run([doc])["documents"]
    assert out.meta["embedding_source"]["type"] == "image_and_text"
    assert close(out.embedding, client.embed([pair], dimensions=32)[0])
    assert abs(np.linalg.norm(out.embedding) - 1.0) < 1e-4

    cohere = VLLMMultimodalDocumentEmbedder(
        **server(vllm_server), root_path=str(corpus), protocol="cohere", progress_bar=False
    )
    closing.append(cohere)
    with EmbeddingClient(**server(vllm_server), protocol="cohere") as cohere_client:
        want = cohere_client.embed([Content(image=corpus / "red.png"), "A blue ellipse."])
    got = cohere.run([Document(meta={"file_path": "red.png"}), Document(content="A blue ellipse.")])
    assert all(close(d.embedding, w) for d, w in zip(got["documents"], want, strict=True))


def test_query_pipeline_retrieves_and_reranks_against_both_servers(
    vllm_server, vllm_reranker_server, corpus, client, closing
):
    store = InMemoryDocumentStore()
    docs = image_docs(corpus) + [Document(content=c) for c in CAPTIONS]
    index = indexing(vllm_server, corpus, store)
    closing.append(index)
    index.run({"embedder": {"documents": docs}})

    pipe = Pipeline()
    pipe.add_component(
        "query", VLLMMultimodalTextEmbedder(**server(vllm_server), query_instruction="visdoc")
    )
    pipe.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=5))
    pipe.add_component(
        "ranker",
        VLLMMultimodalRanker(
            base_url=vllm_reranker_server.base_url,
            model=vllm_reranker_server.model,
            root_path=str(corpus),
            top_k=3,
        ),
    )
    pipe.connect("query.embedding", "retriever.query_embedding")
    pipe.connect("retriever.documents", "ranker.documents")
    closing.append(pipe)
    out = pipe.run(
        {"query": {"text": QUERY}, "ranker": {"query": QUERY}},
        include_outputs_from={"query", "retriever"},
    )

    want = client.embed_texts([QUERY], input_type="query", instruction="visdoc")[0]
    assert close(out["query"]["embedding"], want)
    retrieved = out["retriever"]["documents"]
    assert len(retrieved) == 5
    ranked = out["ranker"]["documents"]
    assert len(ranked) == 3 and {d.id for d in ranked} <= {d.id for d in retrieved}
    # Scores are the reranking client's for the same inputs, written to Document.score.
    with RerankClient(
        base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model
    ) as rerank:
        inputs = [
            Content(image=corpus / d.meta["file_path"]) if d.content is None else d.content
            for d in retrieved
        ]
        scores = dict(zip((d.id for d in retrieved), rerank.score(QUERY, inputs), strict=True))
    # (Batched differently, a score may differ in the 9th digit: compare within 1e-6.)
    assert np.allclose([d.score for d in ranked], sorted(scores.values(), reverse=True)[:3])
    assert all(abs(d.score - scores[d.id]) < 1e-6 for d in ranked)
    # A threshold at the second score keeps the first two; top_k at run time overrides.
    ranker = pipe.get_component("ranker")
    kept = ranker.run(QUERY, retrieved, score_threshold=ranked[1].score)["documents"]
    assert [d.id for d in kept] == [d.id for d in ranked[:2]]
    assert len(ranker.run(QUERY, retrieved, top_k=1)["documents"]) == 1


def test_self_retrieval_of_an_indexed_page(vllm_server, corpus, closing):
    store = InMemoryDocumentStore()
    docs = page_docs() + image_docs(corpus)
    pipe = indexing(vllm_server, corpus, store)
    closing.append(pipe)
    written = pipe.run({"embedder": {"documents": docs}}, include_outputs_from={"embedder"})
    embedded = written["embedder"]["documents"]
    for doc in embedded:
        top = InMemoryEmbeddingRetriever(document_store=store, top_k=1).run(doc.embedding)
        assert top["documents"][0].id == doc.id


def test_a_pipeline_loaded_back_from_yaml_runs_the_same(vllm_server, corpus, tmp_path, closing):
    store = InMemoryDocumentStore()
    pipe = Pipeline()
    pipe.add_component(
        "embedder",
        VLLMMultimodalDocumentEmbedder(
            **server(vllm_server),
            root_path=str(corpus),
            dimensions=48,
            document_instruction="Represent this page.",
            progress_bar=False,
        ),
    )
    # The loaded store shares the first one's index: the second run rewrites the same ids.
    pipe.add_component(
        "writer", DocumentWriter(document_store=store, policy=DuplicatePolicy.OVERWRITE)
    )
    pipe.connect("embedder.documents", "writer.documents")
    path = tmp_path / "indexing.yaml"
    with open(path, "w") as f:
        pipe.dump(f)
    with open(path) as f:
        loaded = Pipeline.load(f, allowed_modules=ALLOWED)
    closing.extend([pipe, loaded])
    assert loaded.to_dict() == pipe.to_dict()

    docs = page_docs() + image_docs(corpus)[:1] + [Document(content=CAPTIONS[0])]
    first = pipe.run({"embedder": {"documents": docs}}, include_outputs_from={"embedder"})
    again = loaded.run({"embedder": {"documents": docs}}, include_outputs_from={"embedder"})
    a, b = first["embedder"]["documents"], again["embedder"]["documents"]
    assert [d.id for d in a] == [d.id for d in b] == [d.id for d in docs]
    pairs = zip(a, b, strict=True)
    assert all(len(x.embedding) == 48 and close(x.embedding, y.embedding) for x, y in pairs)


def test_async_runs_equal_the_sync_ones(vllm_server, vllm_reranker_server, corpus, closing):
    docs = image_docs(corpus) + page_docs() + [Document(content=c) for c in CAPTIONS]
    embedder = VLLMMultimodalDocumentEmbedder(
        **server(vllm_server), root_path=str(corpus), progress_bar=False
    )
    text = VLLMMultimodalTextEmbedder(**server(vllm_server))
    ranker = VLLMMultimodalRanker(
        base_url=vllm_reranker_server.base_url, root_path=str(corpus), top_k=4
    )
    closing.extend([embedder, text, ranker])
    sync_docs = embedder.run(docs)["documents"]
    sync_query = text.run(QUERY)["embedding"]
    sync_ranked = ranker.run(QUERY, sync_docs)["documents"]

    store = InMemoryDocumentStore()
    pipe = indexing(vllm_server, corpus, store)

    async def main() -> tuple[Any, ...]:
        written = await pipe.run_async(
            {"embedder": {"documents": docs}}, include_outputs_from={"embedder"}
        )
        query = await text.run_async(QUERY)
        ranked = await ranker.run_async(QUERY, written["embedder"]["documents"])
        await pipe.close_async()
        await text.close_async()
        await ranker.close_async()
        return written["embedder"]["documents"], query["embedding"], ranked["documents"]

    async_docs, async_query, async_ranked = asyncio.run(main())
    assert [d.id for d in async_docs] == [d.id for d in docs]
    assert all(close(a.embedding, s.embedding) for a, s in zip(async_docs, sync_docs, strict=True))
    assert close(async_query, sync_query)
    assert [d.id for d in async_ranked] == [d.id for d in sync_ranked]
    assert np.allclose([d.score for d in async_ranked], [d.score for d in sync_ranked], atol=1e-6)


def test_bad_documents_fail_naming_their_id(vllm_server, vllm_reranker_server, corpus, closing):
    broken = corpus / "broken.png"
    broken.write_bytes(b"not an image at all")
    good = Document(content="fine")
    missing = Document(meta={"file_path": "no-such.png"})
    garbage = Document(meta={"file_path": "broken.png"})
    past_the_end = Document(meta={"file_path": "report.pdf", "page_number": 9})
    embedder = VLLMMultimodalDocumentEmbedder(
        **server(vllm_server), root_path=str(corpus), progress_bar=False
    )
    ranker = VLLMMultimodalRanker(base_url=vllm_reranker_server.base_url, root_path=str(corpus))
    closing.extend([embedder, ranker])
    for bad in (missing, garbage, past_the_end):
        docs = [good, bad, good]
        for call in (
            lambda docs=docs: embedder.run(docs),
            lambda docs=docs: asyncio.run(embedder.run_async(docs)),
            lambda docs=docs: ranker.run(QUERY, docs),
        ):
            with pytest.raises(ImageLoadError) as info:
                call()
            assert info.value.index == 1
            assert f"document {bad.id!r}" in str(info.value)
    # The component still works after an error.
    assert len(embedder.run([good])["documents"][0].embedding) > 0


def test_ranker_scores_text_image_pairs_and_meta_fields_as_the_client(
    vllm_reranker_server, corpus, closing
):
    pair = Document(content="A red rectangle.", meta={"file_path": "red.png", "title": "Red"})
    text = Document(content="A blue ellipse.", meta={"title": "Blue"})
    page = Document(meta={"file_path": "report.pdf", "page_number": 2})
    url = vllm_reranker_server.base_url
    with RerankClient(base_url=url) as rerank:
        want = {
            True: rerank.score(
                QUERY,
                [
                    Content(text="Red\nA red rectangle.", image=corpus / "red.png"),
                    "Blue\nA blue ellipse.",
                    Content(image=PdfPage(corpus / "report.pdf", 2)),
                ],
            ),
            False: rerank.score(
                QUERY,
                [
                    Content(image=corpus / "red.png"),
                    "Blue\nA blue ellipse.",
                    Content(image=PdfPage(corpus / "report.pdf", 2)),
                ],
            ),
        }
    for with_text in (True, False):
        ranker = VLLMMultimodalRanker(
            base_url=url,
            root_path=str(corpus),
            meta_fields_to_embed=["title"],
            text_with_image=with_text,
        )
        closing.append(ranker)
        ranked = ranker.run(QUERY, [pair, text, page])["documents"]
        expected = dict(zip((pair.id, text.id, page.id), want[with_text], strict=True))
        assert len(ranked) == 3
        assert all(abs(d.score - expected[d.id]) < 1e-6 for d in ranked)
        assert [d.id for d in ranked] == sorted(expected, key=expected.__getitem__, reverse=True)
    # Text with the image scores differently from the image alone: the setting reached it.
    assert abs(want[True][0] - want[False][0]) > 1e-6
