# mypy: ignore-errors
# (Runs with the server venv's python, which has torch and transformers; it must not import the
# package under test, so that the vectors it gives are an independent reference.)
"""Reference embedder: the published Qwen3-VL-Embedding recipe, on transformers, on the CPU.

Written from the description of QwenLM/Qwen3-VL-Embedding's ``Qwen3VLEmbedder`` (no code copied):

1. system message = instruction (a period appended unless it ends in punctuation), user turn with
   the parts in the given order, then the chat template's generation prompt;
2. each image converted to RGB (transparency over white), smart-resized with PIL's default filter
   to sides that are multiples of 32 and 4,096..1,843,200 pixels, and given to the processor with
   ``do_resize=False``;
3. the language model's last hidden state at the last token, L2-normalized.

Protocol: one JSON object per stdin line, ``{"items": [{"instruction": str, "parts": [{"type":
"text", "text": str} | {"type": "image", "path": str}]}]}``; one JSON line back per request,
``{"vectors": [[float]], "prompt_tokens": [int], "image_tokens": [int], "sizes": [[[w, h]]]}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import unicodedata

FACTOR = 32  # patch 16 x spatial merge 2
MIN_PIXELS = 4 * FACTOR * FACTOR
MAX_PIXELS = 1800 * FACTOR * FACTOR
MAX_ASPECT = 200


def official_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) the recipe resizes an image to."""
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ValueError(f"aspect ratio over {MAX_ASPECT}: {width}x{height}")
    # Nearest multiple first; only when that leaves the budget scale by the area ratio, flooring
    # (too many pixels) or ceiling (too few) so the result lands inside.
    w = max(FACTOR, round(width / FACTOR) * FACTOR)
    h = max(FACTOR, round(height / FACTOR) * FACTOR)
    if w * h > MAX_PIXELS:
        scale = math.sqrt(width * height / MAX_PIXELS)
        w = max(FACTOR, math.floor(width / scale / FACTOR) * FACTOR)
        h = max(FACTOR, math.floor(height / scale / FACTOR) * FACTOR)
    elif w * h < MIN_PIXELS:
        scale = math.sqrt(MIN_PIXELS / (width * height))
        w = math.ceil(width * scale / FACTOR) * FACTOR
        h = math.ceil(height * scale / FACTOR) * FACTOR
    return w, h


def load_image(path: str):
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode == "RGBA":
            rgb = Image.new("RGB", im.size, (255, 255, 255))
            rgb.paste(im, mask=im.getchannel("A"))
        else:
            rgb = im.convert("RGB")
    return rgb.resize(official_size(*rgb.size))


def normalize_instruction(text: str) -> str:
    text = text.strip()
    if text and not unicodedata.category(text[-1]).startswith("P"):
        text += "."
    return text


class Reference:
    def __init__(self, checkpoint: str) -> None:
        import torch
        from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

        self.torch = torch
        self.processor = AutoProcessor.from_pretrained(checkpoint, padding_side="right")
        model = Qwen3VLForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32)
        # The embedder runs the bare Qwen3VLModel (no LM head): the same weights under `.model`.
        self.model = model.model.eval()
        self.image_pad = self.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")

    def embed_one(self, item: dict) -> dict:
        torch = self.torch
        content, images = [], []
        for part in item["parts"]:
            if part["type"] == "text":
                content.append({"type": "text", "text": part["text"]})
            elif part["type"] == "image":
                images.append(load_image(part["path"]))
                content.append({"type": "image"})
            else:
                raise ValueError(f"unknown part type {part['type']!r}")
        conversation = [
            {
                "role": "system",
                "content": [{"type": "text", "text": normalize_instruction(item["instruction"])}],
            },
            {"role": "user", "content": content},
        ]
        prompt = self.processor.apply_chat_template(
            [conversation], add_generation_prompt=True, tokenize=False
        )
        inputs = self.processor(
            text=prompt,
            images=images or None,
            do_resize=False,
            padding=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            hidden = self.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"]
        last = mask.shape[1] - 1 - mask.flip(dims=[1]).argmax(dim=1)
        vec = hidden[torch.arange(hidden.shape[0]), last]
        vec = torch.nn.functional.normalize(vec, p=2, dim=-1)[0]
        ids = inputs["input_ids"][0]
        return {
            "vector": vec.tolist(),
            "prompt_tokens": int(mask[0].sum()),
            "image_tokens": int((ids == self.image_pad).sum()),
            "sizes": [list(im.size) for im in images],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    args = parser.parse_args()
    ref = Reference(args.checkpoint)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = [ref.embed_one(item) for item in json.loads(line)["items"]]
            reply = {
                key: [o[key] for o in out] for key in ("prompt_tokens", "image_tokens", "sizes")
            }
            reply["vectors"] = [o["vector"] for o in out]
        except Exception as exc:  # report to the test, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
