"""Where a bulk job's vectors go: numbered part files, each committed atomically.

An output folder holds ``part-NNNNN.parquet`` (or ``.npz``) files, one per flushed group of
rows, ``failures-NNNNN.jsonl`` for the failures of the same group, ``removed-NNNNN.jsonl`` for
the ids a ``--sync`` run superseded (their input changed or is gone: every row and failure of
those ids in an earlier group no longer counts), and ``job.json`` (what the job is, checked on
``--resume``). Each file is written to a temporary name, flushed to disk and renamed: each
rename is a commit. A group's failures are committed before its rows, and a group without rows
(or without failures) has no part (or failures) file: a run killed at any moment leaves whole
files only, and every id counts at most once (in its group after the latest ``removed`` file
naming it); resuming reads the ids back and deletes the temporary leftovers. ``NNNNN`` grows
past five digits after 99,999 groups: order is by number, never by name.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Failure", "OutputFormat", "PartWriter", "read_failures", "read_vectors"]

OutputFormat = Literal["parquet", "numpy"]
_SUFFIX: dict[str, str] = {"parquet": ".parquet", "numpy": ".npz"}
_PART = re.compile(r"^part-(\d{5,})\.(parquet|npz)$")
_FAILURES = re.compile(r"^failures-(\d{5,})\.jsonl$")
_REMOVED = re.compile(r"^removed-(\d{5,})\.jsonl$")


@dataclass(frozen=True)
class Failure:
    """An input that was not embedded, and why."""

    id: str
    reason: str
    """A short class of failure (the exception's name, ``source``), for counting."""
    message: str


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(final: Path, write: Any) -> None:
    """``write(file)`` to a temporary name, flush it to disk, then rename it into place."""
    tmp = final.with_name(f".{final.name}.tmp")
    with tmp.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)


