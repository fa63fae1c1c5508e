"""PDF pages as images: parse page references, count pages, render one page for the model.

Needs the ``pdf`` extra (``pip install "vllm-multimodal-embeddings[pdf]"``), which brings
pypdfium2: PDFium (Chrome's PDF engine) in manylinux/macOS/Windows wheels, Apache-2.0/BSD.

A page is rendered straight to the size the model takes: the page's shape scaled to fill the
``max_pixels`` budget, then snapped by :func:`._images.smart_resize` to sides that are
multiples of 32. No DPI is fixed: a letter page and a long receipt both get the whole budget,
so the server resamples nothing and small print keeps as much detail as the model can see.

Pages are numbered from 1 everywhere, as in the ``#page=N`` URI fragment (RFC 8118) and in
viewers. One page is rendered per call; the file is opened per call and read lazily by
PDFium, so memory stays at one page bitmap whatever the file's length.
"""

from __future__ import annotations

import math
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from PIL import Image

from .._exceptions import ImageLoadError, InputError
from .._types import PdfPage
from ._images import smart_resize

__all__ = [
    "page_size_for",
    "parse_page_ref",
    "pdf_page_count",
    "pdf_pages",
    "render_page",
]

# "doc.pdf#page=3" or "file:///x/doc.pdf#page=3": a PDF path, then a 1-based page fragment.
_PAGE_REF = re.compile(r"^(?P<path>.+\.pdf)#page=(?P<page>\d+)$", re.IGNORECASE)
# The same with any file name: a page of a PDF whose name does not say so.
_ANY_PAGE_REF = re.compile(r"^(?P<path>.+)#page=(?P<page>\d+)$")
_PDF_SUFFIX = ".pdf"
_PDF_MAGIC = b"%PDF-"
# Any other URL ("https://host/doc.pdf#page=3") is not a local page reference.
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")
# PDFium is not thread-safe, not even across documents: every call into it holds this lock.
# Encoding the rendered bitmap (Pillow, which releases the GIL) happens outside it.
_PDFIUM_LOCK = threading.Lock()
# FPDF_ERR_* codes PDFium reports for a document it cannot open.
_ERR_FORMAT = 3
_ERR_PASSWORD = 4
_ERR_SECURITY = 5
_WHITE_ARGB = 0xFFFFFFFF
# The longest side over the shortest that Qwen-VL's smart resize accepts.
_MAX_ASPECT = 200
_INSTALL_HINT = 'PDF pages need the "pdf" extra: pip install "vllm-multimodal-embeddings[pdf]"'


def is_pdf_path(path: str | os.PathLike[str]) -> bool:
    """Whether a path names a PDF by its suffix."""
    return os.fspath(path).lower().endswith(_PDF_SUFFIX)


def parse_page_ref(ref: str, *, index: int | None = None) -> PdfPage | None:
    """The page a ``"doc.pdf#page=3"`` (or ``file://`` URI) reference names; ``None`` if not one.

    The path names a PDF by its suffix or, whatever its name (``report_download``,
    ``x.pdf.v2``: the page URIs :func:`pdf_pages` makes keep the file's own name), by a regular
    file that starts as a PDF does.
    """
    if ref[:7].lower() == "file://":
        parts = urlsplit(ref)
        match = re.fullmatch(r"page=(\d+)", parts.fragment)
        if match is None or parts.netloc not in ("", "localhost"):
            return None  # the caller's file:// handling names a remote host
        path = Path(url2pathname(parts.path))
        if not (is_pdf_path(parts.path) or _starts_as_pdf(path)):
            return None
        return PdfPage(path, _page_number(match.group(1), ref, index))
    found = _PAGE_REF.match(ref) or _ANY_PAGE_REF.match(ref)
    if found is None or _URL_SCHEME.match(ref):
        return None
    if not is_pdf_path(found.group("path")) and not _starts_as_pdf(Path(found.group("path"))):
        return None
    try:
        path = Path(found.group("path")).expanduser()
    except RuntimeError as exc:  # "~user/..." naming no user, or no home directory
        raise ImageLoadError(
            f"cannot expand '~' in the PDF path: {exc}", index=index, source=ref
        ) from exc
    return PdfPage(path, _page_number(found.group("page"), ref, index))


