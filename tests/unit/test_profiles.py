"""Prompt profiles: the official Qwen3-VL-Embedding layout and the generic one."""

from __future__ import annotations

import pytest

from vllm_multimodal_embeddings import ModelProfile
from vllm_multimodal_embeddings.inputs._prepared import PreparedInput, PreparedPart
from vllm_multimodal_embeddings.profiles import normalize_instruction

ITEM = PreparedInput(
    text="a cat", image_url="data:image/png;base64,AAAA", video_url="http://v/x.mp4"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Represent the user's input.", "Represent the user's input."),
        ("  Find the product photo  ", "Find the product photo."),
        ("Is this a cat?", "Is this a cat?"),
        ("找到相关图片。", "找到相关图片。"),  # CJK full stop is punctuation too
        ("Describe it:", "Describe it:"),
        ("Version 2", "Version 2."),
    ],
)
def test_instruction_gets_a_period_unless_it_ends_in_punctuation(raw: str, expected: str) -> None:
    assert normalize_instruction(raw) == expected


def test_qwen_layout_system_video_image_text_open_assistant() -> None:
    profile = ModelProfile.qwen3_vl_embedding()
    messages = profile.messages(ITEM, profile.instruction_for("document"))
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[0]["content"] == [{"type": "text", "text": "Represent the user's input."}]
    assert [p["type"] for p in messages[1]["content"]] == ["video_url", "image_url", "text"]
    assert messages[2]["content"] == [{"type": "text", "text": ""}]
    options = profile.request_options()
    assert options["continue_final_message"] is True
    assert options["add_special_tokens"] is True
    assert options["add_generation_prompt"] is False


def test_query_and_document_instructions_are_separate_and_overridable() -> None:
    profile = ModelProfile.qwen3_vl_embedding(query_instruction="Find photos")
    assert profile.instruction_for("query") == "Find photos."
    assert profile.instruction_for("document") == "Represent the user's input."
    assert profile.instruction_for("document", "Per call") == "Per call."


def test_generic_profile_leaves_the_prompt_to_the_server() -> None:
    profile = ModelProfile.generic()
    messages = profile.messages(ITEM, profile.instruction_for("query"))
    assert [m["role"] for m in messages] == ["user"]
    assert [p["type"] for p in messages[0]["content"]] == ["image_url", "text"]
    assert "continue_final_message" not in profile.request_options()


def test_interleaved_parts_keep_the_callers_order() -> None:
    item = PreparedInput(
        text="left",
        image_url="data:image/png;base64,AAAA",
        parts=(
            PreparedPart("text", "left"),
            PreparedPart("image", "data:image/png;base64,AAAA"),
            PreparedPart("video", "http://v/x.mp4"),
            PreparedPart("image", "data:image/png;base64,BBBB"),
            PreparedPart("text", "right"),
        ),
    )
    for profile in (ModelProfile.qwen3_vl_embedding(), ModelProfile.generic()):
        assert profile.parts(item) == [
            {"type": "text", "text": "left"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "video_url", "video_url": {"url": "http://v/x.mp4"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,BBBB"}},
            {"type": "text", "text": "right"},
        ]
