"""Where a bulk job's inputs come from: a directory, a glob, or a manifest (CSV, JSONL, Parquet).

Every source yields :class:`Item` s in a fixed order with a unique ``id``, so a resumed run sees
the same items in the same order and can skip the ids already written.
"""

from __future__ import annotations

import csv
import functools
import glob as globmod
import hashlib
import importlib.util
import json
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import InputError, VLLMEmbeddingError
from .._types import Content, EmbedInput
from ..inputs._passwords import PdfPasswords
from ..inputs._pdf import parse_page_ref, pdf_page_count

__all__ = [
    "IMAGE_EXTENSIONS",
    "PDF_EXTENSION",
    "TEXT_EXTENSIONS",
    "Item",
    "Source",
    "SourceError",
    "default_extensions",
    "directory_source",
    "glob_source",
    "manifest_source",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
"""Files a directory or glob source embeds as images by default (with PDFs, page by page,
when the ``pdf`` extra is installed: :func:`default_extensions`)."""
TEXT_EXTENSIONS = (".txt", ".md")
"""Files embedded as text (their UTF-8 contents) when their extension is asked for."""
PDF_EXTENSION = ".pdf"
"""Files embedded page by page (one row per page) when their extension is asked for."""

_HASH_BLOCK = 1 << 20
_PDF_HINT = 'install the "pdf" extra (pip install "vllm-multimodal-embeddings[pdf]")'


def default_extensions() -> tuple[str, ...]:
    """What a directory or glob source takes when no extensions are given: images, and PDFs
    when their reader (the ``pdf`` extra) is installed."""
    pdf = importlib.util.find_spec("pypdfium2") is not None
    return (*IMAGE_EXTENSIONS, PDF_EXTENSION) if pdf else IMAGE_EXTENSIONS


def _skipped_note(skipped: dict[str, int], chosen: bool) -> str:
    """What was left out, and how to take it: ``.pdf: 3 (install the "pdf" extra)``."""
    parts = []
    for ext, n in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])):
        if ext == PDF_EXTENSION and PDF_EXTENSION not in default_extensions():
            how = _PDF_HINT
        elif ext in (*IMAGE_EXTENSIONS, *TEXT_EXTENSIONS, PDF_EXTENSION):
            how = "add it to --ext" if chosen else "pass --ext"
        else:
            how = "no reader for it"
        parts.append(f"{ext or '(no extension)'}: {n} ({how})")
    return "; ".join(parts)


class SourceError(VLLMEmbeddingError, ValueError):
    """A source cannot be read: a missing column, a duplicate id, a malformed row."""


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to embed as one vector.

    Attributes:
        id: unique within the source; the key of the output row and of resuming.
        text: the text part, if any.
        image: the image part as a path (or URI), if any.
        problem: why this item cannot be embedded at all (reported, never sent).
    """

    id: str
    text: str | None = None
    image: str | None = None
    problem: str | None = None

    def to_input(self) -> EmbedInput:
        """What the client embeds: the bare text, or a :class:`Content`."""
        if self.image is None and self.text is not None:
            return self.text
        return Content(text=self.text, image=self.image)

    def input_hash(self) -> str:
        """SHA-256 of the text and the image file's bytes: tells a changed input on re-runs.

        Never raises and never blocks: a path that is not a regular file (a FIFO, a device,
        a name with a NUL byte, a URI) is hashed by its name; the client reports it.
        """
        h = hashlib.sha256()
        if self.text is not None:
            h.update(b"text\0")
            # surrogatepass: a lone surrogate hashes (the client refuses to send it).
            h.update(self.text.encode("utf-8", "surrogatepass"))
        if self.image is not None:
            h.update(b"\0image\0")
            try:
                page = parse_page_ref(self.image)
            except InputError:  # "#page=0": hashed by name, the client names the error
                page = None
            if page is not None:
                # A page: the whole file's bytes (hashed once per file), then the page number.
                h.update(_pdf_digest(os.fspath(page.path)))
                h.update(f"#page={page.page}".encode())
                return h.hexdigest()
            if not _hash_regular_file(self.image, h):
                h.update(self.image.encode("utf-8", "surrogatepass"))
        return h.hexdigest()


def _hash_regular_file(path: str, h: Any) -> bool:
    """Feed a regular file's bytes to ``h``; False (nothing fed) for anything else.

    ``stat`` first and only a regular file is opened: opening a FIFO blocks until a writer
    comes, and ``/dev/zero`` never ends. ``O_NONBLOCK`` and ``fstat`` cover a path swapped
    between the two; reads stop at the size ``fstat`` gave.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError):  # missing, unreadable, a NUL byte in the name
        return False
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return False
        left = info.st_size
        try:
            while left > 0 and (block := f.read(min(left, _HASH_BLOCK))):
                h.update(block)
                left -= len(block)
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Source:
    """A described, re-iterable sequence of items."""

    description: str
    """What was asked for, stored with the output so a resume can check it is the same job."""
    _items: Any
    total: int | None = None
    """How many items, when known without reading them all (for the progress bar)."""
    skipped: str = ""
    """Files under a directory or glob that the extensions left out, by extension, and how to
    take them (empty when none were)."""

    def __iter__(self) -> Iterator[Item]:
        seen: set[str] = set()
        for item in self._items():
            if item.id in seen:
                raise SourceError(f"{self.description}: duplicate id {item.id!r}")
            seen.add(item.id)
            yield item


