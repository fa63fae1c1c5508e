"""The requests of one call, for every endpoint: batching, and narrowing a refused batch down.

Both cores (embedding and reranking) split a call's inputs into requests with :func:`batches`
and send each through :func:`narrow`, a sans-I/O step that, when the server refuses a request
for its content, halves it until the refused input is found, then tells "this input" from "every
request" with a control request. What a request is (its body, its decoding) stays the
endpoint's: :func:`narrow` only takes a function that sends a batch and returns its results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .._constants import CONTENT_STATUS
from .._exceptions import APIStatusError, InternalServerError
from ..inputs._prepared import PreparedInput
from ..transport._errors import parse_error_message
from ..transport._http import Step

__all__ = [
    "ANY",
    "Batch",
    "batches",
    "narrow",
    "request_wide",
    "server_error_retries",
    "server_fetched",
]

R = TypeVar("R")

#: What an input needs of its request's fields when it needs nothing (see ``fields_of``).
ANY: Any = object()


@dataclass(slots=True)
class Batch:
    """Inputs sent in one request, with their positions in the caller's sequence."""

    indices: list[int] = field(default_factory=list)
    items: list[PreparedInput] = field(default_factory=list)

    def halves(self) -> tuple[Batch, Batch]:
        """The first and the second half (the first is the smaller one)."""
        mid = len(self.items) // 2
        return (
            Batch(self.indices[:mid], self.items[:mid]),
            Batch(self.indices[mid:], self.items[mid:]),
        )


def batches(
    items: Sequence[PreparedInput],
    start: int,
    *,
    size: int,
    max_bytes: int,
    base_bytes: int = 0,
    fields_of: Callable[[PreparedInput], object] | None = None,
) -> Iterator[Batch]:
    """Consecutive requests of inputs ``start``, ``start + 1``, ...: at most ``size`` inputs and
    ``max_bytes`` of payload each (``base_bytes`` counts in every request: the reranker's query),
    an oversized input alone, and inputs that need different request-level fields apart
    (``fields_of`` says what an input needs; :data:`ANY` goes with anything)."""
    batch, total, fields = Batch(), base_bytes, ANY
    for offset, item in enumerate(items):
        nbytes = item.nbytes
        wants = fields_of(item) if fields_of is not None else ANY
        clash = wants is not ANY and fields is not ANY and wants != fields
        if batch.items and (clash or total + nbytes > max_bytes or len(batch.items) >= size):
            yield batch
            batch, total, fields = Batch(), base_bytes, ANY
        batch.indices.append(start + offset)
        batch.items.append(item)
        total += nbytes
        if wants is not ANY:
            fields = wants
    if batch.items:
        yield batch


def server_fetched(item: PreparedInput) -> bool:
    """Whether ``item`` carries an ``http(s)`` URL the server fetches itself."""
    urls: list[str | None] = [p.value for p in item.parts if p.kind != "text"]
    urls += [item.image_url, item.video_url]
    return any(u is not None and u.startswith(("http://", "https://")) for u in urls)


# Retries of a 5xx for one input with a server-fetched URL: a host that refused twice more is
# down, and a corpus with many dead links must not wait the whole retry budget for each.
_DEAD_URL_RETRIES = 2


def server_error_retries(items: Sequence[PreparedInput], inputs: int) -> int | None:
    """Most retries of a 5xx for a request of ``inputs`` inputs carrying ``items`` (``None``:
    the policy's). A 5xx of a request with server-fetched URLs may be one dead URL's: a batch
    is narrowed down at once rather than spend the retry budget on it, one input retried
    briefly."""
    if not any(server_fetched(item) for item in items):
        return None
    return 0 if inputs > 1 else _DEAD_URL_RETRIES


def _content_fault(exc: APIStatusError, items: Sequence[PreparedInput]) -> bool:
    """Whether the refusal may be one input's fault, worth narrowing down.

    A 400/413/422 says so. vLLM answers 500 when it cannot fetch an image URL it was given
    (retried first, as any 500): with such URLs in the request, narrowing down names the dead
    one, and a real outage fails the control request or every half anyway.
    """
    if exc.status_code in CONTENT_STATUS:
        return True
    return isinstance(exc, InternalServerError) and any(server_fetched(i) for i in items)


def request_wide(exc: APIStatusError) -> APIStatusError:
    """The same error, saying that the request as a whole was refused, naming no input."""
    reason = parse_error_message(exc.body, "refused")
    return type(exc)(
        f"the server refused the request as a whole, not one input: {reason}",
        response=exc.response,
        body=exc.body,
    )


#: Sends one batch (``again``: the second ask of a single input, with no 5xx retries) and
#: returns one result per input, in order.
Send = Callable[[Batch, bool], Step[list[R]]]


def narrow(
    batch: Batch,
    send: Send[R],
    control: Callable[[], Step[Any]],
    out: list[R],
    *,
    shared: Sequence[PreparedInput] = (),
    blame_shared: Callable[[APIStatusError], Step[bool]] | None = None,
) -> Step[None]:
    """Send ``batch`` into ``out``; when the server refuses it for its content, halve it to name
    the input at fault (the results before it stay in ``out``; the error carries its index).

    Halves that pass are kept: the batch may have failed only for its size. A single input
    refused may still be a refusal of every request: a bad setting, a model that refuses a
    field, or a server that failed as a whole partway through the call. ``control`` - the
    shortest request under the same plan, sent after the refusal - tells the two apart, so the
    error either names the input or says that the request as a whole was refused. It is sent
    even when earlier requests of the call succeeded: they say nothing of the server now, and an
    error that names an input makes a bulk run record a good row as a permanent failure. When
    the control passes, the input is asked once more: a server that recovered while the control
    was retried answers it now. So a bad input costs two extra requests, a good one none.

    ``shared`` are inputs in every request (the reranker's query); ``blame_shared(exc)``, asked
    once the control passed, says whether they alone are refused as in ``exc`` (and may say so
    in its message): then the error names no input.
    """
    try:
        results = yield from send(batch, False)
    except APIStatusError as exc:
        if not _content_fault(exc, [*batch.items, *shared]):
            raise
        if len(batch.items) > 1:
            first, second = batch.halves()
            yield from narrow(first, send, control, out, shared=shared, blame_shared=blame_shared)
            yield from narrow(second, send, control, out, shared=shared, blame_shared=blame_shared)
            return
        try:
            yield from control()
        except APIStatusError as again:
            if again.status_code == exc.status_code:
                raise request_wide(exc) from exc
            raise
        if blame_shared is not None and (yield from blame_shared(exc)):
            exc.index = None
            raise
        try:
            results = yield from send(batch, True)
        except APIStatusError as again:
            if again.status_code != exc.status_code:
                raise
            exc.index = batch.indices[0]
            raise exc from None
    out.extend(results)
