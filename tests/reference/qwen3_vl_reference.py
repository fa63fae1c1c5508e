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
3. each video file sampled the way qwen_vl_utils' ``fetch_video`` does with the embedder's
   settings (1 frame/s, at least 4, at most 64, rounded down to an even count, frames at the
   rounded linspace indices), each frame smart-resized (bicubic, antialiased) to 131,072..786,432
   pixels; a video given as a list of frames is thinned to 64 with a floored linspace, each frame
   resized as an image, padded to an even count with its last frame and bounded to a total of
   7,864,320 pixels; the processor then gets the frames with ``do_sample_frames=False``;
4. the language model's last hidden state at the last token, L2-normalized.

Videos are decoded with OpenCV (the server venv has it; the official code's torchcodec needs
FFmpeg libraries this machine lacks, and without a reader the official embedder silently embeds
the text "NULL": here a video that cannot be read is an error).

Protocol: one JSON object per stdin line, ``{"items": [{"instruction": str, "parts": [{"type":
"text", "text": str} | {"type": "image", "path": str} | {"type": "video", "path": str} |
{"type": "frames", "paths": [str]}]}]}``; one JSON line back per request, ``{"vectors":
[[float]], "prompt_tokens": [int], "image_tokens": [int], "video_tokens": [int], "sizes":
[[[w, h]]], "frames": [[int]]}`` (``frames``: frames given to the processor, per video).
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
VIDEO_FPS = 1.0
VIDEO_MIN_FRAMES = 4
VIDEO_MAX_FRAMES = 64
FRAME_MIN_PIXELS = 128 * FACTOR * FACTOR
FRAME_MAX_PIXELS = 768 * FACTOR * FACTOR
# qwen_vl_utils' total budget for a video file (MODEL_SEQ_LEN 128,000 tokens x 0.9) and the
# embedder's for a list of frames (10 frames at the maximum).
FILE_TOTAL_PIXELS = 128000 * FACTOR * FACTOR * 0.9
FRAMES_TOTAL_PIXELS = 10 * FRAME_MAX_PIXELS
FRAMES_SAMPLE_FPS = 2.0


def official_size(
    width: int, height: int, min_pixels: float = MIN_PIXELS, max_pixels: float = MAX_PIXELS
) -> tuple[int, int]:
    """(width, height) the recipe resizes an image (or a video frame) to."""
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ValueError(f"aspect ratio over {MAX_ASPECT}: {width}x{height}")
    # Nearest multiple first; only when that leaves the budget scale by the area ratio, flooring
    # (too many pixels) or ceiling (too few) so the result lands inside.
    w = max(FACTOR, round(width / FACTOR) * FACTOR)
    h = max(FACTOR, round(height / FACTOR) * FACTOR)
    if w * h > max_pixels:
        scale = math.sqrt(width * height / max_pixels)
        w = max(FACTOR, math.floor(width / scale / FACTOR) * FACTOR)
        h = max(FACTOR, math.floor(height / scale / FACTOR) * FACTOR)
    elif w * h < min_pixels:
        scale = math.sqrt(min_pixels / (width * height))
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


def official_nframes(total: int, fps: float) -> int:
    """Frames the recipe samples from a video file of ``total`` frames at ``fps``."""
    want = total / fps * VIDEO_FPS
    n = min(max(want, VIDEO_MIN_FRAMES), VIDEO_MAX_FRAMES, total)
    n = math.floor(n / 2) * 2
    if not 2 <= n <= total:
        raise ValueError(f"a video of {total} frames is too short to sample")
    return n


def _resize_frames(frames, total_pixels: float):
    """TCHW uint8 frames -> float frames at the recipe's per-frame size."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tvf

    n, _, height, width = frames.shape
    max_pixels = max(min(FRAME_MAX_PIXELS, total_pixels / n * 2), int(FRAME_MIN_PIXELS * 1.05))
    w, h = official_size(width, height, FRAME_MIN_PIXELS, max_pixels)
    resized = tvf.resize(frames, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return resized.float()


def load_video(path: str):
    """(frames, metadata) for a video file, sampled like the recipe; decoded with OpenCV."""
    import cv2
    import numpy as np
    import torch

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    n = official_nframes(total, fps)
    idx = torch.linspace(0, total - 1, n).round().long().tolist()
    wanted, frames, i = set(idx), {}, 0
    while len(frames) < len(wanted):
        ok, bgr = cap.read()
        if not ok:
            raise ValueError(f"video {path} ended at frame {i} of {total}")
        if i in wanted:
            frames[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        i += 1
    cap.release()
    stack = torch.from_numpy(np.stack([frames[j] for j in idx])).permute(0, 3, 1, 2)
    meta = {"fps": fps, "frames_indices": idx, "total_num_frames": total}
    return _resize_frames(stack, FILE_TOTAL_PIXELS), meta


def load_frames(paths: list):
    """(frames, metadata) for a video given as image files, handled like the recipe."""
    import numpy as np
    import torch

    if len(paths) > VIDEO_MAX_FRAMES:
        keep = np.linspace(0, len(paths) - 1, VIDEO_MAX_FRAMES, dtype=int).tolist()
        paths = [paths[k] for k in keep]
    # Each frame first goes through the image path (RGB, sides multiples of 32).
    images = [load_image(p) for p in paths]
    images += [images[-1]] * (len(images) % 2)
    stack = torch.stack([torch.from_numpy(np.asarray(im).transpose(2, 0, 1)) for im in images])
    n = len(images)
    meta = {
        "fps": FRAMES_SAMPLE_FPS,
        "frames_indices": list(range(n)),
        "total_num_frames": n / FRAMES_SAMPLE_FPS * FRAMES_SAMPLE_FPS,
    }
    return _resize_frames(stack, FRAMES_TOTAL_PIXELS), meta


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
        self.video_pad = self.processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")

    def embed_one(self, item: dict) -> dict:
        torch = self.torch
        content, images, videos, metas = [], [], [], []
        for part in item["parts"]:
            if part["type"] == "text":
                content.append({"type": "text", "text": part["text"]})
            elif part["type"] == "image":
                images.append(load_image(part["path"]))
                content.append({"type": "image"})
            elif part["type"] in ("video", "frames"):
                if part["type"] == "video":
                    frames, meta = load_video(part["path"])
                else:
                    frames, meta = load_frames(part["paths"])
                videos.append(frames)
                metas.append(meta)
                content.append({"type": "video"})
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
            videos=videos or None,
            video_metadata=metas or None,
            do_sample_frames=False,
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
            "video_tokens": int((ids == self.video_pad).sum()),
            "sizes": [list(im.size) for im in images],
            "frames": [int(v.shape[0]) for v in videos],
            "frame_sizes": [[int(v.shape[3]), int(v.shape[2])] for v in videos],
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
                key: [o[key] for o in out]
                for key in (
                    "prompt_tokens",
                    "image_tokens",
                    "video_tokens",
                    "sizes",
                    "frames",
                    "frame_sizes",
                )
            }
            reply["vectors"] = [o["vector"] for o in out]
        except Exception as exc:  # report to the test, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
