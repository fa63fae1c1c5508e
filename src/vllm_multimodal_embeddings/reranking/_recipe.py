"""Images sized exactly as the official Qwen3-VL recipe sizes them, before vLLM sees them.

The recipe resizes every image (Pillow, bicubic) so both sides are multiples of 32 and the area
lies within 4,096..1,843,200 pixels, then calls the processor with ``do_resize=False``. vLLM
resizes with its processor's own bicubic instead: measured on the tiny reranker, scores then
drift from the recipe's by 3e-5..1.4e-3. An image already at its recipe size passes through
vLLM unresized, so resizing here (and sending the result losslessly) gives the recipe's scores
(measured within 1e-6).
"""

from __future__ import annotations

import io
import math

from PIL import Image

from .._constants import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from .._images import build_data_uri, parse_data_uri

__all__ = ["FACTOR", "recipe_image_uri", "recipe_size"]

FACTOR = 32
"""Patch 16 x spatial merge 2: the side granularity of Qwen3-VL's vision tokens."""


def recipe_size(
    height: int,
    width: int,
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """The (height, width) the recipe resizes an image to."""
    h = max(FACTOR, round(height / FACTOR) * FACTOR)
    w = max(FACTOR, round(width / FACTOR) * FACTOR)
    if h * w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        h = max(FACTOR, math.floor(height / scale / FACTOR) * FACTOR)
        w = max(FACTOR, math.floor(width / scale / FACTOR) * FACTOR)
    elif h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * scale / FACTOR) * FACTOR
        w = math.ceil(width * scale / FACTOR) * FACTOR
    return h, w


def recipe_image_uri(uri: str, *, index: int) -> str:
    """``uri`` (an RGB image data URI) at its recipe size: unchanged when already there, else
    resized with Pillow's bicubic and sent as PNG, so vLLM decodes the very same pixels."""
    data = parse_data_uri(uri, index=index)
    with Image.open(io.BytesIO(data)) as im:
        size = recipe_size(im.height, im.width)
        if size == (im.height, im.width):
            return uri
        rgb = im.convert("RGB")  # the input preparation already made it RGB; this is cheap
    resized = rgb.resize((size[1], size[0]), resample=Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    resized.save(buf, format="PNG", compress_level=1)  # lossless; level 1 for speed
    return build_data_uri(buf.getvalue(), "png")
