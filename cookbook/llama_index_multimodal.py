"""LlamaIndex: a MultiModalVectorStoreIndex over images and captions, text-to-image retrieval.

``VLLMMultiModalEmbedding`` serves both sides of the index (``embed_model`` for texts and
``image_embed_model`` for images): Qwen3-VL-Embedding puts them in one vector space, so a text
query can retrieve images directly. Both vector stores are LlamaIndex's in-memory
``SimpleVectorStore``; swap in Qdrant, Chroma, ... for a persistent index.

Environment:
    VLLM_BASE_URL         server root, e.g. http://localhost:8000 (required)
    VLLM_API_KEY          bearer token, when the server runs with --api-key (optional)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python cookbook/llama_index_multimodal.py --question "a green triangle"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llama_index.core import StorageContext
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import Document, ImageDocument, ImageNode
from llama_index.core.vector_stores import SimpleVectorStore

from vllm_multimodal_embeddings import EmbeddingClient, VLLMEmbeddingError
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding

ASSETS = Path(__file__).parent / "assets"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-dir", type=Path, default=ASSETS, help="images + captions.json")
    parser.add_argument("--question", default="a green triangle", help="the text query")
    parser.add_argument("--k", type=int, default=3, help="images to retrieve")
    args = parser.parse_args()

    with EmbeddingClient() as probe:  # fail early, with a clear message, if unreachable
        model = probe.server_info().model

    captions: dict[str, str] = json.loads((args.images_dir / "captions.json").read_text())
    # Images and their captions as separate documents: the index embeds the images with the
    # image model and the captions with the text model (here, the same model).
    documents = [
        ImageDocument(image_path=str(args.images_dir / name), metadata={"file": name})
        for name in captions
    ] + [Document(text=caption, metadata={"file": name}) for name, caption in captions.items()]

    embedding = VLLMMultiModalEmbedding()  # reads the environment variables above
    storage = StorageContext.from_defaults(
        vector_store=SimpleVectorStore(), image_store=SimpleVectorStore()
    )
    index = MultiModalVectorStoreIndex.from_documents(
        documents, storage_context=storage, embed_model=embedding, image_embed_model=embedding
    )
    print(f"indexed {len(captions)} images and {len(captions)} captions")

    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=args.k)
    # Text -> image: the query text is embedded (query instruction) and searched among images.
    hits = retriever.text_to_image_retrieve(args.question)
    print(f"\nquestion: {args.question!r}")
    print(f"text-to-image: {len(hits)} images")
    for rank, hit in enumerate(hits, 1):
        print(f"  {rank}. {hit.node.metadata['file']}  score {hit.score:.3f}")

    # Both kinds at once: the best captions and the best images for one query.
    mixed = retriever.retrieve(args.question)
    kinds = ["image" if isinstance(h.node, ImageNode) else "text" for h in mixed]
    print(f"retrieve(): {kinds.count('text')} captions + {kinds.count('image')} images")

    # Self-retrieval: an indexed image used as the query comes back first.
    first = next(iter(captions))
    top = retriever.image_to_image_retrieve(str(args.images_dir / first))[0]
    print(f"image query {first} -> top hit {top.node.metadata['file']}")
    embedding.close()
    if "tiny" in model.lower():
        print("note: random-weight test model; the ranking shows the plumbing, not the meaning")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing VLLM_BASE_URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
