"""The server flags: one source of truth, and the facts other files rely on."""

from __future__ import annotations

import json

import pytest

from vllm_multimodal_embeddings._constants import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    QWEN_DEFAULT_INSTRUCTION,
    QWEN_QUERY_INSTRUCTION,
)
from vllm_multimodal_embeddings.server.flags import (
    CHAT_TEMPLATE_PATH,
    cpu_production_config,
    cpu_test_config,
    production_config,
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
def test_every_profile_pins_the_official_image_budget(config) -> None:
    # vLLM resizes with the checkpoint's preprocessor_config.json limits unless told otherwise.
    kwargs = json.loads(_value(vllm_args(config), "--mm-processor-kwargs"))
    assert kwargs == {"min_pixels": DEFAULT_MIN_PIXELS, "max_pixels": DEFAULT_MAX_PIXELS}
    assert (DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS) == (4 * 32 * 32, 1800 * 32 * 32)


def test_processor_flag_can_be_dropped_for_a_bare_server() -> None:
    assert "--mm-processor-kwargs" not in vllm_args(
        cpu_test_config("/ckpt", mm_processor_kwargs={})
    )


def test_cohere_input_type_names_map_to_the_recipe_instructions() -> None:
    tasks = json.loads(_value(vllm_args(production_config()), "--hf-overrides"))[
        "task_instructions"
    ]
    assert tasks["search_query"] == tasks["query"] == QWEN_QUERY_INSTRUCTION
    for name in ("search_document", "classification", "clustering", "image", "document"):
        assert tasks[name] == QWEN_DEFAULT_INSTRUCTION, name
