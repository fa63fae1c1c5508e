"""Everything the sync and async clients share: settings, planning, requests, decoding, errors.

The I/O-free steps are generators ("sans-I/O"): they yield a :class:`Call` and receive the
``httpx.Response`` (or have the mapped :class:`APIError` thrown in). ``EmbeddingClient`` and
``AsyncEmbeddingClient`` only drive them, so no request is ever built twice.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import re
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np
import numpy.typing as npt

from . import _constants as C
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InputError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    UnsupportedFeatureError,
    VLLMEmbeddingError,
)
from ._inputs import Fetcher, ImageOptions, PreparedInput, prepare_inputs
from ._server_info import ServerInfo
from ._types import EmbedInput, InputType, OutputDType, ProtocolName
from .profiles import ModelProfile
from .protocol import (
    ChatEmbeddingResponse,
    CohereEmbedResponse,
    ModelList,
    build_chat_request,
    build_cohere_request,
    parse_error_message,
)
from .protocol.cohere import CohereEmbeddingType, CohereTruncate

log = logging.getLogger("vllm_multimodal_embeddings")

Vector = npt.NDArray[Any]
ProgressCallback = Callable[[int], None]
#: Over-long inputs, in /v2/embed's own terms; the chat path maps them (``_chat_truncation``).
Truncate = CohereTruncate

# Sent only by probes: no input_type is ever called this, so the 400 lists the real ones.
_PROBE_INPUT_TYPE = "__vmme_probe__"
_SUPPORTED_TYPES_RE = re.compile(r"Supported values:\s*(.+?)\s*$")
# Statuses that say "this request's content is wrong": narrow a batch down to the culprit.
_BISECT_STATUS = frozenset({400, 413, 422})


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request the core wants made."""

    method: Literal["GET", "POST"]
    path: str
    json: dict[str, Any] | None = None
    #: Probes read error statuses themselves instead of having them raised.
    raise_for_status: bool = True
    #: Probes of optional endpoints are not retried.
    retry: bool = True


Step = Generator[Call, httpx.Response, Any]


@dataclass(slots=True)
class Batch:
    """Items sent in one request, with their positions in the caller's list."""

    indices: list[int]
    items: list[PreparedInput]


@dataclass(slots=True)
class Job:
    """One ``embed`` call after validation: what to send and how to finish the vectors."""

    input_type: InputType
    instruction: str | None
    server_dimensions: int | None
    local_dimensions: int | None
    embedding_type: OutputDType
    count: int
    #: Several conversations per ``/v1/embeddings`` request (the server allows it).
    batched: bool = True
    batches: list[Batch] = field(default_factory=list)


def resolve_base_url(base_url: str | None) -> str:
    """The server root, from the argument or ``VLLM_BASE_URL``; ``/v1`` suffixes are dropped."""
    url = base_url if base_url is not None else os.environ.get(C.ENV_BASE_URL)
    if not url:
        raise ConfigurationError(
            f"no server URL: pass base_url= or set the {C.ENV_BASE_URL} environment variable"
        )
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"base_url must start with http:// or https://, got {url!r}")
    return url