def _file_item(path: Path, id_: str, text_exts: tuple[str, ...]) -> Item:
    if path.suffix.lower() in text_exts:
        try:
            return Item(id_, text=path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            return Item(id_, problem=f"cannot read text file: {exc}")
    return Item(id_, image=str(path))


def _file_items(
    path: Path, id_: str, text_exts: tuple[str, ...], passwords: PdfPasswords | None
) -> Iterator[Item]:
    if path.suffix.lower() == PDF_EXTENSION:
        yield from _pdf_items(path, id_, passwords)
    else:
        yield _file_item(path, id_, text_exts)


def _pdf_items(path: Path, id_: str, passwords: PdfPasswords | None) -> Iterator[Item]:
    """One item per page, ids ``file.pdf#p3`` (pages from 1): resumed page by page.

    Only the page count is read here (an encrypted file opened with its password from
    ``passwords``); a page is rendered when the client prepares it, with the client's.
    """
    try:
        password = None if passwords is None else passwords.for_path(path)
        count = pdf_page_count(path, password=password)
    except InputError as exc:  # corrupt, encrypted, or no ``pdf`` extra: the file fails whole
        yield Item(id_, problem=str(exc))
        return
    for number in range(1, count + 1):
        yield Item(f"{id_}#p{number}", image=f"{path}#page={number}")


@functools.lru_cache(maxsize=4)
def _pdf_file_digest(path: str, size: int, mtime_ns: int) -> bytes:
    h = hashlib.sha256()
    if not _hash_regular_file(path, h):
        return path.encode("utf-8", "surrogatepass")
    return h.digest()


def _pdf_digest(path: str) -> bytes:
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # missing, unreadable, a NUL byte: the client reports it
        return path.encode("utf-8", "surrogatepass")
    # Keyed by size and mtime too: a file rewritten between runs is hashed again. Only a
    # regular file is read (a FIFO named x.pdf would block, /dev/zero never ends).
    return _pdf_file_digest(path, info.st_size, info.st_mtime_ns)


def _split_exts(extensions: tuple[str, ...] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    exts = tuple(
        (e if e.startswith(".") else f".{e}").lower() for e in (extensions or default_extensions())
    )
    return exts, tuple(e for e in exts if e in TEXT_EXTENSIONS)


def _chosen(
    files: list[Path], exts: tuple[str, ...], where: str, extensions: tuple[str, ...] | None
) -> tuple[list[Path], str]:
    """The files with one of ``exts``, and a note on the others; none chosen among files
    that are there is a :class:`SourceError` that says why, never a run that embeds 0."""
    chosen = [p for p in files if p.suffix.lower() in exts]
    skipped = Counter(p.suffix.lower() for p in files if p.suffix.lower() not in exts)
    note = _skipped_note(dict(skipped), extensions is not None)
    if files and not chosen:
        raise SourceError(
            f"{where}: none of its {len(files)} files has one of the extensions "
            f"{','.join(e[1:] for e in exts)}; it holds {note}"
        )
    return chosen, note


def directory_source(
    root: str | os.PathLike[str],
    extensions: tuple[str, ...] | None = None,
    *,
    passwords: PdfPasswords | None = None,
) -> Source:
    """Files under ``root`` (recursively) with one of ``extensions``, sorted; id = relative path.

    Images by default; ``.txt`` / ``.md`` files, when their extensions are given, are text;
    ``.pdf`` files, when asked for, give one item per page with id ``relative/path.pdf#p3``
    (``passwords`` open encrypted ones; give the client the same to render their pages).
    """
    base = Path(root)
    if not base.is_dir():
        raise SourceError(f"not a directory: {base}")
    exts, text_exts = _split_exts(extensions)
    files = sorted(p for p in base.rglob("*") if p.is_file())
    paths, skipped = _chosen(files, exts, str(base), extensions)

    def items() -> Iterator[Item]:
        for p in paths:
            yield from _file_items(p, p.relative_to(base).as_posix(), text_exts, passwords)

    description = f"dir:{base.resolve()}:{','.join(exts)}"
    return Source(description, items, total=_total(paths), skipped=skipped)


def glob_source(
    pattern: str,
    extensions: tuple[str, ...] | None = None,
    *,
    passwords: PdfPasswords | None = None,
) -> Source:
    """Regular files matching ``pattern`` (``**`` recurses) with one of ``extensions``, sorted;
    id = the path as matched.

    Images by default (:data:`IMAGE_EXTENSIONS`), as for :func:`directory_source`.
    """
    exts, text_exts = _split_exts(extensions)
    files = sorted(Path(p) for p in globmod.glob(pattern, recursive=True) if os.path.isfile(p))
    paths, skipped = _chosen(files, exts, repr(pattern), extensions)

    def items() -> Iterator[Item]:
        for p in paths:
            yield from _file_items(p, str(p), text_exts, passwords)

    return Source(f"glob:{pattern}:{','.join(exts)}", items, total=_total(paths), skipped=skipped)


def _total(paths: list[Any]) -> int | None:
    # A PDF's rows are its pages, counted only as the source is read.
    return None if any(str(p).lower().endswith(PDF_EXTENSION) for p in paths) else len(paths)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) from a manifest; row numbers count from 1, as editors do.

    Text manifests are UTF-8, with or without the byte-order mark spreadsheet tools write; a
    file in another encoding, or a Parquet file that cannot be read, is a :class:`SourceError`
    that names it.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as f:
                yield from enumerate(csv.DictReader(f), start=1)
        elif suffix in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8-sig") as f:
                yield from _json_rows(path, f)
        elif suffix in (".parquet", ".pq"):
            yield from _parquet_rows(path)
        else:
            raise SourceError(f"manifest must be .csv, .jsonl or .parquet, got {path.name}")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "save the manifest as UTF-8"
        ) from exc


