"""PDF pages as LlamaIndex image nodes, so ``MultiModalVectorStoreIndex`` retrieves pages."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

from llama_index.core.schema import ImageNode

from ..inputs._pdf import pdf_pages

__all__ = ["pdf_page_nodes"]


def pdf_page_nodes(
    path: str | os.PathLike[str], *, password: str | None = None
) -> Iterator[ImageNode]:
    """One ``ImageNode`` per page of a PDF, lazily, in page order.

    ``image_path`` is the page URI ``"report.pdf#page=3"``, which
    :class:`VLLMMultiModalEmbedding` renders and embeds (``ImageDocument`` cannot hold one: it
    insists on a file Pillow opens). Metadata: ``source`` (the file, as given) and
    ``page_number``, counted from 1 like the URI. The node id is a UUID derived from the page
    URI, so re-ingesting a file gives the same ids (and vector stores that want UUIDs get them).

    An encrypted PDF: ``password`` opens it here (to count its pages); the nodes carry none,
    so give it to the embedding too (``pdf_passwords``), which renders the pages.
    """
    source = os.fspath(path)
    for page in pdf_pages(path, password=password):
        uri = str(page)
        yield ImageNode(
            id_=str(uuid.uuid5(uuid.NAMESPACE_URL, uri)),
            image_path=uri,
            image_mimetype="image/png",
            metadata={"source": source, "page_number": page.page},
        )
