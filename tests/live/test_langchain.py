"""VLLMMultimodalEmbeddings in real LangChain pipelines: Chroma, InMemoryVectorStore, LCEL, cache.

The server's weights are random: these tests assert self-retrieval, order, sizes and equality
between paths, never semantic ranking.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
import pytest
from langchain_chroma import Chroma
from langchain_classic.embeddings import CacheBackedEmbeddings
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from langchain_core.stores import InMemoryByteStore
from langchain_core.vectorstores import InMemoryVectorStore
from PIL import Image, ImageDraw

from vllm_multimodal_embeddings import Content, ImageLoadError, InputError
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings

TEXTS = [
    "A cat sleeping in the snow.",
    "A red bicycle leaning on a wall.",
    "Fresh bread on a wooden table.",
    "A lighthouse at dusk.",
]
SECRET = "sk-live-test-secret-7c21"


def contents(docs: list[Document]) -> list[str]:
    return [d.page_content for d in docs]


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and bool(np.allclose(a, b, atol=1e-5))


@pytest.fixture
def emb(vllm_server: Any) -> Iterator[VLLMMultimodalEmbeddings]:
    embeddings = VLLMMultimodalEmbeddings(base_url=vllm_server.base_url, model=vllm_server.model)
    yield embeddings
    embeddings.close()


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Four small PNGs that differ in colour and shape."""
    specs = [("red", "rectangle"), ("blue", "ellipse"), ("green", "line"), ("yellow", "grid")]
    paths = []
    for color, shape in specs:
        img = Image.new("RGB", (96, 96), "white")
        draw = ImageDraw.Draw(img)
        if shape == "rectangle":
            draw.rectangle((10, 10, 80, 60), fill=color)
        elif shape == "ellipse":
            draw.ellipse((5, 20, 90, 90), fill=color)
        elif shape == "line":
            draw.line((0, 0, 95, 95), fill=color, width=12)
        else:
            for x in range(0, 96, 16):
                draw.line((x, 0, x, 95), fill=color, width=4)
        path = tmp_path / f"{color}-{shape}.png"
        img.save(path)
        paths.append(path)
    return paths


@pytest.fixture
def chroma(emb: VLLMMultimodalEmbeddings) -> Iterator[Chroma]:
    store = Chroma(
        collection_name=f"lc-{uuid.uuid4().hex}",
        embedding_function=emb,
        client=chromadb.EphemeralClient(),
    )
    yield store
    store.delete_collection()


# -- Chroma: images and texts in one collection ----------------------------------------------


def test_chroma_image_search_returns_the_same_image_first(
    chroma: Chroma, images: list[Path]
) -> None:
    uris = [str(p) for p in images]
    chroma.add_images(uris=uris, metadatas=[{"kind": "image", "name": p.name} for p in images])
    for path in images:
        hits = chroma.similarity_search_by_image(uri=str(path), k=len(images))
        assert hits[0].metadata["name"] == path.name
        # Chroma stores the image itself as base64 page content.
        assert base64.b64decode(hits[0].page_content) == path.read_bytes()
        assert len({h.metadata["name"] for h in hits}) == len(images)


def test_chroma_mixed_collection(
    chroma: Chroma, emb: VLLMMultimodalEmbeddings, images: list[Path]
) -> None:
    chroma.add_images(
        uris=[str(p) for p in images],
        metadatas=[{"kind": "image", "name": p.name} for p in images],
    )
    chroma.add_texts(TEXTS, metadatas=[{"kind": "text", "name": t} for t in TEXTS])

    # Texts: stored under the document instruction, so search with a document vector.
    for text in TEXTS:
        hit = chroma.similarity_search_by_vector(emb.embed_documents([text])[0], k=1)[0]
        assert hit.page_content == text

    # Text to image: a query-instruction text search runs end to end and returns images.
    hits = chroma.similarity_search("a red square", k=2, filter={"kind": "image"})
    assert len(hits) == 2
    assert {h.metadata["name"] for h in hits} <= {p.name for p in images}

    # Image search over the mixed collection still finds the image itself first.
    first = chroma.similarity_search_by_image(uri=str(images[2]), k=1)[0]
    assert first.metadata["name"] == images[2].name


# -- InMemoryVectorStore, retrievers and LCEL --------------------------------------------


def test_in_memory_store_self_retrieval_and_lcel_chain(emb: VLLMMultimodalEmbeddings) -> None:
    store = InMemoryVectorStore.from_texts(TEXTS, emb)
    for text in TEXTS:
        hit = store.similarity_search_by_vector(emb.embed_documents([text])[0], k=1)[0]
        assert hit.page_content == text

    retriever = store.as_retriever(search_kwargs={"k": 2})
    chain = retriever | RunnableLambda(contents)
    out = chain.invoke("something on a table")
    assert len(out) == 2
    assert set(out) <= set(TEXTS)
    # The retriever's ranking is the store's own: same query, same order.
    assert out == [d.page_content for d in store.similarity_search("something on a table", k=2)]


