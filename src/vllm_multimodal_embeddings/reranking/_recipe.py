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

from PIL import Image

from .._constants import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from ..inputs._images import build_data_uri, parse_data_uri, smart_resize

__all__ = ["recipe_image_uri", "recipe_size"]


def recipe_size(height: int, width: int) -> tuple[int, int]:
    """The (height, width) the recipe resizes an image to (the package's one smart resize)."""
    w, h = smart_resize(width, height, min_pixels=DEFAULT_MIN_PIXELS, max_pixels=DEFAULT_MAX_PIXELS)
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
