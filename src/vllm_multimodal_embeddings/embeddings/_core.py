"""Everything an embedding call does, without I/O: validate, plan, batch, build, decode, finish.

The sync and async clients own only threads, tasks and sockets. For one call they:

1. :meth:`EmbeddingCore.start` - check the per-call arguments (before anything runs) and get a
   :class:`CallRun`, the call's state across its chunks;
2. read the inputs lazily, :meth:`EmbeddingCore.chunks` of ``batch_size`` at a time;
3. :meth:`EmbeddingCore.prepare` each input in a worker (decode, resize, encode);
4. :meth:`CallRun.triage` the prepared chunk; when it holds inputs to send, probe the server
   once (:func:`..protocol._probe.probe`) and :meth:`CallRun.plan` the call;
5. drive :meth:`CallRun.send`, a sans-I/O step that splits the chunk into requests, sends them,
   narrows a refused request down to the input at fault, decodes and finishes the vectors.

Reading and preparing need no server; planning needs the probe, so the clients plan when the
first chunk is ready to send: a bad first input is reported even when the server is down.
What depends on the protocol is asked of the call's :class:`~..protocol._endpoints.Endpoint`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _constants as C
from .._exceptions import (
    APIError,
    InputError,
    UnsupportedFeatureError,
    VLLMEmbeddingError,
)
from .._types import InputType, OutputDType
from ..inputs._prepared import Fetcher, PreparedInput
from ..inputs._read import check_not_bare, prepare_input
from ..profiles import resolve_instruction
from ..protocol._endpoints import Endpoint, endpoint_for
from ..protocol._job import CallOptions, Chunk, ChunkResult, Job, StrAs, Vector
from ..protocol._quantize import int8_scale_for
from ..protocol._requests import Batch, Send, batches, narrow, server_error_retries
from ..protocol._server_info import ServerInfo
from ..transport._http import Call, Step
from ._settings import ClientSettings

__all__ = ["CallRun", "EmbeddingCore", "truncate_vectors"]

log = logging.getLogger("vllm_multimodal_embeddings")

# The input of the control request that tells "this input is refused" from "every request of
# this call is refused" (a bad setting): the shortest text any server embeds.
_CONTROL = PreparedInput(text=".")


class EmbeddingCore:
    """Settings and the I/O-free logic of an embedding call, shared by both clients."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        #: The endpoint of ``settings.protocol``, chosen once (the settings checked it).
        self.endpoint: Endpoint = endpoint_for(settings.protocol)
        #: The served model: the setting, else what the probe found.
        self.model = settings.model
        self.profile = settings.effective_profile()
        #: The image group, built once: ``settings.images`` makes (and checks) a new one each
        #: time, which cost ~50 us per input when it was taken per input.
        self.images = settings.images

    # -- 1. per-call arguments --------------------------------------------------------------

    def start(
        self,
        inputs: object,
        *,
        str_as: StrAs,
        input_type: InputType,
        instruction: str | None,
        dimensions: int | None,
        embedding_type: OutputDType,
    ) -> CallRun:
        """Validate one call's arguments before anything is read, prepared or sent."""
        check_not_bare(inputs)
        if input_type not in ("query", "document"):
            raise InputError(f"input_type must be 'query' or 'document', got {input_type!r}")
        if embedding_type not in ("float", "int8", "binary", "ubinary"):
            raise InputError(
                "embedding_type must be 'float', 'int8', 'binary' or 'ubinary', "
                f"got {embedding_type!r}"
            )
        if instruction is not None and not isinstance(instruction, str):
            raise InputError(
                f"instruction must be a string or a TaskPreset, got {type(instruction).__name__}"
            )
        if instruction is not None and not instruction.strip():
            raise InputError("instruction is empty")
        dims = check_dimensions(dimensions) if dimensions is not None else self.settings.dimensions
        if dims is not None and embedding_type in ("binary", "ubinary") and dims % 8:
            raise InputError(f"binary embeddings need dimensions divisible by 8, got {dims}")
        options = CallOptions(str_as, input_type, instruction, dims, embedding_type)
        self.endpoint.check_call(options)  # first: /v2/embed refuses any instruction
        if instruction is not None:
            text = resolve_instruction(instruction, error=InputError)
            options = CallOptions(str_as, input_type, text, dims, embedding_type)
        return CallRun(self, options)

    # -- 2. planning ------------------------------------------------------------------------

    def plan(self, options: CallOptions, info: ServerInfo) -> Job:
        """Decide dimensions, instruction and batching against what the server can do."""
        dimensions = options.dimensions
        server_dims: int | None = None
        local_dims: int | None = None
        if dimensions is not None:
            if dimensions > info.embedding_size:
                raise InputError(
                    f"dimensions={dimensions} exceeds the model's {info.embedding_size}"
                )
            if dimensions == info.embedding_size:
                pass
            elif info.matryoshka:
                server_dims = dimensions
            elif self.settings.client_side_dimensions:
                local_dims = dimensions
            else:
                raise UnsupportedFeatureError(
                    f"the server refuses dimensions={dimensions}: start vLLM with "
                    "--hf-overrides '{\"is_matryoshka\": true}', or pass "
                    "client_side_dimensions=True to truncate and re-normalize in the client"
                )
        self.endpoint.check_plan(options, info)
        expected = server_dims or info.embedding_size
        scale = None
        if options.embedding_type == "int8":
            scale = int8_scale_for(
                self.model or info.model, info.embedding_size, self.settings.int8_scale
            )
        return Job(
            input_type=options.input_type,
            instruction=self.profile.instruction_for(options.input_type, options.instruction),
            server_dimensions=server_dims,
            local_dimensions=local_dims,
            embedding_type=options.embedding_type,
            str_as=options.str_as,
            batched=info.batched_conversations,
            # Chunks are one request's inputs (their size may be tuned): this is the cap.
            batch_size=self.endpoint.batch_size(
                self.settings.batch_size or C.AUTO_MAX_BATCH_SIZE, info
            ),
            expected_size=expected if options.embedding_type in ("float", "int8") else None,
            int8_scale=scale,
        )

    # -- 3. reading -------------------------------------------------------------------------

    @staticmethod
    def chunks(inputs: Iterable[Any], size: int | Callable[[Any], int]) -> Iterator[Chunk]:
        """The inputs ``size`` at a time, read lazily (a generator of paths stays lazy);
        ``size`` may be a function, asked with each chunk's first input (the tuner's batch
        size for that kind of input)."""
        size_of = size if callable(size) else lambda _first: size
        iterator = iter(inputs)
        start = 0
        for first in iterator:
            items = [first, *itertools.islice(iterator, max(size_of(first), 1) - 1)]
            yield Chunk(start, items)
            start += len(items)

    @staticmethod
    async def achunks(
        inputs: AsyncIterable[Any], size: int | Callable[[Any], int]
    ) -> AsyncIterator[Chunk]:
        """:meth:`chunks` for an async iterable."""
        size_of = size if callable(size) else lambda _first: size
        items: list[Any] = []
        limit = 0
        start = 0
        async for item in inputs:
            if not items:
                limit = size_of(item)
            items.append(item)
            if len(items) >= limit:
                yield Chunk(start, items)
                start, items = start + len(items), []
        if items:
            yield Chunk(start, items)

    # -- 4. preparing (CPU work, run in worker threads) --------------------------------------

    def prepare(
        self, item: Any, index: int, str_as: StrAs, fetch: Fetcher | None
    ) -> PreparedInput | VLLMEmbeddingError:
        """One input ready for the wire, or the error that names it (returned, not raised,
        so that a worker's failure is reported at the input's place in the order)."""
        try:
            return prepare_input(item, index=index, options=self.images, str_as=str_as, fetch=fetch)
        except VLLMEmbeddingError as exc:
            return exc

    # -- 5. requests ------------------------------------------------------------------------

    def call_for(self, job: Job, items: Sequence[PreparedInput]) -> Call:
        """The request for one batch."""
        if self.model is None:  # the clients resolve the model before planning
            raise VLLMEmbeddingError("model unknown: the server was not probed")
        body = self.endpoint.body(
            model=self.model,
            job=job,
            items=items,
            profile=self.profile,
            truncate=self.settings.truncate,
        )
        retries = server_error_retries(items, len(items))
        media = any(i.image_url or i.video_url or i.parts for i in items)
        return Call("POST", self.endpoint.path, body, media=media, server_error_retries=retries)


