"""Bulk job parts that need no server: the folder lock, option checks, scrubbed messages."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_multimodal_embeddings.bulk import BulkJobError, JobOptions
from vllm_multimodal_embeddings.bulk.job import LOCK_FILE, _FolderLock, scrub


def test_a_second_writer_is_refused_naming_the_folder(tmp_path: Path) -> None:
    with _FolderLock(tmp_path):
        with (
            pytest.raises(BulkJobError, match="another run is writing to") as info,
            _FolderLock(tmp_path),
        ):
            pass
        assert str(tmp_path / LOCK_FILE) in str(info.value)
    with _FolderLock(tmp_path):  # released on exit
        pass


def test_a_killed_writer_leaves_the_folder_unlocked(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from vllm_multimodal_embeddings.bulk.job import _FolderLock\n"
            f"with _FolderLock(Path({str(tmp_path)!r})):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(BulkJobError), _FolderLock(tmp_path):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with _FolderLock(tmp_path):
        pass


@pytest.mark.parametrize(
    "change",
    [{"dimensions": 0}, {"flush_rows": 0}, {"dimensions": 2.5}, {"on_error": "ignore"}],
)
def test_job_options_are_checked(change: dict[str, object]) -> None:
    with pytest.raises(BulkJobError, match=f"invalid job option.*{next(iter(change))}"):
        JobOptions(**change)  # type: ignore[arg-type]


def test_scrub_drops_url_credentials_and_queries() -> None:
    text = (
        "HTTP 500: cannot fetch https://bob:hunter2@cdn.example/a.png?X-Amz-Signature=abc, "
        "nor 'http://127.0.0.1:9/x.png?token=t0k' (refused)"
    )
    out = scrub(text)
    for secret in ("hunter2", "X-Amz-Signature", "abc", "t0k"):
        assert secret not in out
    assert "cdn.example/a.png" in out and "127.0.0.1:9/x.png" in out
    assert scrub("no URL here: photos/a?.png") == "no URL here: photos/a?.png"


def test_scrub_drops_an_inputs_query_where_only_its_path_is_quoted() -> None:
    # urllib3's words, as vLLM returns them for an image it cannot fetch.
    text = "HTTP 500: Max retries exceeded with url: /x.png?sig=SECRET (Caused by ...)"
    out = scrub(text, ["http://me:pw@127.0.0.1:9/x.png?sig=SECRET", None, "photos/a.png"])
    assert "SECRET" not in out and "/x.png?<redacted>" in out
