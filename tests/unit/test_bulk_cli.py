"""The ``embed`` command's parsing and progress line, without a server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from vllm_multimodal_embeddings import _constants as C
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


@pytest.mark.parametrize("form", [["--api-key", "sk-on-argv"], ["--api-key=sk-on-argv"]])
def test_api_key_on_argv_is_refused_without_echoing_it(
    form: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse's "unrecognized arguments: --api-key sk-on-argv" printed the key.
    code = main(["embed", "--dir", str(tmp_path), "--out", str(tmp_path / "o"), *form])
    assert code == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "--api-key was removed" in text and "VLLM_API_KEY" in text
    assert "sk-on-argv" not in text
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--dimensions", "0"),
        ("--dimensions", "-3"),
        ("--flush-rows", "0"),
        ("--timeout", "0"),
        ("--max-retries", "-1"),
        ("--max-retry-time", "-5"),
        ("--prepare-processes", "-2"),
        ("--concurrency", "0"),
    ],
)
def test_bad_options_are_refused_before_the_folder_is_touched(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --dimensions 0 used to write job.json first: the folder then refused every later run.
    photos = tmp_path / "photos"
    photos.mkdir()
    out = tmp_path / "o"
    args = ["embed", "--dir", str(photos), "--out", str(out), "--base-url", "http://127.0.0.1:9"]
    assert main([*args, flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and value in err and "Traceback" not in err
    assert not out.exists()


def test_connection_options_reach_the_client_settings() -> None:
    from vllm_multimodal_embeddings.bulk.cli import _settings

    argv = ["embed", "--dir", "p", "--out", "o", "--base-url", "http://gpu-1:8000"]
    extra = ["--timeout", "12.5", "--max-retries", "0", "--max-retry-time", "30"]
    extra += ["--prepare-processes", "0", "--batch-size", "8", "--concurrency", "3"]
    s = _settings(build_parser().parse_args([*argv, *extra]), None)
    assert (s.timeout, s.max_retries, s.max_retry_time, s.prepare_processes) == (12.5, 0, 30, 0)
    assert (s.batch_size, s.max_concurrency) == (8, 3)
    # Left out, each keeps the library's default (batch size and concurrency self-tune).
    d = _settings(build_parser().parse_args(argv), None)
    assert (d.batch_size, d.max_concurrency, d.max_retries) == (None, None, C.DEFAULT_MAX_RETRIES)


def test_help_says_what_glob_and_dir_take_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: the image types jpg,jpeg,png" in text
    assert "--ask-api-key" in text


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