class CallRun:
    """One call's state across its chunks, shared by the chunk tasks of either client.

    It plans once and remembers where the first bad input was (later chunks need not be
    sent: the caller stops there).
    """

    def __init__(self, core: EmbeddingCore, options: CallOptions) -> None:
        self.core = core
        self.options = options
        self._job: Job | None = None
        self._failed_at: int | None = None

    # -- the chunk step, in the order the clients take it ------------------------------------

    def skip(self, chunk: Chunk) -> bool:
        """Whether ``chunk`` comes after a chunk that failed: its vectors would be dropped."""
        # Plain reads and writes of an int: atomic enough across threads for a "skip" hint.
        return self._failed_at is not None and self._failed_at < chunk.start

    def triage(
        self, chunk: Chunk, prepared: Sequence[PreparedInput | VLLMEmbeddingError]
    ) -> tuple[list[PreparedInput], VLLMEmbeddingError | None]:
        """The inputs of a prepared chunk before the first bad one, and that one's error."""
        good: list[PreparedInput] = []
        error: VLLMEmbeddingError | None = None
        for offset, outcome in enumerate(prepared):
            if isinstance(outcome, VLLMEmbeddingError):
                error = outcome
                break
            why = self.core.endpoint.unsendable(outcome)
            if why is not None:
                error = InputError(why, index=chunk.start + offset)
                break
            good.append(outcome)
        if error is not None and (self._failed_at is None or chunk.start < self._failed_at):
            self._failed_at = chunk.start
        return good, error

    def plan(self, info: ServerInfo) -> Job:
        """The call's plan against ``info``, made once (it is pure: a race makes it twice)."""
        if self._job is None:
            self._job = self.core.plan(self.options, info)
        return self._job

    def send(
        self,
        job: Job,
        start: int,
        items: Sequence[PreparedInput],
        error: VLLMEmbeddingError | None = None,
    ) -> Step[ChunkResult]:
        """Embed ``items`` (inputs ``start``, ``start + 1``, ...); then report ``error``."""
        vectors: list[Vector] = []
        requests = batches(
            items,
            start,
            size=job.batch_size,
            max_bytes=self.core.settings.max_batch_bytes,
            fields_of=self.core.endpoint.request_fields,
        )
        send, control = self._send(job), partial(self._control, job)
        try:
            for batch in requests:
                yield from narrow(batch, send, control, vectors)
        except VLLMEmbeddingError as exc:
            if self._failed_at is None or start < self._failed_at:
                self._failed_at = start
            return ChunkResult(vectors, exc)
        if job.local_dimensions is not None and vectors:
            matrix = truncate_vectors(np.stack(vectors), job.local_dimensions, job.embedding_type)
            vectors = list(matrix)
        return ChunkResult(vectors, error)

    # -- inside the step ----------------------------------------------------------------------

    def _send(self, job: Job) -> Send[Vector]:
        """One batch's request and vectors under ``job``; the second ask gets no 5xx retry."""
        core = self.core

        def send(batch: Batch, again: bool) -> Step[list[Vector]]:
            call = core.call_for(job, batch.items)
            response = yield dataclasses.replace(call, server_error_retries=0) if again else call
            try:
                return core.endpoint.decode(job, response.content, len(batch.items))
            except ValueError as exc:  # MalformedResponseError: bad JSON, base64, NaN, sizes
                path = response.request.url.path
                raise APIError(
                    f"malformed response from {path} (inputs {batch.indices}): {exc}"
                ) from exc

        return send

    def _control(self, job: Job) -> Step[None]:
        """The control request of :func:`narrow`: the shortest text under the same plan."""
        yield self.core.call_for(job, [_CONTROL])


def check_dimensions(dimensions: int | None) -> int | None:
    """``None`` or a positive int; anything else is an :class:`InputError`."""
    if dimensions is None:
        return None
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
        raise InputError(f"dimensions must be a positive integer, got {dimensions!r}")
    return dimensions


def truncate_vectors(
    matrix: npt.NDArray[Any], dims: int, embedding_type: OutputDType
) -> npt.NDArray[Any]:
    """Matryoshka in the client: keep the first ``dims`` values and re-normalize.

    Packed binary vectors keep the first ``dims / 8`` bytes: the sign of a value does not
    change with normalization, so those bytes equal the server's own truncated result.
    """
    if embedding_type == "int8":
        # One step for every element: the first codes are the prefix's own codes.
        codes: npt.NDArray[Any] = matrix[:, :dims].copy()
        return codes
    if embedding_type != "float":
        packed: npt.NDArray[Any] = matrix[:, : dims // 8].copy()
        return packed
    cut = matrix[:, :dims].astype(np.float32, copy=True)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: npt.NDArray[Any] = cut / norms
    return result
