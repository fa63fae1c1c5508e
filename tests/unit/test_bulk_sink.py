"""Bulk output parts: what is committed reads back; what was not is cleaned up on resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vllm_multimodal_embeddings.bulk import Failure, read_failures, read_vectors
from vllm_multimodal_embeddings.bulk.sink import PartWriter


def _rows(n: int, start: int = 0) -> list[tuple[str, np.ndarray, str]]:
    rng = np.random.default_rng(start)
    return [(f"id{start + i}", rng.random(8, dtype=np.float32), f"h{start + i}") for i in range(n)]


@pytest.mark.parametrize("fmt", ["parquet", "numpy"])
def test_committed_groups_read_back_in_order(tmp_path: Path, fmt: str) -> None:
    w = PartWriter(tmp_path, fmt, "m", "Represent.")
    rows = _rows(5)
    for r in rows[:3]:
        w.add(*r)
    w.fail(Failure("bad", "ImageLoadError", "cannot decode"))
    assert w.commit() == 3
    for r in rows[3:]:
        w.add(*r)
    assert w.commit() == 2
    assert w.commit() == 0  # nothing pending: no empty part
    ids, matrix = read_vectors(tmp_path)
    assert ids == [r[0] for r in rows]
    np.testing.assert_array_equal(matrix, np.stack([r[1] for r in rows]))
    assert read_failures(tmp_path) == [Failure("bad", "ImageLoadError", "cannot decode")]


def test_parquet_part_has_the_documented_columns(tmp_path: Path) -> None:
    w = PartWriter(tmp_path, "parquet", "tiny-model", "Represent the user's input.")
    for r in _rows(2):
        w.add(*r)
    w.commit()
    table = pq.read_table(tmp_path / "part-00000.parquet")
    assert table.column_names == [
        "id",
        "vector",
        "model",
        "dimensions",
        "instruction",
        "input_hash",
    ]
    row = table.to_pylist()[1]
    assert (row["model"], row["dimensions"], row["input_hash"]) == ("tiny-model", 8, "h1")
    assert row["instruction"] == "Represent the user's input."
    assert pq.ParquetFile(tmp_path / "part-00000.parquet").metadata.num_row_groups == 1


def test_recover_counts_committed_groups_and_drops_leftovers(tmp_path: Path) -> None:
    w = PartWriter(tmp_path, "parquet", "m", None)
    for r in _rows(3):
        w.add(*r)
    w.fail(Failure("f0", "source", "empty"))
    w.commit()
    # A run killed mid-commit of group 1: its failures landed, its part did not. The failures
    # stay reported; the part's rows were never written, so the next run embeds them.
    (tmp_path / "failures-00001.jsonl").write_text(
        '{"id": "f1", "reason": "x", "message": "y"}\n', encoding="utf-8"
    )
    (tmp_path / ".part-00001.parquet.tmp").write_bytes(b"half a file")
    again = PartWriter(tmp_path, "parquet", "m", None)
    done, failures = again.recover()
    assert done == {"id0", "id1", "id2", "f0", "f1"}
    assert [f.id for f in failures] == ["f0", "f1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "failures-00000.jsonl",
        "failures-00001.jsonl",
        "part-00000.parquet",
    ]
    assert again.next_part == 2  # never overwrites group 1's failures


@pytest.mark.parametrize("fmt", ["parquet", "numpy"])
def test_groups_of_failures_only_commit_and_resume(tmp_path: Path, fmt: str) -> None:
    # Parquet refused a vector column of width 0 ("list_size needs to be a strict positive
    # integer"), and every --resume met the same group again.
    rows = _rows(2)
    w = PartWriter(tmp_path, fmt, "m", None)
    w.fail(Failure("bad0", "ImageLoadError", "cannot decode"))
    w.fail(Failure("bad1", "InputError", "empty text"))
    assert w.commit() == 0
    w.add(*rows[0])
    assert w.commit() == 1
    w.fail(Failure("bad2", "source", "nothing"))
    assert w.commit() == 0
    again = PartWriter(tmp_path, fmt, "m", None)
    done, _ = again.recover()
    assert done == {"bad0", "bad1", "bad2", "id0"}
    again.add(*rows[1])
    assert again.commit() == 1
    ids, matrix = read_vectors(tmp_path)
    assert ids == ["id0", "id1"] and matrix.shape == (2, 8)
    assert [f.id for f in read_failures(tmp_path)] == ["bad0", "bad1", "bad2"]


def test_parts_past_99999_keep_their_order(tmp_path: Path) -> None:
    rows = _rows(3)
    w = PartWriter(tmp_path, "parquet", "m", None, next_part=99_999)
    for r in rows:
        w.add(*r)
        w.fail(Failure(f"f-{r[0]}", "x", "y"))
        w.commit()
    assert (tmp_path / "part-100001.parquet").exists()
    assert read_vectors(tmp_path)[0] == ["id0", "id1", "id2"]
    assert [f.id for f in read_failures(tmp_path)] == ["f-id0", "f-id1", "f-id2"]
    again = PartWriter(tmp_path, "parquet", "m", None)
    again.recover()
    assert again.next_part == 100_002


@pytest.mark.parametrize("fmt", ["parquet", "numpy"])
def test_ids_round_trip_exactly(tmp_path: Path, fmt: str) -> None:
    # A numpy string array drops trailing NULs: resume then embedded "a\0" again.
    ids = ["a\0", "\0", "b\0\0c", "plain", "ümlaut 😀"]
    w = PartWriter(tmp_path, fmt, "m", None)
    for id_, (_, vector, digest) in zip(ids, _rows(len(ids)), strict=True):
        w.add(id_, vector, digest)
    w.fail(Failure("f\0", "x", "a NUL \0 and a surrogate \ud800"))
    w.commit()
    assert read_vectors(tmp_path)[0] == ids
    done, failures = PartWriter(tmp_path, fmt, "m", None).recover()
    assert done == {*ids, "f\0"}
    assert failures[0].message == "a NUL \0 and a surrogate \ud800"
