"""PDFs written by the tests themselves (reportlab): pages of text, rotated, encrypted, broken.

Also an independent page renderer: PDFium called here, not through the package, so a test can
compare the package's pages with images it made itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image


def write_pdf(
    path: Path,
    texts: Sequence[str],
    *,
    rotate: dict[int, int] | None = None,
    size: tuple[float, float] = (612.0, 792.0),
    password: str | None = None,
) -> Path:
    """A PDF with one page per text (a heading, a box); ``rotate`` maps 1-based pages to /Rotate."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=size, encrypt=password)
    rotate = rotate or {}
    width, height = size
    # reportlab swaps the MediaBox of a page rotated by 90 or 270: keep the ink inside both.
    top = min(width, height)
    for number, text in enumerate(texts, start=1):
        # setPageRotation is sticky in reportlab: set it on every page.
        c.setPageRotation(rotate.get(number, 0))
        c.setFont("Helvetica-Bold", 28)
        c.drawString(36, top - 72, text)
        c.setFont("Helvetica", 11)
        for line in range(12):
            c.drawString(36, top - 120 - 16 * line, f"{text}: line {line} of the body text.")
        # A filled box whose place differs per page, so pages differ in pixels, not only text.
        c.rect(36 + 20 * (number % 10), 60, top / 4, top / 8, fill=1)
        c.showPage()
    c.save()
    return path


def write_corrupt(path: Path) -> Path:
    """A file that starts like a PDF and then is garbage."""
    path.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    return path


def render_independently(path: Path, page: int, size: tuple[int, int]) -> Image.Image:
    """Page ``page`` (1-based) drawn by PDFium straight into a ``size`` bitmap, white first."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    doc = pdfium.PdfDocument(str(path))
    try:
        pdf_page = doc[page - 1]
        width, height = size
        bitmap = pdfium.PdfBitmap.new_native(
            width, height, format=raw.FPDFBitmap_BGR, rev_byteorder=True
        )
        raw.FPDFBitmap_FillRect(bitmap.raw, 0, 0, width, height, 0xFFFFFFFF)
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
        image = bitmap.to_pil().convert("RGB")
        bitmap.close()
        pdf_page.close()
        return image
    finally:
        doc.close()


def page_points(path: Path, page: int) -> tuple[float, float]:
    """A page's displayed width and height in points (rotation applied), read by PDFium."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    try:
        pdf_page = doc[page - 1]
        size = pdf_page.get_size()
        pdf_page.close()
        return (float(size[0]), float(size[1]))
    finally:
        doc.close()
