"""What a server can do, as found by probing it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Facts about one vLLM server and model, probed once and cached per client.

    Attributes:
        model: served model name.
        max_model_len: context length in tokens, when the server reports it.
        version: vLLM version, when ``/version`` answers.
        embedding_size: full vector length.
        batched_conversations: ``/v1/embeddings`` takes a list of conversations (vLLM >= 0.24).
        matryoshka: the server honours ``dimensions``
            (``--hf-overrides '{"is_matryoshka": true}'``).
        input_types: ``/v2/embed`` ``input_type`` values the model knows; empty when it has no
            task instructions, ``None`` when ``/v2/embed`` is missing.
    """

    model: str
    max_model_len: int | None
    version: str | None
    embedding_size: int
    batched_conversations: bool
    matryoshka: bool
    input_types: tuple[str, ...] | None
