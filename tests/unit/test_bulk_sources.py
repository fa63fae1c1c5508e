"""Bulk sources: what each input form yields, in a fixed order, with unique ids."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vllm_multimodal_embeddings import Content
from vllm_multimodal_embeddings.bulk import (
    Item,
    SourceError,
    directory_source,
    glob_source,
    manifest_source,
)


def _tree(root: Path) -> None:
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"1")
    (root / "b" / "c.PNG").write_bytes(b"2")
    (root / "b" / "deep" / "d.jpeg").write_bytes(b"3")
    (root / "b" / "notes.txt").write_text("hello", encoding="utf-8")
    (root / "skip.csv").write_text("x", encoding="utf-8")


def test_directory_is_recursive_sorted_and_filtered_by_extension(tmp_path: Path) -> None:
    _tree(tmp_path)
    source = directory_source(tmp_path)
    items = list(source)
    assert [i.id for i in items] == ["a.jpg", "b/c.PNG", "b/deep/d.jpeg"]
    assert source.total == 3
    assert items[0].image == str(tmp_path / "a.jpg") and items[0].text is None
    assert items[0].to_input() == Content(image=str(tmp_path / "a.jpg"))


def test_directory_reads_text_files_as_text_when_asked(tmp_path: Path) -> None:
    _tree(tmp_path)
    items = list(directory_source(tmp_path, ("txt", ".jpg")))
    assert [i.id for i in items] == ["a.jpg", "b/notes.txt"]
    assert items[1].to_input() == "hello"


def test_glob_keeps_the_matched_path_as_id(tmp_path: Path) -> None:
    _tree(tmp_path)
    items = list(glob_source(str(tmp_path / "**" / "*.jp*g")))
    assert [i.id for i in items] == [str(tmp_path / "a.jpg"), str(tmp_path / "b/deep/d.jpeg")]


def test_input_hash_follows_the_file_bytes(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = next(iter(directory_source(tmp_path))).input_hash()
    (tmp_path / "a.jpg").write_bytes(b"changed")
    after = next(iter(directory_source(tmp_path))).input_hash()
    assert before != after and len(before) == 64


ROWS = [
    {"id": "r1", "text": "a caption", "image": "img/1.png"},
    {"id": "r2", "text": "only text", "image": None},
    {"id": "r3", "text": None, "image": "https://example.com/x.png"},
    {"id": "r4", "text": "", "image": ""},
]


def _write_manifest(path: Path, rows: list[dict]) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".csv":
        lines = ["id,text,image"] + [
            ",".join(r[k] or "" for k in ("id", "text", "image")) for r in rows
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_manifest_forms_agree(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    _write_manifest(path, ROWS)
    items = list(manifest_source(path))
    assert [i.id for i in items] == ["r1", "r2", "r3", "r4"]
    assert items[0].to_input() == Content(text="a caption", image=str(tmp_path / "img/1.png"))
    assert items[1].to_input() == "only text"
    assert items[2].image == "https://example.com/x.png"  # URIs pass as they are
    # A row with nothing to embed is reported, never silently dropped.
    assert items[3].problem == "row 4 has neither text nor image"


def test_manifest_duplicate_id_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    _write_manifest(path, [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}])
    with pytest.raises(SourceError, match="duplicate id 'x'"):
        list(manifest_source(path))


def test_manifest_without_id_column_names_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    _write_manifest(path, [{"key": "x", "text": "a"}])
    with pytest.raises(SourceError, match=r"no 'id' column \(has \['key', 'text'\]\)"):
        list(manifest_source(path))


def test_manifest_bad_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{oops\n', encoding="utf-8")
    with pytest.raises(SourceError, match="line 2: not JSON"):
        list(manifest_source(path))


def test_manifest_other_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.xlsx"
    path.write_bytes(b"")
    with pytest.raises(SourceError, match=r"\.csv, \.jsonl or \.parquet"):
        list(manifest_source(path))


def test_glob_without_ext_takes_image_types_only(tmp_path: Path) -> None:
    _tree(tmp_path)
    items = list(glob_source(str(tmp_path / "**" / "*")))
    assert [Path(i.id).name for i in items] == ["a.jpg", "c.PNG", "d.jpeg"]
    texts = list(glob_source(str(tmp_path / "**" / "*"), (".txt",)))
    assert [(Path(i.id).name, i.text) for i in texts] == [("notes.txt", "hello")]


def test_glob_extensions_are_part_of_the_job(tmp_path: Path) -> None:
    # A resume with another --ext is another job: the description tells them apart.
    pattern = str(tmp_path / "*")
    assert glob_source(pattern).description != glob_source(pattern, (".png",)).description


def _within(seconds: float, fn: Callable[[], str]) -> str:
    """``fn()``, failing the test (not hanging it) when it does not return in time."""
    out: list[str] = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert out, f"still running after {seconds} s"
    return out[0]


def test_input_hash_never_reads_a_device_or_a_fifo(tmp_path: Path) -> None:
    # A plain open() of /dev/zero never ends; of a FIFO, it blocks until a writer comes.
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        digest = _within(10, Item("x", image=path).input_hash)
        assert digest == Item("x", image=path).input_hash() and len(digest) == 64


def test_input_hash_takes_any_text_and_any_path() -> None:
    # A lone surrogate, a NUL byte, a '~user' that does not exist: the client reports those;
    # hashing must not raise first.
    for item in (
        Item("a", text="bad \ud800 text"),
        Item("b", image="x\0y.png"),
        Item("c", image="~no-such-user-here/x.png"),
        Item("d", text="t", image="https://example.com/x.png?sig=1"),
    ):
        assert len(item.input_hash()) == 64
    assert Item("a", text="\ud800").input_hash() != Item("a", text="\ud801").input_hash()
