"""Model profiles: how a model wants its prompt laid out, and the official task instructions.

A profile turns one prepared input plus an instruction into a chat conversation for
``/v1/embeddings``. It holds no I/O and knows nothing of HTTP.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._constants import QWEN_DEFAULT_INSTRUCTION, QWEN_QUERY_INSTRUCTION
from ._exceptions import ConfigurationError, VLLMEmbeddingError
from .protocol._content import RECIPE_ORDER, content_parts

if TYPE_CHECKING:
    from .inputs._prepared import PreparedInput

__all__ = [
    "ModelProfile",
    "RerankPreset",
    "TaskPreset",
    "normalize_instruction",
    "resolve_instruction",
]

Message = dict[str, Any]


class TaskPreset(str, enum.Enum):
    """The instructions QwenLM's own evaluation gives Qwen3-VL-Embedding, by task.

    Pass a member wherever an instruction goes (``instruction=TaskPreset.VISDOC``, the
    clients' and adapters' ``query_instruction``); its value *is* the instruction text, so
    it reads the same on every path. Where only a string fits (a config file, the CLI), the
    member's lower-case name does: ``"visdoc"``. The sources (QwenLM/Qwen3-VL-Embedding at
    commit 8ce3aab1fbcc7b7143b094f0b2005dd89e7246b9) are listed in the README.

    These are query-side instructions: in that evaluation every candidate (document image,
    video, clip, label text) is embedded under the default, :attr:`DEFAULT`.
    """

    #: arguments.py / models.py: every candidate, and any input without a task.
    DEFAULT = QWEN_DEFAULT_INSTRUCTION
    #: README.md's example query; the package's default query instruction.
    RETRIEVAL = QWEN_QUERY_INSTRUCTION
    #: vidore_dataset.py, visrag_dataset.py: text query -> document page image.
    VISDOC = "Find a document image that matches the given query."
    #: msrvtt_dataset.py: text query -> video.
    VIDEO_RETRIEVAL = "Find a video that contains the following visual content."
    #: moment_retrieval_datasets.py (QVHighlight, Charades-STA): query -> clip of a video.
    MOMENT_RETRIEVAL = "Find the clip that corresponds to the described scene in the given video."
    #: video_classification_datasets.py: video -> label, for a dataset with no wording of its own.
    VIDEO_CLASSIFICATION = "Classify the video into the correct category."
    #: videomme / nextqa / egoschema / mvbench / activitynetqa datasets: video + question -> answer.
    VIDEO_QA = (
        "Given a video and a question, select the most accurate answer from the provided "
        "candidates. Return only the exact text of your chosen answer."
    )
    #: Technical report, Table 9 (MS COCO): text -> image.
    IMAGE_RETRIEVAL = "Find images matching this description."
    #: Technical report, Table 9 (CIFAR-10): image -> label.
    IMAGE_CLASSIFICATION = "Classify the object in this image."
    #: Technical report, Table 9 (VQAv2): image + question -> answer.
    IMAGE_QA = "Find the answer to this question about the image."
    #: Technical report, Table 8 (SQuAD): question -> passage.
    TEXT_RETRIEVAL = "Retrieve passages that answer this question."

    def __str__(self) -> str:
        # The text, as a plain str would print (a str-mixin Enum prints its member name).
        return str(self.value)


class RerankPreset(str, enum.Enum):
    """The instructions QwenLM gives Qwen3-VL-Reranker, by task.

    Pass a member wherever a reranker instruction goes (``RerankClient(instruction=...)``, a
    call's ``instruction``, the reranker adapters' ``instruction``), or its lower-case name
    (``"visdoc"``) where only a string fits. The sources (QwenLM/Qwen3-VL-Embedding at commit
    8ce3aab1fbcc7b7143b094f0b2005dd89e7246b9) are listed in the README. The evaluation
    (``eval_reranker.py``) passes each query's task instruction, the one the embedder's query
    gets: the last three members are those of the reranked tasks.
    """

    #: src/models/qwen3_vl_reranker.py, arguments.py (RerankArguments): the default, also the
    #: server template's when no instruction is sent.
    DEFAULT = "Given a search query, retrieve relevant candidates that answer the query."
    #: README.md's reranking example (mixed text and image candidates).
    RETRIEVAL = "Retrieve images or text relevant to the user's query."
    #: examples/reranker.ipynb, text reranking: query -> passages.
    PASSAGES = "Given a query, retrieve passages that are relevant to the query."
    #: examples/reranker.ipynb, image reranking: caption -> image.
    IMAGE_CAPTION = "Given a caption, determine if the image matches the description."
    #: eval_reranker.py on vidore_dataset.py, visrag_dataset.py: text query -> document image.
    VISDOC = TaskPreset.VISDOC.value
    #: eval_reranker.py on msrvtt_dataset.py: text query -> video.
    VIDEO_RETRIEVAL = TaskPreset.VIDEO_RETRIEVAL.value
    #: eval_reranker.py on moment_retrieval_datasets.py: query -> clip of a video.
    MOMENT_RETRIEVAL = TaskPreset.MOMENT_RETRIEVAL.value

    def __str__(self) -> str:
        return str(self.value)


PresetKind = type[TaskPreset] | type[RerankPreset]
_PRESETS_BY_NAME: dict[PresetKind, dict[str, enum.Enum]] = {
    kind: {preset.name.lower(): preset for preset in kind} for kind in (TaskPreset, RerankPreset)
}
_LABELS: dict[PresetKind, str] = {TaskPreset: "task preset", RerankPreset: "reranker preset"}
# A single token with no space and no closing punctuation: a preset name, never a sentence.
# Anything of this shape that is not a preset is refused rather than sent as the instruction.
_PRESET_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[_-][A-Za-z0-9]+)*")


def resolve_instruction(
    value: str,
    *,
    name: str = "instruction",
    error: type[VLLMEmbeddingError] = ConfigurationError,
    presets: PresetKind = TaskPreset,
) -> str:
    """The instruction text of ``value``: a preset member, a name of one of ``presets``
    (the embedder's :class:`TaskPreset` or the reranker's :class:`RerankPreset`), or free text.

    A single word with no closing punctuation (``"visdocs"``, ``"video-qa"``) that names no
    preset raises ``error``: a typo of a preset must never become the instruction itself. End
    a one-word instruction with punctuation (``"Summarize."``) to send it as written.
    """
    if isinstance(value, (TaskPreset, RerankPreset)):
        return str(value.value)
    if not isinstance(value, str):
        raise error(f"{name} must be a string or a {presets.__name__}, got {type(value).__name__}")
    key = value.strip()
    by_name = _PRESETS_BY_NAME[presets]
    preset = by_name.get(key.lower().replace("-", "_"))
    if preset is not None:
        return str(preset.value)
    if _PRESET_SHAPE.fullmatch(key):
        known = ", ".join(by_name)
        raise error(
            f"{name}={key!r} is no {_LABELS[presets]} (known: {known}); an instruction is a "
            f"sentence: end a one-word instruction with punctuation, e.g. {key + '.'!r}"
        )
    return value


def normalize_instruction(instruction: str) -> str:
    """Strip the instruction and end it with a period unless it already ends in punctuation.

    This mirrors the official Qwen3-VL-Embedding embedder, so vectors match its output.
    """
    text = instruction.strip()
    # Any Unicode punctuation (category P*) counts, as in the official embedder.
    if text and not unicodedata.category(text[-1]).startswith("P"):
        text += "."
    return text


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
    content_order: tuple[str, ...] = RECIPE_ORDER
    system_instruction: bool = True
    open_assistant_turn: bool = True
    extra_request_fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Preset names become their text here, once: every path reads the words it sends.
        for name in ("query_instruction", "document_instruction"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, resolve_instruction(value, name=name))

    def instruction_for(self, input_type: str, override: str | None = None) -> str | None:
        """The instruction for ``input_type``, ``override`` (text or preset) taking precedence."""
        raw = override
        if raw is None:
            raw = self.query_instruction if input_type == "query" else self.document_instruction
        if raw is None:
            return None
        return normalize_instruction(resolve_instruction(raw)) or None

    def parts(self, item: PreparedInput) -> list[dict[str, Any]]:
        """The user turn's content parts for one item, in the model's order."""
        return content_parts(item, self.content_order)

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