def _starts_as_pdf(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts with the PDF header (never blocks: a
    FIFO or a device is not opened)."""
    try:
        path = path.expanduser()
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(len(_PDF_MAGIC)) == _PDF_MAGIC
    except (OSError, ValueError, RuntimeError):  # missing, a NUL byte, an unknown ~user
        return False


def _page_number(digits: str, ref: str, index: int | None) -> int:
    page = int(digits)
    if page < 1:
        raise InputError(f"PDF pages are numbered from 1: {ref!r}", index=index)
    return page


def page_size_for(width_pt: float, height_pt: float, max_pixels: int) -> tuple[int, int]:
    """Pixel size a page of this shape is rendered at: the budget filled, sides multiples of 32."""
    scale = math.sqrt(max_pixels / (width_pt * height_pt))
    return smart_resize(
        max(1, round(width_pt * scale)), max(1, round(height_pt * scale)), max_pixels=max_pixels
    )


def pdf_page_count(path: str | os.PathLike[str], *, password: str | None = None) -> int:
    """How many pages a PDF file holds (``password``: of an encrypted one).

    Raises:
        ImageLoadError: the file is missing, not a PDF, corrupt, or encrypted and the password
            is missing or wrong.
        InputError: the ``pdf`` extra is not installed.
    """
    pdfium = _pdfium()
    source = os.fspath(path)
    _check_file(Path(source), source=source, index=None)
    with _PDFIUM_LOCK:
        doc = _open(pdfium, source, source=source, index=None, password=password)
        try:
            return len(doc)
        finally:
            doc.close()


def pdf_pages(path: str | os.PathLike[str], *, password: str | None = None) -> Iterator[PdfPage]:
    """Every page of a PDF as a :class:`PdfPage`, lazily, from page 1.

    Only the page count is read here; each page is rendered when its input is prepared, so
    ``client.iter_embed_images(pdf_pages("big.pdf"))`` holds a few pages at a time. The
    ``password`` of an encrypted PDF goes with each page (never into a page's ``str``).
    """
    for number in range(1, pdf_page_count(path, password=password) + 1):
        yield PdfPage(path, number, password)


def render_page(page: PdfPage, *, max_pixels: int, index: int | None = None) -> Image.Image:
    """One page rendered as an RGB image at :func:`page_size_for` its shape and the budget.

    Raises:
        ImageLoadError: the file is missing, corrupt or encrypted, or the page is out of range;
            the message names the file and the page.
        InputError: the ``pdf`` extra is not installed.
    """
    pdfium = _pdfium(index=index)
    path = os.fspath(page.path)
    source = str(page)
    _check_file(Path(path), source=source, index=index)
    raw = pdfium.raw
    with _PDFIUM_LOCK:
        doc = _open(pdfium, path, source=source, index=index, password=page.password)
        try:
            count = len(doc)
            if page.page > count:
                raise ImageLoadError(
                    f"page {page.page} out of range: the PDF has {count} "
                    f"page{'s' if count != 1 else ''}",
                    index=index,
                    source=source,
                )
            try:
                pdf_page = doc[page.page - 1]
            except pdfium.PdfiumError as exc:
                raise ImageLoadError(
                    f"cannot load PDF page: {exc}", index=index, source=source
                ) from exc
            try:
                # Width and height as displayed: PDFium swaps them for /Rotate 90 and 270.
                width_pt, height_pt = pdf_page.get_size()
                if width_pt <= 0 or height_pt <= 0:
                    raise ImageLoadError(
                        "PDF page has an empty page box", index=index, source=source
                    )
                aspect = max(width_pt, height_pt) / min(width_pt, height_pt)
                if aspect > _MAX_ASPECT:
                    # Qwen-VL's resize refuses such images (the server would answer with a
                    # processor error); rendered, the page would overrun the pixel budget.
                    raise ImageLoadError(
                        f"PDF page is {aspect:.0f} times longer than wide (the model takes "
                        f"at most {_MAX_ASPECT}:1)",
                        index=index,
                        source=source,
                    )
                width, height = page_size_for(width_pt, height_pt, max_pixels)
                bitmap = pdfium.PdfBitmap.new_native(
                    width, height, format=raw.FPDFBitmap_BGR, rev_byteorder=True
                )
                try:
                    raw.FPDFBitmap_FillRect(bitmap.raw, 0, 0, width, height, _WHITE_ARGB)
                    # Straight to the target size (aspect changes by under one 32-pixel block),
                    # in the page's display rotation; annotations drawn as a viewer shows them.
                    raw.FPDF_RenderPageBitmap(
                        bitmap.raw,
                        pdf_page.raw,
                        0,
                        0,
                        width,
                        height,
                        0,
                        raw.FPDF_ANNOT | raw.FPDF_REVERSE_BYTE_ORDER,
                    )
                    # A copy: the bitmap's buffer is freed with it.
                    image: Image.Image = bitmap.to_pil().convert("RGB")
                finally:
                    bitmap.close()
            finally:
                pdf_page.close()
        finally:
            doc.close()
    return image


def _pdfium(*, index: int | None = None) -> Any:
    try:
        import pypdfium2
    except ImportError as exc:
        raise InputError(_INSTALL_HINT, index=index) from exc
    return pypdfium2


def _check_file(path: Path, *, source: str, index: int | None) -> None:
    # Refused from stat alone: opening a FIFO blocks, a device never ends.
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise ImageLoadError("PDF file not found", index=index, source=source) from exc
    except OSError as exc:
        raise ImageLoadError(f"cannot read PDF file: {exc}", index=index, source=source) from exc
    except ValueError as exc:  # "embedded null byte"
        raise ImageLoadError("PDF path holds a NUL byte", index=index, source=source) from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageLoadError("PDF path is a directory", index=index, source=source)
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError("PDF path is not a regular file", index=index, source=source)


def _open(
    pdfium: Any, path: str, *, source: str, index: int | None, password: str | None = None
) -> Any:
    try:
        return pdfium.PdfDocument(path, password=password)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code in (_ERR_PASSWORD, _ERR_SECURITY) and password is not None:
            reason = "PDF is encrypted and the password given does not open it"
        elif code in (_ERR_PASSWORD, _ERR_SECURITY):
            reason = (
                "PDF is encrypted: give its password (the pdf_passwords setting, or "
                "PdfPage(..., password=...)) or decrypt it"
            )
        elif code == _ERR_FORMAT:
            reason = "not a valid PDF (corrupt or truncated)"
        else:
            reason = f"cannot open PDF: {exc}"
        raise ImageLoadError(reason, index=index, source=source) from exc
    except OSError as exc:
        raise ImageLoadError(f"cannot read PDF file: {exc}", index=index, source=source) from exc
