"""The bulk run loop: a source's items through ``EmbeddingClient.iter_embed`` into part files.

Resuming: ids already in committed parts (or reported as failures) are skipped, the rest are
embedded in source order; failures that may pass another time (:data:`RETRIED_ON_RESUME`: a
media host or the server failing for now) are tried again. Skipping a bad input: the
client's stream stops at the first bad input (after every vector before it), so the loop
reports that input and starts a new stream at the next one, handing back the inputs the old
stream had read ahead. An error is one input's fault when the client pins it on one
(``index`` set: unreadable, too long, a 413, an image the server could not fetch); any other
error stops the job, and ``--resume`` retries.

One run writes to a folder at a time: an advisory lock (``flock``) on ``.lock`` in the folder,
held for the whole run and released by the kernel when the process ends, however it ends.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._exceptions import InternalServerError, RemoteUnavailableError, VLLMEmbeddingError
from .._redact import redact_url
from .._types import InputType
from ..embeddings._client import EmbeddingClient
from .sink import Failure, OutputFormat, PartWriter, count_reasons, read_failures
from .sources import Item, Source

__all__ = ["BulkJobError", "JobOptions", "OnError", "Summary", "SyncCounts", "run_job"]

OnError = Literal["skip", "fail"]
JOB_FILE = "job.json"
LOCK_FILE = ".lock"
# Anything that looks like a URL in an error message (the server quotes the URLs it fetched).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


class BulkJobError(VLLMEmbeddingError):
    """A bulk job cannot start or go on (an output folder of another job, a fatal input)."""


@dataclass(frozen=True)
class JobOptions:
    """What a bulk job does, beyond the client's settings."""

    input_type: InputType = "document"
    instruction: str | None = None
    """Overrides the instruction of ``input_type`` (chat protocol)."""
    dimensions: int | None = None
    format: OutputFormat = "parquet"
    on_error: OnError = "fail"
    flush_rows: int = 1024
    """Rows (and failures) per committed part file: what a kill can cost at most."""

    def __post_init__(self) -> None:
        # Checked before the output folder is touched: a bad option never leaves a job there.
        checks = {
            "input_type": self.input_type in ("document", "query"),
            "format": self.format in ("parquet", "numpy"),
            "on_error": self.on_error in ("skip", "fail"),
            "dimensions": self.dimensions is None
            or (type(self.dimensions) is int and self.dimensions >= 1),
            "flush_rows": type(self.flush_rows) is int and self.flush_rows >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            detail = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise BulkJobError(
                f"invalid job option(s): {detail} (dimensions and flush_rows must be integers >= 1)"
            )


@dataclass
class Summary:
    """What a run did."""

    embedded: int = 0
    """Rows written by this run."""
    already_done: int = 0
    """Items skipped because an earlier run wrote (or reported) them."""
    failed: int = 0
    """Items reported as failures by this run."""
    retried: int = 0
    """Items a resume tried again: an earlier run reported a failure that may pass (a media
    host or the server failing for now)."""
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    """Every run's failures in the output folder, by reason."""
    seconds: float = 0.0
    interrupted: bool = False
    synced: SyncCounts | None = None
    """With ``sync=True``: how the source compared with the output before this run."""

    @property
    def items_per_s(self) -> float:
        """Rows embedded per second of this run."""
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """A human summary."""
        out = [
            f"embedded {self.embedded} in {self.seconds:.1f} s ({self.items_per_s:.1f} items/s)"
            + (", interrupted: run again with --resume" if self.interrupted else ""),
            f"already done before this run: {self.already_done}",
            f"failed in this run: {self.failed}",
        ]
        if self.retried:
            out.append(f"tried again (a host or the server had failed for now): {self.retried}")
        out += [f"  {reason}: {n}" for reason, n in self.failures_by_reason.items()]
        if self.synced is not None:
            c = self.synced
            out.append(
                f"sync: {c.new} new, {c.changed} changed, {c.removed} removed, "
                f"{c.unchanged} unchanged, {c.retried} failed before and tried again"
            )
        return out


@dataclass
class SyncCounts:
    """How a source compared with an output folder when a sync run began."""

    new: int = 0
    """Items no run wrote or reported: embedded now."""
    changed: int = 0
    """Items whose input (text, file bytes) differs from the row written: embedded again."""
    removed: int = 0
    """Ids with a row or a failure whose item is no longer in the source: superseded."""
    unchanged: int = 0
    """Items whose row matches: left as they are."""
    retried: int = 0
    """Items reported as failures before: their failure superseded, tried again."""


#: Failure reasons that ``resume`` tries again, since the input may be fine: a media host the
#: client fetched from failed on every try, or the server answered 5xx for that input alone
#: after its retries (vLLM answers 500 when a host it fetches an image URL from fails).
RETRIED_ON_RESUME = frozenset({RemoteUnavailableError.__name__, InternalServerError.__name__})


def _skippable(exc: VLLMEmbeddingError) -> bool:
    """The client pinned the error on one input (by its index): that input's fault alone.

    Errors without an index (the server, the network, the settings, a request refused as a
    whole) are not skippable: the job stops and ``--resume`` retries.
    """
    return getattr(exc, "index", None) is not None


def scrub(text: str, urls: Iterable[str | None] = ()) -> str:
    """``text`` with every URL in it stripped of credentials and query string.

    ``urls`` are the inputs' own URLs: their query strings and credentials go wherever they
    appear, also where a message quotes only a URL's path ("url: /x.png?sig=...").
    """
    for url in urls:
        if url is None or "://" not in url:
            continue
        netloc = url.split("://", 1)[1].split("/", 1)[0]
        if "@" in netloc:
            text = text.replace(netloc.rsplit("@", 1)[0], "<redacted>")
        query = url.partition("?")[2].partition("#")[0]
        if query:
            text = text.replace(query, "<redacted>")
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _fingerprint(
    source: Source, client: EmbeddingClient, opts: JobOptions, model: str, instruction: str | None
) -> dict[str, Any]:
    return {
        "source": source.description,
        "model": model,
        "protocol": client.protocol,
        "input_type": opts.input_type,
        "instruction": instruction,
        "dimensions": opts.dimensions or client.dimensions,
        "format": opts.format,
    }


class _FolderLock:
    """An exclusive advisory lock on ``folder/.lock`` for one run (POSIX ``flock``).

    The kernel drops it when the process exits, is killed or closes the file: a dead run
    never leaves the folder locked. Where ``fcntl`` is missing (Windows) there is no lock.
    """

    def __init__(self, folder: Path) -> None:
        self._path = folder / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> _FolderLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise BulkJobError(
                f"another run is writing to {self._path.parent} (it holds {self._path}): "
                "wait for it to end, or choose another output folder"
            ) from exc
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def _check_output(folder: Path, job: dict[str, Any], resume: bool) -> bool:
    """Whether ``folder`` already holds ``job`` (a resume); refuse any other job's folder."""
    path = folder / JOB_FILE
    if path.exists():
        if not resume:
            raise BulkJobError(
                f"{folder} holds an earlier run: pass --resume to continue it, or choose "
                "an empty output folder"
            )
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BulkJobError(
                f"cannot resume {folder}: {path} is unreadable or not JSON ({exc}); "
                "choose another output folder, or remove it and the folder's files"
            ) from exc
        if not isinstance(before, dict):
            raise BulkJobError(f"cannot resume {folder}: {path} does not hold a job (not a dict)")
        changed = sorted(k for k in job if before.get(k) != job[k])
        if changed:
            detail = ", ".join(f"{k}: {before.get(k)!r} -> {job[k]!r}" for k in changed)
            raise BulkJobError(f"cannot resume {folder}: the job changed ({detail})")
        return True
    if any(p.name != LOCK_FILE for p in folder.iterdir()):
        raise BulkJobError(f"{folder} is not empty and holds no {JOB_FILE}: choose another")
    return False


def _write_job(folder: Path, job: dict[str, Any]) -> None:
    tmp = folder / f".{JOB_FILE}.tmp"
    tmp.write_text(json.dumps(job, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / JOB_FILE)


class _Feed:
    """Items to embed, with a front where a restarted stream's read-ahead is handed back."""

    def __init__(self, items: Iterator[Item], digests: dict[str, str]) -> None:
        self._items = items
        self._front: deque[tuple[Item, str]] = deque()
        self._digests = digests  # input hashes known already (a sync plan read them)

    def push_front(self, pending: Iterable[tuple[Item, str]]) -> None:
        self._front.extendleft(reversed(list(pending)))

    def next(self) -> tuple[Item, str | None] | None:
        if self._front:
            return self._front.popleft()
        item = next(self._items, None)
        return None if item is None else (item, self._digests.pop(item.id, None))


def run_job(
    client: EmbeddingClient,
    source: Source,
    output: str | Path,
    options: JobOptions | None = None,
    *,
    resume: bool = False,
    sync: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Embed every item of ``source`` into part files under ``output``.

    Args:
        resume: continue an earlier run of the same job in ``output``: skip every id it wrote
            or reported, without reading those inputs again; ids whose failure may pass
            another time (:data:`RETRIED_ON_RESUME`) are tried again.
        sync: bring an earlier run's output in line with the source as it is now: hash every
            input, embed the new and the changed ones, supersede the rows and failures of ids
            that are gone, and try again the ones that failed (see :class:`SyncCounts`).
        on_progress: called with (items done now, items already done before) as rows and
            failures are taken.
        stop: when set, the run commits what it has and returns (``interrupted``).

    Raises:
        BulkJobError: the output belongs to another job, or (``on_error="fail"``) an input
            is bad; the message names its id. Rows before it are committed.
        VLLMEmbeddingError: the server or network failed beyond the client's retries.
    """
    opts = options or JobOptions()
    folder = Path(output)
    model = client.server_info().model
    instruction = client.instruction_for(opts.input_type, opts.instruction)
    job = _fingerprint(source, client, opts, model, instruction)
    folder.mkdir(parents=True, exist_ok=True)
    with _FolderLock(folder):
        # job.json is written with the first commit, not before: a run that fails before
        # committing anything (a setting the server refuses) leaves the folder as it was.
        has_job = _check_output(folder, job, resume or sync)
        writer = PartWriter(folder, opts.format, model, instruction)
        if not has_job:
            writer.before_commit = lambda: _write_job(folder, job)
        return _run(client, source, folder, writer, opts, on_progress, stop, sync)


def _run(
    client: EmbeddingClient,
    source: Source,
    folder: Path,
    writer: PartWriter,
    opts: JobOptions,
    on_progress: Callable[[int, int], None] | None,
    stop: threading.Event | None,
    sync: bool = False,
) -> Summary:
    written, failures = writer.reopen()
    summary = Summary()
    if not sync:
        # A host or server that failed for now may serve the input this time: its failure
        # stops counting, and the input is embedded again (its row or a new failure follows).
        again = {f.id for f in failures if f.reason in RETRIED_ON_RESUME} - set(written)
        summary.retried = writer.supersede(again)
        failures = [f for f in failures if f.id not in again]
    done = set(written) | {f.id for f in failures}
    # sync: the items to embed, with their input hashes (read once, in the plan)
    digests: dict[str, str] | None = None
    if sync:
        summary.synced, digests = _sync_plan(source, writer, written, {f.id for f in failures})
        summary.already_done = summary.synced.unchanged
    started = time.perf_counter()

    def tick() -> None:
        if on_progress is not None:
            on_progress(summary.embedded + summary.failed, summary.already_done)

    def pending() -> Iterator[Item]:
        for item in source:
            if digests is not None:
                if item.id not in digests:
                    continue  # unchanged: counted by the plan
            elif item.id in done:
                summary.already_done += 1
                continue
            if opts.format == "parquet" and not _utf8(item.id):
                # Parquet strings are UTF-8; a file name of undecodable bytes is not.
                yield Item(item.id, problem="id is not valid UTF-8 (Parquet cannot store it)")
                continue
            yield item

    def report(item: Item, reason: str, message: str) -> None:
        message = scrub(message, [item.image])
        if opts.on_error == "fail":
            writer.commit()
            raise BulkJobError(f"input {item.id!r}: {message}")
        writer.fail(Failure(item.id, reason, message))
        summary.failed += 1
        tick()
        if writer.pending >= opts.flush_rows:  # failures count toward a group as rows do
            writer.commit()

    feed = _Feed(pending(), digests or {})
    try:
        while not _one_stream(client, feed, writer, opts, summary, report, tick, stop):
            pass
        summary.interrupted = stop is not None and stop.is_set()
    finally:
        writer.commit()
        summary.seconds = time.perf_counter() - started
        summary.failures_by_reason = count_reasons(read_failures(folder))
    return summary


def _sync_plan(
    source: Source, writer: PartWriter, written: dict[str, str], failed: set[str]
) -> tuple[SyncCounts, dict[str, str]]:
    """Compare the source with what the output holds (``written``: id -> input hash, taken
    over; ``failed``: ids reported); commit that the rows and failures of changed, gone and
    failed-before ids no longer count. Returns the counts and the items to
    embed with their input hashes.

    Every input is hashed (file bytes and text: :meth:`Item.input_hash`): what a sync costs
    over a resume, which never reads a done input again.
    """
    counts = SyncCounts()
    embed: dict[str, str] = {}
    superseded: list[str] = []
    for item in source:
        digest = item.input_hash()
        before = written.pop(item.id, None)
        if before == digest:
            counts.unchanged += 1
            continue
        embed[item.id] = digest
        if before is not None:
            counts.changed += 1
            superseded.append(item.id)
        elif item.id in failed:
            counts.retried += 1
            superseded.append(item.id)
        else:
            counts.new += 1
        failed.discard(item.id)
    # What is left was written or reported for items the source no longer has.
    counts.removed = len(written) + len(failed - set(written))
    writer.supersede([*superseded, *written, *failed])
    return counts, embed


def _scrub_error(exc: VLLMEmbeddingError, urls: Iterable[str | None]) -> None:
    """Take the inputs' URL secrets out of an error that stops the job (the server quotes
    what it failed to fetch)."""
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        clean = scrub(message, list(urls))
        if clean != message:
            exc.message = clean  # type: ignore[attr-defined]
            exc.args = (clean,)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _one_stream(
    client: EmbeddingClient,
    feed: _Feed,
    writer: PartWriter,
    opts: JobOptions,
    summary: Summary,
    report: Callable[[Item, str, str], None],
    tick: Callable[[], None],
    stop: threading.Event | None,
) -> bool:
    """Run one client stream; True when the source is done (or stopped), False to restart."""
    fed: deque[tuple[Item, str]] = deque()
    held: list[Item] = []

    def inputs() -> Iterator[Any]:
        while not (stop is not None and stop.is_set()):
            nxt = feed.next()
            if nxt is None:
                return
            item, digest = nxt
            if item.problem is not None:
                # End this stream here, so the item is reported after every row before it
                # (with --on-error fail, those rows are committed first).
                held.append(item)
                return
            fed.append((item, digest or item.input_hash()))
            yield item.to_input()

    taken = 0
    stream = client.iter_embed(
        inputs(),
        input_type=opts.input_type,
        instruction=opts.instruction,
        dimensions=opts.dimensions,
    )
    try:
        for vector in stream:
            item, digest = fed.popleft()
            writer.add(item.id, vector, digest)
            taken += 1
            summary.embedded += 1
            tick()
            if writer.pending >= opts.flush_rows:
                writer.commit()
            if stop is not None and stop.is_set():
                return True
        if held:
            report(held[0], "source", held[0].problem or "")
            return False
        return True
    except VLLMEmbeddingError as exc:
        # The stream names the bad input by its index in this stream: it is the one after
        # the vectors taken. Anything else (no index, the server or network) is fatal.
        if not _skippable(exc) or getattr(exc, "index", None) != taken or not fed:
            _scrub_error(exc, (item.image for item, _ in fed))
            raise
        item, _ = fed.popleft()
        # Read ahead by the stream that stopped: the next one sends them.
        feed.push_front([*fed, *((h, "") for h in held)])
        fed.clear()
        # The message without "input N": N counts within one stream, the id is what users know.
        report(item, type(exc).__name__, getattr(exc, "message", None) or str(exc))
        return False
    finally:
        stream.close()
