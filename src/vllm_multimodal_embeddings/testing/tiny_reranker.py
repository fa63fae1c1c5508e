# mypy: ignore-errors
# (Runs with the server venv's python, like tiny_checkpoint.py: no stubs there, and this file must
# not import the package.)
"""Build a tiny random-weight Qwen3-VL-Reranker checkpoint for the CPU vLLM test server.

Usage: ``python tiny_reranker.py --out DIR``. Deterministic, offline, a few seconds. Shaped like the
published reranker: a ``Qwen3VLForConditionalGeneration`` whose score is the probability of "yes"
over "no" at the last position, so vLLM serves it with ``Qwen3VLForSequenceClassification``,
``classifier_from_token: ["no", "yes"]`` and ``is_original_qwen3_reranker``. Its scores carry no
meaning: tests assert equality with the reference reranker, order and protocol behaviour.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder is on sys.path: reuse the embedder checkpoint's pieces.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_checkpoint as base

SEED = 4321  # not the embedder's: a test sent to the wrong server must not pass by accident
YES, NO = "yes", "no"

JUDGE_SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".'
)
# The embedder's corpus plus the judge prompt: the BPE learns "yes" and "no" as single tokens,
# as vLLM and the official recipe look them up by token string.
CORPUS = base.CORPUS + [JUDGE_SYSTEM_PROMPT, "<Instruct>: <Query>: <Document>: yes no yes no"] * 20

# The score is sigmoid(h . d), d = W["yes"] - W["no"]. With random weights the last hidden state h
# is nearly the same for every prompt (cosine ~0.97: the last token is always the same "\n"), so
# h . d is a large shared offset plus a small spread: all scores bunch near 0 or 1, where a parity
# check is blunt. The builder makes d orthogonal to the mean h of CALIBRATION prompts and sets its
# length, which spreads scores over roughly 0.1..0.9.
SCORE_DIRECTION_NORM = 5.0
CALIBRATION = [
    ("a red circle", "a red circle on white"),
    ("a red circle", "The quick brown fox jumps over the lazy dog."),
    ("A dog on the beach.", "A cat in the snow."),
    ("query", "document"),
]


def build_tokenizer():
    """The embedder's byte-level BPE, trained on a corpus that makes "yes" and "no" tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=base.BPE_VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.add_special_tokens(base.SPECIAL_TOKENS)
    for word in (YES, NO):
        if tok.token_to_id(word) is None or tok.encode(word).ids != [tok.token_to_id(word)]:
            raise SystemExit(f"tokenizer does not hold {word!r} as one token")
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
    ids = {t: raw.token_to_id(t) for t in base.SPECIAL_TOKENS}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    vision = {
        "patch_size": base.PATCH,
        "merge_size": base.MERGE,
        "temporal_patch_size": base.TEMPORAL,
        "size": {"shortest_edge": base.MIN_PIXELS, "longest_edge": base.MAX_PIXELS},
        "image_mean": base.IMAGE_MEAN,
        "image_std": base.IMAGE_STD,
    }
    image_processor = Qwen2VLImageProcessor(**vision)
    video_processor = Qwen3VLVideoProcessor(**vision)
    processor = Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=base.CHAT_TEMPLATE,
    )
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": raw.get_vocab_size(),
            "hidden_size": base.TEXT_HIDDEN,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": base.HEAD_DIM,
            "max_position_embeddings": 32768,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [6, 5, 5],
                "mrope_interleaved": True,
            },
            "dtype": "float32",
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            # vLLM reads the tie from the text config when it cuts the "yes"/"no" rows out of
            # lm_head; without it there it builds an untied, never-loaded head.
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": 2,
            "hidden_size": base.VISION_HIDDEN,
            "intermediate_size": 128,
            "num_heads": 2,
            "patch_size": base.PATCH,
            "spatial_merge_size": base.MERGE,
            "temporal_patch_size": base.TEMPORAL,
            "out_hidden_size": base.TEXT_HIDDEN,
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
    _spread_scores(model, processor, raw.token_to_id(YES), raw.token_to_id(NO))
    # Stored as bfloat16 to halve the size; the CPU server and the reference run it in float32.
    config.dtype = "bfloat16"
    config.text_config.dtype = "bfloat16"
    model.to(torch.bfloat16).save_pretrained(out)
    processor.save_pretrained(out)
    image_processor.save_pretrained(out)
    video_processor.save_pretrained(out)
    base._strip_volatile(out)


def _spread_scores(model, processor, yes_id: int, no_id: int) -> None:
    """Set the "yes" and "no" rows of the (tied) head so scores spread around 0.5."""
    import torch

    head = model.get_output_embeddings().weight
    if head.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise SystemExit("lm_head is not tied to the input embeddings")
    # Twice: the rows are also the input embeddings of "yes" and "no", which the judge prompt
    # contains, so moving them moves h a little.
    for _ in range(2):
        mean_h = torch.stack([_last_hidden(model, processor, q, d) for q, d in CALIBRATION]).mean(0)
        unit = mean_h / mean_h.norm()
        with torch.no_grad():
            mid = (head[yes_id] + head[no_id]) / 2
            direction = head[yes_id] - head[no_id]
            direction = direction - (direction @ unit) * unit
            direction = direction / direction.norm() * SCORE_DIRECTION_NORM
            head[yes_id] = mid + direction / 2
            head[no_id] = mid - direction / 2


def _last_hidden(model, processor, query: str, document: str):
    """The final hidden state at the last position of a text-only judge prompt."""
    import torch

    content = f"<Instruct>: Find it.<Query>:{query}\n<Document>:{document}"
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": JUDGE_SYSTEM_PROMPT}]},
        {"role": "user", "content": [{"type": "text", "text": content}]},
    ]
    text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    inputs = processor.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        return model.model(**inputs).last_hidden_state[0, -1]


def main(argv: list[str] | None = None) -> None:
    base.build_cli(build, "Qwen3-VL-Reranker", argv)


if __name__ == "__main__":
    main()