@pytest.mark.asyncio
async def test_async_pipeline_matches_sync(emb: VLLMMultimodalEmbeddings) -> None:
    store = await InMemoryVectorStore.afrom_texts(TEXTS, emb)
    chain = store.as_retriever(search_kwargs={"k": 3}) | RunnableLambda(contents)
    async_out = await chain.ainvoke("a bicycle")
    assert async_out == chain.invoke("a bicycle")
    await emb.aclose()


# -- sync/async, instructions, image sources -------------------------------------------


@pytest.mark.asyncio
async def test_sync_and_async_vectors_are_equal(
    emb: VLLMMultimodalEmbeddings, images: list[Path]
) -> None:
    uris = [str(p) for p in images]
    pairs = [
        (emb.embed_documents(TEXTS), await emb.aembed_documents(TEXTS)),
        ([emb.embed_query(TEXTS[0])], [await emb.aembed_query(TEXTS[0])]),
        (emb.embed_image(uris), await emb.aembed_image(uris)),
        (
            emb.embed_multimodal([Content(text=TEXTS[0], image=images[0])]),
            await emb.aembed_multimodal([Content(text=TEXTS[0], image=images[0])]),
        ),
    ]
    for sync, asyn in pairs:
        assert len(sync) == len(asyn)
        for a, b in zip(sync, asyn, strict=True):
            assert close(a, b)
    await emb.aclose()


def test_vectors_are_normalized_and_instructions_apply(emb: VLLMMultimodalEmbeddings) -> None:
    doc = emb.embed_documents([TEXTS[0]])[0]
    query = emb.embed_query(TEXTS[0])
    assert len(doc) == len(query) > 0
    assert abs(float(np.linalg.norm(doc)) - 1.0) < 1e-3
    # Query and document instructions differ, so one text gets two different vectors.
    assert not close(doc, query)


def test_embed_image_accepts_paths_and_uris(
    emb: VLLMMultimodalEmbeddings, images: list[Path]
) -> None:
    path = images[1]
    data_uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    by_path, by_file_uri, by_data_uri, other = emb.embed_image(
        [str(path), path.as_uri(), data_uri, str(images[0])]
    )
    assert close(by_path, by_file_uri)
    assert close(by_path, by_data_uri)
    assert not close(by_path, other)


def test_embed_multimodal_pairs(emb: VLLMMultimodalEmbeddings, images: list[Path]) -> None:
    pair, as_dict, image_only, text_only, plain = emb.embed_multimodal(
        [
            Content(text=TEXTS[0], image=images[0]),
            {"text": TEXTS[0], "image": str(images[0])},
            Content(image=images[0]),
            Content(text=TEXTS[0]),
            TEXTS[0],
        ]
    )
    assert close(pair, as_dict)
    assert not close(pair, image_only)
    assert not close(pair, text_only)
    assert close(text_only, plain)
    assert close(image_only, emb.embed_image([str(images[0])])[0])
    assert close(plain, emb.embed_documents([TEXTS[0]])[0])
    query = emb.embed_multimodal([TEXTS[0]], input_type="query")[0]
    assert close(query, emb.embed_query(TEXTS[0]))


def test_dimensions_and_reassignment(emb: VLLMMultimodalEmbeddings) -> None:
    full = emb.embed_documents([TEXTS[0]])[0]
    emb.dimensions = 32
    short = emb.embed_documents([TEXTS[0]])[0]
    assert len(short) == 32 < len(full)
    assert abs(float(np.linalg.norm(short)) - 1.0) < 1e-3
    # A copy with other settings makes its own client; the original keeps its settings.
    copied = emb.model_copy(update={"dimensions": 16})
    assert len(copied.embed_documents([TEXTS[0]])[0]) == 16
    assert close(emb.embed_documents([TEXTS[0]])[0], short)
    copied.close()


# -- CacheBackedEmbeddings -------------------------------------------------------------


@pytest.fixture
def requests() -> list[str]:
    return []


@pytest.fixture
def counting_http(requests: list[str]) -> Iterator[httpx.Client]:
    """A real httpx client that records the path of every request it sends."""
    with httpx.Client(event_hooks={"request": [lambda r: requests.append(r.url.path)]}) as http:
        yield http


def test_cache_backed_embeddings_hits_and_separates_namespaces(
    vllm_server: Any, counting_http: httpx.Client, requests: list[str]
) -> None:
    http = counting_http
    kwargs = {"base_url": vllm_server.base_url, "model": vllm_server.model, "http_client": http}
    emb = VLLMMultimodalEmbeddings(**kwargs)
    store = InMemoryByteStore()
    # sha256: the default sha1 key encoder warns that it is not collision-resistant.
    cached = CacheBackedEmbeddings.from_bytes_store(
        emb, store, namespace=emb.cache_namespace, key_encoder="sha256"
    )
    first = cached.embed_documents(TEXTS)
    keys = sorted(store.yield_keys())
    assert len(keys) == len(TEXTS)
    assert all(k.startswith(emb.cache_namespace) for k in keys)

    sent = len(requests)
    second = cached.embed_documents(TEXTS)
    assert len(requests) == sent  # every vector came from the cache
    assert second == first
    assert all(close(a, b) for a, b in zip(first, emb.embed_documents(TEXTS), strict=True))

    others = [
        VLLMMultimodalEmbeddings(**kwargs, dimensions=64),
        VLLMMultimodalEmbeddings(**kwargs, document_instruction="Represent the caption."),
    ]
    namespaces = {emb.cache_namespace} | {o.cache_namespace for o in others}
    assert len(namespaces) == 3
    for other in others:
        vectors = CacheBackedEmbeddings.from_bytes_store(
            other, store, namespace=other.cache_namespace, key_encoder="sha256"
        ).embed_documents(TEXTS)
        assert not close(vectors[0], first[0])
    assert len(list(store.yield_keys())) == 3 * len(TEXTS)
    assert len(list(store.yield_keys(prefix=others[0].cache_namespace))) == len(TEXTS)


