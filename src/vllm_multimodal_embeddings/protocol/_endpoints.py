"""The endpoints a vLLM server offers, one object each: path, checks, body, decoding.

The embedding core picks one embedding endpoint per client, once, by protocol name
(:func:`endpoint_for`), and never switches on that name again. A third one (say vLLM's
``/pooling``) is one more class here and one more row of :data:`ENDPOINTS`. The reranking core
speaks :data:`RERANK`; the probe and the doctor ask the server's own paths of :data:`SERVER`.
Protocol names and paths are written here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from .._exceptions import ConfigurationError, UnsupportedFeatureError
from ..profiles import ModelProfile
from . import (
    ChatEmbeddingResponse,
    CohereEmbedResponse,
    build_chat_request,
    build_cohere_request,
    parse_body,
)
from ._content import RECIPE_ORDER, content_parts
from ._job import CallOptions, Job, Vector
from ._quantize import quantize_int8
from ._requests import ANY
from ._server_info import ServerInfo
from .cohere import CohereEmbeddingType, CohereTruncate
from .rerank import RerankResponse, build_rerank_request

if TYPE_CHECKING:
    from ..inputs._prepared import PreparedInput

__all__ = [
    "ANY",
    "CHAT",
    "COHERE",
    "ENDPOINTS",
    "RERANK",
    "SERVER",
    "ChatEndpoint",
    "CohereEndpoint",
    "Endpoint",
    "RerankEndpoint",
    "ServerPaths",
    "endpoint_for",
]


class Endpoint:
    """One embedding endpoint: what it accepts and how it speaks. Stateless; every method is
    pure and raises the package's errors for what the endpoint cannot do."""

    name: ClassVar[str]
    path: ClassVar[str]
    #: Whether the client sends the instruction in the request (else the server's
    #: ``task_instructions`` pick one by ``input_type``).
    sends_instructions: ClassVar[bool] = True

    def check_settings(
        self, *, query_instruction: str | None, document_instruction: str | None
    ) -> None:
        """Refuse client settings this endpoint cannot honour (at construction)."""

    def check_call(self, options: CallOptions) -> None:
        """Refuse per-call arguments this endpoint cannot honour (before any input is read)."""

    def check_plan(self, options: CallOptions, info: ServerInfo) -> None:
        """Refuse a call the probed server cannot serve on this endpoint."""

    def batch_size(self, wanted: int, info: ServerInfo) -> int:
        """Inputs per request against this server."""
        return wanted

    def unsendable(self, item: PreparedInput) -> str | None:
        """Why this endpoint cannot carry ``item``, or ``None``."""
        return None

    def request_fields(self, item: PreparedInput) -> object:
        """The request-level fields ``item`` needs: items may share a request only when these
        are equal, or when either is :data:`ANY` (it needs none)."""
        return ANY

    def body(
        self,
        *,
        model: str,
        job: Job,
        items: Sequence[PreparedInput],
        profile: ModelProfile,
        truncate: CohereTruncate,
    ) -> dict[str, Any]:
        """The JSON body for one request carrying ``items``."""
        raise NotImplementedError

    def decode(self, job: Job, content: bytes, expected: int) -> list[Vector]:
        """The vectors of a successful response, in request order; ``ValueError`` when the
        body cannot be right."""
        raise NotImplementedError