def map_status_error(response: httpx.Response) -> APIStatusError:
    """The exception for a non-2xx response, carrying the server's own message."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    message = parse_error_message(body, response.reason_phrase or "error")
    status = response.status_code
    cls: type[APIStatusError]
    if status in (400, 422):
        cls = BadRequestError
    elif status in (401, 403):
        cls = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif status == 429:
        cls = RateLimitError
    elif status >= 500:
        cls = InternalServerError
    else:
        cls = APIStatusError
    return cls(message, response=response, body=body)


def retry_delay(attempt: int, response: httpx.Response | None) -> float:
    """Seconds before retry ``attempt`` (1-based): ``Retry-After``, else backoff with jitter."""
    if response is not None:
        header = response.headers.get("retry-after")
        if header:
            try:
                return min(max(float(header), 0.0), 60.0)
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(header)
                if parsed is not None:
                    return min(max(parsed.timestamp() - time.time(), 0.0), 60.0)
    backoff = min(C.RETRY_BASE_DELAY_S * 2 ** (attempt - 1), C.RETRY_MAX_DELAY_S)
    # Full jitter spreads out clients that failed together.
    return float(random.uniform(0.0, backoff))


def is_retryable_status(status: int) -> bool:
    """Transient statuses worth retrying: 408, 409, 429 and 5xx."""
    return status in C.RETRYABLE_STATUS or status >= 500


def transport_error(call: Call, base_url: str, exc: httpx.TransportError) -> APIConnectionError:
    """The package's error for a request that got no response."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"request to {call.path} timed out")
    return APIConnectionError(f"cannot reach {base_url}: {type(exc).__name__}: {exc}")


def next_delay(
    call: Call, attempt: int, attempts: int, outcome: httpx.Response | httpx.TransportError
) -> float | None:
    """Seconds to wait before trying ``call`` again, or ``None`` when done with it.

    Only transport failures and transient statuses are retried, never other 4xx.
    """
    if attempt >= attempts:
        return None
    if isinstance(outcome, httpx.Response):
        if outcome.is_success or not is_retryable_status(outcome.status_code):
            return None
        log.debug("retrying %s after HTTP %s", call.path, outcome.status_code)
        return retry_delay(attempt, outcome)
    log.debug("retrying %s after %s", call.path, type(outcome).__name__)
    return retry_delay(attempt, None)


def settle(call: Call, response: httpx.Response) -> httpx.Response:
    """The response when it is a success or the caller reads errors itself; else the error."""
    if response.is_success or not call.raise_for_status:
        return response
    raise map_status_error(response)


