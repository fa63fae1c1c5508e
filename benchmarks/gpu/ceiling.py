# mypy: ignore-errors
# (Runs on the device with its own torch/transformers, which have no stubs in the package venv.)
"""What the GPU alone absorbs: plain transformers on the bench's checkpoint and token counts.

Usage (on the device, no server running: it needs the GPU's memory):
``python ceiling.py --ckpt DIR --out results.jsonl [--tag server=ceiling]``.

For each bench workload the same prompt the server renders (the package's chat recipe: system
instruction, user content, open assistant turn) is tokenized with the checkpoint's tokenizer;
images go through the checkpoint's own image processor at the size the server receives (224 px
as is; camera photos after the package's resize to 1536x1152). The inputs are built and moved to
the GPU ONCE; only the forward pass (vision tower + language model, last-token pooling,
normalization) is timed, at a few batch sizes; the best is the ceiling. So a bench row's
``items/s / ceiling`` is the share of the GPU's capacity that the whole system reaches.
One JSON line per workload (strategy ``ceiling``), plus the per-batch rows (``ceiling batch=B``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import DOC_INSTRUCTION, GpuSampler, TextMaker, camera_like

IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"


def prompt(content: str) -> str:
    """The package's chat template's rendering of one document input."""
    return (
        f"<|im_start|>system\n{DOC_INSTRUCTION}<|im_end|>\n"
        f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
    )


def main() -> None:
    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--seconds", type=float, default=4.0, help="timed per batch size")
    p.add_argument("--device", default="cuda")
    p.add_argument("--only", default="", help="comma-separated workload names")
    args = p.parse_args()
    tags = dict(t.split("=", 1) for t in args.tag)

    t0 = time.perf_counter()
    processor = AutoProcessor.from_pretrained(args.ckpt)
    model = (
        Qwen3VLForConditionalGeneration.from_pretrained(
            args.ckpt, dtype=torch.bfloat16, attn_implementation="sdpa"
        )
        .to(args.device)
        .eval()
    )
    print(f"model loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    texts = TextMaker(args.ckpt / "tokenizer.json")
    gpu = GpuSampler()

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def one_input(kind: str, arg: object) -> dict[str, torch.Tensor]:
        if kind == "text":
            return processor(text=[prompt(arg)], return_tensors="pt")
        w, h = arg
        im = Image.fromarray(camera_like(11, w, h), "RGB")
        return processor(text=[prompt(IMAGE)], images=[im], return_tensors="pt")

    def batch_of(single: dict[str, torch.Tensor], b: int) -> dict[str, torch.Tensor]:
        # Per-sequence tensors (ids, mask, mm_token_type_ids) repeat along the batch; an
        # image's patches and grid repeat along their first axis (one block per image).
        out = {k: v.repeat(b, 1) for k, v in single.items() if isinstance(v, torch.Tensor)}
        if "pixel_values" in out:
            out["pixel_values"] = out["pixel_values"].to(torch.bfloat16)
        return {k: v.to(args.device) for k, v in out.items()}

    @torch.inference_mode()
    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = model.model(**batch).last_hidden_state[:, -1].float()
        return torch.nn.functional.normalize(hidden, dim=-1)

    workloads = [
        ("texts ~30 tokens", "text", texts.make(1, 1, 30)[0], (64, 256, 512)),
        ("texts 512 tokens", "text", texts.make(2, 1, 512)[0], (8, 32, 64)),
        ("224x224 JPEG", "image", (224, 224), (16, 64, 128)),
        ("camera photos 12 MP JPEG", "image", (1536, 1152), (1, 4, 8)),
    ]
    if args.only:
        workloads = [w for w in workloads if w[0] in args.only.split(",")]
    for name, kind, arg, sizes in workloads:
        single = one_input(kind, arg)
        tokens = int(single["input_ids"].shape[1])
        best = None
        for b in sizes:
            try:
                batch = batch_of(single, b)
                vec = forward(batch)  # warm (kernels, allocator)
                sync()
                assert torch.isfinite(vec).all(), "non-finite vectors"
                n = 0
                ts, start = time.time(), time.perf_counter()
                while time.perf_counter() - start < args.seconds or n < 3:
                    forward(batch)
                    n += 1
                sync()
                wall = time.perf_counter() - start
            except torch.OutOfMemoryError:
                print(f"  {name} batch {b}: out of memory", flush=True)
                torch.cuda.empty_cache()
                continue
            rate = n * b / wall
            row = {
                "workload": name,
                "strategy": f"ceiling batch={b}",
                "items_per_s": round(rate, 1),
                "gpu_busy_pct": gpu.mean(ts, time.time()),
                "tokens_per_item": tokens,
                "batch": b,
                "n": n * b,
                "ok": True,
                **tags,
            }
            print(
                f"  {name:<26} batch {b:>4}  {rate:>8.1f}/s  gpu {row['gpu_busy_pct']}%  "
                f"{tokens} tokens/item",
                flush=True,
            )
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            if best is None or rate > best["items_per_s"]:
                best = row
            del batch
            torch.cuda.empty_cache()
        if best is not None:
            row = {**best, "strategy": "ceiling"}
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
    gpu.stop()


if __name__ == "__main__":
    main()
