"""Everything an embedding call does, without I/O: validate, plan, batch, build, decode, finish.

The sync and async clients own only threads, tasks and sockets. For one call they:

1. :meth:`EmbeddingCore.start` - check the per-call arguments (before anything runs);
2. read the inputs lazily, :meth:`EmbeddingCore.chunks` of ``batch_size`` at a time;
3. :meth:`EmbeddingCore.prepare` each input in a worker (decode, resize, encode);
4. probe the server once (:func:`._probe.probe`) and :meth:`EmbeddingCore.plan` the job;
5. :meth:`EmbeddingCore.triage` the prepared chunk, then drive :meth:`EmbeddingCore.send_chunk`,
   a sans-I/O step that splits it into requests, sends them, narrows a refused request down to
   the input at fault, decodes and finishes the vectors.

Reading and preparing need no server; planning needs the probe, so the clients plan when the
first chunk is ready to send: a bad first input is reported even when the server is down.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._exceptions import (
    APIError,
    APIStatusError,
    InputError,
    UnsupportedFeatureError,
    VLLMEmbeddingError,
)
from ._http import Call, Step
from ._inputs import Fetcher, PreparedInput, prepare_input
from ._server_info import ServerInfo
from ._settings import ClientSettings
from ._types import InputType, OutputDType
from .protocol import (
    ChatEmbeddingResponse,
    CohereEmbedResponse,
    build_chat_request,
    build_cohere_request,
    parse_body,
    parse_error_message,
)
from .protocol.cohere import CohereEmbeddingType, CohereTruncate

__all__ = [
    "CallOptions",
    "Chunk",
    "ChunkResult",
    "EmbeddingCore",
    "Job",
    "StrAs",
    "Vector",
    "truncate_vectors",
]

log = logging.getLogger("vllm_multimodal_embeddings")

Vector = npt.NDArray[Any]
#: What a bare ``str`` input is: text (``embed``) or an image reference (``embed_images``).
StrAs = Literal["text", "image"]

# Statuses that say "this request's content is wrong": narrow a batch down to the culprit.
_BISECT_STATUS = frozenset({400, 413, 422})


@dataclass(frozen=True, slots=True)
class CallOptions:
    """The per-call arguments of one embedding call, checked."""

    str_as: StrAs
    input_type: InputType
    instruction: str | None
    dimensions: int | None
    embedding_type: OutputDType


@dataclass(frozen=True, slots=True)
class Job:
    """One call after planning against the server: what to send and how to finish vectors."""

    input_type: InputType
    instruction: str | None
    server_dimensions: int | None
    local_dimensions: int | None
    embedding_type: OutputDType
    str_as: StrAs
    #: Several conversations per ``/v1/embeddings`` request (the server allows it).
    batched: bool
    #: Inputs per request.
    batch_size: int
    #: The vector length every response must have (``None``: binary, checked by bytes).
    expected_size: int | None


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive raw inputs, the unit of work of the pipeline: ``items[k]`` is input
    ``start + k`` of the caller's sequence."""

    start: int
    items: Sequence[Any]


@dataclass(slots=True)
class ChunkResult:
    """The vectors of a chunk's inputs, in order; on failure, those before the failing input
    and the error, which names that input."""

    vectors: list[Vector]
    error: VLLMEmbeddingError | None = None


@dataclass(slots=True)
class _Batch:
    """Inputs sent in one request, with their positions in the caller's sequence."""

    indices: list[int] = field(default_factory=list)
    items: list[PreparedInput] = field(default_factory=list)


