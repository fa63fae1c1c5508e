"""The server flags: one source of truth, and the facts other files rely on."""

from __future__ import annotations

import json

import jinja2
import jinja2.ext
import jinja2.sandbox
import pytest

from vllm_multimodal_embeddings._constants import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    QWEN_DEFAULT_INSTRUCTION,
    QWEN_QUERY_INSTRUCTION,
)
from vllm_multimodal_embeddings.server.flags import (
    CHAT_TEMPLATE_PATH,
    RERANKER_CHAT_TEMPLATE_PATH,
    RERANKER_DEFAULT_INSTRUCTION,
    RERANKER_HF_OVERRIDES,
    cpu_production_config,
    cpu_reranker_test_config,
    cpu_test_config,
    production_config,
    reranker_config,
    server_env,
    vllm_args,
)


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_production_flags() -> None:
    args = vllm_args(production_config())
    assert _value(args, "--model") == "Qwen/Qwen3-VL-Embedding-2B"
    assert _value(args, "--runner") == "pooling"
    assert _value(args, "--max-model-len") == "8192"
    overrides = json.loads(_value(args, "--hf-overrides"))
    assert overrides["is_matryoshka"] is True
    assert {"query", "document"} <= set(overrides["task_instructions"])
    assert overrides["task_instructions"]["document"] == QWEN_DEFAULT_INSTRUCTION
    assert _value(args, "--chat-template") == str(CHAT_TEMPLATE_PATH)
    assert CHAT_TEMPLATE_PATH.is_file()


def test_cpu_flags_and_switches() -> None:
    args = vllm_args(cpu_test_config("/ckpt", matryoshka=False, chat_template=None))
    assert _value(args, "--dtype") == "float32"
    assert "--enforce-eager" in args
    assert "--chat-template" not in args
    assert json.loads(_value(args, "--hf-overrides"))["is_matryoshka"] is False
    bare = vllm_args(cpu_test_config("/ckpt", task_instructions={}))
    assert "task_instructions" not in json.loads(_value(bare, "--hf-overrides"))


def test_api_key_goes_to_the_environment_not_argv() -> None:
    cfg = production_config(api_key="sk-secret")
    assert "sk-secret" not in " ".join(vllm_args(cfg))
    assert "sk-secret" not in repr(cfg)
    assert server_env(cfg) == {"VLLM_API_KEY": "sk-secret"}
    assert server_env(production_config()) == {}


def test_template_default_instruction_matches_the_client() -> None:
    # The template supplies the system turn when /v2/embed sends none (no input_type): it must
    # be the instruction the client sends for documents, or the two protocols drift apart.
    assert QWEN_DEFAULT_INSTRUCTION in CHAT_TEMPLATE_PATH.read_text()


@pytest.mark.parametrize(
    "config",
    [production_config(), cpu_production_config(), cpu_test_config("/ckpt")],
    ids=["gpu", "cpu", "cpu-test"],
)
def test_every_profile_pins_the_official_image_and_video_budget(config) -> None:
    # vLLM resizes with the checkpoint's preprocessor_config.json limits unless told otherwise.
    args = vllm_args(config)
    kwargs = json.loads(_value(args, "--mm-processor-kwargs"))
    assert kwargs == {
        "min_pixels": DEFAULT_MIN_PIXELS,
        "max_pixels": DEFAULT_MAX_PIXELS,
        # Per frame 128..768 blocks of 32x32 pixels: 4 frames at the least, 64 at the most.
        "videos_kwargs": {
            "min_pixels": 4 * 128 * 32 * 32,
            "max_pixels": 64 * 768 * 32 * 32,
            "cap_pixels_per_frame": True,
        },
    }
    assert (DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS) == (4 * 32 * 32, 1800 * 32 * 32)
    # The official sampling: 1 frame per second, at most 64.
    assert json.loads(_value(args, "--media-io-kwargs")) == {"video": {"fps": 1, "max_frames": 64}}
    assert "--trust-request-mm-kwargs" in args


def test_processor_and_video_flags_can_be_dropped_for_a_bare_server() -> None:
    args = vllm_args(
        cpu_test_config(
            "/ckpt", mm_processor_kwargs={}, media_io_kwargs={}, trust_request_mm_kwargs=False
        )
    )
    for flag in ("--mm-processor-kwargs", "--media-io-kwargs", "--trust-request-mm-kwargs"):
        assert flag not in args