class ClientCore:
    """Settings and I/O-free logic behind both clients."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str | None,
        protocol: ProtocolName,
        profile: ModelProfile | None,
        query_instruction: str | None,
        document_instruction: str | None,
        dimensions: int | None,
        client_side_dimensions: bool,
        truncate: Truncate,
        batch_size: int,
        max_batch_bytes: int,
        max_concurrency: int,
        timeout: float,
        max_retries: int,
        headers: dict[str, str] | None,
        max_image_pixels: int,
        fetch_remote_images: bool,
    ) -> None:
        if protocol not in ("chat", "cohere"):
            raise ConfigurationError(f"protocol must be 'chat' or 'cohere', got {protocol!r}")
        if batch_size < 1 or max_concurrency < 1 or max_batch_bytes < 1:
            raise ConfigurationError("batch_size, max_batch_bytes and max_concurrency must be >= 1")
        if max_retries < 0 or timeout <= 0:
            raise ConfigurationError("max_retries must be >= 0 and timeout > 0")
        if truncate not in ("NONE", "START", "END"):
            raise ConfigurationError(f"truncate must be NONE, START or END, got {truncate!r}")
        self.base_url = resolve_base_url(base_url)
        key = api_key if api_key is not None else os.environ.get(C.ENV_API_KEY)
        self._api_key = key or None
        self.model = model or os.environ.get(C.ENV_MODEL) or None
        self.protocol: ProtocolName = protocol
        base_profile = profile or ModelProfile.qwen3_vl_embedding()
        if protocol == "cohere" and (query_instruction or document_instruction):
            # /v2/embed takes only the server's task_instructions, by input_type name.
            raise ConfigurationError(
                "query_instruction/document_instruction apply to protocol='chat' only; with "
                "'cohere' the server's task_instructions decide (see the docker/ flags)"
            )
        self.profile = ModelProfile(
            query_instruction=query_instruction or base_profile.query_instruction,
            document_instruction=document_instruction or base_profile.document_instruction,
            content_order=base_profile.content_order,
            system_instruction=base_profile.system_instruction,
            open_assistant_turn=base_profile.open_assistant_turn,
            extra_request_fields=dict(base_profile.extra_request_fields),
        )
        self.dimensions = check_dimensions(dimensions)
        self.client_side_dimensions = client_side_dimensions
        self.truncate: Truncate = truncate
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_headers = dict(headers or {})
        self.image_options = ImageOptions(
            max_pixels=max_image_pixels, fetch_remote=fetch_remote_images
        )
        self.info: ServerInfo | None = None

    def __repr__(self) -> str:
        # Never the API key or headers: they may carry secrets.
        return (
            f"base_url={self.base_url!r}, model={self.model!r}, protocol={self.protocol!r}, "
            f"dimensions={self.dimensions!r}"
        )

    # -- requests ---------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """Headers for every request; the key goes in ``Authorization`` only."""
        out = {"Accept": "application/json", **self.extra_headers}
        if self._api_key:
            out["Authorization"] = f"Bearer {self._api_key}"
        return out

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- probing ----------------------------------------------------------------------------

    def probe(self) -> Generator[Call, httpx.Response, ServerInfo]:
        """Find the model, its size and which features the server has; cached by the caller."""
        models = ModelList.model_validate((yield Call("GET", "/v1/models")).json())
        if not models.data:
            raise NotFoundError("the server serves no model", response=httpx.Response(404))
        card = next((m for m in models.data if m.id == self.model), None)
        if self.model is None:
            card = models.data[0]
            self.model = card.id
        model = self.model

        version_resp = yield Call("GET", "/version", raise_for_status=False, retry=False)
        body = _json_or_text(version_resp) if version_resp.is_success else None
        version = str(body["version"]) if isinstance(body, dict) and "version" in body else None

        plain = {"model": model, "input": "probe", "encoding_format": "float"}
        full = ChatEmbeddingResponse.model_validate(
            (yield Call("POST", "/v1/embeddings", plain)).json()
        )
        embedding_size = int(full.vectors(1)[0].shape[0])

        batch_body = {
            "model": model,
            "messages": [[{"role": "user", "content": [{"type": "text", "text": "probe"}]}]],
            "encoding_format": "float",
        }
        batch_resp = yield Call("POST", "/v1/embeddings", batch_body, raise_for_status=False)
        batched = batch_resp.is_success
        if not batched and batch_resp.status_code not in _BISECT_STATUS:
            raise map_status_error(batch_resp)

        dims_resp = yield Call(
            "POST", "/v1/embeddings", {**plain, "dimensions": 1}, raise_for_status=False
        )
        # A model with a fixed list of Matryoshka sizes refuses 1 but names the list instead.
        matryoshka = dims_resp.is_success or (
            dims_resp.status_code == 400
            and "does not support matryoshka"
            not in parse_error_message(_json_or_text(dims_resp), "").lower()
        )

        types_resp = yield Call(
            "POST",
            "/v2/embed",
            {"model": model, "texts": ["probe"], "input_type": _PROBE_INPUT_TYPE},
            raise_for_status=False,
            retry=False,
        )
        input_types: tuple[str, ...] | None
        if types_resp.status_code in (404, 405):
            input_types = None
        else:
            message = parse_error_message(_json_or_text(types_resp), "")
            match = _SUPPORTED_TYPES_RE.search(message)
            input_types = (
                tuple(sorted(t.strip() for t in match.group(1).split(",") if t.strip()))
                if match
                else ()
            )

        info = ServerInfo(
            model=model,
            max_model_len=card.max_model_len if card else None,
            version=version,
            embedding_size=embedding_size,
            batched_conversations=batched,
            matryoshka=matryoshka,
            input_types=input_types,
        )
        log.debug("probed %s: %s", self.base_url, info)
        self.info = info
        return info

    # -- planning ---------------------------------------------------------------------------

    def prepare(
        self,
        items: Sequence[EmbedInput],
        *,
        str_as: Literal["text", "image"],
        fetch: Fetcher | None,
    ) -> list[PreparedInput]:
        """Validate and encode every input; raises naming the first bad one; sends nothing."""
        return prepare_inputs(items, options=self.image_options, str_as=str_as, fetch=fetch)

    def check_call(
        self,
        *,
        input_type: InputType,
        dimensions: int | None,
        embedding_type: OutputDType,
        instruction: str | None,
    ) -> int | None:
        """Validate per-call arguments before anything is prepared or sent."""
        if input_type not in ("query", "document"):
            raise InputError(f"input_type must be 'query' or 'document', got {input_type!r}")
        if embedding_type not in ("float", "binary", "ubinary"):
            raise InputError(
                f"embedding_type must be 'float', 'binary' or 'ubinary', got {embedding_type!r}"
            )
        if embedding_type != "float" and self.protocol != "cohere":
            raise UnsupportedFeatureError(
                f"embedding_type={embedding_type!r} needs protocol='cohere' (/v2/embed)"
            )
        if instruction is not None and self.protocol == "cohere":
            raise UnsupportedFeatureError(
                "per-call instructions need protocol='chat'; /v2/embed only knows the "
                "server's task_instructions"
            )
        if instruction is not None and not instruction.strip():
            raise InputError("instruction is empty")
        dims = check_dimensions(dimensions) if dimensions is not None else self.dimensions
        if dims is not None and embedding_type != "float" and dims % 8:
            raise InputError(f"binary embeddings need dimensions divisible by 8, got {dims}")
        return dims

    def plan(
        self,
        prepared: list[PreparedInput],
        *,
        info: ServerInfo,
        input_type: InputType,
        instruction: str | None,
        dimensions: int | None,
        embedding_type: OutputDType,
    ) -> Job:
        """Decide dimensions and batches for one call, against what the server can do."""
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
            elif self.client_side_dimensions:
                local_dims = dimensions
            else:
                raise UnsupportedFeatureError(
                    f"the server refuses dimensions={dimensions}: start vLLM with "
                    "--hf-overrides '{\"is_matryoshka\": true}', or pass "
                    "client_side_dimensions=True to truncate and re-normalize in the client"
                )
        if self.protocol == "cohere":
            if info.input_types is None:
                raise UnsupportedFeatureError(
                    "the server has no /v2/embed endpoint (vLLM >= 0.18 serves it); "
                    "use protocol='chat'"
                )
            if input_type not in info.input_types:
                raise UnsupportedFeatureError(
                    f"the model has no '{input_type}' task instruction for /v2/embed "
                    f"(it knows: {', '.join(info.input_types) or 'none'}); start vLLM with "
                    '--hf-overrides \'{"task_instructions": {"query": ..., "document": ...}}\' '
                    "(see docker/) or use protocol='chat'"
                )
            for i, item in enumerate(prepared):
                if item.video_url is not None:
                    raise InputError("video needs protocol='chat'; /v2/embed takes none", index=i)
        job = Job(
            input_type=input_type,
            instruction=self.profile.instruction_for(input_type, instruction),
            server_dimensions=server_dims,
            local_dimensions=local_dims,
            embedding_type=embedding_type,
            count=len(prepared),
            batched=info.batched_conversations,
        )
        single = self.protocol == "chat" and not job.batched
        job.batches = self._batches(prepared, 1 if single else self.batch_size)
        return job

    def _batches(self, prepared: list[PreparedInput], size: int) -> list[Batch]:
        batches: list[Batch] = []
        current = Batch([], [])
        current_bytes = 0
        for i, item in enumerate(prepared):
            nbytes = item.nbytes
            full = len(current.items) >= size or (
                current.items and current_bytes + nbytes > self.max_batch_bytes
            )
            if full:
                batches.append(current)
                current, current_bytes = Batch([], []), 0
            current.indices.append(i)
            current.items.append(item)
            current_bytes += nbytes
        if current.items:
            batches.append(current)
        return batches

    # -- running ----------------------------------------------------------------------------

    def call_for(self, job: Job, batch: Batch) -> Call:
        """The request for one batch."""
        model = self.model
        if model is None:  # probe() always sets it first
            raise VLLMEmbeddingError("model unknown: the server was not probed")
        if self.protocol == "chat":
            conversations = [self.profile.messages(item, job.instruction) for item in batch.items]
            tokens, side = _chat_truncation(self.truncate)
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
        return Call("POST", "/v2/embed", self._cohere_body(model, job, batch))

    def _cohere_body(self, model: str, job: Job, batch: Batch) -> dict[str, Any]:
        etype: CohereEmbeddingType = (
            "base64" if job.embedding_type == "float" else job.embedding_type
        )
        common: dict[str, Any] = {
            "model": model,
            "input_type": job.input_type,
            "embedding_type": etype,
            "output_dimension": job.server_dimensions,
            "truncate": self.truncate,
        }
        items = batch.items
        if all(it.image_url is None for it in items):
            return build_cohere_request(texts=[it.text or "" for it in items], **common)
        if all(it.text is None for it in items):
            return build_cohere_request(images=[it.image_url or "" for it in items], **common)
        inputs = [self.profile.parts(it) for it in items]
        return build_cohere_request(inputs=inputs, **common)

    def run_batch(self, job: Job, batch: Batch) -> Generator[Call, httpx.Response, list[Vector]]:
        """Embed one batch; on a content error, split it to name the input the server refused."""
        try:
            response = yield self.call_for(job, batch)
        except APIStatusError as exc:
            if exc.status_code not in _BISECT_STATUS:
                raise
            if len(batch.items) == 1:
                exc.index = batch.indices[0]
                raise
            mid = len(batch.items) // 2
            left = Batch(batch.indices[:mid], batch.items[:mid])
            right = Batch(batch.indices[mid:], batch.items[mid:])
            # Halves that pass are kept: the whole batch may have failed only for its size.
            first = yield from self.run_batch(job, left)
            second = yield from self.run_batch(job, right)
            return first + second
        return self._decode(job, batch, response)

    def _decode(self, job: Job, batch: Batch, response: httpx.Response) -> list[Vector]:
        expected = len(batch.items)
        try:
            if self.protocol == "chat":
                return ChatEmbeddingResponse.model_validate(response.json()).vectors(expected)
            etype: CohereEmbeddingType = (
                "base64" if job.embedding_type == "float" else job.embedding_type
            )
            return CohereEmbedResponse.model_validate(response.json()).vectors(etype, expected)
        except ValueError as exc:  # includes pydantic.ValidationError and bad JSON
            raise APIError(f"malformed response from {response.request.url}: {exc}") from exc

    def finish(self, job: Job, results: list[tuple[Batch, list[Vector]]]) -> npt.NDArray[Any]:
        """Put vectors back in input order, apply client-side dimensions, and check the count."""
        slots: list[Vector | None] = [None] * job.count
        for batch, vectors in results:
            if len(vectors) != len(batch.indices):
                raise APIError(f"expected {len(batch.indices)} vectors, got {len(vectors)}")
            for index, vector in zip(batch.indices, vectors, strict=True):
                slots[index] = vector
        missing = [i for i, v in enumerate(slots) if v is None]
        if missing:
            raise APIError(f"no vector came back for inputs {missing}")
        matrix = np.stack([v for v in slots if v is not None])
        if job.local_dimensions is not None:
            matrix = truncate_vectors(matrix, job.local_dimensions, job.embedding_type)
        return matrix


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


def _chat_truncation(truncate: Truncate) -> tuple[int | None, str | None]:
    if truncate == "NONE":
        return None, None
    # -1: truncate to the model's context length.
    return -1, "left" if truncate == "START" else "right"


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
