"""Index thousands of documents and images incrementally: LangChain index(), LlamaIndex ingestion.

Both frameworks keep a record of what already sits in the vector store. A second run embeds
nothing, an edited article re-embeds only its own chunks, and a run killed halfway (Ctrl-C, OOM,
a preempted node) picks up where it stopped, with nothing duplicated or lost:

``langchain``
    ``index()`` with a ``SQLRecordManager`` (SQLite) over a persistent Chroma collection,
    ``cleanup="scoped_full"``. Articles are split into chunks lazily and handed over in batches
    of ``--batch``; each batch is embedded, written and recorded before the next is read.
    ``index()`` embeds through ``embed_documents`` (text), so images are not part of this run:
    they go in with ``Chroma.add_images``, which no record manager tracks.
``llama-index``
    ``IngestionPipeline([SentenceSplitter, VLLMMultiModalEmbedding])`` with a docstore
    (``docstore_strategy=UPSERTS``) and a local Qdrant collection, run over slices of
    ``--slice`` documents with ``num_workers=--workers`` processes; the docstore is saved
    after each slice. Image documents go through the same pipeline and are embedded as images.

The corpus is generated (deterministic, nothing is downloaded) under ``--workdir``: ``--docs``
articles and ``--images`` PNGs. ``--edit K`` revises the first K articles before indexing. Each
process holds its own client: ``--workers 2`` puts up to 2 x ``max_concurrency`` requests in
flight. Run against a real Qwen3-VL-Embedding server for meaningful query results.

Environment:
    VLLM_BASE_URL         server root, e.g. http://localhost:8000 (required)
    VLLM_API_KEY          bearer token, when the server runs with --api-key (optional)
    VLLM_EMBEDDING_MODEL  served model name (optional; default: the server's first model)

Run:
    python cookbook/index_at_scale.py langchain --docs 5000
    python cookbook/index_at_scale.py langchain --docs 5000              # again: all skipped
    python cookbook/index_at_scale.py langchain --docs 5000 --edit 10    # 10 articles updated
    python cookbook/index_at_scale.py llama-index --docs 5000 --images 300 --workers 2
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageDraw

from vllm_multimodal_embeddings import EmbeddingClient, VLLMEmbeddingError

TOPICS = {
    "lighthouse": "keeper lamp rocks storm beacon coast fog signal tower night",
    "orchard": "apples blossom harvest ladder cider bees pruning frost grafting rows",
    "glacier": "ice crevasse moraine melt valley snowfield calving blue ridge climbers",
    "bakery": "dough oven crust flour rye starter morning loaves proofing butter",
    "railway": "tracks signal timetable carriage platform junction freight tunnel viaduct",
    "reef": "coral fish tide lagoon snorkel current anemone turtle shallows bleaching",
}
FILLER = ["the", "a", "of", "and", "with", "near", "under", "over", "after"]
SHAPES = ("circle", "square", "triangle")
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220)}
#: Node ids are derived from (document, chunk number): a slice re-run after a crash overwrites
#: its own points instead of adding copies (Qdrant needs UUIDs).
NODE_NAMESPACE = uuid.UUID("6f1d8a52-3f7c-4b7e-9a51-0c2f4f1e9b10")


# -- the corpus: articles as text files, images as PNGs with a caption -------------------------


def article(i: int, edited: bool) -> str:
    """Article ``i``: a topic, 4-7 paragraphs of 40-70 words, deterministic; edits add a line."""
    rng = random.Random(i)
    topic = rng.choice(sorted(TOPICS))
    words = TOPICS[topic].split() + FILLER
    paragraphs = [
        " ".join(rng.choices(words, k=rng.randint(40, 70))).capitalize() + "."
        for _ in range(rng.randint(4, 7))
    ]
    if edited:
        paragraphs.append(f"Revised: the {topic} section was checked again this season.")
    return f"{topic.title()} notes {i}\n\n" + "\n\n".join(paragraphs)


def write_corpus(workdir: Path, docs: int, images: int, edit: int) -> tuple[Path, Path]:
    """Write (or rewrite, if changed) the articles and images; return their folders."""
    text_dir, image_dir = workdir / "articles", workdir / "images"
    text_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    for i in range(docs):
        body = article(i, edited=i < edit)
        path = text_dir / f"article-{i:06d}.txt"
        if not path.exists() or path.read_text() != body:
            path.write_text(body)
    for i in range(images):
        path = image_dir / f"image-{i:05d}.png"
        if not path.exists():
            rng = random.Random(10_000 + i)
            shape, color = rng.choice(SHAPES), rng.choice(sorted(COLORS))
            im = Image.new("RGB", (128, 128), (245, 245, 240))
            box = (
                rng.randint(8, 40),
                rng.randint(8, 40),
                rng.randint(80, 120),
                rng.randint(80, 120),
            )
            draw = ImageDraw.Draw(im)
            if shape == "circle":
                draw.ellipse(box, fill=COLORS[color])
            elif shape == "square":
                draw.rectangle(box, fill=COLORS[color])
            else:
                draw.polygon([(box[0], box[3]), (box[2], box[3]), (64, box[1])], fill=COLORS[color])
            im.save(path)
            path.with_suffix(".txt").write_text(f"a {color} {shape}")
    return text_dir, image_dir


# -- LangChain: index() + a record manager ----------------------------------------------------


def run_langchain(args: argparse.Namespace, text_dir: Path) -> None:
    import chromadb
    import httpx
    from chromadb.config import Settings
    from langchain_chroma import Chroma
    from langchain_classic.indexes import SQLRecordManager
    from langchain_core.documents import Document
    from langchain_core.indexing import index
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings

    # Count the requests to the server, to show that a re-run sends none.
    requests = 0

    def count(request: httpx.Request) -> None:
        nonlocal requests
        requests += 1

    http = httpx.Client(event_hooks={"request": [count]}, timeout=None)
    embeddings = VLLMMultimodalEmbeddings(http_client=http)
    store = Chroma(
        collection_name="articles",
        embedding_function=embeddings,
        client=chromadb.PersistentClient(
            str(args.workdir / "chroma"), Settings(anonymized_telemetry=False)
        ),
        collection_metadata={"hnsw:space": "cosine"},
    )
    # The namespace ties the records to this collection; the SQLite file survives the process.
    records = SQLRecordManager(
        "chroma/articles", db_url=f"sqlite:///{args.workdir / 'records.sqlite'}"
    )
    records.create_schema()
    splitter = RecursiveCharacterTextSplitter(chunk_size=600, chunk_overlap=0)

    def chunks() -> Iterator[Document]:
        # Lazy: one article in memory at a time. index() reads --batch chunks, embeds and
        # writes them, records them, then reads on; "batch N" means batches before N are done.
        n = 0
        for path in sorted(text_dir.glob("article-*.txt")):
            for chunk in splitter.split_text(path.read_text()):
                if n % args.batch == 0:
                    print(f"batch {n // args.batch + 1}", flush=True)
                n += 1
                yield Document(page_content=chunk, metadata={"source": path.stem})

    start = time.perf_counter()
    result = index(
        chunks(),
        records,
        store,
        batch_size=args.batch,
        # An edited article's old chunks are deleted once the run is through. "incremental"
        # would clean after every batch and so re-embed each article split across two.
        cleanup="scoped_full",
        source_id_key="source",
        key_encoder="sha256",  # record keys: hashes of content + metadata
    )
    elapsed = time.perf_counter() - start
    embedded = result["num_added"] + result["num_updated"]
    print(
        f"indexed: added {result['num_added']}, updated {result['num_updated']}, "
        f"skipped {result['num_skipped']}, deleted {result['num_deleted']}"
    )
    print(
        f"embedded {embedded} chunks in {elapsed:.1f} s, {requests} requests to the server "
        f"({embedded / elapsed:.0f} chunks/s)"
    )
    print(f"collection holds {len(store.get(include=[])['ids'])} chunks")
    print(f"records hold {len(records.list_keys())} keys")
    hits = store.similarity_search(args.question, k=3)
    print(f"query {args.question!r} -> " + ", ".join(d.metadata["source"] for d in hits))
    embeddings.close()
    http.close()


# -- LlamaIndex: IngestionPipeline(num_workers=...) with a docstore --------------------------


def node_id(i: int, doc: object) -> str:
    """A chunk's id from its document's id and its number (module-level: workers unpickle it)."""
    return str(uuid.uuid5(NODE_NAMESPACE, f"{getattr(doc, 'id_', '')}#{i}"))


def run_llama_index(args: argparse.Namespace, text_dir: Path, image_dir: Path) -> None:
    import llama_index.core
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import ImageDocument
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding

    # Worker processes rebuild the splitter's tiktoken tokenizer, and tiktoken downloads its
    # vocabulary unless told where a copy is: LlamaIndex ships one but points tiktoken at it
    # only inside its own call. Without this, an offline worker dies and the pool hangs.
    os.environ.setdefault(
        "TIKTOKEN_CACHE_DIR",
        str(Path(llama_index.core.__file__).parent / "_static" / "tiktoken_cache"),
    )

    documents: list[Document] = [
        Document(text=p.read_text(), id_=p.stem, metadata={"source": p.name})
        for p in sorted(text_dir.glob("article-*.txt"))
    ]
    # An image document's text (its caption) is what the splitter keeps; the embedder
    # embeds the image itself (add embed_node_text_with_image=True to embed both together).
    documents += [
        ImageDocument(
            image_path=str(p),
            text=p.with_suffix(".txt").read_text(),
            id_=p.stem,
            metadata={"source": p.name},
        )
        for p in sorted(image_dir.glob("image-*.png"))
    ]

    docstore_path = args.workdir / "docstore.json"
    docstore = (
        SimpleDocumentStore.from_persist_path(str(docstore_path))
        if docstore_path.exists()
        else SimpleDocumentStore()
    )
    qdrant = QdrantClient(path=str(args.workdir / "qdrant"))
    vector_store = QdrantVectorStore(collection_name="articles", client=qdrant)
    embed = VLLMMultiModalEmbedding()
    pipeline = IngestionPipeline(
        transformations=[
            SentenceSplitter(chunk_size=256, chunk_overlap=0, id_func=node_id),
            embed,
        ],
        docstore=docstore,
        vector_store=vector_store,
        docstore_strategy=DocstoreStrategy.UPSERTS,
        # The cache would keep a second copy of every embedded node; the docstore already
        # tells what is done.
        disable_cache=True,
    )

    start = time.perf_counter()
    slices = range(0, len(documents), args.slice)
    embedded = images = 0
    for n, first in enumerate(slices, 1):
        batch = documents[first : first + args.slice]
        nodes = pipeline.run(
            documents=batch,
            num_workers=args.workers if args.workers > 1 else None,
            store_doc_text=False,  # the docstore keeps hashes, not a second copy of the text
        )
        docstore.persist(str(docstore_path))  # the slice is now done for good
        embedded += len(nodes)
        images += sum(1 for node in nodes if getattr(node, "image_path", None))
        print(
            f"slice {n}/{len(slices)}: {len(batch)} documents, {len(nodes)} nodes embedded",
            flush=True,
        )
    elapsed = time.perf_counter() - start

    print(
        f"embedded {embedded} nodes ({embedded - images} text chunks, {images} images) "
        f"with num_workers={args.workers} in {elapsed:.1f} s ({embedded / elapsed:.0f} nodes/s)"
    )
    print(f"docstore holds {len(docstore.get_all_document_hashes())} documents")
    print(f"collection holds {qdrant.count('articles').count} nodes")
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed)
    hits = index.as_retriever(similarity_top_k=3).retrieve(args.question)
    print(f"query {args.question!r} -> " + ", ".join(h.node.metadata["source"] for h in hits))
    embed.close()
    qdrant.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "framework", nargs="?", default="langchain", choices=["langchain", "llama-index"]
    )
    parser.add_argument("--workdir", type=Path, default=Path("index-at-scale"))
    parser.add_argument("--docs", type=int, default=2000, help="generated articles")
    parser.add_argument("--images", type=int, default=200, help="generated images (llama-index)")
    parser.add_argument("--edit", type=int, default=0, help="revise the first K articles")
    parser.add_argument("--batch", type=int, default=256, help="chunks per index() batch")
    parser.add_argument("--slice", type=int, default=1000, help="documents per pipeline run")
    parser.add_argument("--workers", type=int, default=2, help="IngestionPipeline num_workers")
    parser.add_argument("--question", default="storm over the lighthouse")
    args = parser.parse_args()

    with EmbeddingClient() as probe:  # fail early, with a clear message, if unreachable
        model = probe.server_info().model
    args.workdir = args.workdir.resolve()
    images = args.images if args.framework == "llama-index" else 0
    text_dir, image_dir = write_corpus(args.workdir, args.docs, images, args.edit)
    print(f"corpus: {args.docs} articles, {images} images in {args.workdir} (model {model})")
    if args.framework == "langchain":
        run_langchain(args, text_dir)
    else:
        run_llama_index(args, text_dir, image_dir)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VLLMEmbeddingError as exc:  # unreachable server, missing VLLM_BASE_URL, bad input
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
