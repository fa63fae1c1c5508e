"""``POST /rerank``: vLLM's Jina/Cohere-style rerank endpoint, as vLLM 0.32 serves it.

A query and documents are each a string or a list of content parts (``{"type": "text", ...}``,
``{"type": "image_url", "image_url": {"url": ...}}``). vLLM renders each (query, document) pair
through the server's score template with image placeholders FIRST, then the text parts joined by
newlines, whatever their order in the list; the Qwen3-VL-Reranker recipe puts images before text
and concatenates its text, so an item carries at most one text part. The response lists results
sorted by score, cut to ``top_n``, each echoing its document (images included).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from ._decode import MalformedResponseError

ContentPart = Mapping[str, Any]
RerankItem = str | Sequence[ContentPart]
"""A query or document on the wire: plain text, or content parts."""


def _wire_item(item: RerankItem, name: str) -> str | dict[str, Any]:
    """One query/document as vLLM takes it; ``ValueError`` naming ``name`` if malformed."""
    if isinstance(item, str):
        return item
    parts = [dict(p) for p in item]
    if not parts:
        raise ValueError(f"{name}: empty content-part list")
    kinds = [p.get("type") for p in parts]
    unknown = sorted({str(k) for k in kinds if k not in ("text", "image_url", "video_url")})
    if unknown:
        raise ValueError(f"{name}: unsupported content-part types {unknown}")
    if kinds.count("text") > 1:
        # vLLM joins text parts with "\n"; the recipe concatenates them: join before sending.
        raise ValueError(f"{name}: more than one text part; join the text into one part")
    return {"content": parts}


def build_rerank_request(
    *,
    model: str,
    query: RerankItem,
    documents: Sequence[RerankItem],
    instruction: str | None = None,
    top_n: int | None = None,
    truncate_prompt_tokens: int | None = None,
) -> dict[str, Any]:
    """A ``/rerank`` body.

    Args:
        instruction: the reranker's task instruction; ``None`` leaves the score template's
            default (the official one with this package's template).
        top_n: return only the best ``top_n`` results; ``None`` returns all of them.
        truncate_prompt_tokens: cut each rendered pair to this many tokens (vLLM's own
            truncation, which can cut the judge prompt's end: leave ``None`` for exact scores).
    """
    if isinstance(documents, str):
        raise TypeError("documents must be a sequence of items, not one string")
    if not documents:
        raise ValueError("documents: at least one document is needed")
    if top_n is not None and top_n < 1:
        # The wire's 0 means "all": say None for that, so a computed 0 is never silently "all".
        raise ValueError(f"top_n must be >= 1 (or None for all), got {top_n}")
    body: dict[str, Any] = {
        "model": model,
        "query": _wire_item(query, "query"),
        "documents": [_wire_item(d, f"documents[{i}]") for i, d in enumerate(documents)],
    }
    if instruction is not None:
        body["instruction"] = instruction
    if top_n is not None:
        body["top_n"] = top_n
    if truncate_prompt_tokens is not None:
        body["truncate_prompt_tokens"] = truncate_prompt_tokens
    return body


class NonFiniteScoreError(MalformedResponseError):
    """A result's score is NaN or infinite: no order can be built on it.

    Attributes:
        index: the document's position in the request.
        score: the score as received.
    """

    def __init__(self, index: int, score: float) -> None:
        self.index = index
        self.score = score
        super().__init__(f"document {index} has the score {score}, not a finite number")


def _check_finite(result: RerankResult) -> None:
    # JSON from Python servers may carry NaN/Infinity; pydantic's float takes them.
    if not math.isfinite(result.relevance_score):
        raise NonFiniteScoreError(result.index, result.relevance_score)


class RerankDocument(BaseModel):
    """The document a result refers to, echoed by the server."""

    model_config = ConfigDict(extra="allow")

    text: str | None = None
    """The document, when it was sent as a plain string."""
    multi_modal: list[dict[str, Any]] | None = None
    """The document's content parts, when it was sent as a list (data URIs included)."""


class RerankResult(BaseModel):
    """One scored document."""

    model_config = ConfigDict(extra="allow")

    index: int
    """Position of the document in the request."""
    relevance_score: float
    """P("yes") for Qwen3-VL-Reranker: in [0, 1], higher is more relevant."""
    document: RerankDocument | None = None
    """The document as sent (vLLM 0.32 always echoes it)."""


class RerankUsage(BaseModel):
    """Token counts of the whole request."""

    model_config = ConfigDict(extra="allow")

    prompt_tokens: int | None = None
    """Tokens of all rendered pairs together (image tokens included)."""
    total_tokens: int | None = None
    """Equal to ``prompt_tokens`` for scoring."""


class RerankResponse(BaseModel):
    """Body of a successful ``/rerank`` response."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    """Server-side request id."""
    model: str | None = None
    """The model that scored the documents."""
    results: list[RerankResult]
    """Scored documents, best first, at most ``top_n`` of them."""
    usage: RerankUsage | None = None
    """Token counts."""

    def scores(self, expected: int) -> list[float]:
        """Every document's score in request order; ``ValueError`` if any is missing or repeated,
        :class:`NonFiniteScoreError` if one is NaN or infinite.

        For responses to requests without ``top_n`` (or with ``top_n >= expected``).
        """
        out: list[float | None] = [None] * expected
        for result in self.results:
            if not 0 <= result.index < expected or out[result.index] is not None:
                raise ValueError(f"unexpected result index {result.index} in response")
            _check_finite(result)
            out[result.index] = result.relevance_score
        missing = [i for i, s in enumerate(out) if s is None]
        if missing:
            raise ValueError(f"response lacks scores for documents {missing}")
        return [s for s in out if s is not None]

    def ranked(self, expected: int) -> list[tuple[int, float]]:
        """``(index, score)`` pairs, best first (ties by index); ``ValueError`` on a bad index."""
        seen: set[int] = set()
        for result in self.results:
            if not 0 <= result.index < expected or result.index in seen:
                raise ValueError(f"unexpected result index {result.index} in response")
            seen.add(result.index)
            _check_finite(result)
        pairs = [(r.index, r.relevance_score) for r in self.results]
        return sorted(pairs, key=lambda p: (-p[1], p[0]))
