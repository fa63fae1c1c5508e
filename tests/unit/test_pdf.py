"""PDF pages as image inputs: sizes, page references, rendering and every error path."""

from __future__ import annotations

import base64
import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("pypdfium2")
pytest.importorskip("reportlab")

from tests.pdfs import page_points, render_independently, write_corrupt, write_pdf
from vllm_multimodal_embeddings._constants import DEFAULT_MAX_PIXELS
from vllm_multimodal_embeddings._exceptions import ImageLoadError, InputError
from vllm_multimodal_embeddings._types import Content, PdfPage
from vllm_multimodal_embeddings.inputs._pdf import (
    page_size_for,
    parse_page_ref,
    pdf_page_count,
    pdf_pages,
    render_page,
)
from vllm_multimodal_embeddings.inputs._read import prepare_image, prepare_input
from vllm_multimodal_embeddings.inputs._settings import ImageSettings

SMALL = ImageSettings(max_image_pixels=200_000)


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three letter pages; page 2 carries /Rotate 90."""
    path = tmp_path_factory.mktemp("pdf") / "report.pdf"
    return write_pdf(path, ["Alpha", "Beta", "Gamma"], rotate={2: 90})


def decoded(uri: str) -> Image.Image:
    header, _, payload = uri.partition(",")
    assert header == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(payload)))


# --- the size a page is rendered at ---


@pytest.mark.parametrize(
    ("points", "budget"),
    [
        ((612, 792), DEFAULT_MAX_PIXELS),  # US letter
        ((595, 842), DEFAULT_MAX_PIXELS),  # A4
        ((842, 595), 200_000),  # A4 landscape, small budget
        ((216, 2160), DEFAULT_MAX_PIXELS),  # a 3 x 30 inch receipt
        ((2160, 144), DEFAULT_MAX_PIXELS),  # a wide banner
    ],
)
def test_page_size_fills_the_budget_in_blocks_of_32(points: tuple[int, int], budget: int) -> None:
    width, height = page_size_for(*points, budget)
    assert width % 32 == 0 and height % 32 == 0
    assert width * height <= budget
    # Filled to within the last 32-pixel row/column on each side, not a fixed DPI.
    assert (width + 32) * (height + 32) > budget
    # The page's shape is kept to within one block on each side.
    drift = abs((width / height) / (points[0] / points[1]) - 1)
    assert drift <= 32 / width + 32 / height


def test_budget_not_dpi_decides_the_size() -> None:
    # A page twice as large in both directions gets the same pixels: what counts is the budget.
    assert page_size_for(612, 792, DEFAULT_MAX_PIXELS) == page_size_for(
        1224, 1584, DEFAULT_MAX_PIXELS
    )
    assert page_size_for(612, 792, 200_000) < page_size_for(612, 792, DEFAULT_MAX_PIXELS)


# --- PdfPage and page references ---


def test_pdf_page_counts_from_one() -> None:
    assert str(PdfPage("a/doc.pdf", 3)) == "a/doc.pdf#page=3"
    with pytest.raises(ValueError, match="counts from 1"):
        PdfPage("doc.pdf", 0)
    with pytest.raises(TypeError, match="int"):
        PdfPage("doc.pdf", True)
    with pytest.raises(TypeError, match="int"):
        PdfPage("doc.pdf", "3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path"):
        PdfPage(3, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("doc.pdf#page=3", PdfPage(Path("doc.pdf"), 3)),
        ("dir/Report.PDF#page=12", PdfPage(Path("dir/Report.PDF"), 12)),
        ("file:///data/my%20doc.pdf#page=2", PdfPage(Path("/data/my doc.pdf"), 2)),
        ("doc.pdf", None),
        ("doc.png#page=3", None),
        ("doc.pdf#page=three", None),
        ("doc.pdf#zoom=50", None),
        ("https://example.com/doc.pdf#page=3", None),
    ],
)
def test_page_references(ref: str, expected: PdfPage | None) -> None:
    assert parse_page_ref(ref) == expected


def test_page_zero_in_a_reference_is_refused_with_the_index() -> None:
    with pytest.raises(InputError, match="numbered from 1") as info:
        prepare_image("doc.pdf#page=0", index=4, options=SMALL)
    assert info.value.index == 4


# --- rendering ---


def test_a_page_renders_at_the_budget_and_matches_pdfium(doc: Path) -> None:
    expected_size = page_size_for(612, 792, SMALL.max_image_pixels)
    image = render_page(PdfPage(doc, 1), max_pixels=SMALL.max_image_pixels)
    assert image.mode == "RGB" and image.size == expected_size
    assert image.tobytes() == render_independently(doc, 1, expected_size).tobytes()
    # Ink on the page: not a blank bitmap.
    assert image.convert("L").getextrema()[0] < 50


def test_a_rotated_page_renders_as_displayed(doc: Path) -> None:
    # reportlab writes /Rotate 90 with a landscape MediaBox: displayed, the page is portrait.
    assert page_points(doc, 2) == (612.0, 792.0)
    image = render_page(PdfPage(doc, 2), max_pixels=SMALL.max_image_pixels)
    assert image.size == page_size_for(612, 792, SMALL.max_image_pixels)
    assert image.tobytes() == render_independently(doc, 2, image.size).tobytes()


def test_every_form_of_a_page_gives_the_same_image(doc: Path) -> None:
    uris = {
        prepare_image(PdfPage(doc, 3), index=0, options=SMALL),
        prepare_image(PdfPage(str(doc), 3), index=0, options=SMALL),
        prepare_image(f"{doc}#page=3", index=0, options=SMALL),
        prepare_image(f"{doc.as_uri()}#page=3", index=0, options=SMALL),
        prepare_input(Content(image=PdfPage(doc, 3)), index=0, options=SMALL).image_url or "",
        prepare_input(PdfPage(doc, 3), index=0, options=SMALL).image_url or "",
    }
    assert len(uris) == 1
    image = decoded(uris.pop())
    assert image.tobytes() == render_independently(doc, 3, image.size).tobytes()


def test_pages_differ(doc: Path) -> None:
    first = prepare_image(PdfPage(doc, 1), index=0, options=SMALL)
    third = prepare_image(PdfPage(doc, 3), index=0, options=SMALL)
    assert first != third


def test_a_page_joins_text_in_content_of(doc: Path) -> None:
    prepared = prepare_input(Content.of("Summarize", PdfPage(doc, 1)), index=0, options=SMALL)
    assert [p.kind for p in prepared.parts] == ["text", "image"]


def test_threads_render_pages_safely(doc: Path) -> None:
    # PDFium is not thread-safe; the client prepares inputs on a thread pool.
    pages = [PdfPage(doc, n) for n in (1, 2, 3) * 4]
    alone = [prepare_image(p, index=0, options=SMALL) for p in pages]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: prepare_image(p, index=0, options=SMALL), pages))
    assert together == alone


def test_pdf_pages_is_lazy_and_numbered_from_one(doc: Path) -> None:
    pages = pdf_pages(doc)
    assert iter(pages) is pages  # a generator: nothing rendered up front
    assert list(pages) == [PdfPage(doc, 1), PdfPage(doc, 2), PdfPage(doc, 3)]
    assert pdf_page_count(doc) == 3


# --- errors name the file and the page ---


def test_page_out_of_range(doc: Path) -> None:
    with pytest.raises(ImageLoadError) as info:
        prepare_image(PdfPage(doc, 4), index=2, options=SMALL)
    message = str(info.value)
    assert "page 4 out of range: the PDF has 3 pages" in message
    assert f"{doc}#page=4" in message and info.value.index == 2
    assert info.value.source == f"{doc}#page=4"


def test_encrypted_pdf(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "secret.pdf", ["Hidden"], password="s3cret")
    with pytest.raises(ImageLoadError, match="encrypted") as info:
        prepare_image(f"{path}#page=1", index=0, options=SMALL)
    assert f"{path}#page=1" in str(info.value)
    assert "s3cret" not in str(info.value)
    with pytest.raises(ImageLoadError, match="encrypted"):
        pdf_page_count(path)


def test_an_encrypted_pdf_opens_with_its_password(tmp_path: Path) -> None:
    texts = ["Hidden", "Also hidden"]
    plain = write_pdf(tmp_path / "plain.pdf", texts)
    secret = write_pdf(tmp_path / "secret.pdf", texts, password="s3cret")
    pages = list(pdf_pages(secret, password="s3cret"))
    assert [p.page for p in pages] == [1, 2] and pdf_page_count(secret, password="s3cret") == 2
    # The same pixels as the unencrypted file.
    for page in pages:
        got = render_page(page, max_pixels=SMALL.max_image_pixels)
        want = render_page(PdfPage(plain, page.page), max_pixels=SMALL.max_image_pixels)
        assert got.tobytes() == want.tobytes()
    # Never shown, and not part of the page's identity.
    assert "s3cret" not in repr(pages[0]) and "s3cret" not in str(pages[0])
    assert pages[0] == PdfPage(secret, 1) and hash(pages[0]) == hash(PdfPage(secret, 1))
    with pytest.raises(ImageLoadError, match="password given does not open it") as info:
        prepare_image(PdfPage(secret, 1, "wrong-pw"), index=3, options=SMALL)
    assert info.value.index == 3 and "wrong-pw" not in str(info.value)
    with pytest.raises(ImageLoadError, match="give its password"):
        prepare_image(PdfPage(secret, 1), index=0, options=SMALL)


def test_corrupt_pdf(tmp_path: Path) -> None:
    path = write_corrupt(tmp_path / "broken.pdf")
    with pytest.raises(ImageLoadError, match="not a valid PDF") as info:
        prepare_image(PdfPage(path, 2), index=1, options=SMALL)
    assert f"{path}#page=2" in str(info.value) and info.value.index == 1
    with pytest.raises(ImageLoadError, match=f"not a valid PDF.*{path.name}"):
        list(pdf_pages(path))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match=r"PDF file not found.*gone\.pdf#page=1"):
        prepare_image(PdfPage(tmp_path / "gone.pdf", 1), index=0, options=SMALL)
    folder = tmp_path / "folder.pdf"
    folder.mkdir()
    with pytest.raises(ImageLoadError, match="directory"):
        prepare_image(PdfPage(folder, 1), index=0, options=SMALL)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    with pytest.raises(ImageLoadError, match="not a regular file"):
        prepare_image(PdfPage(fifo, 1), index=0, options=SMALL)


def test_a_pdf_without_a_page_says_how_to_name_one(doc: Path) -> None:
    for form in (str(doc), doc, f"{doc.as_uri()}"):
        with pytest.raises(InputError, match=r"is a PDF: name one page as PdfPage"):
            prepare_image(form, index=0, options=SMALL)


def test_remote_pdfs_are_refused() -> None:
    with pytest.raises(InputError, match="remote PDFs are not rendered"):
        prepare_image("https://example.com/a.pdf#page=1", index=0, options=SMALL)
    with pytest.raises(InputError, match="remote PDFs are not rendered"):
        prepare_image("https://example.com/a.pdf?sig=1", index=0, options=SMALL)


def test_missing_extra_is_an_input_error(doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdfium2", None)
    with pytest.raises(InputError, match=r'"pdf" extra') as info:
        prepare_image(PdfPage(doc, 1), index=5, options=SMALL)
    assert info.value.index == 5
    with pytest.raises(InputError, match=r'"pdf" extra'):
        list(pdf_pages(doc))


# --- bulk sources: one item per page ---


def test_directory_source_gives_one_item_per_page(tmp_path: Path) -> None:
    from vllm_multimodal_embeddings.bulk.sources import directory_source, glob_source

    write_pdf(tmp_path / "b.pdf", ["One", "Two"])
    write_corrupt(tmp_path / "c.pdf")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    source = directory_source(tmp_path, (".png", ".pdf"))
    assert source.total is None  # pages are counted as the source is read
    items = list(source)
    assert [i.id for i in items] == ["a.png", "b.pdf#p1", "b.pdf#p2", "c.pdf"]
    assert items[1].image == f"{tmp_path / 'b.pdf'}#page=1"
    assert items[3].problem is not None and "not a valid PDF" in items[3].problem
    assert "c.pdf" in items[3].problem
    # With the pdf extra (installed here) PDFs are taken by default; asked for images only,
    # the PDFs left out are named, with how to take them.
    assert [i.id for i in directory_source(tmp_path)] == [i.id for i in items]
    only_png = directory_source(tmp_path, (".png",))
    assert [i.id for i in only_png] == ["a.png"]
    assert only_png.skipped == ".pdf: 2 (add it to --ext)"
    globbed = [i.id for i in glob_source(str(tmp_path / "*.pdf"), (".pdf",))]
    assert globbed == [
        f"{tmp_path / 'b.pdf'}#p1",
        f"{tmp_path / 'b.pdf'}#p2",
        str(tmp_path / "c.pdf"),
    ]


def test_page_items_hash_the_file_and_the_page(tmp_path: Path) -> None:
    from vllm_multimodal_embeddings.bulk.sources import directory_source

    path = write_pdf(tmp_path / "doc.pdf", ["One", "Two"])
    first, second = (i.input_hash() for i in directory_source(tmp_path, (".pdf",)))
    assert first != second
    write_pdf(path, ["One, edited", "Two"])
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    again = next(iter(directory_source(tmp_path, (".pdf",)))).input_hash()
    assert again != first


def test_page_budget_can_differ_from_the_photo_budget(doc: Path) -> None:
    options = ImageSettings(max_image_pixels=DEFAULT_MAX_PIXELS, page_max_pixels=100_000)
    image = decoded(prepare_image(PdfPage(doc, 1), index=0, options=options))
    assert image.size == page_size_for(612, 792, 100_000)
    with pytest.raises(ValueError, match="page_max_pixels"):
        ImageSettings(page_max_pixels=0)


def test_the_reranker_renders_pages_at_the_budget_not_the_source_cap(doc: Path) -> None:
    # The reranker lifts max_pixels to max_source_pixels (178 MP) for photos; a page rendered
    # to fill that would be a 700 MB bitmap.
    from vllm_multimodal_embeddings.reranking import RerankerSettings
    from vllm_multimodal_embeddings.reranking._core import RerankCore

    core = RerankCore(RerankerSettings(base_url="http://127.0.0.1:9", model="m"))
    prepared = core.prepare(PdfPage(doc, 1), 0, None)
    assert prepared.image_url is not None
    assert decoded(prepared.image_url).size == page_size_for(612, 792, DEFAULT_MAX_PIXELS)


def test_a_folder_nothing_is_taken_from_is_an_error_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 34, item 15: a folder of PDFs ended "embedded 0", exit 0, with no word on why.
    from vllm_multimodal_embeddings.bulk import sources

    write_pdf(tmp_path / "report.pdf", ["One", "Two", "Three"])
    (tmp_path / "notes.docx").write_bytes(b"PK")
    monkeypatch.setattr(sources, "default_extensions", lambda: sources.IMAGE_EXTENSIONS)
    with pytest.raises(sources.SourceError) as info:
        sources.directory_source(tmp_path)
    message = str(info.value)
    assert "none of its 2 files" in message
    assert '.pdf: 1 (install the "pdf" extra' in message
    assert ".docx: 1 (no reader for it)" in message
    with pytest.raises(sources.SourceError, match="none of its 2 files"):
        sources.glob_source(str(tmp_path / "*"))
