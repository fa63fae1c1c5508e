"""The bulk run loop: a source's items through ``EmbeddingClient.iter_embed`` into part files.

Resuming: ids already in committed parts (or reported as failures) are skipped, the rest are
embedded in source order. Skipping a bad input: the client's stream stops at the first bad
input (after every vector before it), so the loop reports that input and starts a new stream
at the next one, handing back the inputs the old stream had read ahead.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._client import EmbeddingClient
from .._exceptions import BadRequestError, InputError, VLLMEmbeddingError
from .._types import InputType
from .sink import Failure, OutputFormat, PartWriter, count_reasons, read_failures
from .sources import Item, Source

__all__ = ["BulkJobError", "JobOptions", "OnError", "Summary", "run_job"]

OnError = Literal["skip", "fail"]
JOB_FILE = "job.json"


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


@dataclass
class Summary:
    """What a run did."""

    embedded: int = 0
    """Rows written by this run."""
    already_done: int = 0
    """Items skipped because an earlier run wrote (or reported) them."""
    failed: int = 0
    """Items reported as failures by this run."""
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    """Every run's failures in the output folder, by reason."""
    seconds: float = 0.0
    interrupted: bool = False

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
        out += [f"  {reason}: {n}" for reason, n in self.failures_by_reason.items()]
        return out


def _skippable(exc: VLLMEmbeddingError) -> bool:
    """A fault of one input (named by its index), not of the server, network or settings."""
    index = getattr(exc, "index", None)
    return index is not None and isinstance(exc, (InputError, BadRequestError))


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


def _open_output(folder: Path, job: dict[str, Any], resume: bool) -> None:
    """Create ``folder`` for ``job``, or check that a resumed one belongs to the same job."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / JOB_FILE
    if path.exists():
        if not resume:
            raise BulkJobError(
                f"{folder} holds an earlier run: pass --resume to continue it, or choose "
                "an empty output folder"
            )
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in job if before.get(k) != job[k])
        if changed:
            detail = ", ".join(f"{k}: {before.get(k)!r} -> {job[k]!r}" for k in changed)
            raise BulkJobError(f"cannot resume {folder}: the job changed ({detail})")
        return
    if any(folder.iterdir()):
        raise BulkJobError(f"{folder} is not empty and holds no {JOB_FILE}: choose another")
    tmp = folder / f".{JOB_FILE}.tmp"
    tmp.write_text(json.dumps(job, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


class _Feed:
    """Items to embed, with a front where a restarted stream's read-ahead is handed back."""

    def __init__(self, items: Iterator[Item]) -> None:
        self._items = items
        self._front: deque[tuple[Item, str]] = deque()

    def push_front(self, pending: Iterable[tuple[Item, str]]) -> None:
        self._front.extendleft(reversed(list(pending)))

    def next(self) -> tuple[Item, str | None] | None:
        if self._front:
            return self._front.popleft()
        item = next(self._items, None)
        return None if item is None else (item, None)


def run_job(
    client: EmbeddingClient,
    source: Source,
    output: str | Path,
    options: JobOptions | None = None,
    *,
    resume: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Embed every item of ``source`` into part files under ``output``.

    Args:
        resume: continue an earlier run of the same job in ``output``.
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
    instruction = (
        client.profile.instruction_for(opts.input_type, opts.instruction)
        if client.protocol == "chat"
        else None
    )
    _open_output(folder, _fingerprint(source, client, opts, model, instruction), resume)
    writer = PartWriter(folder, opts.format, model, instruction)
    done, _ = writer.recover()
    summary = Summary()
    started = time.perf_counter()

    def tick() -> None:
        if on_progress is not None:
            on_progress(summary.embedded + summary.failed, summary.already_done)

    def pending() -> Iterator[Item]:
        for item in source:
            if item.id in done:
                summary.already_done += 1
                continue
            yield item

    def report(item: Item, reason: str, message: str) -> None:
        if opts.on_error == "fail":
            writer.commit()
            raise BulkJobError(f"input {item.id!r}: {message}")
        writer.fail(Failure(item.id, reason, message))
        summary.failed += 1
        tick()

    feed = _Feed(pending())
    try:
        while not _one_stream(client, feed, writer, opts, summary, report, tick, stop):
            pass
        summary.interrupted = stop is not None and stop.is_set()
    finally:
        writer.commit()
        summary.seconds = time.perf_counter() - started
        summary.failures_by_reason = count_reasons(read_failures(folder))
    return summary


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
