"""Regenerate the small images under cookbook/assets/ (no downloads; Pillow only).

Run: python cookbook/assets/make_assets.py
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent
SIZE = 128

# name -> (background, foreground, shape, caption)
SHAPES: dict[str, tuple[str, str, str, str]] = {
    "red_circle": ("white", "red", "circle", "A red circle on a white background."),
    "blue_square": ("white", "blue", "square", "A blue square on a white background."),
    "green_triangle": ("white", "green", "triangle", "A green triangle pointing up."),
    "orange_stripes": ("navy", "orange", "stripes", "Orange horizontal stripes on navy blue."),
    "purple_cross": ("lightyellow", "purple", "cross", "A purple cross on pale yellow."),
    "black_ring": ("lightgray", "black", "ring", "A black ring on a light gray background."),
}


def draw(background: str, foreground: str, shape: str) -> Image.Image:
    """One flat-colour shape: tiny to store, distinct to the eye."""
    im = Image.new("RGB", (SIZE, SIZE), background)
    d = ImageDraw.Draw(im)
    m = SIZE // 6
    box = (m, m, SIZE - m, SIZE - m)
    if shape == "circle":
        d.ellipse(box, fill=foreground)
    elif shape == "square":
        d.rectangle(box, fill=foreground)
    elif shape == "triangle":
        d.polygon([(SIZE // 2, m), (SIZE - m, SIZE - m), (m, SIZE - m)], fill=foreground)
    elif shape == "stripes":
        for y in range(0, SIZE, 16):
            d.rectangle((0, y, SIZE, y + 7), fill=foreground)
    elif shape == "cross":
        w = SIZE // 8
        d.rectangle((SIZE // 2 - w, m, SIZE // 2 + w, SIZE - m), fill=foreground)
        d.rectangle((m, SIZE // 2 - w, SIZE - m, SIZE // 2 + w), fill=foreground)
    elif shape == "ring":
        d.ellipse(box, outline=foreground, width=SIZE // 10)
    return im


def main() -> None:
    captions = {}
    for name, (bg, fg, shape, caption) in SHAPES.items():
        draw(bg, fg, shape).save(HERE / f"{name}.png", optimize=True)
        captions[f"{name}.png"] = caption
    (HERE / "captions.json").write_text(json.dumps(captions, indent=2) + "\n")


if __name__ == "__main__":
    main()