def test_configs_do_not_share_the_nested_video_budget() -> None:
    # A caller editing one config's videos_kwargs must not change every other config's.
    one, other = cpu_test_config("/a"), cpu_test_config("/b")
    one.mm_processor_kwargs["videos_kwargs"]["min_pixels"] = 1  # type: ignore[index]
    assert other.mm_processor_kwargs["videos_kwargs"]["min_pixels"] == 4 * 128 * 32 * 32  # type: ignore[index]


def test_cohere_input_type_names_map_to_the_recipe_instructions() -> None:
    tasks = json.loads(_value(vllm_args(production_config()), "--hf-overrides"))[
        "task_instructions"
    ]
    assert tasks["search_query"] == tasks["query"] == QWEN_QUERY_INSTRUCTION
    for name in ("search_document", "classification", "clustering", "image", "document"):
        assert tasks[name] == QWEN_DEFAULT_INSTRUCTION, name


# --- Qwen3-VL-Reranker ---------------------------------------------------------------------------

RERANKER_OVERRIDES = {
    "architectures": ["Qwen3VLForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}


def test_reranker_flags() -> None:
    args = vllm_args(reranker_config())
    assert _value(args, "--model") == "Qwen/Qwen3-VL-Reranker-2B"
    assert _value(args, "--runner") == "pooling"
    assert _value(args, "--max-model-len") == "8192"
    # Exactly the conversion: no embedder switches (is_matryoshka, task_instructions).
    assert json.loads(_value(args, "--hf-overrides")) == RERANKER_OVERRIDES
    assert _value(args, "--chat-template") == str(RERANKER_CHAT_TEMPLATE_PATH)
    assert RERANKER_CHAT_TEMPLATE_PATH.is_file()


def test_cpu_reranker_flags_follow_the_cpu_test_server() -> None:
    cpu = cpu_test_config("/ckpt")
    cfg = cpu_reranker_test_config("/ckpt", api_key="sk-secret")
    args = vllm_args(cfg)
    assert _value(args, "--dtype") == cpu.dtype == "float32"
    assert "--enforce-eager" in args
    assert _value(args, "--max-model-len") == str(cpu.max_model_len)
    assert _value(args, "--served-model-name") == "tiny-qwen3-vl-reranker" != cpu.name
    assert json.loads(_value(args, "--hf-overrides")) == RERANKER_OVERRIDES
    assert "sk-secret" not in " ".join(args) and "sk-secret" not in repr(cfg)
    # Its client sends no per-request video fields: nothing to trust.
    assert "--trust-request-mm-kwargs" not in args


def test_reranker_overrides_are_fresh_copies() -> None:
    overrides = reranker_config().hf_overrides()
    overrides["classifier_from_token"].append("maybe")  # type: ignore[attr-defined]
    assert RERANKER_HF_OVERRIDES["classifier_from_token"] == ["no", "yes"]


def _render_score_template(messages: list[dict[str, str]], **kwargs: object) -> str:
    # The environment transformers' apply_chat_template uses (what vLLM calls for /rerank).
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    template = env.from_string(RERANKER_CHAT_TEMPLATE_PATH.read_text())
    return template.render(messages=messages, **kwargs)


JUDGE = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
)
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"


def test_score_template_renders_the_official_judge_prompt() -> None:
    # vLLM hands the template one string per side: image placeholders first, then the text.
    messages = [
        {"role": "query", "content": "a red circle"},
        {"role": "document", "content": IMAGE + "a circle, red"},
    ]
    assert _render_score_template(messages, instruction="Find shapes.") == (
        JUDGE + "<|im_start|>user\n<Instruct>: Find shapes.<Query>:a red circle\n"
        "<Document>:" + IMAGE + "a circle, red<|im_end|>\n<|im_start|>assistant\n"
    )


def test_score_template_falls_back_to_the_official_instruction() -> None:
    messages = [{"role": "query", "content": "q"}, {"role": "document", "content": "d"}]
    default = _render_score_template(messages, instruction=RERANKER_DEFAULT_INSTRUCTION)
    assert _render_score_template(messages) == default
    assert _render_score_template(messages, instruction="") == default
    assert f"<Instruct>: {RERANKER_DEFAULT_INSTRUCTION}<Query>:" in default


def test_score_template_renders_an_empty_side_as_null() -> None:
    messages = [{"role": "query", "content": "q"}, {"role": "document", "content": ""}]
    assert "\n<Document>:NULL<|im_end|>" in _render_score_template(messages)
