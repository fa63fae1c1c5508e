"""Everything a rerank call does without I/O: prepare, batch, build, send, read, rank.

The sync and async clients own only threads and sockets. For one call they prepare the query and
every document (:meth:`RerankCore.prepare`, in workers: images are decoded, resized, encoded),
split the documents into batches (:meth:`RerankCore.batches`), and drive
:meth:`RerankCore.score_batch` for each: a sans-I/O step that posts ``/rerank`` with the query and
the batch, narrows a refused batch down to the document at fault, and returns the batch's scores
in request order. :func:`rank` orders and cuts the merged scores.

``top_n`` is applied here, not by the server: with several batches only the merged scores know
the best ``n``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._constants import CONTENT_STATUS
from .._exceptions import APIError, APIStatusError, InputError
from .._types import EmbedInput
from ..embeddings._settings import ClientSettings
from ..inputs._prepared import Fetcher, PreparedInput
from ..inputs._read import prepare_input
from ..protocol.models import ModelList
from ..protocol.rerank import NonFiniteScoreError, RerankResponse, build_rerank_request
from ..transport._http import Call, Step
from ._recipe import recipe_image_uri

__all__ = [
    "ENV_RERANKER_BASE_URL",
    "ENV_RERANKER_MODEL",
    "RerankCore",
    "RerankInput",
    "RerankResult",
    "rank",
    "wire_item",
]

ENV_RERANKER_MODEL = "VLLM_RERANKER_MODEL"
"""Served reranker name when ``model`` is not given (else the server's first model)."""
ENV_RERANKER_BASE_URL = "VLLM_RERANKER_BASE_URL"
"""Reranker server root when ``base_url`` is not given (else ``VLLM_BASE_URL``)."""

#: A query or document: the embedder's input forms (text, image, ``Content`` pair, ...).
RerankInput = EmbedInput

# Statuses that say "this request's content is wrong": narrow a batch down to the culprit.


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One document's relevance to the query.

    Attributes:
        index: position of the document in the caller's list.
        score: P("yes") of Qwen3-VL-Reranker, in [0, 1]; higher is more relevant.
    """

    index: int
    score: float


def wire_item(item: PreparedInput) -> str | list[dict[str, Any]]:
    """A prepared query/document as ``/rerank`` takes it: text alone as a string, else content
    parts in the recipe's order (video, image, text: vLLM puts media first anyway)."""
    if item.image_url is None and item.video_url is None and item.text is not None:
        return item.text
    parts: list[dict[str, Any]] = []
    if item.video_url is not None:
        parts.append({"type": "video_url", "video_url": {"url": item.video_url}})
    if item.image_url is not None:
        parts.append({"type": "image_url", "image_url": {"url": item.image_url}})
    if item.text is not None:
        parts.append({"type": "text", "text": item.text})
    return parts


def rank(scores: Sequence[float], top_n: int | None) -> list[RerankResult]:
    """Results best first (ties in input order), cut to ``top_n``."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    if top_n is not None:
        order = order[:top_n]
    return [RerankResult(index=i, score=scores[i]) for i in order]


def check_top_n(top_n: int | None) -> None:
    """``top_n`` is ``None`` (all) or an integer >= 1."""
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise ValueError(f"top_n must be an integer >= 1 or None, got {top_n!r}")


def check_instruction(instruction: str | None) -> None:
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise ValueError("instruction must be a non-empty string or None (the default)")


class RerankCore:
    """The non-I/O half of both reranking clients."""

    def __init__(
        self,
        settings: ClientSettings,
        model: str | None,
        instruction: str | None,
        recipe_images: bool = True,
    ) -> None:
        check_instruction(instruction)
        self.settings = settings
        # Not settings.model: that falls back to VLLM_EMBEDDING_MODEL, the wrong server's name.
        self.model = model or os.environ.get(ENV_RERANKER_MODEL) or None
        self.instruction = instruction
        self.recipe_images = recipe_images
        options = settings.images
        if recipe_images:
            # The recipe's resize must start from the original pixels: the input preparation
            # must not downscale first (it still bounds, validates and makes RGB).
            # PDF pages have no original pixels: they render at the budget, not at the cap.
            options = dataclasses.replace(
                options,
                max_image_pixels=options.max_source_pixels,
                page_max_pixels=options.max_image_pixels,
            )
        self.image_options = options

    def prepare(self, item: RerankInput, index: int, fetch: Fetcher | None) -> PreparedInput:
        """One document, ready for the wire; bad input raises ``InputError`` with its index."""
        prepared = prepare_input(
            item, index=index, options=self.image_options, str_as="text", fetch=fetch
        )
        url = prepared.image_url
        if self.recipe_images and url is not None and url[:5].lower() == "data:":
            prepared = dataclasses.replace(prepared, image_url=recipe_image_uri(url, index=index))
        return prepared

    def prepare_query(self, item: RerankInput, fetch: Fetcher | None) -> PreparedInput:
        """The query, ready for the wire; bad input raises ``InputError`` naming the query."""
        if isinstance(item, (list, tuple)):
            raise InputError(f"the query is one item, got a {type(item).__name__}")
        try:
            return self.prepare(item, 0, fetch)
        except InputError as exc:
            exc.message = f"query: {exc.message}"
            exc.index = None
            raise

    def batches(self, query: PreparedInput, documents: Sequence[PreparedInput]) -> list[range]:
        """Consecutive document ranges: at most ``batch_size`` documents and, past the first,
        ``max_batch_bytes`` of payload (the query counts in every request)."""
        s = self.settings
        out: list[range] = []
        start, size = 0, query.nbytes
        for i, doc in enumerate(documents):
            count = i - start
            if count and (count >= s.fixed_batch_size() or size + doc.nbytes > s.max_batch_bytes):
                out.append(range(start, i))
                start, size = i, query.nbytes
            size += doc.nbytes
        if start < len(documents):
            out.append(range(start, len(documents)))
        return out

    def resolve_model(self) -> Step[str]:
        """The served model name: the given one, else the server's first."""
        if self.model is None:
            response = yield Call("GET", "/v1/models")
            try:
                models = ModelList.model_validate(response.json())
            except ValueError as exc:
                raise APIError(f"GET /v1/models returned no model list: {exc}") from exc
            if not models.data:
                raise APIError("the server serves no model")
            self.model = models.data[0].id
        return self.model

    def score_batch(
        self,
        query: PreparedInput,
        documents: Sequence[PreparedInput],
        start: int,
        instruction: str | None,
    ) -> Step[list[float]]:
        """Scores of ``documents`` (the caller's ``start``.. onward) in request order."""
        model = yield from self.resolve_model()
        body = build_rerank_request(
            model=model,
            query=wire_item(query),
            documents=[wire_item(d) for d in documents],
            instruction=instruction if instruction is not None else self.instruction,
        )
        try:
            response = yield Call("POST", "/rerank", body, media=True)
        except APIStatusError as exc:
            # A query with media can be what the server refused (a URL it cannot fetch): then
            # no document is to blame, and halving would blame the first one.
            media_query = query.image_url is not None or query.video_url is not None
            if exc.status_code not in CONTENT_STATUS or exc.index is not None or media_query:
                raise
            if len(documents) == 1:
                # The query is in every request: when it is refused alone (too long, say),
                # it is at fault, not the document the halving happened to end on.
                if (yield from self._query_refused(query, model, instruction, exc.status_code)):
                    exc.message = f"query: {exc.message}"
                    exc.index = None
                else:
                    exc.index = start
                raise
            # Halve until the document the server refused is found; its error names it. When
            # both halves pass, the batch failed as a whole (413: too large) and halving fixed it.
            mid = len(documents) // 2
            left = yield from self.score_batch(query, documents[:mid], start, instruction)
            right = yield from self.score_batch(query, documents[mid:], start + mid, instruction)
            return left + right
        try:
            return RerankResponse.model_validate(response.json()).scores(len(documents))
        except NonFiniteScoreError as exc:
            index = start + exc.index
            raise APIError(
                f"malformed response from /rerank: document {index} scored {exc.score}, "
                "not a finite number",
                index=index,
            ) from exc
        except ValueError as exc:
            raise APIError(f"POST /rerank returned no usable scores: {exc}") from exc

    def _query_refused(
        self, query: PreparedInput, model: str, instruction: str | None, status: int
    ) -> Step[bool]:
        """Whether the server refuses ``query`` with an empty document as it refused the query
        with one document (the same ``status``): then the query's content is at fault."""
        body = build_rerank_request(
            model=model,
            query=wire_item(query),
            documents=[""],
            instruction=instruction if instruction is not None else self.instruction,
        )
        try:
            yield Call("POST", "/rerank", body)
        except APIStatusError as exc:
            return exc.status_code == status
        return False
