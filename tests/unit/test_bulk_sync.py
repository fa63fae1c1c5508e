"""``run_job(sync=True)`` / ``embed --sync``: an output folder brought in line with a source
that changed between runs (issue 34). A stand-in server answers; the live suite runs the same
through the real one (``tests/live/test_bulk.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.pdfs import write_pdf
from tests.unit.test_client_transport import FakeVLLM, probed, vector_for
from vllm_multimodal_embeddings.bulk import (
    JobOptions,
    directory_source,
    manifest_source,
    read_failures,
    read_vectors,
    run_job,
)

SKIP = JobOptions(on_error="skip", flush_rows=2)


def _manifest(path: Path, rows: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in rows.items()))
    return path


def _run(source, out: Path, **kw):  # type: ignore[no-untyped-def]
    with probed(FakeVLLM()) as client:
        return run_job(client, source, out, SKIP, **kw)


def test_sync_embeds_what_changed_drops_what_is_gone_and_clears_fixed_failures(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    manifest = tmp_path / "m.jsonl"
    _manifest(manifest, {"a": "alpha", "b": "beta", "c": "gamma", "d": ""})
    first = _run(manifest_source(manifest), out)
    assert (first.embedded, first.failed) == (3, 1)  # "d" has nothing to embed
    _manifest(manifest, {"a": "alpha", "b": "beta, rewritten", "d": "delta now", "e": "new"})
    # --resume keeps the stale rows: it never reads a done input again.
    assert _run(manifest_source(manifest), out, resume=True).embedded == 1  # only "e"
    assert read_vectors(out)[0] == ["a", "b", "c", "e"]
    synced = _run(manifest_source(manifest), out, sync=True)
    c = synced.synced
    assert c is not None
    assert (c.new, c.changed, c.removed, c.unchanged, c.retried) == (0, 1, 1, 2, 1)
    assert synced.embedded == 2 and synced.failed == 0
    ids, matrix = read_vectors(out)
    assert sorted(ids) == ["a", "b", "d", "e"] and len(ids) == len(set(ids))
    want = {"a": "alpha", "b": "beta, rewritten", "d": "delta now", "e": "new"}
    for i, id_ in enumerate(ids):
        np.testing.assert_allclose(matrix[i], vector_for(want[id_]), atol=1e-6)
    assert read_failures(out) == []  # the fixed failure is gone from every later summary
    assert "sync: 0 new, 1 changed, 1 removed, 2 unchanged" in "\n".join(synced.lines())
    again = _run(manifest_source(manifest), out, sync=True)
    assert again.synced is not None and again.synced.unchanged == 4 and again.embedded == 0


def test_a_pdf_resaved_with_fewer_pages_loses_its_stale_pages(tmp_path: Path) -> None:
    pytest.importorskip("pypdfium2")
    pytest.importorskip("reportlab")
    docs, out = tmp_path / "docs", tmp_path / "out"
    docs.mkdir()
    write_pdf(docs / "report.pdf", ["1", "2", "3", "4", "5"])
    (docs / "locked.pdf").write_bytes(b"%PDF-1.4 truncated")  # fails as a whole
    first = _run(directory_source(docs), out)
    assert (first.embedded, first.failed) == (5, 1)
    write_pdf(docs / "report.pdf", ["one", "two"])  # re-saved: 2 pages
    write_pdf(docs / "locked.pdf", ["readable now"])  # the failure is fixed
    synced = _run(directory_source(docs), out, sync=True)
    c = synced.synced
    assert c is not None and (c.new, c.changed, c.removed) == (1, 2, 4)
    assert sorted(read_vectors(out)[0]) == ["locked.pdf#p1", "report.pdf#p1", "report.pdf#p2"]
    assert read_failures(out) == []  # "locked.pdf" failed as a file: that id is gone
