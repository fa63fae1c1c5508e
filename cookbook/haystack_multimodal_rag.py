"""Haystack multimodal RAG: images, captions and PDF pages in one store, a text question, reranked.

An indexing pipeline turns the image files into Documents (Haystack's ``ImageFileToDocument``),
adds the captions as text Documents and every page of a generated PDF as a Document naming its
file and ``page_number``; ``VLLMMultimodalDocumentEmbedder`` embeds each as what it is (image,
page, text) and a ``DocumentWriter`` fills an ``InMemoryDocumentStore``. A query pipeline embeds
the question (``VLLMMultimodalTextEmbedder``), recalls ``--k`` Documents
(``InMemoryEmbeddingRetriever``) and reranks them with Qwen3-VL-Reranker
(``VLLMMultimodalRanker``). The query pipeline is then saved as YAML, loaded back and run again.

Environment:
    VLLM_BASE_URL           embedder server root, e.g. http://localhost:8000 (required)
    VLLM_RERANKER_BASE_URL  reranker server root, e.g. http://localhost:8001 (required)
    VLLM_API_KEY            bearer token for both, when they run with --api-key (optional)
    VLLM_EMBEDDING_MODEL    served embedder name (optional; default: the server's first model)
    VLLM_RERANKER_MODEL     served reranker name (optional; default: the server's first model)

Run:
    pip install "vllm-multimodal-embeddings[cookbook]"   # Haystack, pypdfium2, reportlab
    docker compose -f docker/compose.yaml --profile reranker up -d   # both servers
    python cookbook/haystack_multimodal_rag.py --question "a red circle" --k 6 --top-k 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from haystack import Document, Pipeline
from haystack.components.converters.image import ImageFileToDocument
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.core.errors import PipelineRuntimeError
from haystack.document_stores.in_memory import InMemoryDocumentStore
from reportlab.pdfgen import canvas

from vllm_multimodal_embeddings import VLLMEmbeddingError, pdf_page_count
from vllm_multimodal_embeddings.haystack import (
    VLLMMultimodalDocumentEmbedder,
    VLLMMultimodalRanker,
    VLLMMultimodalTextEmbedder,
)

ASSETS = Path(__file__).parent / "assets"
#: Loading a pipeline imports only modules on Haystack's allowlist: ours must be named.
ALLOWED = ["vllm_multimodal_embeddings.haystack.*"]


def write_brochure(path: Path) -> None:
    """A two-page PDF: a drawn red circle with a heading, then a page of text."""
    c = canvas.Canvas(str(path))
    c.setFont("Helvetica-Bold", 22)
    c.drawString(60, 760, "Shapes and colours")
    c.setFillColorRGB(0.9, 0.1, 0.1)
    c.circle(300, 450, 120, fill=1, stroke=0)
    c.showPage()
    c.setFont("Helvetica", 12)
    c.drawString(60, 760, "Opening hours: Monday to Friday, nine to five.")
    c.showPage()
    c.save()


def label(doc: Document) -> str:
    if doc.content:
        return f"[text]  {doc.content}"
    page = doc.meta.get("page_number")
    if page:
        return f"[page]  {doc.meta['file_path']} p.{page}"
    return f"[image] {doc.meta['file_path']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default="a red circle", help="the text query")
    parser.add_argument("--k", type=int, default=6, help="documents the embedder recalls")
    parser.add_argument("--top-k", type=int, default=3, help="documents the ranker keeps")
    args = parser.parse_args()
    if not os.environ.get("VLLM_RERANKER_BASE_URL"):
        print("error: set VLLM_RERANKER_BASE_URL to the reranker server", file=sys.stderr)
        return 1

    captions: dict[str, str] = json.loads((ASSETS / "captions.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        # Every file the Documents name lives under one root: the embedder and the ranker
        # resolve meta["file_path"] there (and refuse paths that leave it).
        root = Path(tmp)
        for name in captions:
            (root / name).write_bytes((ASSETS / name).read_bytes())
        write_brochure(root / "brochure.pdf")

        images = ImageFileToDocument().run(sources=[root / n for n in captions])["documents"]
        texts = [Document(content=text) for text in captions.values()]
        pages = [
            Document(meta={"file_path": "brochure.pdf", "page_number": n})
            for n in range(1, pdf_page_count(root / "brochure.pdf") + 1)
        ]

        store = InMemoryDocumentStore()
        indexing = Pipeline()
        indexing.add_component(
            "embedder", VLLMMultimodalDocumentEmbedder(root_path=str(root), progress_bar=False)
        )
        indexing.add_component("writer", DocumentWriter(document_store=store))
        indexing.connect("embedder.documents", "writer.documents")

        query = Pipeline()
        query.add_component("embedder", VLLMMultimodalTextEmbedder())
        query.add_component(
            "retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=args.k)
        )
        query.add_component("ranker", VLLMMultimodalRanker(root_path=str(root), top_k=args.top_k))
        query.connect("embedder.embedding", "retriever.query_embedding")
        query.connect("retriever.documents", "ranker.documents")
        inputs = {"embedder": {"text": args.question}, "ranker": {"query": args.question}}

        try:
            indexing.run({"embedder": {"documents": images + texts + pages}})
            print(
                f"indexed {store.count_documents()} documents: {len(images)} images, "
                f"{len(texts)} captions, {len(pages)} PDF pages"
            )
            result = query.run(inputs, include_outputs_from={"retriever"})
            # The pipeline as a file: no key in it (VLLM_API_KEY is read when it is loaded).
            loaded = Pipeline.loads(query.dumps(), allowed_modules=ALLOWED)
            again = loaded.run(inputs)
        finally:
            indexing.close()
            query.close()

    recalled, best = result["retriever"]["documents"], result["ranker"]["documents"]
    print(f"\nquestion: {args.question!r}")
    print(f"stage 1, embedder recall ({len(recalled)}):")
    for rank, doc in enumerate(recalled, 1):
        print(f"  {rank}. {label(doc)}")
    print(f"stage 2, reranked (top {len(best)}):")
    for rank, doc in enumerate(best, 1):
        print(f"  {rank}. {doc.score or 0.0:.4f}  {label(doc)}")
    same = [d.id for d in again["ranker"]["documents"]] == [d.id for d in best]
    print(f"query pipeline loaded back from YAML: {'same' if same else 'DIFFERENT'} results")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (VLLMEmbeddingError, PipelineRuntimeError) as exc:
        # Haystack wraps a component's error: show ours (unreachable server, bad input) alone.
        cause = exc.__cause__ if isinstance(exc.__cause__, VLLMEmbeddingError) else exc
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(1)
