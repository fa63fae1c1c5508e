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
    # A run killed mid-commit of group 1: its failures landed, its part did not.
    (tmp_path / "failures-00001.jsonl").write_text(
        '{"id": "f1", "reason": "x", "message": "y"}\n', encoding="utf-8"
    )
    (tmp_path / ".part-00001.parquet.tmp").write_bytes(b"half a file")
    again = PartWriter(tmp_path, "parquet", "m", None)
    done, failures = again.recover()
    assert done == {"id0", "id1", "id2", "f0"}
    assert [f.id for f in failures] == ["f0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "failures-00000.jsonl",
        "part-00000.parquet",
    ]
    assert again.next_part == 1
