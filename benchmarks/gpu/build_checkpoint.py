# mypy: ignore-errors
# (Runs on the device with its own torch/transformers, which have no stubs in the package venv.)
"""Build a random-weight checkpoint with Qwen3-VL-Embedding-2B's published shape, in bf16, on a GPU.

Usage (on the device): ``python build_checkpoint.py --out DIR``. The shapes (text: 28 layers,
hidden 2048, 16 heads / 8 KV heads of 128, vocab 151,936; vision: 24 layers, hidden 1024, patch 16,
merge 2, deepstack 5/11/17) are those of ``Qwen/Qwen3-VL-Embedding-2B``'s config, so the GPU does
the work the real model does. The tokenizer is the package's tiny byte-level BPE one (the Qwen
special tokens, ids < 600): token counts per text differ from Qwen's, so ``bench.py`` sizes
its texts with this tokenizer. The weights are random: vectors carry no meaning, only cost
and parity.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vllm_multimodal_embeddings.testing import tiny_checkpoint as tiny

VOCAB = 151_936


def build(out: Path) -> None:
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    torch.manual_seed(tiny.SEED)
    raw = tiny.build_tokenizer()
    ids = {t: raw.token_to_id(t) for t in tiny.SPECIAL_TOKENS}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    vision = {
        "patch_size": tiny.PATCH,
        "merge_size": tiny.MERGE,
        "temporal_patch_size": tiny.TEMPORAL,
        "size": {"shortest_edge": tiny.MIN_PIXELS, "longest_edge": tiny.MAX_PIXELS},
        "image_mean": tiny.IMAGE_MEAN,
        "image_std": tiny.IMAGE_STD,
    }
    image_processor = Qwen2VLImageProcessor(**vision)
    video_processor = Qwen3VLVideoProcessor(**vision)
    processor = Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=tiny.CHAT_TEMPLATE,
    )
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": VOCAB,
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": 262144,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [24, 20, 20],
                "mrope_interleaved": True,
            },
            "dtype": "bfloat16",
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 24,
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_heads": 16,
            "hidden_act": "gelu_pytorch_tanh",
            "patch_size": tiny.PATCH,
            "spatial_merge_size": tiny.MERGE,
            "temporal_patch_size": tiny.TEMPORAL,
            "out_hidden_size": 2048,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [5, 11, 17],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    config.dtype = "bfloat16"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration(config).eval()
    # transformers' default init (normal, std 0.02) keeps activations finite in bf16.
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    processor.save_pretrained(out)
    image_processor.save_pretrained(out)
    video_processor.save_pretrained(out)
    print(f"checkpoint: {params / 1e9:.2f} B parameters, bf16, built on {device}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    build(args.out)
    print(f"written to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
