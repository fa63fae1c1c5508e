"""The ``embed`` command's parsing and progress line, without a server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from vllm_multimodal_embeddings.__main__ import build_parser, main
from vllm_multimodal_embeddings.bulk.progress import Progress


def test_embed_is_registered_and_needs_one_source() -> None:
    args = build_parser().parse_args(["embed", "--dir", "photos", "--out", "v"])
    assert (args.dir, args.on_error, args.format, args.flush_rows) == (
        "photos",
        "fail",
        "parquet",
        1024,
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["embed", "--dir", "a", "--glob", "b", "--out", "v"])


def test_there_is_no_api_key_option() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["embed", "--dir", "a", "--out", "v", "--api-key", "k"])


def test_missing_source_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "embed",
            "--dir",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
            "--base-url",
            "http://127.0.0.1:9",
        ]
    )
    assert code == 1
    assert f"not a directory: {tmp_path / 'nope'}" in capsys.readouterr().err


def test_plain_progress_line_has_rate_and_eta() -> None:
    out = io.StringIO()
    progress = Progress(100, enabled=False, stream=out)
    progress._done, progress._before = 30, 10  # 30 of the 90 left, as a run reports them
    progress._start -= 10.0
    line = progress.line()
    assert line.startswith("30/90 items, 3.0 items/s, ETA 20 s"), line
