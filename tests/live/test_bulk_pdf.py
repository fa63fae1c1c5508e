"""`vllm-mm-embed embed --dir --ext pdf` against a real server: a row per page, resumed per page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("reportlab")
pytest.importorskip("pyarrow")

from tests.pdfs import write_corrupt, write_pdf
from vllm_multimodal_embeddings import EmbeddingClient
from vllm_multimodal_embeddings.__main__ import main
from vllm_multimodal_embeddings._types import PdfPage
from vllm_multimodal_embeddings.bulk import read_failures, read_vectors


def _embed(server: Any, out: Path, folder: Path, *args: str) -> int:
    return main(
        [
            "embed",
            "--base-url",
            server.base_url,
            "--out",
            str(out),
            "--no-progress",
            "--dir",
            str(folder),
            "--ext",
            "pdf,png",
            "--batch-size",
            "2",
            "--flush-rows",
            "1",
            *args,
        ]
    )


def test_pdf_pages_are_rows_resumed_page_by_page(
    vllm_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    write_pdf(folder / "a.pdf", ["A one", "A two", "A three"], rotate={2: 270})
    write_corrupt(folder / "b.pdf")
    write_pdf(folder / "sub" / "c.pdf", ["C one"])
    out = tmp_path / "out"

    # The corrupt file stops the run after a.pdf's pages, which are committed.
    assert _embed(vllm_server, out, folder) == 1
    err = capsys.readouterr().err
    assert "input 'b.pdf'" in err and "not a valid PDF" in err and "b.pdf" in err
    assert read_vectors(out)[0] == ["a.pdf#p1", "a.pdf#p2", "a.pdf#p3"]

    # Mended, the job resumes: done pages are skipped, the rest follow in source order.
    write_pdf(folder / "b.pdf", ["B one", "B two"])
    assert _embed(vllm_server, out, folder, "--resume") == 0
    assert "already done before this run: 3" in capsys.readouterr().err
    ids, matrix = read_vectors(out)
    assert ids == ["a.pdf#p1", "a.pdf#p2", "a.pdf#p3", "b.pdf#p1", "b.pdf#p2", "sub/c.pdf#p1"]
    pages = [PdfPage(folder / name.split("#p")[0], int(name.split("#p")[1])) for name in ids]
    with EmbeddingClient(base_url=vllm_server.base_url) as client:
        expected = client.embed_array(pages)
    np.testing.assert_allclose(matrix, expected, atol=1e-5)
    assert read_failures(out) == []


def test_skip_reports_a_bad_pdf_once_and_embeds_the_rest(vllm_server: Any, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "a.pdf", ["A one"])
    write_pdf(folder / "locked.pdf", ["Hidden"], password="pw")
    # A row after the failure: a run whose last item fails with nothing left to write trips
    # a separate bulk-sink bug (a commit of zero rows), reported apart from this feature.
    write_pdf(folder / "z.pdf", ["Z one"])
    out = tmp_path / "out"
    assert _embed(vllm_server, out, folder, "--on-error", "skip") == 0
    assert read_vectors(out)[0] == ["a.pdf#p1", "z.pdf#p1"]
    failures = read_failures(out)
    assert [f.id for f in failures] == ["locked.pdf"]
    assert "encrypted" in failures[0].message and "locked.pdf" in failures[0].message


@pytest.mark.parametrize("given", ["file", "variable"])
def test_encrypted_pdfs_with_passwords_from_a_file_or_a_variable(
    vllm_server: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    given: str,
) -> None:
    password = "B0ard-only!"
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "board.pdf", ["B one", "B two"], password=password)
    write_pdf(folder / "plain.pdf", ["B one", "B two"])
    write_pdf(folder / "pay.pdf", ["P one"], password="another")
    out = tmp_path / "out"
    if given == "file":
        pw_file = tmp_path / "pw.json"
        pw_file.write_text(json.dumps({"board.pdf": password, "pay.pdf": "wrong-one"}))
        args = ["--pdf-passwords", str(pw_file)]
    else:
        monkeypatch.setenv("BOARD_PDF_PASSWORD", password)
        args = ["--pdf-password-env", "BOARD_PDF_PASSWORD"]
    assert _embed(vllm_server, out, folder, "--on-error", "skip", *args) == 0
    ids, matrix = read_vectors(out)
    assert ids == ["board.pdf#p1", "board.pdf#p2", "plain.pdf#p1", "plain.pdf#p2"]
    np.testing.assert_allclose(matrix[:2], matrix[2:], atol=1e-5)  # the plain file's pages
    # The file no password opens fails whole, named, with the reason.
    failures = read_failures(out)
    assert [f.id for f in failures] == ["pay.pdf"]
    assert "does not open it" in failures[0].message and "pay.pdf" in failures[0].message
    # The password is nowhere: not in the output folder, the job file or what was printed.
    printed = capsys.readouterr()
    for path in out.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
            assert b"wrong-one" not in path.read_bytes(), path
    assert password not in printed.out + printed.err


def test_a_missing_password_variable_is_an_error_before_anything_runs(
    vllm_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "a.pdf", ["A"])
    out = tmp_path / "out"
    assert _embed(vllm_server, out, folder, "--pdf-password-env", "NO_SUCH_VAR_X") == 2
    assert "NO_SUCH_VAR_X" in capsys.readouterr().err
    assert not out.exists()