def _numbered(folder: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    """Files of ``folder`` matching ``pattern``, by their number (``part-100000`` after
    ``part-99999``, which a sort by name would not give)."""
    found = ((pattern.match(p.name), p) for p in folder.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m)


def _parts(folder: Path) -> list[tuple[int, Path]]:
    return _numbered(folder, _PART)


def _npz_ids(data: Any) -> list[str]:
    # ``id_json`` holds the ids exactly; a numpy string array drops trailing NULs. Parts
    # written before it existed have only ``id``.
    if "id_json" in data.files:
        ids: list[str] = json.loads(str(data["id_json"]))
        return ids
    return [str(x) for x in data["id"]]


def _part_rows(path: Path) -> tuple[list[str], list[str]]:
    """A part's ids and their input hashes."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return _npz_ids(data), [str(x) for x in data["input_hash"]]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    table = pq.read_table(path, columns=["id", "input_hash"])
    ids = [str(x) for x in table.column("id").to_pylist()]
    return ids, [str(x) for x in table.column("input_hash").to_pylist()]


def _superseded(folder: Path) -> dict[str, int]:
    """The group of the latest ``removed`` file naming each id: its rows and failures in
    earlier groups no longer count."""
    out: dict[str, int] = {}
    for n, path in _numbered(folder, _REMOVED):
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    out[json.loads(line)["id"]] = n
    return out


def _counts(n: int, id_: str, superseded: dict[str, int]) -> bool:
    """Whether a row or failure of ``id_`` in group ``n`` still counts."""
    return n > superseded.get(id_, -1)


@dataclass
class PartWriter:
    """Collects rows and failures; :meth:`commit` writes them as the next group."""

    folder: Path
    format: OutputFormat
    model: str
    instruction: str | None
    next_part: int = 0
    before_commit: Callable[[], None] | None = None
    """Called once, before the first file is committed (writes the job's description)."""
    _ids: list[str] = field(default_factory=list)
    _vectors: list[npt.NDArray[Any]] = field(default_factory=list)
    _hashes: list[str] = field(default_factory=list)
    _failures: list[Failure] = field(default_factory=list)

    def recover(self) -> tuple[set[str], list[Failure]]:
        """Ids already written and failures already reported; removes uncommitted leftovers.

        A group killed between its two commits left its failures and not its rows: the
        failures stay reported and the rows are embedded again (none was written).
        """
        written, failures = self.reopen()
        return set(written) | {f.id for f in failures}, failures

    def reopen(self) -> tuple[dict[str, str], list[Failure]]:
        """:meth:`recover`, with the rows written as :meth:`written` gives them (id -> input
        hash): what a sync compares the source with, read once."""
        for path in self.folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink()  # a file that died before its rename
        for n, _ in [
            *_parts(self.folder),
            *_numbered(self.folder, _FAILURES),
            *_numbered(self.folder, _REMOVED),
        ]:
            self.next_part = max(self.next_part, n + 1)
        return self.written(), read_failures(self.folder)

    def written(self) -> dict[str, str]:
        """The rows that count, committed by any run: id -> input hash."""
        superseded = _superseded(self.folder)
        out: dict[str, str] = {}
        for n, path in _parts(self.folder):
            ids, hashes = _part_rows(path)
            out.update(
                (i, h) for i, h in zip(ids, hashes, strict=True) if _counts(n, i, superseded)
            )
        return out

    def supersede(self, ids: Iterable[str]) -> int:
        """Commit that the rows and failures written so far of ``ids`` no longer count (their
        inputs changed or are gone); returns how many ids. Queued rows are committed first."""
        self.commit()
        lines = "".join(json.dumps({"id": i}) + "\n" for i in sorted(set(ids))).encode("ascii")
        if not lines:
            return 0
        if self.before_commit is not None:
            self.before_commit()
            self.before_commit = None
        n = self.next_part
        _write_atomic(self.folder / f"removed-{n:05d}.jsonl", lambda f: f.write(lines))
        _fsync_dir(self.folder)
        self.next_part = n + 1
        return lines.count(b"\n")

    def add(self, id_: str, vector: npt.NDArray[Any], input_hash: str) -> None:
        """Queue one embedded row."""
        self._ids.append(id_)
        self._vectors.append(vector)
        self._hashes.append(input_hash)

    def fail(self, failure: Failure) -> None:
        """Queue one failure report."""
        self._failures.append(failure)

    @property
    def pending(self) -> int:
        """Rows and failures not yet committed."""
        return len(self._ids) + len(self._failures)

    def commit(self) -> int:
        """Write the queued rows and failures as one group; returns the rows written.

        The failures first, each file only when it has lines or rows: a group of failures
        only is a failures file alone (a Parquet part cannot hold a vector column of no
        known width).
        """
        if not self.pending:
            return 0
        if self.before_commit is not None:
            self.before_commit()
            self.before_commit = None
        n = self.next_part
        if self._failures:
            # ensure_ascii: ids and messages with lone surrogates or NULs round-trip exactly.
            lines = "".join(
                json.dumps({"id": f.id, "reason": f.reason, "message": f.message}) + "\n"
                for f in self._failures
            ).encode("ascii")
            _write_atomic(self.folder / f"failures-{n:05d}.jsonl", lambda f: f.write(lines))
        if self._ids:
            part = self.folder / f"part-{n:05d}{_SUFFIX[self.format]}"
            if self.format == "numpy":
                _write_atomic(part, self._write_npz)
            else:
                _write_atomic(part, self._write_parquet)
        _fsync_dir(self.folder)
        rows = len(self._ids)
        self.next_part = n + 1
        self._ids, self._vectors, self._hashes, self._failures = [], [], [], []
        return rows

    def _matrix(self) -> npt.NDArray[np.float32]:
        if not self._vectors:
            return np.empty((0, 0), dtype=np.float32)
        return np.stack(self._vectors).astype(np.float32, copy=False)

    def _write_npz(self, f: Any) -> None:
        np.savez(
            f,
            id=np.array(self._ids, dtype=str),
            id_json=np.array(json.dumps(self._ids)),
            vector=self._matrix(),
            input_hash=np.array(self._hashes, dtype=str),
        )

    def _write_parquet(self, f: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        matrix = self._matrix()
        dim = matrix.shape[1] if matrix.size else 0
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim)
        rows = len(self._ids)
        table = pa.table(
            {
                "id": pa.array(self._ids, pa.string()),
                "vector": vectors,
                "model": pa.array([self.model] * rows, pa.string()),
                "dimensions": pa.array([dim] * rows, pa.int32()),
                "instruction": pa.array([self.instruction] * rows, pa.string()),
                "input_hash": pa.array(self._hashes, pa.string()),
            }
        )
        pq.write_table(table, f, row_group_size=max(rows, 1))


def read_vectors(folder: str | os.PathLike[str]) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Every committed row of an output folder that still counts, in the order written: ids
    and a matrix (a row a ``--sync`` run superseded is left out; its new version comes
    later)."""
    ids: list[str] = []
    blocks: list[npt.NDArray[np.float32]] = []
    superseded = _superseded(Path(folder))
    for n, path in _parts(Path(folder)):
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                part_ids = _npz_ids(data)
                block = data["vector"]
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=["id", "vector"])
            part_ids = [str(x) for x in table.column("id").to_pylist()]
            flat = table.column("vector").combine_chunks().flatten().to_numpy()
            block = flat.reshape(table.num_rows, -1) if table.num_rows else flat.reshape(0, 0)
        keep = [k for k, i in enumerate(part_ids) if _counts(n, i, superseded)]
        if len(keep) < len(part_ids):  # rows a later sync superseded
            part_ids, block = [part_ids[k] for k in keep], block[keep]
        ids.extend(part_ids)
        if block.size:
            blocks.append(block.astype(np.float32, copy=False))
    matrix = np.concatenate(blocks) if blocks else np.empty((0, 0), dtype=np.float32)
    return ids, matrix


def read_failures(folder: str | os.PathLike[str]) -> list[Failure]:
    """Every committed failure report of an output folder that still counts (a ``--sync``
    run supersedes those of inputs that changed or are gone), in the order written."""
    out: list[Failure] = []
    superseded = _superseded(Path(folder))
    for n, path in _numbered(Path(folder), _FAILURES):
        with path.open(encoding="utf-8") as f:
            found = (Failure(**json.loads(line)) for line in f if line.strip())
            out.extend(x for x in found if _counts(n, x.id, superseded))
    return out


def count_reasons(failures: list[Failure]) -> dict[str, int]:
    """Failures by reason, most frequent first."""
    return dict(Counter(f.reason for f in failures).most_common())
