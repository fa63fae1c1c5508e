"""PDF pages against the real server, through the client, LangChain and LlamaIndex.

Every path must give a page the vector of the same page rendered here, independently (PDFium
called by the test at the size the budget gives), and sent as a plain image. The PDFs are
written by the test: several pages, a rotated one, a corrupt file, an encrypted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("reportlab")

from tests.helpers import chat_vectors, data_uri, recipe_messages
from tests.pdfs import page_points, render_independently, write_corrupt, write_pdf
from vllm_multimodal_embeddings import AsyncEmbeddingClient, EmbeddingClient, ImageLoadError
from vllm_multimodal_embeddings._types import Content, PdfPage
from vllm_multimodal_embeddings.inputs._images import smart_resize
from vllm_multimodal_embeddings.inputs._pdf import pdf_pages

# Small pages keep the tiny CPU server quick: ~190 image tokens a page.
BUDGET = 200_000
TEXTS = ["Quarterly report", "Revenue table", "Figure: growth", "Appendix"]


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four pages; page 3 is rotated (/Rotate 90)."""
    path = tmp_path_factory.mktemp("pdf") / "report.pdf"
    return write_pdf(path, TEXTS, rotate={3: 90})


@pytest.fixture
def client(vllm_server: Any) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(base_url=vllm_server.base_url, max_image_pixels=BUDGET) as c:
        yield c


def independent(path: Path, page: int) -> Any:
    """The page drawn by the test at the size the budget gives (its own arithmetic)."""
    width_pt, height_pt = page_points(path, page)
    scale = (BUDGET / (width_pt * height_pt)) ** 0.5
    size = smart_resize(round(width_pt * scale), round(height_pt * scale), max_pixels=BUDGET)
    return render_independently(path, page, size)


@pytest.fixture(scope="module")
def expected(doc: Path, vllm_server: Any) -> np.ndarray:
    """Each page's vector: rendered here, sent as a plain image through the client."""
    with EmbeddingClient(base_url=vllm_server.base_url, max_image_pixels=BUDGET) as c:
        images = [independent(doc, n) for n in range(1, len(TEXTS) + 1)]
        return np.array(c.embed_images(images))


def test_pages_equal_independently_rendered_images(
    client: EmbeddingClient, doc: Path, expected: np.ndarray
) -> None:
    inputs = [PdfPage(doc, 1), f"{doc}#page=2", f"{doc.as_uri()}#page=3", PdfPage(str(doc), 4)]
    vectors = np.array(client.embed_images(inputs))
    assert vectors.shape == expected.shape
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    # Pages are different images: no page got another page's vector.
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)


def test_a_page_matches_the_hand_written_recipe(
    client: EmbeddingClient, doc: Path, vllm_server: Any
) -> None:
    # Past the client entirely: the rendered page as a PNG data URI in a hand-written request.
    import io

    buf = io.BytesIO()
    independent(doc, 3).save(buf, format="PNG")
    reference = chat_vectors(
        vllm_server.base_url,
        vllm_server.model,
        recipe_messages(image=data_uri(buf.getvalue())),
    )[0]
    vector = np.array(client.embed_images([PdfPage(doc, 3)])[0])
    np.testing.assert_allclose(vector, reference, atol=1e-5)


def test_every_page_of_a_file_streams_in_order(
    client: EmbeddingClient, doc: Path, expected: np.ndarray
) -> None:
    vectors = np.array(list(client.iter_embed_images(pdf_pages(doc))))
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_a_page_with_text_is_one_vector(client: EmbeddingClient, doc: Path) -> None:
    with_text = client.embed([Content(text="Revenue", image=PdfPage(doc, 2))])[0]
    same = client.embed([Content(text="Revenue", image=independent(doc, 2))])[0]
    np.testing.assert_allclose(with_text, same, atol=1e-6)


@pytest.mark.asyncio
async def test_async_client_renders_pages_too(
    vllm_server: Any, doc: Path, expected: np.ndarray
) -> None:
    async with AsyncEmbeddingClient(base_url=vllm_server.base_url, max_image_pixels=BUDGET) as c:
        vectors = np.array(await c.embed_images([f"{doc}#page={n}" for n in (4, 1)]))
    np.testing.assert_allclose(vectors, expected[[3, 0]], atol=1e-6)


@pytest.mark.parametrize("kind", ["corrupt", "encrypted", "out of range"])
def test_a_bad_page_in_a_batch_names_file_page_and_position(
    client: EmbeddingClient, doc: Path, tmp_path: Path, kind: str
) -> None:
    if kind == "corrupt":
        bad, match = PdfPage(write_corrupt(tmp_path / "broken.pdf"), 1), "not a valid PDF"
    elif kind == "encrypted":
        secret = write_pdf(tmp_path / "secret.pdf", ["Hidden"], password="pw")
        bad, match = PdfPage(secret, 1), "encrypted"
    else:
        bad, match = PdfPage(doc, 9), "page 9 out of range: the PDF has 4 pages"
    with pytest.raises(ImageLoadError, match=match) as info:
        client.embed_images([PdfPage(doc, 1), PdfPage(doc, 2), bad])
    assert info.value.index == 2
    assert f"{bad.path}#page={bad.page}" in str(info.value)


