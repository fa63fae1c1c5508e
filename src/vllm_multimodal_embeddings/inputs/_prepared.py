"""The wire type of one prepared input: what every endpoint's request builder reads.

A leaf: it knows no settings, endpoints or readers, so that the layers above (profiles,
endpoints, both cores) can all take it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ._video import VideoKwargs

__all__ = ["Fetcher", "PartKind", "PreparedInput", "PreparedPart"]

#: Given an ``http(s)`` URL, return its bytes; raise on any failure.
Fetcher = Callable[[str], bytes]

# Rough JSON framing per content part ({"type": ..., "image_url": {"url": ...}}), for batching.
_PART_OVERHEAD = 48


PartKind = Literal["text", "image", "video"]


@dataclass(frozen=True, slots=True)
class PreparedPart:
    """One part of an interleaved item.

    Attributes:
        kind: ``text``, ``image`` or ``video``.
        value: the text, the image's ``data:`` URI or URL, or the video's ``data:`` URI or URL.
        video_kwargs: for a video the server's flags cannot sample like the official
            embedder, the request fields that make it (see :attr:`PreparedInput.media_io_kwargs`).
    """

    kind: PartKind
    value: str
    video_kwargs: VideoKwargs | None = None


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """One item ready for the wire.

    Attributes:
        text: the text part.
        image_url: a ``data:`` URI (inlined image) or an ``http(s)`` URL passed through.
        video_url: a ``data:`` URI (a video read here) or an ``http(s)`` URL passed through.
        parts: for ``Content.of(...)`` items, every part in the caller's order (empty
            otherwise). ``text``, ``image_url`` and ``video_url`` then hold the FIRST part of
            each kind only: code that builds requests must send ``parts`` when it is set.
        video_kwargs: ``None``, or the per-request fields this item's video needs to be
            sampled and sized like the official embedder (an odd official frame count, frames
            under 131,072 pixels): see :attr:`media_io_kwargs`.
    """

    text: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    parts: tuple[PreparedPart, ...] = ()
    video_kwargs: VideoKwargs | None = None

    @property
    def media_io_kwargs(self) -> dict[str, dict[str, Any]] | None:
        """The chat request's top-level ``media_io_kwargs`` this item needs, else ``None``.

        vLLM applies a request's ``media_io_kwargs`` and ``mm_processor_kwargs`` to EVERY
        conversation in it (measured on 0.32): an item that has them may share a request only
        with items that have equal ones or no video at all. The server must run with
        ``--trust-request-mm-kwargs`` (our flags do), else it answers 400.
        """
        return None if self.video_kwargs is None else self.video_kwargs.media_io_kwargs

    @property
    def mm_processor_kwargs(self) -> dict[str, Any] | None:
        """The chat request's top-level ``mm_processor_kwargs`` this item needs, else ``None``.

        Only ``videos_kwargs`` in it: the server's image bounds stay in force.
        """
        return None if self.video_kwargs is None else self.video_kwargs.mm_processor_kwargs

    @property
    def has_video(self) -> bool:
        """Whether a video is part of this item (request-level video fields then reach it)."""
        return self.video_url is not None

    @property
    def interleaved(self) -> bool:
        """Whether this item carries ordered ``parts`` (possibly several of one kind)."""
        return bool(self.parts)

    @property
    def nbytes(self) -> int:
        """Approximate JSON payload size of this item, for batching by bytes."""
        if self.parts:
            values: list[str | None] = [p.value for p in self.parts]
        else:
            values = [self.text, self.image_url, self.video_url]
        # isascii() reads a flag CPython keeps: an ASCII string (every data URI) is measured
        # without encoding a copy of it, twice per input.
        return sum(
            (len(v) if v.isascii() else len(v.encode("utf-8"))) + _PART_OVERHEAD
            for v in values
            if v is not None
        )
