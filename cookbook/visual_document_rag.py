"""Visual-document RAG: PDF pages as images, found by a text question, reranked.

A few PDFs are generated here (a report with text, a table and a bar chart; a menu; a field
guide with a figure). Every page becomes a LlamaIndex ``ImageNode`` (``pdf_page_nodes``) that
``VLLMMultiModalEmbedding`` renders at the model's pixel budget and embeds as an image; a
``MultiModalVectorStoreIndex`` retrieves pages for a text question embedded under the visual
document instruction of Qwen3-VL-Embedding's own evaluation ("Find a document image that
matches the given query."); ``VLLMMultimodalReranker`` (Qwen3-VL-Reranker) rescores the pages
against the question and keeps the best. No OCR, no text extraction: the model reads the page.

Environment:
    VLLM_BASE_URL           embedder server root, e.g. http://localhost:8000 (required)
    VLLM_RERANKER_BASE_URL  reranker server root, e.g. http://localhost:8001 (required)
    VLLM_API_KEY            bearer token for both, when they run with --api-key (optional)
    VLLM_EMBEDDING_MODEL    served embedder name (optional; default: the server's first model)
    VLLM_RERANKER_MODEL     served reranker name (optional; default: the server's first model)

Run:
    pip install "vllm-multimodal-embeddings[cookbook]"   # LlamaIndex, pypdfium2, reportlab
    docker compose -f docker/compose.yaml --profile reranker up -d   # both servers
    python cookbook/visual_document_rag.py --question "quarterly revenue by region" --k 4
    python cookbook/visual_document_rag.py --pdf-dir my_pdfs/   # your own PDFs instead
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from itertools import chain
from pathlib import Path

from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import NodeWithScore
from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfgen import canvas

from vllm_multimodal_embeddings import VLLMEmbeddingError
from vllm_multimodal_embeddings.llama_index import (
    VLLMMultiModalEmbedding,
    VLLMMultimodalReranker,
    pdf_page_nodes,
)

#: The query instruction of Qwen3-VL-Embedding's visual-document retrieval tasks.
VISDOC_QUERY = "Find a document image that matches the given query."


def write_report(path: Path) -> None:
    """Three pages: prose, a table of revenue by region, a bar chart (the last one landscape)."""
    c = canvas.Canvas(str(path), pagesize=A4)
    height = A4[1]
    c.setFont("Helvetica-Bold", 22)
    c.drawString(60, height - 80, "Annual report 2026")
    c.setFont("Helvetica", 12)
    prose = [
        "The company grew in every region this year.",
        "Operating costs fell after the move to a single data centre.",
        "Headcount rose from 120 to 164, mostly in engineering.",
        "The board proposes a dividend of 0.42 per share.",
    ]
    for i, line in enumerate(prose):
        c.drawString(60, height - 130 - 20 * i, line)
    c.showPage()

    c.setFont("Helvetica-Bold", 18)
    c.drawString(60, height - 80, "Quarterly revenue by region (million EUR)")
    rows = [
        ["Region", "Q1", "Q2", "Q3", "Q4"],
        ["North", "12.1", "13.4", "14.0", "15.2"],
        ["South", "8.3", "8.9", "9.6", "10.1"],
        ["East", "5.0", "5.7", "6.1", "7.4"],
        ["West", "9.9", "10.2", "10.8", "11.5"],
    ]
    c.setFont("Helvetica", 13)
    for r, row in enumerate(rows):
        y = height - 140 - 30 * r
        for col, cell in enumerate(row):
            c.drawString(70 + 95 * col, y, cell)
        c.line(60, y - 10, 60 + 95 * len(row), y - 10)
    c.showPage()

    c.setPageSize(landscape(A4))
    lh = landscape(A4)[1]
    c.setFont("Helvetica-Bold", 18)
    c.drawString(60, lh - 60, "Figure 1: revenue growth per quarter")
    for q, value in enumerate([35.3, 38.2, 40.5, 44.2]):
        c.setFillColorRGB(0.2, 0.4, 0.8)
        c.rect(120 + 150 * q, 80, 90, value * 8, fill=1, stroke=0)
        c.setFillColorRGB(0, 0, 0)
        c.drawString(145 + 150 * q, 60, f"Q{q + 1}")
    c.showPage()
    c.save()


def write_menu(path: Path) -> None:
    """One page: a price table."""
    c = canvas.Canvas(str(path), pagesize=A4)
    width, height = A4
    c.setFont("Helvetica-Bold", 24)
    c.drawString(60, height - 80, "Lunch menu")
    c.setFont("Helvetica", 14)
    for i, (dish, price) in enumerate(
        [("Tomato soup", "6.50"), ("Mushroom risotto", "14.00"), ("Apple pie", "5.00")]
    ):
        c.drawString(60, height - 130 - 28 * i, dish)
        c.drawRightString(width - 60, height - 130 - 28 * i, price)
    c.showPage()
    c.save()


def write_field_guide(path: Path) -> None:
    """Two pages: a drawn bird with a caption, then a page of notes."""
    c = canvas.Canvas(str(path), pagesize=A4)
    width, height = A4
    c.setFont("Helvetica-Bold", 22)
    c.drawString(60, height - 80, "Field guide: the robin")
    c.setFillColorRGB(0.85, 0.35, 0.1)
    c.circle(width / 2, height / 2, 90, fill=1, stroke=0)  # breast
    c.setFillColorRGB(0.45, 0.3, 0.2)
    c.circle(width / 2 + 80, height / 2 + 90, 45, fill=1, stroke=0)  # head
    c.setFillColorRGB(0, 0, 0)
    c.setFont("Helvetica", 12)
    c.drawString(60, 120, "Figure 2: a robin, drawn from a photograph.")
    c.showPage()
    c.setFont("Helvetica", 12)
    c.drawString(60, height - 80, "Robins sing at dawn and feed on worms and berries.")
    c.showPage()
    c.save()


def label(hit: NodeWithScore) -> str:
    meta = hit.node.metadata
    return f"{Path(meta['source']).name} p.{meta['page_number']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf-dir", type=Path, help="PDFs to index (default: generated ones)")
    parser.add_argument("--question", default="quarterly revenue by region", help="text query")
    parser.add_argument("--k", type=int, default=4, help="pages the embedder recalls")
    parser.add_argument("--top-n", type=int, default=2, help="pages the reranker keeps")
    args = parser.parse_args()
    if not os.environ.get("VLLM_RERANKER_BASE_URL"):
        print("error: set VLLM_RERANKER_BASE_URL to the reranker server", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.pdf_dir
        if folder is None:
            folder = Path(tmp)
            write_report(folder / "annual_report.pdf")
            write_menu(folder / "menu.pdf")
            write_field_guide(folder / "field_guide.pdf")
        pdfs = sorted(folder.glob("*.pdf"))
        # Pages are listed lazily and rendered one by one as they are embedded.
        nodes = list(chain.from_iterable(pdf_page_nodes(p) for p in pdfs))

        embed = VLLMMultiModalEmbedding(query_instruction=VISDOC_QUERY)
        reranker = VLLMMultimodalReranker(top_n=args.top_n, text_with_image=False)
        try:
            index = MultiModalVectorStoreIndex(nodes, embed_model=embed, image_embed_model=embed)
            print(f"indexed {len(nodes)} pages of {len(pdfs)} PDFs")
            retriever = index.as_retriever(image_similarity_top_k=args.k)
            candidates = retriever.text_to_image_retrieve(args.question)
            best = reranker.postprocess_nodes(candidates, query_str=args.question)
        finally:
            embed.close()
            reranker.close()

    print(f"\nquestion: {args.question!r}")
    print(f"stage 1, embedder recall ({len(candidates)}):")
    for rank, hit in enumerate(candidates, 1):
        print(f"  {rank}. {hit.score:.4f}  {label(hit)}")
    print(f"stage 2, reranked (top {len(best)}):")
    for rank, hit in enumerate(best, 1):
        print(f"  {rank}. {hit.score or 0.0:.4f}  {label(hit)}")
    if "tiny" in str(embed.model_name or ""):
        print("note: random-weight test models; the ranking shows the plumbing, not the meaning")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
