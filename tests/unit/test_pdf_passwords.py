"""Encrypted PDFs through the string paths: page URIs, loaders, page nodes, bulk sources.

The password goes beside the URI (``pdf_passwords``, a loader's ``password``), never in it:
these tests check it opens the files and that no repr, dump, URI, error or item shows it.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("reportlab")

from tests.pdfs import write_pdf
from vllm_multimodal_embeddings import ClientSettings, ConfigurationError, PdfPasswords
from vllm_multimodal_embeddings._exceptions import ImageLoadError
from vllm_multimodal_embeddings.bulk.sources import directory_source
from vllm_multimodal_embeddings.inputs._read import prepare_image
from vllm_multimodal_embeddings.inputs._settings import ImageSettings

PW = "s3cret-Pa55"
SMALL = dict(max_image_pixels=100_000)


@pytest.fixture
def pdfs(tmp_path: Path) -> Path:
    (tmp_path / "hr").mkdir()
    write_pdf(tmp_path / "plain.pdf", ["Hidden", "Also hidden"])
    write_pdf(tmp_path / "board.pdf", ["Hidden", "Also hidden"], password=PW)
    write_pdf(tmp_path / "hr" / "pay.pdf", ["Pay"], password="other-pw")
    return tmp_path


def test_keys_match_paths_patterns_and_any(tmp_path: Path) -> None:
    passwords = PdfPasswords(
        {"*": "any", "hr/*.pdf": "hr", "board.pdf": "board", str(tmp_path / "x.pdf"): "x"}
    )
    assert passwords.for_path(tmp_path / "board.pdf") == "board"
    assert passwords.for_path(tmp_path / "deep" / "board.pdf") == "board"  # every board.pdf
    assert passwords.for_path(tmp_path / "hr" / "pay.pdf") == "hr"
    assert passwords.for_path(tmp_path / "x.pdf") == "x"
    assert passwords.for_path(tmp_path / "other.pdf") == "any"  # "*" last, wherever given
    assert passwords.for_path(tmp_path / "myboard.pdf") == "any"  # whole names only
    assert PdfPasswords({"board.pdf": "b"}).for_path(tmp_path / "other.pdf") is None
    assert PdfPasswords("all").for_path("/anything.pdf") == "all"


def test_passwords_are_never_shown(tmp_path: Path) -> None:
    passwords = PdfPasswords({"board.pdf": PW})
    assert PW not in repr(passwords) and "board.pdf" in repr(passwords)
    settings = ClientSettings(base_url="http://127.0.0.1:9", pdf_passwords={"board.pdf": PW})
    assert settings.pdf_passwords == passwords
    assert PW not in repr(settings)
    # Worker processes that render pages get them.
    assert pickle.loads(pickle.dumps(settings)).pdf_passwords.for_path("board.pdf") == PW
    with pytest.raises(ConfigurationError) as info:
        PdfPasswords({"board.pdf": 1234})  # type: ignore[dict-item]
    assert "board.pdf" in str(info.value)


def test_password_files(tmp_path: Path) -> None:
    (tmp_path / "pw.json").write_text(json.dumps({"board.pdf": PW, "*": "rest"}))
    (tmp_path / "pw.txt").write_text(PW + "\n")
    (tmp_path / "bad.json").write_text('{"board.pdf": "' + PW)
    by_file = PdfPasswords.from_file(tmp_path / "pw.json")
    assert by_file.for_path("/x/board.pdf") == PW and by_file.for_path("/x/a.pdf") == "rest"
    assert PdfPasswords.from_file(tmp_path / "pw.txt").for_path("/x/a.pdf") == PW
    with pytest.raises(ConfigurationError, match="not valid JSON") as info:
        PdfPasswords.from_file(tmp_path / "bad.json")
    assert PW not in str(info.value)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match="empty"):
        PdfPasswords.from_file(tmp_path / "empty")


def test_page_uris_render_with_the_settings_password(pdfs: Path) -> None:
    uri = f"{pdfs / 'board.pdf'}#page=2"
    options = ImageSettings(**SMALL, pdf_passwords={"board.pdf": PW, "pay.pdf": "wrong"})
    want = prepare_image(f"{pdfs / 'plain.pdf'}#page=2", index=0, options=options)
    assert prepare_image(uri, index=0, options=options) == want  # the same pixels
    with pytest.raises(ImageLoadError, match="password given does not open it") as wrong:
        prepare_image(f"{pdfs / 'hr' / 'pay.pdf'}#page=1", index=4, options=options)
    assert wrong.value.index == 4 and "pay.pdf#page=1" in str(wrong.value)
    assert "wrong" not in str(wrong.value).replace("does not", "")
    with pytest.raises(ImageLoadError, match="pdf_passwords"):
        prepare_image(uri, index=0, options=ImageSettings(**SMALL))


def test_langchain_loader_takes_a_password(pdfs: Path) -> None:
    pytest.importorskip("langchain_core")
    from vllm_multimodal_embeddings.langchain import PdfPageImageLoader, VLLMMultimodalEmbeddings

    loader = PdfPageImageLoader(pdfs / "board.pdf", password=PW)
    docs = loader.load()
    assert [d.metadata["page_number"] for d in docs] == [1, 2]
    assert all(PW not in d.page_content and PW not in str(d.metadata) for d in docs)
    assert PW not in repr(loader)
    with pytest.raises(ImageLoadError, match="encrypted"):
        PdfPageImageLoader(pdfs / "board.pdf").load()
    embeddings = VLLMMultimodalEmbeddings(base_url="http://127.0.0.1:9", pdf_passwords=PW)
    assert embeddings.settings().pdf_passwords == PdfPasswords(PW)
    assert PW not in repr(embeddings) and PW not in str(embeddings.model_dump())
    assert PW not in embeddings.model_dump_json()


def test_llama_index_page_nodes_take_a_password(pdfs: Path) -> None:
    pytest.importorskip("llama_index.core")
    from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding, pdf_page_nodes

    nodes = list(pdf_page_nodes(pdfs / "board.pdf", password=PW))
    assert [n.metadata["page_number"] for n in nodes] == [1, 2]
    assert all(PW not in (n.image_path or "") and PW not in n.model_dump_json() for n in nodes)
    embedding = VLLMMultiModalEmbedding(
        base_url="http://127.0.0.1:9", pdf_passwords={"board.pdf": PW}
    )
    assert embedding.settings().pdf_passwords == PdfPasswords({"board.pdf": PW})
    assert PW not in repr(embedding) and PW not in embedding.model_dump_json()
    assert PW not in embedding.to_json()


def test_bulk_sources_count_encrypted_pages_with_their_password(pdfs: Path) -> None:
    passwords = PdfPasswords({"board.pdf": PW, "pay.pdf": "wrong"})
    items = {i.id: i for i in directory_source(pdfs, (".pdf",), passwords=passwords)}
    assert sorted(items) == ["board.pdf#p1", "board.pdf#p2", "hr/pay.pdf", "plain.pdf#p1",
                             "plain.pdf#p2"]  # fmt: skip
    assert items["board.pdf#p2"].image == f"{pdfs / 'board.pdf'}#page=2"  # no password in it
    problem = items["hr/pay.pdf"].problem or ""
    assert "does not open it" in problem and "pay.pdf" in problem and "wrong" not in problem
    # Without passwords the encrypted files fail whole, each named.
    plain = {i.id: i for i in directory_source(pdfs, (".pdf",))}
    assert "encrypted" in (plain["board.pdf"].problem or "")
