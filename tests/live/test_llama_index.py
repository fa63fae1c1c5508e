"""VLLMMultiModalEmbedding against the real server, inside real LlamaIndex objects.

The weights are random: assertions are about self-retrieval, equality between paths,
request counts and events, never about meaning.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.vector_stores.qdrant")

from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from llama_index.core.schema import (
    BaseNode,
    Document,
    ImageDocument,
    ImageNode,
    MetadataMode,
    QueryBundle,
    TextNode,
)
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from tests.conftest import LiveServer
from vllm_multimodal_embeddings import BadRequestError, ImageLoadError
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding

pytestmark = [
    # llama-index-readers-file's ImageReader opens image files without closing them.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning"),
    # QdrantVectorStore creates payload indexes, which local-mode Qdrant ignores with a warning.
    pytest.mark.filterwarnings(
        "ignore:Payload indexes have no effect in the local Qdrant:UserWarning"
    ),
]

COLORS = [(220, 30, 30), (30, 200, 40), (20, 40, 230), (240, 220, 20), (0, 0, 0), (200, 0, 200)]
CAPTIONS = [
    "A red square on a plain background.",
    "Quarterly revenue grew by four percent.",
    "The ferry leaves the harbour at noon.",
    "Mix flour, water and salt into a dough.",
]


def _png(color: tuple[int, int, int], pattern: int) -> bytes:
    im = Image.new("RGB", (64 + 8 * pattern, 64), color)
    # A stripe whose position differs per image, so no two images share pixels.
    for x in range(4 * pattern, 4 * pattern + 6):
        for y in range(64):
            im.putpixel((x, y), (255 - color[0], 255 - color[1], 255 - color[2]))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _cos(a: list[float], b: list[float]) -> float:
    va, vb = np.asarray(a), np.asarray(b)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


@pytest.fixture
def emb(vllm_server: LiveServer) -> Iterator[VLLMMultiModalEmbedding]:
    model = VLLMMultiModalEmbedding(base_url=vllm_server.base_url, model_name=vllm_server.model)
    yield model
    model.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Images and caption files, as a user's data folder would hold them."""
    root = tmp_path / "data"
    root.mkdir()
    for i, color in enumerate(COLORS):
        (root / f"image_{i}.png").write_bytes(_png(color, i))
    for i, caption in enumerate(CAPTIONS):
        (root / f"caption_{i}.txt").write_text(caption, encoding="utf-8")
    return root