class EmbeddingCore:
    """Settings and the I/O-free logic of an embedding call, shared by both clients."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        #: The served model: the setting, else what the probe found.
        self.model = settings.model
        self.profile = settings.effective_profile()
        self.image_options = settings.image_options()

    # -- 1. per-call arguments --------------------------------------------------------------

    def start(
        self,
        *,
        str_as: StrAs,
        input_type: InputType,
        instruction: str | None,
        dimensions: int | None,
        embedding_type: OutputDType,
    ) -> CallOptions:
        """Validate one call's arguments before anything is read, prepared or sent."""
        protocol = self.settings.protocol
        if input_type not in ("query", "document"):
            raise InputError(f"input_type must be 'query' or 'document', got {input_type!r}")
        if embedding_type not in ("float", "binary", "ubinary"):
            raise InputError(
                f"embedding_type must be 'float', 'binary' or 'ubinary', got {embedding_type!r}"
            )
        if embedding_type != "float" and protocol != "cohere":
            raise UnsupportedFeatureError(
                f"embedding_type={embedding_type!r} needs protocol='cohere' (/v2/embed)"
            )
        if instruction is not None and protocol == "cohere":
            raise UnsupportedFeatureError(
                "per-call instructions need protocol='chat'; /v2/embed only knows the "
                "server's task_instructions"
            )
        if instruction is not None and not instruction.strip():
            raise InputError("instruction is empty")
        dims = check_dimensions(dimensions) if dimensions is not None else self.settings.dimensions
        if dims is not None and embedding_type != "float" and dims % 8:
            raise InputError(f"binary embeddings need dimensions divisible by 8, got {dims}")
        return CallOptions(str_as, input_type, instruction, dims, embedding_type)

    # -- 2. planning ------------------------------------------------------------------------

    def plan(self, options: CallOptions, info: ServerInfo) -> Job:
        """Decide dimensions, instruction and batching against what the server can do."""
        s = self.settings
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
            elif s.client_side_dimensions:
                local_dims = dimensions
            else:
                raise UnsupportedFeatureError(
                    f"the server refuses dimensions={dimensions}: start vLLM with "
                    "--hf-overrides '{\"is_matryoshka\": true}', or pass "
                    "client_side_dimensions=True to truncate and re-normalize in the client"
                )
        if s.protocol == "cohere":
            if info.input_types is None:
                raise UnsupportedFeatureError(
                    "the server has no /v2/embed endpoint (vLLM >= 0.18 serves it); "
                    "use protocol='chat'"
                )
            if options.input_type not in info.input_types:
                raise UnsupportedFeatureError(
                    f"the model has no '{options.input_type}' task instruction for /v2/embed "
                    f"(it knows: {', '.join(info.input_types) or 'none'}); start vLLM with "
                    '--hf-overrides \'{"task_instructions": {"query": ..., "document": ...}}\' '
                    "(see docker/) or use protocol='chat'"
                )
        single = s.protocol == "chat" and not info.batched_conversations
        expected = server_dims or info.embedding_size
        return Job(
            input_type=options.input_type,
            instruction=self.profile.instruction_for(options.input_type, options.instruction),
            server_dimensions=server_dims,
            local_dimensions=local_dims,
            embedding_type=options.embedding_type,
            str_as=options.str_as,
            batched=info.batched_conversations,
            batch_size=1 if single else s.batch_size,
            expected_size=expected if options.embedding_type == "float" else None,
        )

    # -- 3. reading -------------------------------------------------------------------------

    @staticmethod
    def chunks(inputs: Iterable[Any], size: int) -> Iterator[Chunk]:
        """The inputs ``size`` at a time, read lazily (a generator of paths stays lazy)."""
        check_not_bare(inputs)
        iterator = iter(inputs)
        start = 0
        while True:
            items = list(itertools.islice(iterator, size))
            if not items:
                return
            yield Chunk(start, items)
            start += len(items)

    @staticmethod
    async def achunks(inputs: AsyncIterable[Any], size: int) -> AsyncIterator[Chunk]:
        """:meth:`chunks` for an async iterable."""
        items: list[Any] = []
        start = 0
        async for item in inputs:
            items.append(item)
            if len(items) == size:
                yield Chunk(start, items)
                start, items = start + size, []
        if items:
            yield Chunk(start, items)

    # -- 4. preparing (CPU work, run in worker threads) --------------------------------------

    def prepare(
        self, item: Any, index: int, str_as: StrAs, fetch: Fetcher | None
    ) -> PreparedInput | VLLMEmbeddingError:
        """One input ready for the wire, or the error that names it (returned, not raised,
        so that a worker's failure is reported at the input's place in the order)."""
        try:
            return prepare_input(
                item, index=index, options=self.image_options, str_as=str_as, fetch=fetch
            )
        except VLLMEmbeddingError as exc:
            return exc

    # -- 5. sending -------------------------------------------------------------------------

    def triage(
        self, chunk: Chunk, prepared: Sequence[PreparedInput | VLLMEmbeddingError]
    ) -> tuple[list[PreparedInput], VLLMEmbeddingError | None]:
        """The inputs of a prepared chunk before the first bad one, and that one's error."""
        good: list[PreparedInput] = []
        for offset, outcome in enumerate(prepared):
            if isinstance(outcome, VLLMEmbeddingError):
                return good, outcome
            problem = self._unsendable(outcome, chunk.start + offset)
            if problem is not None:
                return good, problem
            good.append(outcome)
        return good, None

    def send_chunk(
        self,
        job: Job,
        start: int,
        items: Sequence[PreparedInput],
        error: VLLMEmbeddingError | None = None,
    ) -> Step[ChunkResult]:
        """Embed ``items`` (inputs ``start``, ``start + 1``, ...); then report ``error``."""
        vectors: list[Vector] = []
        try:
            for batch in self._batches(job, start, items):
                yield from self._run_batch(job, batch, whole=batch, out=vectors)
        except VLLMEmbeddingError as exc:
            return ChunkResult(vectors, exc)
        if job.local_dimensions is not None and vectors:
            matrix = truncate_vectors(np.stack(vectors), job.local_dimensions, job.embedding_type)
            vectors = list(matrix)
        return ChunkResult(vectors, error)

    def _unsendable(self, item: PreparedInput, index: int) -> InputError | None:
        if self.settings.protocol == "cohere" and item.video_url is not None:
            return InputError("video needs protocol='chat'; /v2/embed takes none", index=index)
        return None

    def _batches(self, job: Job, start: int, items: Sequence[PreparedInput]) -> Iterator[_Batch]:
        """Consecutive requests of at most ``job.batch_size`` inputs and ``max_batch_bytes``
        (an oversized input goes alone)."""
        limit = self.settings.max_batch_bytes
        batch, size = _Batch(), 0
        for offset, item in enumerate(items):
            nbytes = item.nbytes
            if batch.items and (size + nbytes > limit or len(batch.items) >= job.batch_size):
                yield batch
                batch, size = _Batch(), 0
            batch.indices.append(start + offset)
            batch.items.append(item)
            size += nbytes
        if batch.items:
            yield batch

    def _run_batch(
        self, job: Job, batch: _Batch, *, whole: _Batch, out: list[Vector]
    ) -> Step[None]:
        """Embed one batch into ``out``; when the server refuses it, split it to name the input
        at fault (the vectors before it stay in ``out``).

        Halves that pass are kept: the batch may have failed only for its size. When the
        input found is the first of ``whole`` and another input alone fails the same way,
        the request as a whole was refused (a bad setting, not a bad input), and the error
        says so instead of blaming one input.
        """
        try:
            response = yield self.call_for(job, batch)
        except APIStatusError as exc:
            if exc.status_code not in _BISECT_STATUS:
                raise
            if len(batch.items) > 1:
                mid = len(batch.items) // 2
                left = _Batch(batch.indices[:mid], batch.items[:mid])
                right = _Batch(batch.indices[mid:], batch.items[mid:])
                yield from self._run_batch(job, left, whole=whole, out=out)
                yield from self._run_batch(job, right, whole=whole, out=out)
                return
            index = batch.indices[0]
            if index == whole.indices[0] and len(whole.items) > 1:
                other = _Batch(whole.indices[-1:], whole.items[-1:])
                try:
                    yield self.call_for(job, other)
                except APIStatusError as again:
                    if again.status_code == exc.status_code and again.message == exc.message:
                        raise _request_wide(exc) from exc
            exc.index = index
            raise
        out.extend(self._decode(job, batch, response))

    def call_for(self, job: Job, batch: _Batch) -> Call:
        """The request for one batch."""
        s = self.settings
        model = self.model
        if model is None:  # the clients resolve the model before planning
            raise VLLMEmbeddingError("model unknown: the server was not probed")
        if s.protocol == "chat":
            conversations = [self.profile.messages(item, job.instruction) for item in batch.items]
            tokens, side = _chat_truncation(s.truncate)
            body = build_chat_request(
                model=model,
                conversations=conversations,
                batched=job.batched,
                options=self.profile.request_options(),
                dimensions=job.server_dimensions,
                truncate_prompt_tokens=tokens,
                truncation_side=side,
            )
            return Call("POST", "/v1/embeddings", body)
        return Call("POST", "/v2/embed", self._cohere_body(model, job, batch.items))

    def _cohere_body(self, model: str, job: Job, items: Sequence[PreparedInput]) -> dict[str, Any]:
        etype: CohereEmbeddingType = (
            "base64" if job.embedding_type == "float" else job.embedding_type
        )
        common: dict[str, Any] = {
            "model": model,
            "input_type": job.input_type,
            "embedding_type": etype,
            "output_dimension": job.server_dimensions,
            "truncate": self.settings.truncate,
        }
        if any(it.interleaved for it in items):
            # Several parts in the caller's order: only ``inputs`` can say that.
            return build_cohere_request(inputs=[self.profile.parts(it) for it in items], **common)
        if all(it.image_url is None for it in items):
            return build_cohere_request(texts=[it.text or "" for it in items], **common)
        if all(it.text is None for it in items):
            return build_cohere_request(images=[it.image_url or "" for it in items], **common)
        inputs = [self.profile.parts(it) for it in items]
        return build_cohere_request(inputs=inputs, **common)

    def _decode(self, job: Job, batch: _Batch, response: Any) -> list[Vector]:
        expected = len(batch.items)
        try:
            if self.settings.protocol == "chat":
                chat = parse_body(ChatEmbeddingResponse, response.content)
                return chat.vectors(expected, job.expected_size)
            etype: CohereEmbeddingType = (
                "base64" if job.embedding_type == "float" else job.embedding_type
            )
            cohere = parse_body(CohereEmbedResponse, response.content)
            return cohere.vectors(etype, expected, job.expected_size)
        except ValueError as exc:  # MalformedResponseError: bad JSON, base64, NaN, sizes
            path = response.request.url.path
            raise APIError(
                f"malformed response from {path} (inputs {batch.indices}): {exc}"
            ) from exc


def _request_wide(exc: APIStatusError) -> APIStatusError:
    """The same error, saying that the request as a whole was refused, naming no input."""
    reason = parse_error_message(exc.body, "refused")
    return type(exc)(
        f"the server refused the request as a whole, not one input: {reason}",
        response=exc.response,
        body=exc.body,
    )


def check_not_bare(inputs: object) -> None:
    """A bare string is iterable too; iterating it would embed one character at a time."""
    if isinstance(inputs, (str, bytes, bytearray)):
        raise InputError(
            f"expected a list of inputs, got a single {type(inputs).__name__}; wrap it in a list"
        )


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
    if embedding_type != "float":
        packed: npt.NDArray[Any] = matrix[:, : dims // 8].copy()
        return packed
    cut = matrix[:, :dims].astype(np.float32, copy=True)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: npt.NDArray[Any] = cut / norms
    return result


def _chat_truncation(truncate: CohereTruncate) -> tuple[int | None, str | None]:
    if truncate == "NONE":
        return None, None
    # -1: truncate to the model's context length.
    return -1, "left" if truncate == "START" else "right"
