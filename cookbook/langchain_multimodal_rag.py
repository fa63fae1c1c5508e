"""Multimodal RAG with LangChain: images + captions in Chroma, a text query that finds images.

A folder of images (with a ``captions.json`` mapping file name -> caption) goes into an
in-memory Chroma collection through ``VLLMMultimodalEmbeddings.embed_image``; a retriever answers
a text question with images, inside an LCEL chain that ends in a multimodal chat prompt (the
images as ``image_url`` parts), ready to pipe into any vision chat model, e.g. a
``ChatOpenAI(base_url=...)`` pointed at a vLLM server running Qwen3-VL.

Environment:
    VLLM_BASE_URL         server root, e.g. http://localhost:8000 (required)
    VLLM_API_KEY          bearer token, when the server runs with --api-key (optional)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python cookbook/langchain_multimodal_rag.py --question "a red circle"
    python cookbook/langchain_multimodal_rag.py --images-dir my_photos/   # with captions.json
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import uuid
from pathlib import Path
from typing import Any

import chromadb
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from vllm_multimodal_embeddings import EmbeddingClient, VLLMEmbeddingError
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings

ASSETS = Path(__file__).parent / "assets"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def load_folder(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Image paths and their metadata (caption from captions.json when present)."""
    captions_file = folder / "captions.json"
    captions: dict[str, str] = (
        json.loads(captions_file.read_text()) if captions_file.exists() else {}
    )
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    metadatas = [{"source": p.name, "caption": captions.get(p.name, "")} for p in paths]
    return [str(p) for p in paths], metadatas


def to_prompt(inputs: dict[str, Any]) -> PromptValue:
    """A chat prompt with the question and the retrieved images, for a vision chat model."""
    docs: list[Document] = inputs["docs"]
    # Chroma keeps an image document's page_content as base64 (the bytes it embedded).
    parts: list[dict[str, Any]] = [{"type": "text", "text": "Question: {question}"}]
    for doc in docs:
        source = doc.metadata["source"]
        mime = mimetypes.guess_type(source)[0] or "image/png"
        parts.append({"type": "text", "text": f"Image {source}:"})
        parts.append(
            {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{doc.page_content}"}}
        )
    template = ChatPromptTemplate.from_messages(
        [("system", "Answer using only the images given."), ("human", parts)]
    )
    return template.invoke({"question": inputs["question"]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-dir", type=Path, default=ASSETS, help="folder of images")
    parser.add_argument("--question", default="a red circle", help="the text query")
    parser.add_argument("--k", type=int, default=3, help="images to retrieve")
    args = parser.parse_args()

    uris, metadatas = load_folder(args.images_dir)
    if not uris:
        print(f"error: no images in {args.images_dir}", file=sys.stderr)
        return 1

    with EmbeddingClient() as probe:  # fail early, with a clear message, if unreachable
        model = probe.server_info().model

    # Reads VLLM_BASE_URL / VLLM_API_KEY / VLLM_EMBEDDING_MODEL.
    with VLLMMultimodalEmbeddings() as embeddings:
        # In-memory Chroma; telemetry off so the recipe makes no outside calls.
        client = chromadb.EphemeralClient(Settings(anonymized_telemetry=False))
        store = Chroma(
            client=client,
            collection_name=f"cookbook-{uuid.uuid4().hex[:8]}",
            embedding_function=embeddings,
            collection_metadata={"hnsw:space": "cosine"},
        )
        store.add_images(uris=uris, metadatas=metadatas)
        print(f"indexed {len(uris)} images from {args.images_dir}")

        # Self-retrieval: an indexed image used as the query comes back first.
        first = store.similarity_search_by_image(uri=uris[0], k=1)[0]
        print(f"image query {Path(uris[0]).name} -> top hit {first.metadata['source']}")

        # The LCEL chain: question -> retriever (text query, image results) -> prompt.
        retriever = store.as_retriever(search_kwargs={"k": args.k})
        chain = {"docs": retriever, "question": RunnablePassthrough()} | RunnablePassthrough.assign(
            prompt=RunnableLambda(to_prompt)
        )
        # For an answer, pipe the prompt into a vision chat model, e.g.
        #   ... | RunnableLambda(lambda x: x["prompt"]) | ChatOpenAI(base_url=..., model=...)
        # Here the chain stops at the prompt, so no chat model is needed to run it.
        result = chain.invoke(args.question)
        docs, prompt = result["docs"], result["prompt"]

    print(f"\nquestion: {args.question!r}")
    print(f"retrieved {len(docs)} images:")
    for rank, doc in enumerate(docs, 1):
        print(f"  {rank}. {doc.metadata['source']}: {doc.metadata['caption']}")
    messages = prompt.to_messages()
    content = messages[-1].content
    n_images = sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    print(f"\nchain output: {len(messages)} messages; the last carries {n_images} images")
    if "tiny" in model.lower():
        print("note: random-weight test model; the ranking shows the plumbing, not the meaning")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing VLLM_BASE_URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
