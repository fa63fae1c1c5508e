"""Embed a ``ray.data.Dataset`` with the client, spread over several vLLM servers (extra ``ray``).

::

    import ray
    from vllm_multimodal_embeddings import ClientSettings
    from vllm_multimodal_embeddings.bulk.ray_data import embed_dataset

    ds = ray.data.read_parquet("products.parquet")          # id, text, image columns
    settings = ClientSettings(base_url="http://gpu-1:8000", batch_size=16, max_concurrency=4)
    out = embed_dataset(ds, settings, base_urls=["http://gpu-1:8000", "http://gpu-2:8000"],
                        concurrency=8, num_cpus=4)
    out.write_parquet("vectors/")

Each of the ``concurrency`` worker actors builds its clients once (clients hold connections
and cannot be pickled; their settings can) and sends its batches to the servers in turn,
starting at a server of its own: with A actors and N servers, each server sees at most about
``A / N x max_concurrency`` requests at a time.

A batch that a server fails as a whole (unreachable, 5xx or 429 after the client's retries,
so after ``max_retry_time`` at most) moves to the next server, and that server is passed over
for ``server_cooldown`` seconds; a batch moves whole, so every row is embedded exactly once.
An actor that dies is restarted by Ray Data and its batch retried.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._exceptions import (
    APIConnectionError,
    InternalServerError,
    RateLimitError,
    VLLMEmbeddingError,
)
from .._types import Content, EmbedInput, InputType
from ..embeddings._client import EmbeddingClient
from ..embeddings._settings import ClientSettings

__all__ = ["EmbedBatches", "embed_dataset"]

# A server's failures, not the rows': the same batch may succeed on another server.
_SERVER_FAULTS = (APIConnectionError, InternalServerError, RateLimitError)


def _plain(settings: ClientSettings) -> dict[str, Any]:
    """Settings as picklable keywords (``headers`` is a read-only proxy, which does not pickle)."""
    out = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    if out["headers"] is not None:
        out["headers"] = dict(out["headers"])
    return out


def _cell(values: Any, i: int) -> str | None:
    if values is None:
        return None
    value = values[i]
    # Ray hands a column of nulls to numpy as float32 NaN (not a Python float).
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return None
    text = str(value)
    return text if text.strip() else None


class EmbedBatches:
    """A ``map_batches`` callable class: adds a ``vector`` column to each numpy batch.

    Rows with a ``text`` and/or an ``image`` (path or URI) column become one vector each, as in
    ``vllm-mm-embed embed``; a bad row raises, naming its ``id`` (when the batch has an
    ``id_column``) and its position in the batch. An empty batch gets an empty
    ``(0, dimensions)`` column, so it concatenates with the others.
    """

    def __init__(
        self,
        settings: dict[str, Any],
        base_urls: Sequence[str],
        *,
        text_column: str | None = "text",
        image_column: str | None = "image",
        vector_column: str = "vector",
        id_column: str | None = "id",
        input_type: InputType = "document",
        dimensions: int | None = None,
        server_cooldown: float = 30.0,
    ) -> None:
        self._clients = [
            EmbeddingClient(ClientSettings(**{**settings, "base_url": url})) for url in base_urls
        ]
        # A different first server per actor (by process id), then round robin per batch.
        start = os.getpid() % len(self._clients)
        self._turn = itertools.islice(itertools.cycle(range(len(self._clients))), start, None)
        self._down_until = [0.0] * len(self._clients)
        self._cooldown = server_cooldown
        self._text, self._image, self._vector = text_column, image_column, vector_column
        self._id = id_column
        self._input_type: InputType = input_type
        self._dimensions = dimensions

    def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        texts = batch.get(self._text) if self._text else None
        images = batch.get(self._image) if self._image else None
        rows = len(next(iter(batch.values()), ()))
        order = self._order()
        if rows == 0:
            width = self._width(self._clients[order[0]])
            return {**batch, self._vector: np.empty((0, width), np.float32)}
        inputs: list[EmbedInput] = []
        for i in range(rows):
            text, image = _cell(texts, i), _cell(images, i)
            inputs.append(
                text if image is None and text is not None else Content(text=text, image=image)
            )
        for attempt, k in enumerate(order):
            try:
                vectors = self._clients[k].embed_array(
                    inputs, input_type=self._input_type, dimensions=self._dimensions
                )
            except _SERVER_FAULTS as exc:
                self._down_until[k] = time.monotonic() + self._cooldown
                if getattr(exc, "index", None) is None and attempt + 1 < len(order):
                    continue
                self._name_row(exc, batch)
                raise
            except VLLMEmbeddingError as exc:
                self._name_row(exc, batch)
                raise
            return {**batch, self._vector: vectors}
        raise AssertionError("unreachable: the last server's error is raised")  # pragma: no cover

    def _order(self) -> list[int]:
        """This batch's servers to try: the next in turn first, then the others, each server
        that failed a batch lately after those that did not."""
        first = next(self._turn)
        n = len(self._clients)
        ring = [(first + j) % n for j in range(n)]
        now = time.monotonic()
        return sorted(ring, key=lambda k: self._down_until[k] > now)  # stable: ring order kept

    def _width(self, client: EmbeddingClient) -> int:
        return self._dimensions or client.dimensions or client.server_info().embedding_size

    def _name_row(self, exc: VLLMEmbeddingError, batch: dict[str, Any]) -> None:
        """Put the row's id in the message: a position in one batch means nothing to a user."""
        index = getattr(exc, "index", None)
        ids = batch.get(self._id) if self._id else None
        message = getattr(exc, "message", None)
        if index is None or ids is None or not isinstance(message, str):
            return
        exc.message = f"row {self._id}={ids[index]!s} (position {index} of its batch): {message}"  # type: ignore[attr-defined]
        exc.args = (exc.message,)  # type: ignore[attr-defined]

    def __del__(self) -> None:
        for client in getattr(self, "_clients", []):
            client.close()


def embed_dataset(
    dataset: Any,
    settings: ClientSettings,
    *,
    base_urls: Sequence[str] | None = None,
    concurrency: int = 2,
    batch_size: int = 64,
    num_cpus: float = 1,
    text_column: str | None = "text",
    image_column: str | None = "image",
    vector_column: str = "vector",
    id_column: str | None = "id",
    input_type: InputType = "document",
    dimensions: int | None = None,
    server_cooldown: float = 30.0,
) -> Any:
    """``dataset`` with a ``vector`` column, embedded by ``concurrency`` actors.

    Args:
        settings: the clients' settings (``prepare_workers`` is best set to ``num_cpus``).
        base_urls: the servers to spread over; default ``settings.base_url`` alone.
        concurrency: worker actors (each with one client per server).
        batch_size: rows per ``map_batches`` batch (the client splits it into requests).
        num_cpus: CPUs Ray reserves per actor: image preparation runs on them.
        id_column: the column whose value a failing row's error names.
        server_cooldown: seconds a server that failed a whole batch is tried after the others.
    """
    urls = list(base_urls or [settings.base_url or ""])
    return dataset.map_batches(
        EmbedBatches,
        fn_constructor_args=(_plain(settings), urls),
        fn_constructor_kwargs={
            "text_column": text_column,
            "image_column": image_column,
            "vector_column": vector_column,
            "id_column": id_column,
            "input_type": input_type,
            "dimensions": dimensions,
            "server_cooldown": server_cooldown,
        },
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=concurrency,
        num_cpus=num_cpus,
    )