# --- LangChain ---


def test_langchain_embed_image_takes_page_uris(
    vllm_server: Any, doc: Path, expected: np.ndarray
) -> None:
    pytest.importorskip("langchain_core")
    from vllm_multimodal_embeddings.langchain import PdfPageImageLoader, VLLMMultimodalEmbeddings

    docs = list(PdfPageImageLoader(doc).lazy_load())
    assert [d.metadata for d in docs] == [
        {"source": str(doc), "page_number": n} for n in range(1, len(TEXTS) + 1)
    ]
    assert docs[2].page_content == f"{doc}#page=3"
    with VLLMMultimodalEmbeddings(
        base_url=vllm_server.base_url, max_image_pixels=BUDGET
    ) as embeddings:
        vectors = np.array(embeddings.embed_image([d.page_content for d in docs]))
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


@pytest.mark.asyncio
async def test_langchain_aembed_image_takes_page_uris(
    vllm_server: Any, doc: Path, expected: np.ndarray
) -> None:
    pytest.importorskip("langchain_core")
    from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings

    async with VLLMMultimodalEmbeddings(
        base_url=vllm_server.base_url, max_image_pixels=BUDGET
    ) as embeddings:
        vectors = np.array(await embeddings.aembed_image([f"{doc}#page=2"]))
    np.testing.assert_allclose(vectors, expected[[1]], atol=1e-6)


# --- LlamaIndex ---


def test_llama_index_retrieves_pages(vllm_server: Any, doc: Path, expected: np.ndarray) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.indices import MultiModalVectorStoreIndex
    from llama_index.core.schema import ImageNode

    from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding, pdf_page_nodes

    nodes = list(pdf_page_nodes(doc))
    assert [n.metadata for n in nodes] == [
        {"source": str(doc), "page_number": n} for n in range(1, len(TEXTS) + 1)
    ]
    # Ids come from the page URI: the same file gives the same ids.
    assert [n.node_id for n in pdf_page_nodes(doc)] == [n.node_id for n in nodes]

    emb = VLLMMultiModalEmbedding(base_url=vllm_server.base_url, max_image_pixels=BUDGET)
    try:
        index = MultiModalVectorStoreIndex(nodes, embed_model=emb, image_embed_model=emb)
        stored = index.storage_context.vector_stores["image"]
        for n, node in enumerate(nodes):
            np.testing.assert_allclose(stored.get(node.node_id), expected[n], atol=1e-6)
        retriever = index.as_retriever(image_similarity_top_k=2)
        # Image -> image with the same instruction: each page finds itself first.
        for node in nodes:
            hits = retriever.image_to_image_retrieve(node.image_path or "")
            top = hits[0].node
            assert isinstance(top, ImageNode)
            assert top.metadata["page_number"] == node.metadata["page_number"]
            assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    finally:
        emb.close()


# --- an encrypted copy of the document, through every string path ---

PASSWORD = "Tr1cky pa55!"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same four pages, encrypted: the vectors must be the plain file's."""
    path = tmp_path_factory.mktemp("locked") / "locked.pdf"
    return write_pdf(path, TEXTS, rotate={3: 90}, password=PASSWORD)


def test_langchain_loader_and_embeddings_open_an_encrypted_pdf(
    vllm_server: Any, locked: Path, expected: np.ndarray
) -> None:
    pytest.importorskip("langchain_core")
    from vllm_multimodal_embeddings.langchain import PdfPageImageLoader, VLLMMultimodalEmbeddings

    docs = PdfPageImageLoader(locked, password=PASSWORD).load()
    with VLLMMultimodalEmbeddings(
        base_url=vllm_server.base_url,
        max_image_pixels=BUDGET,
        pdf_passwords={locked.name: PASSWORD},
    ) as embeddings:
        vectors = np.array(embeddings.embed_image([d.page_content for d in docs]))
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    with (
        VLLMMultimodalEmbeddings(
            base_url=vllm_server.base_url, pdf_passwords={locked.name: "wrong"}
        ) as embeddings,
        pytest.raises(ImageLoadError, match="does not open it") as info,
    ):
        embeddings.embed_image([d.page_content for d in docs[1:]])
    assert info.value.index == 0 and f"{locked}#page=2" in str(info.value)


def test_llama_index_nodes_and_embedding_open_an_encrypted_pdf(
    vllm_server: Any, locked: Path, expected: np.ndarray
) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.indices import MultiModalVectorStoreIndex

    from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding, pdf_page_nodes

    nodes = list(pdf_page_nodes(locked, password=PASSWORD))
    emb = VLLMMultiModalEmbedding(
        base_url=vllm_server.base_url, max_image_pixels=BUDGET, pdf_passwords=PASSWORD
    )
    try:
        index = MultiModalVectorStoreIndex(nodes, embed_model=emb, image_embed_model=emb)
        stored = index.storage_context.vector_stores["image"]
        for n, node in enumerate(nodes):
            np.testing.assert_allclose(stored.get(node.node_id), expected[n], atol=1e-6)
    finally:
        emb.close()
