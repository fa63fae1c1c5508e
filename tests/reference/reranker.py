# mypy: ignore-errors
# (Runs in the server venv, which has torch and transformers; the test venv has neither.)
"""Reference Qwen3-VL-Reranker scores, written from the published recipe (QwenLM/Qwen3-VL-Embedding,
``Qwen3VLReranker``) with transformers only: no vLLM, no code of this package.

The recipe, as implemented here:
- one conversation per (query, document) pair: a system message asking the model to judge whether
  the Document meets the requirements of the Query and the Instruct, answering "yes" or "no"; a
  user message whose parts are ``<Instruct>: {instruction}``, ``<Query>:``, the query's images,
  the query's text, ``\\n<Document>:``, the document's images, the document's text (a side with
  nothing at all becomes the text ``NULL``);
- rendered with the checkpoint's own chat template and the generation prompt;
- images converted to RGB and resized so both sides are multiples of 32 and the area lies within
  4,096..1,843,200 pixels, then given to the processor with ``do_resize=False``;
- score = sigmoid(h . (W[yes] - W[no])), h the language model's last hidden state (after the
  final norm) at the last position, W the output embedding (lm_head) matrix.

Usage: ``python reranker.py < request.json > scores.json`` where the request is
``{"checkpoint": DIR, "cases": [{"instruction": str | null, "query": SIDE, "documents": [SIDE]}]}``
and a SIDE is ``{"text": str?, "image": path?}``. The answer is
``{"cases": [{"scores": [float], "prompts": [str], "tokens": [int]}]}``: per document its score,
its rendered prompt and its token count (image tokens included).
"""

from __future__ import annotations

import json
import math
import sys

DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
JUDGE = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".'
)
FACTOR = 32  # patch 16 x spatial merge 2
MIN_PIXELS = 4 * FACTOR * FACTOR
MAX_PIXELS = 1800 * FACTOR * FACTOR


def fit_to_budget(height: int, width: int) -> tuple[int, int]:
    """Sides rounded to multiples of FACTOR, then scaled (keeping the ratio) into the budget."""
    h = max(FACTOR, round(height / FACTOR) * FACTOR)
    w = max(FACTOR, round(width / FACTOR) * FACTOR)
    if h * w > MAX_PIXELS:
        scale = math.sqrt(height * width / MAX_PIXELS)
        h = max(FACTOR, math.floor(height / scale / FACTOR) * FACTOR)
        w = max(FACTOR, math.floor(width / scale / FACTOR) * FACTOR)
    elif h * w < MIN_PIXELS:
        scale = math.sqrt(MIN_PIXELS / (height * width))
        h = math.ceil(height * scale / FACTOR) * FACTOR
        w = math.ceil(width * scale / FACTOR) * FACTOR
    return h, w


def load_image(path: str):
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.mode == "RGBA":
            # Transparent pixels over white, as the recipe's image loader does.
            canvas = Image.new("RGB", img.size, (255, 255, 255))
            canvas.paste(img, mask=img.split()[3])
            img = canvas
        else:
            img = img.convert("RGB")
    h, w = fit_to_budget(img.height, img.width)
    if (h, w) != (img.height, img.width):
        img = img.resize((w, h), resample=Image.Resampling.BICUBIC)
    return img


def side_parts(side: dict, label: str, images: list) -> list[dict]:
    """The content parts for one side: label, images, then text (``NULL`` when empty)."""
    parts = [{"type": "text", "text": label}]
    paths = side.get("image") or []
    if isinstance(paths, str):
        paths = [paths]
    texts = side.get("text") or []
    if isinstance(texts, str):
        texts = [texts]
    if not paths and not texts:
        return [*parts, {"type": "text", "text": "NULL"}]
    for path in paths:
        images.append(load_image(path))
        parts.append({"type": "image", "image": path})
    parts += [{"type": "text", "text": t} for t in texts]
    return parts


class Reranker:
    def __init__(self, checkpoint: str) -> None:
        import torch
        from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

        self.torch = torch
        model = Qwen3VLForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32)
        self.model = model.eval()
        self.processor = AutoProcessor.from_pretrained(checkpoint)
        vocab = self.processor.tokenizer.get_vocab()
        head = model.get_output_embeddings().weight.detach().float()
        self.direction = head[vocab["yes"]] - head[vocab["no"]]

    def score(self, instruction: str | None, query: dict, document: dict) -> tuple[float, str, int]:
        images: list = []
        content = [{"type": "text", "text": "<Instruct>: " + (instruction or DEFAULT_INSTRUCTION)}]
        content += side_parts(query, "<Query>:", images)
        content += side_parts(document, "\n<Document>:", images)
        conversation = [
            {"role": "system", "content": [{"type": "text", "text": JUDGE}]},
            {"role": "user", "content": content},
        ]
        prompt = self.processor.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True
        )
        inputs = self.processor(
            text=[prompt],
            images=images or None,
            do_resize=False,
            padding=False,
            return_tensors="pt",
        )
        with self.torch.no_grad():
            hidden = self.model.model(**inputs).last_hidden_state[0, -1].float()
        logit = float(hidden @ self.direction)
        return 1.0 / (1.0 + math.exp(-logit)), prompt, int(inputs["input_ids"].shape[1])


def main() -> None:
    request = json.load(sys.stdin)
    reranker = Reranker(request["checkpoint"])
    cases = []
    for case in request["cases"]:
        scored = [
            reranker.score(case.get("instruction"), case["query"], doc) for doc in case["documents"]
        ]
        scores, prompts, tokens = (list(column) for column in zip(*scored, strict=True))
        cases.append({"scores": scores, "prompts": prompts, "tokens": tokens})
    json.dump({"cases": cases}, sys.stdout)


if __name__ == "__main__":
    main()
