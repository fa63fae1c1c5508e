# mypy: ignore-errors
# (Runs with the server venv's python: torch/transformers/tokenizers have no stubs in the
# package's test venv, and this file must not import the package.)
"""Build a tiny random-weight Qwen3-VL checkpoint for the CPU vLLM test server.

Usage: ``python tiny_checkpoint.py --out DIR``. Deterministic (fixed seed), offline, a few seconds,
about 1.5 MB. Its vectors are reproducible but carry no meaning: tests built on it assert protocol
behaviour, never semantic ranking.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

SEED = 1234

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
BPE_VOCAB_SIZE = 512  # 256 byte symbols + merges learnt from CORPUS

# Text the BPE merges are learnt from: fixed, so the tokenizer is the same on every build.
CORPUS = [
    "Represent the user's input.",
    "Retrieve images or text relevant to the user's query.",
    "A cat in the snow. A dog on the beach. A red car parked in the street.",
    "The quick brown fox jumps over the lazy dog.",
    "system user assistant image video text query document embedding retrieval",
] * 20

# Shaped like the real Qwen3-VL chat template: no default system message, and the assistant turn is
# opened only with add_generation_prompt. The server's --chat-template must override it for
# /v2/embed to render like the embedding recipe.
CHAT_TEMPLATE = """\
{%- if messages[0].role == 'system' -%}
    {{- '<|im_start|>system\\n' -}}
    {%- if messages[0].content is string -%}
        {{- messages[0].content -}}
    {%- else -%}
        {%- for content in messages[0].content -%}
            {%- if 'text' in content -%}{{- content.text -}}{%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '<|im_end|>\\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if message.role == 'user' or message.role == 'assistant' -%}
        {{- '<|im_start|>' + message.role + '\\n' -}}
        {%- if message.content is string -%}
            {{- message.content -}}
        {%- else -%}
            {%- for content in message.content -%}
                {%- if content.type == 'image' or 'image' in content or 'image_url' in content -%}
                    {{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
                {%- elif content.type == 'video' or 'video' in content -%}
                    {{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
                {%- elif 'text' in content -%}
                    {{- content.text -}}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
        {{- '<|im_end|>\\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\\n' -}}
{%- endif -%}
"""

# The official embedder's budget (the package's DEFAULT_MIN_PIXELS / DEFAULT_MAX_PIXELS).
MIN_PIXELS = 4_096
MAX_PIXELS = 1_843_200
# The image processor deliberately carries OTHER limits, as a real checkpoint may (Qwen3-VL-Instruct
# ships 65,536..16,777,216): the live parity tests then prove that the server's
# --mm-processor-kwargs, not a lucky checkpoint, give the official image tokens and vectors.
IMAGE_MIN_PIXELS = 65_536
IMAGE_MAX_PIXELS = 262_144
PATCH, MERGE, TEMPORAL = 16, 2, 2
IMAGE_MEAN = [0.5, 0.5, 0.5]
IMAGE_STD = [0.5, 0.5, 0.5]

TEXT_HIDDEN = 128
HEAD_DIM = 32  # vLLM's CPU attention refuses head_dim 16
VISION_HIDDEN = 64


def build_tokenizer():
    """A byte-level BPE tokenizer with the Qwen special tokens (ids right after the BPE vocab)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


def build(out: Path) -> None:
    """Write the checkpoint (config, weights, tokenizer, processor configs) into ``out``."""
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    torch.manual_seed(SEED)
    raw = build_tokenizer()
    ids = {t: raw.token_to_id(t) for t in SPECIAL_TOKENS}
    vocab_size = raw.get_vocab_size()

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    # Images and videos share the patch geometry and the normalization; see IMAGE_MIN_PIXELS.
    vision = {
        "patch_size": PATCH,
        "merge_size": MERGE,
        "temporal_patch_size": TEMPORAL,
        "image_mean": IMAGE_MEAN,
        "image_std": IMAGE_STD,
    }
    image_processor = Qwen2VLImageProcessor(
        **vision, size={"shortest_edge": IMAGE_MIN_PIXELS, "longest_edge": IMAGE_MAX_PIXELS}
    )
    video_processor = Qwen3VLVideoProcessor(
        **vision, size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    )
    processor = Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )

    config = Qwen3VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": HEAD_DIM,
            "max_position_embeddings": 32768,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                # Sections (t, h, w) sum to head_dim / 2, as Qwen3-VL's [24, 20, 20] for 128.
                "mrope_section": [6, 5, 5],
                "mrope_interleaved": True,
            },
            "dtype": "float32",
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": VISION_HIDDEN,
            "intermediate_size": 128,
            "num_heads": 2,
            "patch_size": PATCH,
            "spatial_merge_size": MERGE,
            "temporal_patch_size": TEMPORAL,
            "out_hidden_size": TEXT_HIDDEN,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    model = Qwen3VLForConditionalGeneration(config).eval()
    # Stored as bfloat16 to halve the size (~1.5 MB); the CPU server runs it with --dtype float32.
    config.dtype = "bfloat16"
    config.text_config.dtype = "bfloat16"
    model.to(torch.bfloat16).save_pretrained(out)
    processor.save_pretrained(out)
    # Qwen2-VL-style standalone processor configs too, as the published Qwen checkpoints ship them.
    image_processor.save_pretrained(out)
    video_processor.save_pretrained(out)
    _strip_volatile(out)


def _strip_volatile(out: Path) -> None:
    """Drop fields that change between builds (library versions) so rebuilds give the same bytes."""
    for path in out.glob("*.json"):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "transformers_version" in data:
            data.pop("transformers_version")
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def build_cli(build_fn: Callable[[Path], None], what: str, argv: list[str] | None = None) -> None:
    """``--out DIR``: build a checkpoint with ``build_fn`` beside ``DIR``, then swap it in."""
    parser = argparse.ArgumentParser(description=f"Build the tiny {what} checkpoint.")
    parser.add_argument(
        "--out", type=Path, required=True, help="checkpoint directory to (re)create"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and swap in, so a crash never leaves a half-written checkpoint.
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        build_fn(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    print(f"tiny {what} checkpoint written to {out}")


def main(argv: list[str] | None = None) -> None:
    build_cli(build, "Qwen3-VL", argv)


if __name__ == "__main__":
    main()
