"""Model profiles: how a model wants its prompt laid out.

A profile turns one prepared input plus an instruction into a chat conversation for
``/v1/embeddings``. It holds no I/O and knows nothing of HTTP.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._constants import QWEN_DEFAULT_INSTRUCTION, QWEN_QUERY_INSTRUCTION

if TYPE_CHECKING:
    from ._inputs import PreparedInput

__all__ = ["ModelProfile", "normalize_instruction"]

Message = dict[str, Any]


def normalize_instruction(instruction: str) -> str:
    """Strip the instruction and end it with a period unless it already ends in punctuation.

    This mirrors the official Qwen3-VL-Embedding embedder, so vectors match its output.
    """
    text = instruction.strip()
    # Any Unicode punctuation (category P*) counts, as in the official embedder.
    if text and not unicodedata.category(text[-1]).startswith("P"):
        text += "."
    return text


def _wire_part(kind: str, value: str) -> dict[str, Any]:
    if kind == "text":
        return {"type": "text", "text": value}
    key = f"{kind}_url"
    return {"type": key, key: {"url": value}}


def _content_parts(item: PreparedInput, order: tuple[str, ...]) -> list[dict[str, Any]]:
    if item.parts:
        # Content.of(...): the caller chose the order; the model's layout applies to plain items.
        return [_wire_part(p.kind, p.value) for p in item.parts]
    parts: dict[str, dict[str, Any]] = {}
    if item.video_url is not None:
        parts["video"] = {"type": "video_url", "video_url": {"url": item.video_url}}
    if item.image_url is not None:
        parts["image"] = {"type": "image_url", "image_url": {"url": item.image_url}}
    if item.text is not None:
        parts["text"] = {"type": "text", "text": item.text}
    return [parts[kind] for kind in order if kind in parts]


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """How a model wants its conversation built, and its default instructions.

    Attributes:
        query_instruction: default instruction for retrieval queries.
        document_instruction: default instruction for indexed documents.
        content_order: order of the user turn's parts (``video``, ``image``, ``text``).
        system_instruction: put the instruction in a system message (else send none).
        open_assistant_turn: end with an empty assistant turn and ``continue_final_message``,
            so the pooled token follows ``<|im_start|>assistant\\n`` as in training.
    """

    query_instruction: str | None
    document_instruction: str | None
    content_order: tuple[str, ...] = ("video", "image", "text")
    system_instruction: bool = True
    open_assistant_turn: bool = True
    extra_request_fields: dict[str, Any] = field(default_factory=dict)

    def instruction_for(self, input_type: str, override: str | None = None) -> str | None:
        """The instruction for ``input_type``, ``override`` taking precedence."""
        raw = override
        if raw is None:
            raw = self.query_instruction if input_type == "query" else self.document_instruction
        if raw is None:
            return None
        return normalize_instruction(raw) or None

    def parts(self, item: PreparedInput) -> list[dict[str, Any]]:
        """The user turn's content parts for one item, in the model's order."""
        return _content_parts(item, self.content_order)

    def messages(self, item: PreparedInput, instruction: str | None) -> list[Message]:
        """The chat messages for one item."""
        messages: list[Message] = []
        if instruction is not None and self.system_instruction:
            messages.append({"role": "system", "content": [{"type": "text", "text": instruction}]})
        messages.append({"role": "user", "content": self.parts(item)})
        if self.open_assistant_turn:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": ""}]})
        return messages

    def request_options(self) -> dict[str, Any]:
        """Top-level fields that go with every chat embedding request."""
        options: dict[str, Any] = {"add_special_tokens": True}
        if self.open_assistant_turn:
            options["continue_final_message"] = True
            options["add_generation_prompt"] = False
        options.update(self.extra_request_fields)
        return options

    @classmethod
    def qwen3_vl_embedding(
        cls,
        *,
        query_instruction: str | None = QWEN_QUERY_INSTRUCTION,
        document_instruction: str | None = QWEN_DEFAULT_INSTRUCTION,
    ) -> ModelProfile:
        """Qwen3-VL-Embedding: system instruction; video, image, text; open assistant turn."""
        return cls(query_instruction=query_instruction, document_instruction=document_instruction)

    @classmethod
    def generic(
        cls,
        *,
        query_instruction: str | None = None,
        document_instruction: str | None = None,
        content_order: tuple[str, ...] = ("image", "text"),
        open_assistant_turn: bool = False,
    ) -> ModelProfile:
        """Other vLLM multimodal embedding models: the server's chat template decides the rest."""
        return cls(
            query_instruction=query_instruction,
            document_instruction=document_instruction,
            content_order=content_order,
            open_assistant_turn=open_assistant_turn,
        )