# -- errors and secrets ----------------------------------------------------------------


def test_missing_image_names_the_item(
    emb: VLLMMultimodalEmbeddings, images: list[Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.png"
    with pytest.raises(ImageLoadError) as info:
        emb.embed_image([str(images[0]), str(missing)])
    assert info.value.index == 1
    assert "missing.png" in (info.value.source or "")
    assert "missing.png" in str(info.value)


def test_corrupt_image_is_a_typed_error(emb: VLLMMultimodalEmbeddings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), "purple").save(good)
    with pytest.raises(InputError) as info:
        emb.embed_image([str(good), str(good), str(bad)])
    assert info.value.index == 2


def test_api_key_stays_out_of_errors_and_logs(
    vllm_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emb = VLLMMultimodalEmbeddings(
        base_url=vllm_server.base_url, model=vllm_server.model, api_key=SECRET
    )
    assert len(emb.embed_query("hello")) > 0
    with pytest.raises(ImageLoadError) as info:
        emb.embed_image([str(tmp_path / "nope.png")])
    emb.close()
    for text in (repr(emb), str(emb), str(info.value), repr(info.value), caplog.text):
        assert SECRET not in text


def test_async_client_follows_the_event_loop(emb: VLLMMultimodalEmbeddings) -> None:
    async def once() -> list[float]:
        vector = await emb.aembed_query(TEXTS[1])
        await emb.aclose()
        return vector

    # Two loops one after the other, as two asyncio.run calls in a script would make.
    first = asyncio.run(once())
    second = asyncio.run(once())
    assert close(first, second)
    assert close(first, emb.embed_query(TEXTS[1]))


def test_documents_round_trip_through_chroma(chroma: Chroma, emb: VLLMMultimodalEmbeddings) -> None:
    ids = chroma.add_documents(
        [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(TEXTS)]
    )
    assert len(ids) == len(TEXTS)
    hit = chroma.similarity_search_by_vector(emb.embed_documents([TEXTS[3]])[0], k=1)[0]
    assert hit.metadata["i"] == 3


def test_query_cache_in_its_own_store(
    vllm_server: Any, counting_http: httpx.Client, requests: list[str]
) -> None:
    emb = VLLMMultimodalEmbeddings(
        base_url=vllm_server.base_url, model=vllm_server.model, http_client=counting_http
    )
    doc_store, query_store = InMemoryByteStore(), InMemoryByteStore()
    cached = CacheBackedEmbeddings.from_bytes_store(
        emb,
        doc_store,
        namespace=emb.cache_namespace,
        key_encoder="sha256",
        # Not True: that would share the document keys, and a query vector differs here.
        query_embedding_cache=query_store,
    )
    doc = cached.embed_documents([TEXTS[0]])[0]
    query = cached.embed_query(TEXTS[0])
    sent = len(requests)
    assert cached.embed_query(TEXTS[0]) == query
    assert len(requests) == sent
    assert close(query, emb.embed_query(TEXTS[0]))
    assert not close(query, doc)
    assert len(list(query_store.yield_keys())) == len(list(doc_store.yield_keys())) == 1


@pytest.mark.asyncio
async def test_async_image_error_names_the_item(
    emb: VLLMMultimodalEmbeddings, images: list[Path], tmp_path: Path
) -> None:
    with pytest.raises(ImageLoadError) as info:
        await emb.aembed_image([str(images[0]), str(images[1]), str(tmp_path / "gone.png")])
    assert info.value.index == 2
    assert "gone.png" in str(info.value)
    await emb.aclose()


def test_one_probe_whatever_the_number_of_event_loops(
    vllm_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vllm_multimodal_embeddings.embeddings._client as client_module

    probes: list[str | None] = []
    real = client_module.probe

    def counting(model: str | None) -> Any:
        probes.append(model)
        return real(model)

    monkeypatch.setattr(client_module, "probe", counting)
    emb = VLLMMultimodalEmbeddings(base_url=vllm_server.base_url)

    async def query(i: int) -> list[float]:
        try:
            return await emb.aembed_query(f"query {i}")
        finally:
            await emb.aclose()  # this loop's connections end with it

    vectors = [asyncio.run(query(i)) for i in range(10)]
    vectors.append(emb.embed_query("query 0"))
    emb.close()
    assert len(probes) == 1
    assert np.allclose(vectors[0], vectors[-1], atol=1e-5)
