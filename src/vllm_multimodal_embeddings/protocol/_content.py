"""Chat content parts of one prepared input: the one encoder every endpoint sends items with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..inputs._prepared import PreparedInput

__all__ = ["RECIPE_ORDER", "content_parts"]

#: The official recipe's order of a user turn: video, image, text.
RECIPE_ORDER: tuple[str, ...] = ("video", "image", "text")


def _part(kind: str, value: str) -> dict[str, Any]:
    if kind == "text":
        return {"type": "text", "text": value}
    key = f"{kind}_url"
    return {"type": key, key: {"url": value}}


def content_parts(
    item: PreparedInput, order: tuple[str, ...] = RECIPE_ORDER
) -> list[dict[str, Any]]:
    """``item`` as chat content parts: every part of a ``Content.of(...)`` item in the caller's
    order, else the item's video, image and text in ``order``."""
    if item.parts:
        # Content.of(...): the caller chose the order; the model's layout applies to plain items.
        return [_part(p.kind, p.value) for p in item.parts]
    if item.image_url is None and item.video_url is None and item.text is not None:
        return [{"type": "text", "text": item.text}]  # the common case, built directly
    values: dict[str, str | None] = {
        "video": item.video_url,
        "image": item.image_url,
        "text": item.text,
    }
    return [_part(kind, value) for kind in order if (value := values.get(kind)) is not None]