def test_multimodal_index_in_qdrant(emb: VLLMMultiModalEmbedding, folder: Path) -> None:
    docs = SimpleDirectoryReader(str(folder)).load_data()
    image_docs = [d for d in docs if isinstance(d, ImageDocument)]
    text_docs = [d for d in docs if not isinstance(d, ImageDocument)]
    assert len(image_docs) == len(COLORS)
    assert len(text_docs) == len(CAPTIONS)

    qdrant = QdrantClient(location=":memory:")
    storage = StorageContext.from_defaults(
        vector_store=QdrantVectorStore(client=qdrant, collection_name="texts"),
        image_store=QdrantVectorStore(client=qdrant, collection_name="images"),
    )
    index = MultiModalVectorStoreIndex.from_documents(
        docs, storage_context=storage, embed_model=emb, image_embed_model=emb
    )
    assert qdrant.count("images").count == len(COLORS)
    assert qdrant.count("texts").count == len(CAPTIONS)

    retriever = index.as_retriever(
        similarity_top_k=len(CAPTIONS), image_similarity_top_k=len(COLORS)
    )
    # Image -> image: the image query uses the same (document) instruction as indexing,
    # so an indexed image must come back first, with a cosine of ~1.
    for doc in image_docs:
        assert doc.image_path is not None
        hits = retriever.image_to_image_retrieve(doc.image_path)
        assert len(hits) == len(COLORS)
        top = hits[0].node
        assert isinstance(top, ImageNode)
        assert top.image_path == doc.image_path
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)

    # Text -> text: with random weights a query-instruction vector is unrelated to the
    # document-instruction vector of the same text, so query by the document vector of
    # exactly what the index embedded (content plus embed metadata), through the retriever.
    for doc in text_docs:
        content = doc.get_content(metadata_mode=MetadataMode.EMBED)
        bundle = QueryBundle(query_str=doc.text, embedding=emb.get_text_embedding(content))
        hits = retriever.text_retrieve(bundle)
        assert hits[0].node.ref_doc_id == doc.doc_id
        assert hits[0].node.get_content() == doc.text
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)

    # Text -> image runs end to end (query instruction) and returns image nodes.
    hits = retriever.text_to_image_retrieve("a red square")
    assert len(hits) == len(COLORS)
    assert all(isinstance(h.node, ImageNode) for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_image_forms_agree(emb: VLLMMultiModalEmbedding, tmp_path: Path) -> None:
    """Path, str path, BytesIO and image nodes (base64 / path) give the same vector."""
    data = _png((10, 120, 200), 3)
    path = tmp_path / "x.png"
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    reference = emb.get_image_embedding(str(path))
    assert len(reference) == 128
    assert np.linalg.norm(reference) == pytest.approx(1.0, abs=1e-3)
    others = [
        emb.get_image_embedding(io.BytesIO(data)),
        *emb.get_image_embedding_batch([path, io.BytesIO(data)]),  # type: ignore[list-item]
        *emb.embed_image_nodes(
            [
                ImageNode(image=b64, image_mimetype="image/png"),
                ImageNode(image_path=str(path)),
                # base64 wins over a path that does not exist.
                ImageNode(image=b64, image_path=str(tmp_path / "missing.png")),
            ]
        ),
    ]
    for vector in others:
        assert _cos(reference, vector) > 0.9999


def test_node_text_with_image(vllm_server: LiveServer, tmp_path: Path) -> None:
    data = _png((90, 90, 90), 1)
    node = ImageNode(image=base64.b64encode(data).decode(), text="A grey card.")
    plain = VLLMMultiModalEmbedding(base_url=vllm_server.base_url)
    joint = VLLMMultiModalEmbedding(base_url=vllm_server.base_url, embed_node_text_with_image=True)
    image_only = plain.embed_image_nodes([node])[0]
    both = joint.embed_image_nodes([node])[0]
    assert _cos(image_only, plain.get_image_embedding(io.BytesIO(data))) > 0.9999
    # The pair is one vector, different from the image alone and the text alone.
    assert _cos(both, image_only) < 0.999
    assert _cos(both, plain.get_text_embedding("A grey card.")) < 0.999
    # An image node without text falls back to the image alone.
    bare = ImageNode(image=base64.b64encode(data).decode())
    assert _cos(joint.embed_image_nodes([bare])[0], image_only) > 0.9999
    plain.close()
    joint.close()


@pytest.mark.asyncio
async def test_async_paths_match_sync(emb: VLLMMultiModalEmbedding, tmp_path: Path) -> None:
    images: list[Any] = []
    for i, color in enumerate(COLORS):
        path = tmp_path / f"a{i}.png"
        path.write_bytes(_png(color, i))
        images.append(str(path))
    emb.embed_batch_size = 4  # several requests, run concurrently on the async path

    sync_text = emb.get_text_embedding_batch(CAPTIONS)
    async_text = await emb.aget_text_embedding_batch(CAPTIONS)
    sync_img = emb.get_image_embedding_batch(images)
    async_img = await emb.aget_image_embedding_batch(images)
    assert len(async_text) == len(CAPTIONS) and len(async_img) == len(images)
    for a, b in [*zip(sync_text, async_text, strict=True), *zip(sync_img, async_img, strict=True)]:
        assert _cos(a, b) > 0.9999
    assert _cos(await emb.aget_query_embedding("q"), emb.get_query_embedding("q")) > 0.9999

    def nodes() -> list[BaseNode]:
        return [
            *(Document(text=c, id_=f"t{i}") for i, c in enumerate(CAPTIONS)),
            *(ImageDocument(image_path=p, id_=f"i{i}") for i, p in enumerate(images)),
        ]

    pipeline = IngestionPipeline(transformations=[emb])
    async_nodes = await pipeline.arun(documents=nodes())
    sync_nodes = IngestionPipeline(transformations=[emb]).run(documents=nodes())
    by_id = {n.node_id: n for n in sync_nodes}
    assert len(async_nodes) == len(CAPTIONS) + len(images)
    for node in async_nodes:
        assert node.embedding is not None
        assert _cos(node.embedding, by_id[node.node_id].embedding or []) > 0.9999
    # Image documents were embedded as images, text documents as text (document instruction).
    image_vectors = {n.node_id: n.embedding for n in async_nodes if n.node_id.startswith("i")}
    for i, vector in enumerate(sync_img):
        assert _cos(image_vectors[f"i{i}"] or [], vector) > 0.9999
    text_vectors = {n.node_id: n.embedding for n in async_nodes if n.node_id.startswith("t")}
    for i, vector in enumerate(sync_text):
        assert _cos(text_vectors[f"t{i}"] or [], vector) > 0.9999
    await emb.aclose()


def test_bad_image_nodes_name_the_node(emb: VLLMMultiModalEmbedding, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(_png((1, 2, 3), 0))
    missing = str(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError) as info:
        emb.embed_image_nodes(
            [ImageNode(image_path=str(good)), ImageNode(image_path=missing, id_="node-missing")]
        )
    assert info.value.index == 1
    assert info.value.source == missing
    assert "node-missing" in str(info.value) and "not found" in str(info.value)

    corrupt = base64.b64encode(b"\x89PNG\r\n\x1a\n garbage").decode()
    with pytest.raises(ImageLoadError) as info:
        emb.embed_image_nodes([ImageNode(image=corrupt, id_="node-corrupt")])
    assert info.value.index == 0
    assert "node-corrupt" in str(info.value)

    with pytest.raises(ImageLoadError) as info:
        emb.embed_image_nodes([ImageNode(image="not base64 at all!", id_="node-b64")])
    assert "node-b64" in str(info.value) and "base64" in str(info.value)

    # The index's own path hands over paths: the error names the position in the batch.
    with pytest.raises(ImageLoadError) as info:
        emb.get_image_embedding_batch([str(good), str(good), missing])
    assert info.value.index == 2


@pytest.mark.asyncio
async def test_bad_image_nodes_async(emb: VLLMMultiModalEmbedding) -> None:
    with pytest.raises(ImageLoadError) as info:
        await emb.aembed_image_nodes([ImageNode(image_path="/no/such.png", id_="n-async")])
    assert "n-async" in str(info.value) and info.value.index == 0
    await emb.aclose()


def _counting_client() -> tuple[httpx.Client, list[str]]:
    paths: list[str] = []

    def hook(request: httpx.Request) -> None:
        paths.append(request.url.path)

    return httpx.Client(event_hooks={"request": [hook]}), paths


@pytest.mark.parametrize(("batch_size", "expected"), [(1, 6), (2, 3), (4, 2), (16, 1)])
def test_batch_size_sets_requests_across_slices(
    vllm_server: LiveServer, tmp_path: Path, batch_size: int, expected: int
) -> None:
    # embed_batch_size=2 slices the list for callbacks only: one stream runs across the
    # slices, so a request may carry more than a slice (16 -> 1 request, not 3).
    http, paths = _counting_client()
    emb = VLLMMultiModalEmbedding(
        base_url=vllm_server.base_url,
        embed_batch_size=2,
        batch_size=batch_size,
        http_client=http,
    )
    images = [io.BytesIO(_png(c, i)) for i, c in enumerate(COLORS)]
    emb.get_text_embedding("warm up")  # the server probe happens here, outside the count
    paths.clear()
    assert len(emb.get_image_embedding_batch(images)) == len(COLORS)  # type: ignore[arg-type]
    assert paths.count("/v1/embeddings") == expected
    paths.clear()
    assert len(emb.get_text_embedding_batch(CAPTIONS + CAPTIONS[:2])) == 6
    assert paths.count("/v1/embeddings") == expected
    http.close()


def test_an_embeddings_cache_keeps_llama_index_slices(vllm_server: LiveServer) -> None:
    from llama_index.core.storage.kvstore import SimpleKVStore

    http, paths = _counting_client()
    emb = VLLMMultiModalEmbedding(
        base_url=vllm_server.base_url,
        embed_batch_size=2,
        batch_size=16,
        http_client=http,
        embeddings_cache=SimpleKVStore(),
    )
    emb.get_text_embedding("warm up")
    paths.clear()
    first = emb.get_text_embedding_batch(CAPTIONS)
    assert paths.count("/v1/embeddings") == 2  # LlamaIndex's own slices of 2, not one stream
    paths.clear()
    assert emb.get_text_embedding_batch(CAPTIONS) == first  # from the cache
    assert paths.count("/v1/embeddings") == 0
    streamed = VLLMMultiModalEmbedding(base_url=vllm_server.base_url, embed_batch_size=2)
    cos = np.sum(np.asarray(first) * np.asarray(streamed.get_text_embedding_batch(CAPTIONS)), 1)
    assert np.all(cos > 0.999)
    streamed.close()
    emb.close()
    http.close()


@pytest.mark.asyncio
async def test_embed_batch_size_async(vllm_server: LiveServer) -> None:
    paths: list[str] = []

    async def hook(request: httpx.Request) -> None:
        paths.append(request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as http:
        emb = VLLMMultiModalEmbedding(
            base_url=vllm_server.base_url, embed_batch_size=2, async_http_client=http
        )
        await emb.aget_text_embedding("warm up")
        paths.clear()
        images = [io.BytesIO(_png(c, i)) for i, c in enumerate(COLORS)]
        assert len(await emb.aget_image_embedding_batch(images)) == len(COLORS)  # type: ignore[arg-type]
        # Three slices of 2, one stream: the tuned batch (16 to start) takes all 6 at once.
        assert paths.count("/v1/embeddings") == 1
        paths.clear()
        assert len(await emb.aget_text_embedding_batch(CAPTIONS + CAPTIONS[:2])) == 6
        assert paths.count("/v1/embeddings") == 1


def test_callbacks_and_instrumentation(vllm_server: LiveServer, tmp_path: Path) -> None:
    counter = TokenCountingHandler(tokenizer=lambda s: s.split())
    emb = VLLMMultiModalEmbedding(
        base_url=vllm_server.base_url,
        embed_batch_size=2,
        api_key="sk-never-in-events",
        callback_manager=CallbackManager([counter]),
    )

    class Counter(BaseEventHandler):
        starts: int = 0
        ends: int = 0
        payloads: list[dict[str, Any]] = Field(default_factory=list)

        def handle(self, event: BaseEvent, **kwargs: Any) -> None:
            if isinstance(event, EmbeddingStartEvent):
                self.starts += 1
                self.payloads.append(event.model_dict)
            elif isinstance(event, EmbeddingEndEvent):
                self.ends += 1

    handler = Counter()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    try:
        emb.get_query_embedding("one two three")
        emb.get_text_embedding_batch(["a b", "c d e", "f"])  # 2 batches of <= 2
    finally:
        dispatcher.event_handlers.remove(handler)
    assert handler.starts == handler.ends == 3
    assert all("sk-never" not in repr(p) for p in handler.payloads)
    assert handler.payloads[0]["class_name"] == "VLLMMultiModalEmbedding"
    assert counter.total_embedding_token_count == 3 + 2 + 3 + 1

    # Image batches fire one callback event per embed_batch_size chunk.
    path = tmp_path / "p.png"
    path.write_bytes(_png((5, 5, 5), 2))
    counter.reset_counts()
    emb.get_image_embedding_batch([str(path)] * 3)
    assert len(counter.embedding_token_counts) == 3  # one record per image
    # embed_batch_size=2: chunks of 2 and 1, so two callback events.
    assert len({e.event_id for e in counter.embedding_token_counts}) == 2
    emb.close()


def test_settings_embed_model(emb: VLLMMultiModalEmbedding) -> None:
    previous = Settings._embed_model
    try:
        Settings.embed_model = emb
        assert Settings.embed_model is emb
        index = VectorStoreIndex.from_documents([Document(text=c) for c in CAPTIONS])
        nodes = list(index.docstore.docs.values())
        target = nodes[2]
        vector = emb.get_text_embedding(target.get_content(metadata_mode=MetadataMode.EMBED))
        hits = index.as_retriever(similarity_top_k=2).retrieve(
            QueryBundle(query_str="", embedding=vector)
        )
        assert hits[0].node.node_id == target.node_id
    finally:
        Settings._embed_model = previous


def _pipeline_nodes(image: Path) -> list[BaseNode]:
    return [
        TextNode(text="first", id_="n0"),
        ImageNode(image_path=str(image), id_="n1"),
        TextNode(text="third", id_="n2"),
        TextNode(text="word " * 5000, id_="node-too-long"),  # over the 2048-token context
        TextNode(text="fifth", id_="n4"),
    ]


def test_a_pipeline_error_names_the_node(emb: VLLMMultiModalEmbedding, tmp_path: Path) -> None:
    image = tmp_path / "ok.png"
    image.write_bytes(_png((5, 6, 7), 2))
    with pytest.raises(BadRequestError) as info:
        IngestionPipeline(transformations=[emb], disable_cache=True).run(
            nodes=_pipeline_nodes(image)
        )
    # Its position among all nodes (text and image nodes are embedded as two groups).
    assert info.value.index == 3
    assert "node 'node-too-long'" in str(info.value)

    missing = ImageNode(image_path=str(tmp_path / "gone.png"), id_="node-gone")
    with pytest.raises(ImageLoadError) as image_info:
        emb([TextNode(text="a"), ImageNode(image_path=str(image)), missing])
    assert image_info.value.index == 2 and "node-gone" in str(image_info.value)


@pytest.mark.asyncio
async def test_an_async_pipeline_error_names_the_node(
    emb: VLLMMultiModalEmbedding, tmp_path: Path
) -> None:
    image = tmp_path / "ok.png"
    image.write_bytes(_png((5, 6, 7), 2))
    emb.embed_batch_size = 2  # the bad node sits in the second hand-over
    with pytest.raises(BadRequestError) as info:
        await emb.acall(_pipeline_nodes(image))
    assert info.value.index == 3
    assert "node 'node-too-long'" in str(info.value)
    await emb.aclose()


def test_a_worker_process_error_reaches_the_pipeline(
    emb: VLLMMultiModalEmbedding, tmp_path: Path
) -> None:
    # num_workers pickles the error back from a spawned process; before status errors could
    # be pickled, this run hung for ever. The node id survives the trip.
    image = tmp_path / "ok.png"
    image.write_bytes(_png((5, 6, 7), 2))
    with pytest.raises(BadRequestError) as info:
        IngestionPipeline(transformations=[emb], disable_cache=True).run(
            nodes=_pipeline_nodes(image), num_workers=2
        )
    assert info.value.status_code == 400
    assert "node 'node-too-long'" in str(info.value)
