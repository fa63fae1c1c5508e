"""Everything a rerank call does without I/O: prepare, batch, build, send, read, rank.

The sync and async clients own only threads and sockets. For one call they prepare the query and
every document (:meth:`RerankCore.prepare`, in workers: images are decoded, resized, encoded),
split the documents into requests (:meth:`RerankCore.batches`, the embedder's batching with the
query counted in each), and drive :meth:`RerankCore.score_batch` for each: a sans-I/O step that
posts :data:`~..protocol._endpoints.RERANK` and narrows a refused request down to the document
at fault with the embedder's step (:func:`~..protocol._requests.narrow`). :func:`rank` orders
and cuts the merged scores.

``top_n`` is applied here, not by the server: with several batches only the merged scores know
the best ``n``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .._exceptions import APIError, APIStatusError, InputError
from .._types import EmbedInput
from ..inputs._prepared import Fetcher, PreparedInput
from ..inputs._read import prepare_input
from ..profiles import RerankPreset, resolve_instruction
from ..protocol._endpoints import RERANK
from ..protocol._probe import served_models
from ..protocol._requests import Batch, batches, narrow, server_error_retries
from ..protocol.rerank import NonFiniteScoreError
from ..transport._http import Call, Step
from ._recipe import recipe_image_uri
from ._settings import RerankerSettings

__all__ = [
    "RerankCore",
    "RerankInput",
    "RerankResult",
    "rank",
]

#: A query or document: the embedder's input forms (text, image, ``Content`` pair, ...).
RerankInput = EmbedInput

# The shortest item any server scores: the control request's query and document.
_CONTROL = PreparedInput(text=".")


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One document's relevance to the query.

    Attributes:
        index: position of the document in the caller's list.
        score: P("yes") of Qwen3-VL-Reranker, in [0, 1]; higher is more relevant.
    """

    index: int
    score: float


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


def call_instruction(instruction: str | None) -> str | None:
    """A call's instruction as text: free text, a :class:`RerankPreset` or its name, or
    ``None`` (the client's)."""
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise InputError("instruction must be a non-empty string or None (the default)")
    if instruction is None:
        return None
    return resolve_instruction(instruction, error=InputError, presets=RerankPreset)


class RerankCore:
    """The non-I/O half of both reranking clients."""

    def __init__(self, settings: RerankerSettings) -> None:
        self.settings = settings
        #: The served reranker: the setting, else the server's first (resolved once).
        self.model = settings.model
        options = settings.images
        if settings.recipe_images:
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
        if self.settings.recipe_images and url is not None and url[:5].lower() == "data:":
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

    def batches(self, query: PreparedInput, documents: Sequence[PreparedInput]) -> list[Batch]:
        """Consecutive requests: at most ``batch_size`` documents and, past the first,
        ``max_batch_bytes`` of payload (the query counts in every request)."""
        s = self.settings
        return list(
            batches(
                documents,
                0,
                size=s.fixed_batch_size(),
                max_bytes=s.max_batch_bytes,
                base_bytes=query.nbytes,
            )
        )

    def resolve_model(self) -> Step[str]:
        """The served model name: the setting, else the server's first (asked once)."""
        if self.model is None:
            self.model = (yield from served_models()).data[0].id
        return self.model

    def score_batch(
        self, query: PreparedInput, batch: Batch, instruction: str | None
    ) -> Step[list[float]]:
        """Scores of ``batch`` in request order; a refused document is named by its index, a
        refused query as the query."""
        model = yield from self.resolve_model()
        instruction = instruction if instruction is not None else self.settings.instruction

        def call(q: PreparedInput, docs: Sequence[PreparedInput], again: bool = False) -> Call:
            body = RERANK.body(model=model, query=q, documents=docs, instruction=instruction)
            # As the embedder's: a dead URL is narrowed down, not retried at every level.
            retries = 0 if again else server_error_retries([q, *docs], len(docs))
            return Call("POST", RERANK.path, body, media=True, server_error_retries=retries)

        def send(b: Batch, again: bool) -> Step[list[float]]:
            response = yield call(query, b.items, again)
            try:
                return RERANK.decode(response.content, len(b.items))
            except NonFiniteScoreError as exc:
                index = b.indices[exc.index]
                raise APIError(
                    f"malformed response from {RERANK.path}: document {index} scored "
                    f"{exc.score}, not a finite number",
                    index=index,
                ) from exc
            except ValueError as exc:
                raise APIError(f"POST {RERANK.path} returned no usable scores: {exc}") from exc

        def control() -> Step[None]:
            yield call(_CONTROL, [_CONTROL])

        def query_refused(exc: APIStatusError) -> Step[bool]:
            # The query is in every request: when it is refused beside the shortest document
            # (too long, a URL the server cannot fetch), it is at fault, not the document the
            # halving ended on.
            try:
                yield call(query, [_CONTROL])
            except APIStatusError as again:
                if again.status_code == exc.status_code:
                    exc.message = f"query: {exc.message}"
                    return True
            return False

        scores: list[float] = []
        yield from narrow(batch, send, control, scores, shared=[query], blame_shared=query_refused)
        return scores
