"""``vllm-mm-embed embed`` against a real vLLM server: every source form, output equal to the
client's vectors in order, a kill mid-run then ``--resume``, skip vs fail on bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import image_png
from tests.media_host import media_host
from vllm_multimodal_embeddings import Content, EmbeddingClient
from vllm_multimodal_embeddings.__main__ import main
from vllm_multimodal_embeddings.bulk import (
    JobOptions,
    manifest_source,
    read_failures,
    read_vectors,
    run_job,
)


def _images(folder: Path, n: int, size: tuple[int, int] = (48, 48)) -> list[Path]:
    """``n`` distinct images spread over nested folders; returned in sorted path order."""
    paths = []
    for i in range(n):
        path = folder / f"g{i % 3}" / f"img{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_png(i, size))
        paths.append(path)
    return sorted(paths)


def _embed(server: Any, out: Path, *args: str) -> int:
    return main(
        [
            "embed",
            "--base-url",
            server.base_url,
            "--out",
            str(out),
            "--no-progress",
            "--batch-size",
            "4",
            *args,
        ]
    )


def _reference(server: Any, inputs: list[Any]) -> np.ndarray:
    with EmbeddingClient(base_url=server.base_url) as client:
        return client.embed_array(inputs)


def test_directory_rows_equal_the_client_in_order(vllm_server: Any, tmp_path: Path) -> None:
    paths = _images(tmp_path / "photos", 23)
    (tmp_path / "photos" / "readme.md").write_text("not an image", encoding="utf-8")
    out = tmp_path / "out"
    assert _embed(vllm_server, out, "--dir", str(tmp_path / "photos"), "--flush-rows", "5") == 0
    ids, matrix = read_vectors(out)
    assert ids == [p.relative_to(tmp_path / "photos").as_posix() for p in paths]
    np.testing.assert_allclose(
        matrix, _reference(vllm_server, [Content(image=str(p)) for p in paths]), atol=1e-5
    )
    assert len(list(out.glob("part-*.parquet"))) == 5  # 23 rows, 5 per group
    row = pq.read_table(out / "part-00000.parquet").to_pylist()[0]
    assert row["model"] == vllm_server.model
    assert row["dimensions"] == matrix.shape[1]
    assert row["instruction"] == "Represent the user's input."


def test_glob_to_numpy_with_dimensions_and_query(vllm_server: Any, tmp_path: Path) -> None:
    paths = _images(tmp_path / "photos", 9)
    out = tmp_path / "out"
    code = _embed(
        vllm_server,
        out,
        "--glob",
        str(tmp_path / "photos" / "g1" / "*.png"),
        "--format",
        "numpy",
        "--dimensions",
        "16",
        "--input-type",
        "query",
    )
    assert code == 0
    chosen = [p for p in paths if p.parent.name == "g1"]
    ids, matrix = read_vectors(out)
    assert ids == [str(p) for p in chosen]
    with EmbeddingClient(base_url=vllm_server.base_url) as client:
        want = client.embed_array(
            [Content(image=str(p)) for p in chosen], dimensions=16, input_type="query"
        )
    assert matrix.shape == (3, 16)
    np.testing.assert_allclose(matrix, want, atol=1e-5)


def _manifest_rows(folder: Path) -> list[dict[str, Any]]:
    paths = _images(folder, 4)
    return [
        {"id": "t1", "text": "a red bicycle", "image": None},
        {"id": "i1", "text": None, "image": str(paths[0].relative_to(folder))},
        {"id": "p1", "text": "a noisy square", "image": str(paths[1].relative_to(folder))},
        {"id": "t2", "text": "a blue car", "image": None},
        {"id": "i2", "text": None, "image": str(paths[2].relative_to(folder))},
    ]


def _write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".csv":
        lines = ["id,text,image"] + [
            f"{r['id']},{r['text'] or ''},{r['image'] or ''}" for r in rows
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_manifest_forms_equal_the_client(vllm_server: Any, tmp_path: Path, suffix: str) -> None:
    rows = _manifest_rows(tmp_path)
    manifest = tmp_path / f"manifest{suffix}"
    _write_manifest(manifest, rows)
    out = tmp_path / "out"
    assert _embed(vllm_server, out, "--manifest", str(manifest)) == 0
    ids, matrix = read_vectors(out)
    assert ids == [r["id"] for r in rows]
    inputs: list[Any] = [
        r["text"]
        if r["image"] is None
        else Content(text=r["text"], image=str(tmp_path / r["image"]))
        for r in rows
    ]
    np.testing.assert_allclose(matrix, _reference(vllm_server, inputs), atol=1e-5)


def _run_and_signal(server: Any, args: list[str], out: Path, sig: int, parts: int) -> int:
    """Start the command in a process; send ``sig`` once ``parts`` groups are committed."""
    env = {**os.environ, "VLLM_BASE_URL": server.base_url}
    cmd = [sys.executable, "-m", "vllm_multimodal_embeddings", "embed", "--out", str(out), *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while len(list(out.glob("part-*"))) < parts:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "no parts committed in time"
            time.sleep(0.02)
        proc.send_signal(sig)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_resume_after_a_kill_writes_every_id_once(
    vllm_server: Any, tmp_path: Path, sig: int
) -> None:
    paths = _images(tmp_path / "photos", 240, size=(96, 96))
    args = [
        "--dir",
        str(tmp_path / "photos"),
        "--batch-size",
        "2",
        "--concurrency",
        "1",
        "--flush-rows",
        "8",
        "--no-progress",
    ]
    out = tmp_path / "out"
    code = _run_and_signal(vllm_server, args, out, sig, parts=3)
    ids_before, _ = read_vectors(out)
    assert 0 < len(ids_before) < len(paths), "the run was not stopped mid-way"
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130  # stopped cleanly: what was done is committed
    assert (
        main(["embed", "--base-url", vllm_server.base_url, "--out", str(out), "--resume", *args])
        == 0
    )
    ids, matrix = read_vectors(out)
    want_ids = [p.relative_to(tmp_path / "photos").as_posix() for p in paths]
    assert len(ids) == len(set(ids)) == len(paths)
    assert ids[: len(ids_before)] == ids_before
    assert ids == want_ids  # nothing lost, nothing twice, source order kept
    np.testing.assert_allclose(
        matrix, _reference(vllm_server, [Content(image=str(p)) for p in paths]), atol=1e-5
    )
    assert not list(out.glob(".*.tmp"))


def _bad_corpus(folder: Path) -> Path:
    paths = _images(folder, 10)
    (folder / "broken.png").write_bytes(b"not a png at all")
    rows: list[dict[str, Any]] = [
        {"id": f"ok{i}", "text": None, "image": str(p.relative_to(folder))}
        for i, p in enumerate(paths)
    ]
    rows.insert(3, {"id": "missing", "text": None, "image": "nope/never.png"})
    rows.insert(7, {"id": "broken", "text": None, "image": "broken.png"})
    rows.insert(8, {"id": "empty", "text": None, "image": None})
    manifest = folder / "m.jsonl"
    _write_manifest(manifest, rows)
    return manifest


def test_on_error_fail_stops_at_the_bad_input_naming_it(
    vllm_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _bad_corpus(tmp_path)
    out = tmp_path / "out"
    assert _embed(vllm_server, out, "--manifest", str(manifest), "--flush-rows", "2") == 1
    err = capsys.readouterr().err
    assert "input 'missing'" in err
    ids, _ = read_vectors(out)
    assert ids == ["ok0", "ok1", "ok2"]  # everything before it, committed
    assert read_failures(out) == []  # a fatal input is not recorded as skipped: resume retries


def test_on_error_skip_reports_each_bad_input_and_embeds_the_rest(
    vllm_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _bad_corpus(tmp_path)
    out = tmp_path / "out"
    code = _embed(
        vllm_server, out, "--manifest", str(manifest), "--on-error", "skip", "--flush-rows", "3"
    )
    assert code == 0
    ids, matrix = read_vectors(out)
    assert ids == [f"ok{i}" for i in range(10)]
    paths = _images(tmp_path, 10)
    np.testing.assert_allclose(
        matrix, _reference(vllm_server, [Content(image=str(p)) for p in paths]), atol=1e-5
    )
    failures = {f.id: f for f in read_failures(out)}
    assert sorted(failures) == ["broken", "empty", "missing"]
    assert failures["missing"].reason == "ImageLoadError"
    assert "never.png" in failures["missing"].message
    assert failures["empty"].reason == "source"
    summary = capsys.readouterr().err
    assert "failed in this run: 3" in summary and "embedded 10" in summary
    # Resuming a finished job does nothing twice.
    assert (
        _embed(vllm_server, out, "--manifest", str(manifest), "--on-error", "skip", "--resume") == 0
    )
    assert read_vectors(out)[0] == ids
    assert len(read_failures(out)) == 3


def test_a_media_host_down_for_a_while_costs_no_row(vllm_server: Any, tmp_path: Path) -> None:
    """Images by URL, fetched here: a host that fails for a moment is tried again in the run;
    one that stays down fails its rows as unavailable, and ``resume`` embeds them once it is
    back, each id once, in every row the client's vector."""
    paths = _images(tmp_path / "media", 6)
    names = [p.relative_to(tmp_path / "media").as_posix() for p in paths]
    manifest = tmp_path / "manifest.jsonl"
    options = JobOptions(on_error="skip", flush_rows=2)
    with media_host(tmp_path / "media") as host:
        manifest.write_text(
            "".join(json.dumps({"id": n, "image": host.of(n)}) + "\n" for n in names),
            encoding="utf-8",
        )
        host.failing[names[1]] = [503]  # a moment: the second try serves it
        host.failing[names[4]] = [503] * 100  # down for this run
        host.failing[names[5]] = [0] * 100  # hangs up, for this run
        with EmbeddingClient(
            base_url=vllm_server.base_url,
            fetch_remote_images=True,
            remote_allowed_hosts=("127.0.0.1",),
            batch_size=2,
        ) as client:
            first = run_job(client, manifest_source(manifest), tmp_path / "out", options)
            failures = {f.id: f.reason for f in read_failures(tmp_path / "out")}
            host.failing.clear()  # the host is back
            again = run_job(
                client, manifest_source(manifest), tmp_path / "out", options, resume=True
            )
    assert (first.embedded, first.failed, first.retried) == (4, 2, 0)
    assert failures == {names[4]: "RemoteUnavailableError", names[5]: "RemoteUnavailableError"}
    assert (again.embedded, again.failed, again.retried, again.already_done) == (2, 0, 2, 4)
    assert "tried again (a host or the server had failed for now): 2" in again.lines()
    assert read_failures(tmp_path / "out") == []
    ids, matrix = read_vectors(tmp_path / "out")
    assert sorted(ids) == sorted(names) and len(ids) == 6
    want = _reference(vllm_server, [Content(image=str(p)) for p in paths])
    np.testing.assert_allclose(matrix, want[[names.index(i) for i in ids]], atol=1e-5)


