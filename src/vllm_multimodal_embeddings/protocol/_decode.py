"""Decoding and checking of the vectors a server sends.

Every check failure is a :class:`MalformedResponseError`, a ``ValueError``: the client maps
``ValueError`` from a response body to :class:`~vllm_multimodal_embeddings.APIError`, so a
broken server never hands back a wrong vector or a raw numpy error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pydantic

__all__ = [
    "MalformedResponseError",
    "check_vectors",
    "decode_float32_le",
    "float_vector",
    "packed_vector",
    "parse_body",
]

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


class MalformedResponseError(ValueError):
    """A response body that parses but cannot be right (bad base64, NaN, wrong sizes)."""


def parse_body(model: type[ModelT], content: bytes | str) -> ModelT:
    """Parse a response body into ``model``, or :class:`MalformedResponseError`.

    One short line for every way a body goes wrong: HTML from a proxy, invalid or cut-off
    JSON, JSON of the wrong shape. The body itself is quoted only as its first 60 characters.
    """
    # pydantic's own JSON parser: ~3 us a vector of a 128-vector response, against ~8 for
    # json.loads then model_validate (the whole response path is ~40 us a vector).
    try:
        return model.model_validate_json(content)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
            reason = str(first["msg"]).removeprefix("Invalid JSON: ")
            raise MalformedResponseError(
                f"response is not JSON ({reason}); it starts with {text.strip()[:60]!r}"
            ) from exc
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise MalformedResponseError(
            f"response does not match {model.__name__}: {where}: {first['msg']} "
            f"({exc.error_count()} error(s))"
        ) from exc


def decode_float32_le(data: str) -> npt.NDArray[np.float32]:
    """Decode a base64 string of little-endian float32 values.

    Far cheaper than parsing a JSON list of floats: no per-element Python objects. Strict:
    stray characters, bad padding or a byte count that is not a multiple of 4 are refused.
    """
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponseError(f"invalid base64 embedding: {exc}") from exc
    if not raw or len(raw) % 4:
        raise MalformedResponseError(
            f"base64 embedding holds {len(raw)} bytes, not a whole number of float32 values"
        )
    return np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=False)


def float_vector(values: Sequence[float]) -> npt.NDArray[np.float32]:
    """A JSON list of floats as float32 (values beyond float32's range become inf, caught later)."""
    try:
        with np.errstate(over="ignore"):
            return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MalformedResponseError(f"embedding is not a list of numbers: {exc}") from exc


def packed_vector(values: Sequence[int], dtype: type[np.int8] | type[np.uint8]) -> npt.NDArray[Any]:
    """Packed sign bits as int8 (``binary``) or uint8 (``ubinary``), range-checked."""
    info = np.iinfo(dtype)
    try:
        wide = np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MalformedResponseError(f"packed embedding is not a list of integers: {exc}") from exc
    if wide.size and (wide.min() < info.min or wide.max() > info.max):
        raise MalformedResponseError(
            f"packed embedding value out of range for {np.dtype(dtype).name}"
        )
    return wide.astype(dtype)


def check_vectors(
    vectors: list[npt.NDArray[Any]], *, dimension: int | None = None, packed: bool = False
) -> list[npt.NDArray[Any]]:
    """Refuse empty, non-finite, mixed-size or wrong-size vectors; return them unchanged.

    Args:
        dimension: the size every vector must have (requested or probed); for ``packed``
            vectors, the float dimension (each vector then holds ``dimension / 8`` bytes).
    """
    if not vectors:
        return vectors
    sizes = {v.shape for v in vectors}
    if len(sizes) != 1:
        lengths = sorted({v.size for v in vectors})
        raise MalformedResponseError(f"vectors of mixed sizes {lengths} in one response")
    (shape,) = sizes
    if len(shape) != 1 or shape[0] == 0:
        raise MalformedResponseError(f"embedding has shape {shape}, expected a non-empty vector")
    if dimension is not None:
        want = dimension // 8 if packed else dimension
        if shape[0] != want:
            unit = "bytes" if packed else "values"
            raise MalformedResponseError(f"embedding has {shape[0]} {unit}, expected {want}")
    if not packed:
        # One pass over the stacked response: a check per vector cost ~20 us each, a tenth of
        # the client's whole CPU per short text.
        finite = np.isfinite(np.stack(vectors)).all(axis=1)
        if not finite.all():
            position = int(np.argmin(finite))
            raise MalformedResponseError(
                f"embedding at response position {position} contains NaN or infinity"
            )
    return vectors
