"""PDF pages as LangChain documents: one ``Document`` per page, its image named by a page URI."""

from __future__ import annotations

import os
from collections.abc import Iterator

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document

from ..inputs._pdf import pdf_pages

__all__ = ["PdfPageImageLoader"]


class PdfPageImageLoader(BaseLoader):
    """One ``Document`` per page of a PDF, lazily; the page is embedded as an image.

    ``page_content`` is the page URI ``"report.pdf#page=3"``, which
    :meth:`VLLMMultimodalEmbeddings.embed_image` renders and embeds. Embed these documents
    with ``embed_image``, not ``embed_documents`` (that would embed the URI as text).

    Metadata: ``source`` (the file, as given) and ``page_number``, counted from 1 like the URI.
    (``page_number``, not ``page``: LangChain's ``PyPDFLoader`` counts ``page`` from 0.)

    An encrypted PDF: ``password`` opens it here (to count its pages); the URIs carry none, so
    give it to the embeddings too (``pdf_passwords``), which render the pages.

    Example:
        .. code-block:: python

            docs = list(PdfPageImageLoader("report.pdf").lazy_load())
            vectors = embeddings.embed_image([d.page_content for d in docs])

            # Encrypted: one password, given to both.
            docs = PdfPageImageLoader("board.pdf", password=pw).load()
            embeddings = VLLMMultimodalEmbeddings(pdf_passwords={"board.pdf": pw})
    """

    def __init__(self, file_path: str | os.PathLike[str], *, password: str | None = None) -> None:
        self.file_path = file_path
        self._password = password  # private: never in a repr or a serialized loader

    def __repr__(self) -> str:
        return f"PdfPageImageLoader({os.fspath(self.file_path)!r})"

    def lazy_load(self) -> Iterator[Document]:
        """The pages in order; the file is read for its page count only, nothing is rendered."""
        source = os.fspath(self.file_path)
        for page in pdf_pages(self.file_path, password=self._password):
            yield Document(
                page_content=str(page), metadata={"source": source, "page_number": page.page}
            )