class ChatEndpoint(Endpoint):
    """``POST /v1/embeddings`` with chat ``messages``: the official recipe."""

    name = "chat"
    path = "/v1/embeddings"

    def check_call(self, options: CallOptions) -> None:
        if options.embedding_type not in ("float", "int8"):
            raise UnsupportedFeatureError(
                f"embedding_type={options.embedding_type!r} needs protocol='cohere' (/v2/embed)"
            )

    def batch_size(self, wanted: int, info: ServerInfo) -> int:
        # Servers before vLLM 0.24 take one conversation per request.
        return wanted if info.batched_conversations else 1

    def request_fields(self, item: PreparedInput) -> object:
        # vLLM applies a request's media_io_kwargs / mm_processor_kwargs to every video in it
        # (measured on 0.32): a video with its own sampling fields goes only with videos of the
        # same fields, or with items that have no video.
        return item.video_kwargs if item.has_video else ANY

    def body(
        self,
        *,
        model: str,
        job: Job,
        items: Sequence[PreparedInput],
        profile: ModelProfile,
        truncate: CohereTruncate,
    ) -> dict[str, Any]:
        tokens, side = (None, None) if truncate == "NONE" else (-1, _SIDE[truncate])
        options = profile.request_options()
        if job.int8_scale is not None:
            # The learned step applies to the pooled vector before L2 normalization.
            options["use_activation"] = False
        video = next((it.video_kwargs for it in items if it.video_kwargs is not None), None)
        if video is not None:
            # The official frame count and per-frame pixels for this request's videos; the
            # server needs --trust-request-mm-kwargs (the packaged flags set it).
            options |= {
                "media_io_kwargs": video.media_io_kwargs,
                "mm_processor_kwargs": video.mm_processor_kwargs,
            }
        return build_chat_request(
            model=model,
            conversations=[profile.messages(item, job.instruction) for item in items],
            batched=job.batched,
            options=options,
            dimensions=job.server_dimensions,
            truncate_prompt_tokens=tokens,  # -1: the model's context length
            truncation_side=side,
        )

    def decode(self, job: Job, content: bytes, expected: int) -> list[Vector]:
        vectors = parse_body(ChatEmbeddingResponse, content).vectors(expected, job.expected_size)
        if job.int8_scale is not None:
            return [quantize_int8(v, job.int8_scale) for v in vectors]
        return vectors


# Which end of an over-long chat prompt vLLM cuts, by Cohere truncate name.
_SIDE = {"START": "left", "END": "right"}


class CohereEndpoint(Endpoint):
    """``POST /v2/embed``: the Cohere Embed v2 schema (vLLM >= 0.18); instructions come from
    the server's ``task_instructions``, by ``input_type``."""

    name = "cohere"
    path = "/v2/embed"
    sends_instructions = False

    def check_settings(
        self, *, query_instruction: str | None, document_instruction: str | None
    ) -> None:
        if query_instruction or document_instruction:
            raise ConfigurationError(
                "query_instruction/document_instruction apply to protocol='chat' only; with "
                "'cohere' the server's task_instructions decide (see the docker/ flags)"
            )

    def check_call(self, options: CallOptions) -> None:
        if options.embedding_type == "int8":
            # vLLM's /v2/embed has no int8 (0.32 answers 400) and always L2-normalizes, while
            # the learned step applies to the vector before normalization.
            raise UnsupportedFeatureError(
                "embedding_type='int8' needs protocol='chat': /v2/embed cannot return the "
                "un-normalized vector the model's int8 step applies to"
            )
        if options.instruction is not None:
            raise UnsupportedFeatureError(
                "per-call instructions need protocol='chat'; /v2/embed only knows the "
                "server's task_instructions"
            )

    def check_plan(self, options: CallOptions, info: ServerInfo) -> None:
        if info.input_types is None:
            raise UnsupportedFeatureError(
                "the server has no /v2/embed endpoint (vLLM >= 0.18 serves it); use protocol='chat'"
            )
        if options.input_type not in info.input_types:
            raise UnsupportedFeatureError(
                f"the model has no '{options.input_type}' task instruction for /v2/embed "
                f"(it knows: {', '.join(info.input_types) or 'none'}); start vLLM with "
                '--hf-overrides \'{"task_instructions": {"query": ..., "document": ...}}\' '
                "(see docker/) or use protocol='chat'"
            )

    def unsendable(self, item: PreparedInput) -> str | None:
        if item.video_url is not None or any(p.kind == "video" for p in item.parts):
            return "video needs protocol='chat'; /v2/embed takes none"
        return None

    def body(
        self,
        *,
        model: str,
        job: Job,
        items: Sequence[PreparedInput],
        profile: ModelProfile,
        truncate: CohereTruncate,
    ) -> dict[str, Any]:
        common: dict[str, Any] = {
            "model": model,
            "input_type": job.input_type,
            "embedding_type": _wire_type(job),
            "output_dimension": job.server_dimensions,
            "truncate": truncate,
        }
        # ``texts`` and ``images`` are the plain forms; ``inputs`` keeps several parts, and
        # the caller's order of interleaved parts, which only it can say.
        if not any(it.interleaved for it in items):
            if all(it.image_url is None for it in items):
                return build_cohere_request(texts=[it.text or "" for it in items], **common)
            if all(it.text is None for it in items):
                return build_cohere_request(images=[it.image_url or "" for it in items], **common)
        return build_cohere_request(inputs=[profile.parts(it) for it in items], **common)

    def decode(self, job: Job, content: bytes, expected: int) -> list[Vector]:
        response = parse_body(CohereEmbedResponse, content)
        return response.vectors(_wire_type(job), expected, job.expected_size)


