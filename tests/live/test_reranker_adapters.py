"""The rerankers in real retrieval pipelines: our embedder fills a real vector store, a
retriever recalls, the reranker reorders. Needs both CPU servers (embedder and reranker).

The weights are random: the tests check that the rerankers return the retrieved items,
ordered and cut by the scores a hand-written /rerank request gets, never meaning.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx
import pytest
from langchain_chroma import Chroma
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from llama_index.core import StorageContext
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import (
    Document as LlamaDocument,
)
from llama_index.core.schema import (
    ImageDocument,
    ImageNode,
    NodeWithScore,
    QueryBundle,
    TextNode,
)
from llama_index.core.vector_stores import SimpleVectorStore
from PIL import Image, ImageDraw

from tests.helpers import data_uri, post
from vllm_multimodal_embeddings import RerankPreset
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings, VLLMMultimodalReranker
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding
from vllm_multimodal_embeddings.llama_index import VLLMMultimodalReranker as LlamaReranker

CAPTIONS = [
    "A red rectangle on white paper.",
    "A blue ellipse, like an egg.",
    "Quarterly revenue grew by four percent.",
    "The ferry leaves the harbour at noon.",
]
QUERY = "a red shape"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("rerank-pipeline")
    paths = []
    for i, color in enumerate(["red", "blue", "green"]):
        img = Image.new("RGB", (96, 64), "white")
        ImageDraw.Draw(img).rectangle((8 * i, 8, 60 + 8 * i, 50), fill=color)
        paths.append(folder / f"{color}.png")
        img.save(paths[-1])
    return paths


def raw_scores(server: Any, query: str, documents: list[Any], **extra: Any) -> list[float]:
    """Hand-written /rerank request: text documents as strings, images as data URIs."""
    body = {"model": server.model, "query": query, "documents": documents, **extra}
    resp = post(server.base_url, "/rerank", body)
    assert resp.status_code == 200, resp.text
    return [r["relevance_score"] for r in sorted(resp.json()["results"], key=lambda r: r["index"])]


def image_doc(path: Path) -> dict[str, Any]:
    return {"content": [{"type": "image_url", "image_url": {"url": data_uri(path.read_bytes())}}]}


# -- LangChain: Chroma + ContextualCompressionRetriever ----------------------------------------


@pytest.fixture
def chroma(vllm_server: Any, images: list[Path]) -> Iterator[Chroma]:
    emb = VLLMMultimodalEmbeddings(base_url=vllm_server.base_url, model=vllm_server.model)
    store = Chroma(
        collection_name=f"rr-{uuid.uuid4().hex}",
        embedding_function=emb,
        client=chromadb.EphemeralClient(),
    )
    store.add_texts(CAPTIONS, metadatas=[{"kind": "text", "i": i} for i in range(len(CAPTIONS))])
    # Chroma keeps the image itself (base64) as page_content: the path goes in metadata.
    store.add_images(
        uris=[str(p) for p in images],
        metadatas=[{"kind": "image", "image": str(p)} for p in images],
    )
    yield store
    store.delete_collection()
    emb.close()


def _wire(doc: Any) -> Any:
    return image_doc(Path(doc.metadata["image"])) if "image" in doc.metadata else doc.page_content


def test_langchain_retrieve_then_rerank(chroma, vllm_reranker_server, images):
    k = 5
    retrieved = chroma.as_retriever(search_kwargs={"k": k}).invoke(QUERY)
    assert len(retrieved) == k
    assert {d.metadata["kind"] for d in retrieved} == {"text", "image"}  # a mixed recall

    reranker = VLLMMultimodalReranker(
        base_url=vllm_reranker_server.base_url,
        model=vllm_reranker_server.model,
        top_n=3,
        text_with_image=False,
    )
    pipeline = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=chroma.as_retriever(search_kwargs={"k": k})
    )
    reranked = pipeline.invoke(QUERY)

    want = raw_scores(vllm_reranker_server, QUERY, [_wire(d) for d in retrieved])
    best = sorted(range(k), key=lambda i: -want[i])[:3]
    assert [d.page_content for d in reranked] == [retrieved[i].page_content for i in best]
    got = [d.metadata["relevance_score"] for d in reranked]
    assert got == pytest.approx([want[i] for i in best], abs=1e-6)
    for doc in reranked:  # the store's own fields survive; image docs keep their image
        if doc.metadata["kind"] == "image":
            assert base64.b64decode(doc.page_content) == Path(doc.metadata["image"]).read_bytes()

    async def in_one_loop() -> list[Any]:
        try:
            return list(await reranker.acompress_documents(retrieved, QUERY))
        finally:
            await reranker.aclose()

    async_docs = asyncio.run(in_one_loop())
    assert [d.page_content for d in async_docs] == [d.page_content for d in reranked]


def test_langchain_text_with_image_scores_the_pair(vllm_reranker_server, images):
    doc = Document(page_content="a red box", metadata={"image": str(images[0])})
    reranker = VLLMMultimodalReranker(
        base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model, top_n=None
    )
    (out,) = reranker.compress_documents([doc], QUERY)
    pair = {"content": [*image_doc(images[0])["content"], {"type": "text", "text": "a red box"}]}
    assert out.metadata["relevance_score"] == pytest.approx(
        raw_scores(vllm_reranker_server, QUERY, [pair])[0], abs=1e-6
    )
    assert doc.metadata == {"image": str(images[0])}  # the input is not modified
    reranker.close()


# -- LlamaIndex: MultiModalVectorStoreIndex + node postprocessor --------------------------------


def _node_wire(node: Any) -> Any:
    if isinstance(node, ImageNode):
        return image_doc(Path(node.image_path))
    return node.get_content()


def test_llama_index_retrieve_then_rerank(vllm_server, vllm_reranker_server, images):
    emb = VLLMMultiModalEmbedding(base_url=vllm_server.base_url, model_name=vllm_server.model)
    # Metadata as a directory reader sets it: LlamaIndex skips nodes with no content at all.
    docs = [LlamaDocument(text=c) for c in CAPTIONS] + [
        ImageDocument(image_path=str(p), metadata={"file_name": p.name}) for p in images
    ]
    storage = StorageContext.from_defaults(
        vector_store=SimpleVectorStore(), image_store=SimpleVectorStore()
    )
    index = MultiModalVectorStoreIndex.from_documents(
        docs, storage_context=storage, embed_model=emb, image_embed_model=emb
    )
    retriever = index.as_retriever(similarity_top_k=3, image_similarity_top_k=3)
    # Text and text-to-image recall together: the reranker orders both kinds in one list.
    retrieved = retriever.retrieve(QUERY)
    assert len(retrieved) == 6
    assert sum(isinstance(n.node, ImageNode) for n in retrieved) == 3

    rerank = LlamaReranker(
        base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model, top_n=4
    )
    reranked = rerank.postprocess_nodes(retrieved, query_str=QUERY)

    want = raw_scores(vllm_reranker_server, QUERY, [_node_wire(n.node) for n in retrieved])
    best = sorted(range(len(retrieved)), key=lambda i: -want[i])[:4]
    assert [n.node.node_id for n in reranked] == [retrieved[i].node.node_id for i in best]
    assert [n.score for n in reranked] == pytest.approx([want[i] for i in best], abs=1e-6)

    async def in_one_loop() -> list[Any]:
        try:
            return await rerank.apostprocess_nodes(retrieved, QueryBundle(QUERY))
        finally:
            await rerank.aclose()

    async_nodes = asyncio.run(in_one_loop())
    assert [n.node.node_id for n in async_nodes] == [n.node.node_id for n in reranked]
    emb.close()


def test_llama_index_image_query(vllm_reranker_server, images):
    nodes = [TextNode(text=c) for c in CAPTIONS[:2]] + [ImageNode(image_path=str(images[1]))]
    rerank = LlamaReranker(
        base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model, top_n=None
    )
    bundle = QueryBundle(query_str="this one", image_path=str(images[1]))
    out = rerank.postprocess_nodes([NodeWithScore(node=n, score=0.0) for n in nodes], bundle)
    query = {"content": [*image_doc(images[1])["content"], {"type": "text", "text": "this one"}]}
    body = {
        "model": vllm_reranker_server.model,
        "query": query,
        "documents": [CAPTIONS[0], CAPTIONS[1], image_doc(images[1])],
    }
    resp = post(vllm_reranker_server.base_url, "/rerank", body)
    want = {r["index"]: r["relevance_score"] for r in resp.json()["results"]}
    ids = [n.node_id for n in nodes]
    for n in out:
        assert n.score == pytest.approx(want[ids.index(n.node.node_id)], abs=1e-6)
    rerank.close()


# -- clients follow the event loop and the fields -----------------------------------------------

OTHER_INSTRUCTION = "Judge by length only."


def test_langchain_reranker_survives_event_loops_and_follows_its_fields(vllm_reranker_server):
    docs = [Document(page_content=c) for c in CAPTIONS]
    reranker = VLLMMultimodalReranker(
        base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model, top_n=None
    )

    def scores(out: Any) -> dict[str, float]:
        return {d.page_content: d.metadata["relevance_score"] for d in out}

    # Each asyncio.run is a new event loop: a client kept from the first one fails in the second.
    first = scores(asyncio.run(reranker.acompress_documents(docs, QUERY)))
    second = scores(asyncio.run(reranker.acompress_documents(docs, QUERY)))
    assert second == pytest.approx(first, abs=1e-6)
    assert first == pytest.approx(
        dict(zip(CAPTIONS, raw_scores(vllm_reranker_server, QUERY, CAPTIONS), strict=True)),
        abs=1e-6,
    )

    # A field changed after first use reaches the server, sync and async.
    reranker.instruction = OTHER_INSTRUCTION
    want = raw_scores(vllm_reranker_server, QUERY, CAPTIONS, instruction=OTHER_INSTRUCTION)
    assert max(abs(a - b) for a, b in zip(want, first.values(), strict=True)) > 1e-4
    expected = dict(zip(CAPTIONS, want, strict=True))
    assert scores(reranker.compress_documents(docs, QUERY)) == pytest.approx(expected, abs=1e-6)
    assert scores(asyncio.run(reranker.acompress_documents(docs, QUERY))) == pytest.approx(
        expected, abs=1e-6
    )
    reranker.close()


def test_llama_index_reranker_survives_event_loops_and_follows_its_fields(vllm_reranker_server):
    nodes = [NodeWithScore(node=TextNode(text=c), score=0.0) for c in CAPTIONS]
    rerank = LlamaReranker(
        base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model, top_n=None
    )

    def scores(out: list[NodeWithScore]) -> dict[str, float]:
        return {n.node.get_content(): n.score or 0.0 for n in out}

    first = scores(asyncio.run(rerank.apostprocess_nodes(nodes, query_str=QUERY)))
    second = scores(asyncio.run(rerank.apostprocess_nodes(nodes, query_str=QUERY)))
    assert second == pytest.approx(first, abs=1e-6)

    rerank.instruction = OTHER_INSTRUCTION
    want = raw_scores(vllm_reranker_server, QUERY, CAPTIONS, instruction=OTHER_INSTRUCTION)
    expected = dict(zip(CAPTIONS, want, strict=True))
    assert max(abs(expected[c] - first[c]) for c in CAPTIONS) > 1e-4
    assert scores(rerank.postprocess_nodes(nodes, query_str=QUERY)) == pytest.approx(
        expected, abs=1e-6
    )
    assert scores(asyncio.run(rerank.apostprocess_nodes(nodes, query_str=QUERY))) == pytest.approx(
        expected, abs=1e-6
    )
    rerank.close()


def test_both_rerankers_send_through_injected_httpx_clients(vllm_reranker_server):
    # Proxies, TLS settings and event hooks come with the caller's httpx clients: every request
    # must go through them, and closing the adapter must leave them open.
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async def ahook(request: httpx.Request) -> None:
        seen.append("async " + request.url.path)

    sync_http = httpx.Client(event_hooks={"request": [hook]})
    server = {"base_url": vllm_reranker_server.base_url, "model": vllm_reranker_server.model}
    want = dict(zip(CAPTIONS, raw_scores(vllm_reranker_server, QUERY, CAPTIONS), strict=True))

    async def run_async() -> tuple[Any, Any]:
        async with httpx.AsyncClient(event_hooks={"request": [ahook]}) as async_http:
            lc = VLLMMultimodalReranker(**server, top_n=None, http_async_client=async_http)
            li = LlamaReranker(**server, top_n=None, async_http_client=async_http)
            out = (
                await lc.acompress_documents(docs, QUERY),
                await li.apostprocess_nodes(nodes, query_str=QUERY),
            )
            await lc.aclose()
            await li.aclose()
            assert not async_http.is_closed
            return out

    docs = [Document(page_content=c) for c in CAPTIONS]
    nodes = [NodeWithScore(node=TextNode(text=c), score=0.0) for c in CAPTIONS]
    lc = VLLMMultimodalReranker(**server, top_n=None, http_client=sync_http)
    li = LlamaReranker(**server, top_n=None, http_client=sync_http)
    assert "http_client" not in lc.model_dump() and "http_client" not in repr(li)
    got_lc = {
        d.page_content: d.metadata["relevance_score"] for d in lc.compress_documents(docs, QUERY)
    }
    got_li = {n.node.get_content(): n.score for n in li.postprocess_nodes(nodes, query_str=QUERY)}
    lc.close()
    li.close()
    assert not sync_http.is_closed
    assert got_lc == pytest.approx(want, abs=1e-6) and got_li == pytest.approx(want, abs=1e-6)
    assert seen.count("/rerank") >= 2, (
        seen
    )  # one request each at least (the probe may add /v1/models)

    alc, ali = asyncio.run(run_async())
    assert {d.page_content: d.metadata["relevance_score"] for d in alc} == pytest.approx(
        want, abs=1e-6
    )
    assert {n.node.get_content(): n.score for n in ali} == pytest.approx(want, abs=1e-6)
    assert seen.count("async /rerank") >= 2, seen
    sync_http.close()


# -- instruction presets ------------------------------------------------------------------------


@pytest.mark.parametrize("given", [RerankPreset.IMAGE_CAPTION, "image_caption", "image-caption"])
def test_both_rerankers_take_presets_by_member_and_name(vllm_reranker_server, images, given):
    # A preset sends its text: the scores of a hand-written request with that instruction,
    # not the default's.
    text = RerankPreset.IMAGE_CAPTION.value
    docs = [image_doc(p) for p in images]
    want = raw_scores(vllm_reranker_server, QUERY, docs, instruction=text)
    default = raw_scores(vllm_reranker_server, QUERY, docs)
    assert max(abs(a - b) for a, b in zip(want, default, strict=True)) > 1e-4
    server = {"base_url": vllm_reranker_server.base_url, "model": vllm_reranker_server.model}

    lc = VLLMMultimodalReranker(**server, top_n=None, instruction=given)
    lc_docs = [Document(page_content="", metadata={"image": str(p)}) for p in images]
    try:
        got = {d.metadata["image"]: d.metadata["relevance_score"] for d in
               lc.compress_documents(lc_docs, QUERY)}  # fmt: skip
    finally:
        lc.close()
    assert [got[str(p)] for p in images] == pytest.approx(want, abs=1e-6)

    li = LlamaReranker(**server, top_n=len(images), instruction=given)
    nodes = [NodeWithScore(node=ImageNode(image_path=str(p))) for p in images]
    try:
        out = li.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    finally:
        li.close()
    scores = {n.node.image_path: n.score for n in out}  # type: ignore[attr-defined]
    assert [scores[str(p)] for p in images] == pytest.approx(want, abs=1e-6)


def test_a_misspelt_preset_is_refused_by_both_rerankers(vllm_reranker_server):
    server = {"base_url": vllm_reranker_server.base_url, "model": vllm_reranker_server.model}
    with pytest.raises(ValueError, match="'imagecaption' is no reranker preset"):
        VLLMMultimodalReranker(**server, instruction="imagecaption")
    with pytest.raises(ValueError, match="'imagecaption' is no reranker preset"):
        LlamaReranker(**server, instruction="imagecaption")