def test_a_media_host_down_while_the_server_fetches_costs_no_row(
    vllm_server: Any, tmp_path: Path
) -> None:
    """Image URLs the server fetches (the default): vLLM answers 500 for an input whose host
    fails, so the row fails as InternalServerError, and ``resume`` tries it again."""
    paths = _images(tmp_path / "media", 3)
    names = [p.relative_to(tmp_path / "media").as_posix() for p in paths]
    manifest = tmp_path / "manifest.jsonl"
    options = JobOptions(on_error="skip")
    with media_host(tmp_path / "media") as host:
        manifest.write_text(
            "".join(json.dumps({"id": n, "image": host.of(n)}) + "\n" for n in names),
            encoding="utf-8",
        )
        host.failing[names[1]] = [503] * 1000  # down for this run, the retries included
        with EmbeddingClient(base_url=vllm_server.base_url, max_retries=1) as client:
            first = run_job(client, manifest_source(manifest), tmp_path / "out", options)
            [failure] = read_failures(tmp_path / "out")
            host.failing.clear()
            again = run_job(
                client, manifest_source(manifest), tmp_path / "out", options, resume=True
            )
    assert (first.embedded, first.failed) == (2, 1)
    assert (failure.id, failure.reason) == (names[1], "InternalServerError")
    assert "503" in failure.message
    assert (again.embedded, again.failed, again.retried) == (1, 0, 1)
    ids, matrix = read_vectors(tmp_path / "out")
    assert sorted(ids) == sorted(names) and read_failures(tmp_path / "out") == []
    want = _reference(vllm_server, [Content(image=str(p)) for p in paths])
    np.testing.assert_allclose(matrix, want[[names.index(i) for i in ids]], atol=1e-5)