def _wire_type(job: Job) -> CohereEmbeddingType:
    # Floats travel as base64: ~16x cheaper to decode than JSON lists. (int8 never gets here:
    # check_call refuses it.)
    if job.embedding_type == "binary" or job.embedding_type == "ubinary":
        return job.embedding_type
    return "base64"


CHAT = ChatEndpoint()
COHERE = CohereEndpoint()

#: Every embedding endpoint by protocol name.
ENDPOINTS: Mapping[str, Endpoint] = MappingProxyType({e.name: e for e in (CHAT, COHERE)})


class RerankEndpoint:
    """``POST /rerank`` (vLLM's Jina/Cohere-style endpoint) with Qwen3-VL-Reranker's score
    template: a query, documents and an optional instruction in; P("yes") per document out."""

    name = "rerank"
    path = "/rerank"

    @staticmethod
    def item(item: PreparedInput) -> str | list[dict[str, Any]]:
        """A query or document as ``/rerank`` takes it, through the embedder's content-part
        encoder: text alone as a string; else every image and video, in the caller's order,
        then the text parts concatenated into one. That is the recipe's layout (media, then
        text, its parts rendered back to back), and vLLM's too: it renders media first whatever
        the order and would join several text parts with newlines."""
        parts = content_parts(item, RECIPE_ORDER)
        media = [p for p in parts if p["type"] != "text"]
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        if not media:
            return text
        return [*media, {"type": "text", "text": text}] if text else media

    def body(
        self,
        *,
        model: str,
        query: PreparedInput,
        documents: Sequence[PreparedInput],
        instruction: str | None,
    ) -> dict[str, Any]:
        """The JSON body scoring ``documents`` against ``query``."""
        return build_rerank_request(
            model=model,
            query=self.item(query),
            documents=[self.item(d) for d in documents],
            instruction=instruction,
        )

    @staticmethod
    def decode(content: bytes, expected: int) -> list[float]:
        """The scores of a successful response, in request order; ``ValueError`` (a
        ``NonFiniteScoreError`` naming the document) when the body cannot be right."""
        return parse_body(RerankResponse, content).scores(expected)


RERANK = RerankEndpoint()


class ServerPaths:
    """The server's own endpoints, beside the embedding and reranking ones."""

    health = "/health"
    models = "/v1/models"
    version = "/version"


SERVER = ServerPaths()


def endpoint_for(protocol: object) -> Endpoint:
    """The endpoint of ``protocol``; an unknown name is a :class:`ConfigurationError`."""
    endpoint = ENDPOINTS.get(protocol) if isinstance(protocol, str) else None
    if endpoint is None:
        known = " or ".join(repr(name) for name in ENDPOINTS)
        raise ConfigurationError(f"protocol must be {known}, got {protocol!r}")
    return endpoint
