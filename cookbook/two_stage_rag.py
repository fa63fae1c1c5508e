"""Two-stage multimodal RAG: recall with Qwen3-VL-Embedding, precision with Qwen3-VL-Reranker.

Images and their captions go into one in-memory Chroma collection through
``VLLMMultimodalEmbeddings``; a retriever recalls ``--k`` candidates (texts and images mixed) for
a text question; ``VLLMMultimodalReranker`` rescores every candidate against the question on
the reranker server and keeps the best ``--top-n``, through LangChain's
``ContextualCompressionRetriever``. The official two-stage pipeline, on two vLLM servers.

Environment:
    VLLM_BASE_URL           embedder server root, e.g. http://localhost:8000 (required)
    VLLM_RERANKER_BASE_URL  reranker server root, e.g. http://localhost:8001 (required)
    VLLM_API_KEY            bearer token for both, when they run with --api-key (optional)
    VLLM_EMBEDDING_MODEL    served embedder name (optional; default: the server's first model)
    VLLM_RERANKER_MODEL     served reranker name (optional; default: the server's first model)

Run:
    docker compose -f docker/compose.yaml --profile reranker up -d   # both servers
    python cookbook/two_stage_rag.py --question "a red circle" --k 8 --top-n 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

import chromadb
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document

from vllm_multimodal_embeddings import VLLMEmbeddingError
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings, VLLMMultimodalReranker

ASSETS = Path(__file__).parent / "assets"


def label(doc: Document) -> str:
    if "image" in doc.metadata:
        return f"[image] {Path(doc.metadata['image']).name}"
    return f"[text]  {doc.page_content}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-dir", type=Path, default=ASSETS, help="images + captions.json")
    parser.add_argument("--question", default="a red circle", help="the text query")
    parser.add_argument("--k", type=int, default=8, help="candidates the embedder recalls")
    parser.add_argument("--top-n", type=int, default=3, help="results the reranker keeps")
    args = parser.parse_args()
    if not os.environ.get("VLLM_RERANKER_BASE_URL"):
        print("error: set VLLM_RERANKER_BASE_URL to the reranker server", file=sys.stderr)
        return 1

    captions: dict[str, str] = json.loads((args.images_dir / "captions.json").read_text())
    images = [args.images_dir / name for name in sorted(captions)]

    with VLLMMultimodalEmbeddings() as embeddings:
        store = Chroma(
            client=chromadb.EphemeralClient(Settings(anonymized_telemetry=False)),
            collection_name=f"two-stage-{uuid.uuid4().hex[:8]}",
            embedding_function=embeddings,
            collection_metadata={"hnsw:space": "cosine"},
        )
        # Captions as text documents; images as image documents. Chroma keeps an image's
        # bytes (base64) as its page_content, so its path goes in metadata for the reranker.
        store.add_texts(list(captions.values()))
        store.add_images(
            uris=[str(p) for p in images], metadatas=[{"image": str(p)} for p in images]
        )
        print(f"indexed {len(captions)} captions and {len(images)} images")

        recall = store.as_retriever(search_kwargs={"k": args.k})
        candidates = recall.invoke(args.question)

        reranker = VLLMMultimodalReranker(top_n=args.top_n, text_with_image=False)
        two_stage = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=recall)
        try:
            best = two_stage.invoke(args.question)
        finally:
            reranker.close()

    print(f"\nquestion: {args.question!r}")
    print(f"stage 1, embedder recall ({len(candidates)}):")
    for rank, doc in enumerate(candidates, 1):
        print(f"  {rank}. {label(doc)}")
    print(f"stage 2, reranked (top {len(best)}):")
    for rank, doc in enumerate(best, 1):
        print(f"  {rank}. {doc.metadata['relevance_score']:.4f}  {label(doc)}")
    if "tiny" in (reranker.model or "") or "tiny" in str(embeddings.model or ""):
        print("note: random-weight test models; the ranking shows the plumbing, not the meaning")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