def test_resume_refuses_a_changed_job(
    vllm_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _images(tmp_path / "photos", 2)
    out = tmp_path / "out"
    assert _embed(vllm_server, out, "--dir", str(tmp_path / "photos")) == 0
    assert _embed(vllm_server, out, "--dir", str(tmp_path / "photos")) == 1
    assert "pass --resume" in capsys.readouterr().err
    assert (
        _embed(
            vllm_server, out, "--dir", str(tmp_path / "photos"), "--resume", "--dimensions", "16"
        )
        == 1
    )
    assert "the job changed (dimensions: None -> 16)" in capsys.readouterr().err


def test_sync_over_a_changed_folder_matches_a_fresh_run(
    vllm_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 34: pages removed, a file replaced, a failure fixed, a file gone, one added. After
    # --sync the folder holds exactly the vectors a fresh run over the new corpus gives.
    pytest.importorskip("pypdfium2")
    pytest.importorskip("reportlab")
    from tests.pdfs import write_pdf

    docs, out = tmp_path / "docs", tmp_path / "out"
    docs.mkdir()
    for i in range(3):
        (docs / f"img{i}.png").write_bytes(image_png(300 + i, (48, 48)))
    write_pdf(docs / "report.pdf", ["one", "two", "three", "four", "five"])
    (docs / "broken.png").write_bytes(b"not a png yet")
    assert _embed(vllm_server, out, "--dir", str(docs), "--on-error", "skip") == 0
    assert [f.id for f in read_failures(out)] == ["broken.png"]
    write_pdf(docs / "report.pdf", ["one", "two"])  # re-saved with 2 pages
    (docs / "img1.png").write_bytes(image_png(999, (48, 48)))  # replaced
    (docs / "broken.png").write_bytes(image_png(400, (48, 48)))  # fixed
    (docs / "img2.png").unlink()  # gone
    (docs / "img3.png").write_bytes(image_png(303, (48, 48)))  # added
    capsys.readouterr()
    assert _embed(vllm_server, out, "--dir", str(docs), "--on-error", "skip", "--sync") == 0
    err = capsys.readouterr().err
    # new: img3; changed: img1, both pages; removed: img2, pages 3-5; retried: broken.png.
    assert "sync: 1 new, 3 changed, 4 removed, 1 unchanged, 1 failed before" in err, err
    fresh = tmp_path / "fresh"
    assert _embed(vllm_server, fresh, "--dir", str(docs), "--on-error", "skip") == 0
    ids, matrix = read_vectors(out)
    fresh_ids, fresh_matrix = read_vectors(fresh)
    assert sorted(ids) == sorted(fresh_ids) and len(ids) == len(set(ids))
    order = [ids.index(i) for i in fresh_ids]
    np.testing.assert_allclose(matrix[order], fresh_matrix, atol=1e-5)
    assert read_failures(out) == []