def _json_rows(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path} line {n}: not JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise SourceError(f"{path} line {n}: not a JSON object")
        yield n, row


def _parquet_file(path: Path) -> Any:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from exc


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa

    n = 0
    try:
        for batch in _parquet_file(path).iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                n += 1
                yield n, row
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: Parquet data unreadable after row {n} ({exc})") from exc


def _manifest_total(path: Path) -> int | None:
    if path.suffix.lower() in (".parquet", ".pq"):
        return int(_parquet_file(path).metadata.num_rows)
    return None


class _NotAString(Exception):
    """A cell that holds a list or an object: what it would mean is not defined."""


def _cell(row: dict[str, Any], column: str | None) -> str | None:
    if column is None:
        return None
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (list, tuple, dict)) or hasattr(value, "tolist"):
        # str() would embed its Python repr ("['a', 'b']"): refuse the row instead.
        raise _NotAString(f"column {column!r} holds a {type(value).__name__}, not a string")
    return str(value)


def manifest_source(
    path: str | os.PathLike[str],
    *,
    id_column: str = "id",
    text_column: str | None = "text",
    image_column: str | None = "image",
) -> Source:
    """Rows of a CSV, JSONL or Parquet manifest with an id and a text and/or an image column.

    Relative image paths are taken from the manifest's folder; URIs (``http(s)://``,
    ``data:``, ``file://``) pass as they are. A row with neither text nor image is reported
    as a failure, not dropped.
    """
    manifest = Path(path)
    if not manifest.is_file():
        raise SourceError(f"no manifest at {manifest}")
    folder = manifest.resolve().parent

    def items() -> Iterator[Item]:
        for n, row in _rows(manifest):
            if n == 1 and id_column not in row:
                raise SourceError(f"{manifest}: no {id_column!r} column (has {sorted(row)})")
            id_ = _cell(row, id_column)
            if id_ is None:
                raise SourceError(f"{manifest} row {n}: empty {id_column!r}")
            try:
                text = _cell(row, text_column)
                image = _cell(row, image_column)
            except _NotAString as exc:
                yield Item(id_, problem=f"row {n}: {exc}")
                continue
            if image is not None and "://" not in image and not image.startswith("data:"):
                image = str(folder / image)
            if text is None and image is None:
                yield Item(id_, problem=f"row {n} has neither text nor image")
            else:
                yield Item(id_, text=text, image=image)

    return Source(
        f"manifest:{manifest.resolve()}:{id_column}:{text_column}:{image_column}",
        items,
        total=_manifest_total(manifest),
    )
