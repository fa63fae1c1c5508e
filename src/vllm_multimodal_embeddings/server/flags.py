"""The vLLM server's flags: one source of truth for the CPU test server, docker files and docs.

Every flag name here was checked against vLLM 0.32's argparse (``vllm/engine/arg_utils.py`` and
``vllm/entrypoints/launchers/cli_args.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Final

from .._constants import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    DEFAULT_MODEL,
    QWEN_DEFAULT_INSTRUCTION,
    QWEN_QUERY_INSTRUCTION,
    VIDEO_FPS,
    VIDEO_FRAME_MAX_PIXELS,
    VIDEO_FRAME_MIN_PIXELS,
    VIDEO_MAX_FRAMES,
    VIDEO_MIN_FRAMES,
)

__all__ = [
    "CHAT_TEMPLATE_PATH",
    "CPU_PRODUCTION_ENV",
    "CPU_SERVER_ENV",
    "DEFAULT_RERANKER_MODEL",
    "DEFAULT_TASK_INSTRUCTIONS",
    "GPU_FRONTEND_ARGS",
    "OFFICIAL_MEDIA_IO_KWARGS",
    "OFFICIAL_PROCESSOR_KWARGS",
    "OFFICIAL_VIDEOS_KWARGS",
    "RERANKER_CHAT_TEMPLATE_PATH",
    "RERANKER_DEFAULT_INSTRUCTION",
    "RERANKER_HF_OVERRIDES",
    "RerankerServerConfig",
    "ServerConfig",
    "cpu_production_config",
    "cpu_reranker_test_config",
    "cpu_test_config",
    "production_config",
    "reranker_config",
    "server_env",
    "vllm_args",
]

CHAT_TEMPLATE_PATH: Final = Path(__file__).with_name("qwen3_vl_embedding.jinja")
"""The packaged chat template that makes ``/v2/embed`` render like the chat recipe."""

DEFAULT_TASK_INSTRUCTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "query": QWEN_QUERY_INSTRUCTION,
        "document": QWEN_DEFAULT_INSTRUCTION,
        # Cohere's own input_type names, so a stock Cohere client (langchain-cohere,
        # llama-index-embeddings-cohere) gets the recipe's vectors. Qwen3-VL-Embedding has no
        # task-specific instruction for classification or clustering: its default one is what
        # the official embedder uses when none is given.
        "search_query": QWEN_QUERY_INSTRUCTION,
        "search_document": QWEN_DEFAULT_INSTRUCTION,
        "classification": QWEN_DEFAULT_INSTRUCTION,
        "clustering": QWEN_DEFAULT_INSTRUCTION,
        "image": QWEN_DEFAULT_INSTRUCTION,
    }
)
"""``input_type`` -> instruction, served through ``--hf-overrides`` for ``/v2/embed``."""

OFFICIAL_VIDEOS_KWARGS: Final[Mapping[str, object]] = MappingProxyType(
    {
        "min_pixels": VIDEO_MIN_FRAMES * VIDEO_FRAME_MIN_PIXELS,
        "max_pixels": VIDEO_MAX_FRAMES * VIDEO_FRAME_MAX_PIXELS,
        "cap_pixels_per_frame": True,
    }
)
"""The official per-frame video budget, as transformers' Qwen3-VL video processor takes it.

The official embedder bounds each FRAME to 131,072..786,432 pixels; the processor bounds the
whole video (frames x pixels). ``cap_pixels_per_frame`` (transformers 5.19+, the default from
5.22) caps each frame at 768 blocks of 32x32 pixels or ``max_pixels / frames``, so 64 x 786,432
gives every frame the official maximum; ``min_pixels`` is the official minimum for the fewest
frames (4). Videos of more frames whose frames are under 131,072 pixels still need a
per-request minimum (``official_video_kwargs`` in the client). Without ``videos_kwargs`` the
image ``min_pixels``/``max_pixels`` above also bound videos: 4 synthetic videos gave cosine
0.867-0.966 to the official vectors.
"""

OFFICIAL_PROCESSOR_KWARGS: Final[Mapping[str, object]] = MappingProxyType(
    {
        "min_pixels": DEFAULT_MIN_PIXELS,
        "max_pixels": DEFAULT_MAX_PIXELS,
        "videos_kwargs": dict(OFFICIAL_VIDEOS_KWARGS),
    }
)
"""The official embedder's image and video budgets, pinned with ``--mm-processor-kwargs``.

vLLM otherwise resizes with the limits in the checkpoint's ``preprocessor_config.json``, which
need not be the embedder's (Qwen3-VL-Instruct's are 65,536..16,777,216 pixels): measured on a
checkpoint with 4,096..262,144, a 2400x1600 image gave cosine 0.799 to the official vector
without this flag and 0.99999 with it. vLLM 0.32 ignores the ``size`` dict form of the same
limits, and refuses per-request ``mm_processor_kwargs`` unless it trusts them.
"""

OFFICIAL_MEDIA_IO_KWARGS: Final[Mapping[str, Mapping[str, int]]] = MappingProxyType(
    {"video": MappingProxyType({"fps": VIDEO_FPS, "max_frames": VIDEO_MAX_FRAMES})}
)
"""The official frame sampling, pinned with ``--media-io-kwargs``: 1 frame/s, at most 64.

vLLM's Qwen3-VL loader otherwise takes 2 frames/s, up to 768. It keeps an odd count (the
processor then repeats the last frame) where the official embedder rounds down to an even
one: such videos need a per-request ``max_frames`` (``official_video_kwargs``).
"""

CPU_SERVER_ENV: Final[Mapping[str, str]] = MappingProxyType(
    # GiB of KV cache; vLLM's CPU default (4 GiB+) is far more than a tiny model needs.
    {"VLLM_CPU_KVCACHE_SPACE": "1"}
)
"""Environment for vLLM's CPU build (the CPU test server)."""

CPU_PRODUCTION_ENV: Final[Mapping[str, str]] = MappingProxyType(
    # 2B in float32 needs about 1.8 GiB of KV cache for one 8192-token sequence.
    {"VLLM_CPU_KVCACHE_SPACE": "4"}
)
"""Environment for a real Qwen3-VL-Embedding model on vLLM's CPU build."""


@dataclass(frozen=True)
class ServerConfig:
    """How to run ``vllm.entrypoints.openai.api_server`` for Qwen3-VL-Embedding."""

    model: str
    served_model_name: str | None = None
    max_model_len: int = 8192
    dtype: str | None = None
    """``None`` leaves vLLM's ``auto`` (the checkpoint's dtype)."""
    matryoshka: bool = True
    """Allow ``dimensions`` / ``output_dimension`` (vLLM answers 400 without it)."""
    task_instructions: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_TASK_INSTRUCTIONS)
    )
    """``input_type`` values ``/v2/embed`` accepts; empty disables ``input_type``."""
    chat_template: Path | None = CHAT_TEMPLATE_PATH
    """``None`` keeps the checkpoint's own template (``/v2/embed`` then differs from the recipe)."""
    mm_processor_kwargs: Mapping[str, object] = field(
        default_factory=lambda: dict(_plain(OFFICIAL_PROCESSOR_KWARGS))  # type: ignore[call-overload]
    )
    """``--mm-processor-kwargs``; empty leaves the checkpoint's image limits (no parity)."""
    media_io_kwargs: Mapping[str, Mapping[str, object]] = field(
        default_factory=lambda: {k: dict(v) for k, v in OFFICIAL_MEDIA_IO_KWARGS.items()}
    )
    """``--media-io-kwargs``; empty leaves vLLM's video sampling (2 frames/s, no parity)."""
    trust_request_mm_kwargs: bool = True
    """``--trust-request-mm-kwargs``: let a request carry its own ``media_io_kwargs`` and
    ``mm_processor_kwargs``, which the client sends for the videos the flags above cannot match
    (an odd official frame count, frames under 131,072 pixels). It also lets any client that
    reaches the server raise the frame count and pixel budget of its own requests (up to the
    loader's 768 frames): turn it off where clients are not trusted, and such videos then
    differ from the official vectors."""
    api_key: str | None = field(default=None, repr=False)
    """Passed to the server in its environment (``VLLM_API_KEY``), never on its command line."""
    host: str | None = None
    port: int | None = None
    enforce_eager: bool = False
    frontend_args: tuple[str, ...] = ()
    """Front-end flags (API processes, renderer workers); they need the ``vllm serve`` CLI."""
    extra_args: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The model name clients send (``served_model_name`` or ``model``)."""
        return self.served_model_name or self.model

    def hf_overrides(self) -> dict[str, object]:
        """The ``--hf-overrides`` object: Matryoshka switch and ``task_instructions``."""
        overrides: dict[str, object] = {"is_matryoshka": self.matryoshka}
        if self.task_instructions:
            overrides["task_instructions"] = dict(self.task_instructions)
        return overrides

    def with_(self, **changes: object) -> ServerConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def vllm_args(cfg: ServerConfig) -> list[str]:
    """The vLLM CLI arguments for ``cfg`` (without the program name)."""
    args = [
        "--model", cfg.model,
        "--runner", "pooling",
        "--max-model-len", str(cfg.max_model_len),
        "--hf-overrides", json.dumps(cfg.hf_overrides(), separators=(",", ":")),
    ]  # fmt: skip
    if cfg.served_model_name:
        args += ["--served-model-name", cfg.served_model_name]
    if cfg.dtype:
        args += ["--dtype", cfg.dtype]
    if cfg.chat_template is not None:
        args += ["--chat-template", str(cfg.chat_template)]
    if cfg.mm_processor_kwargs:
        kwargs = json.dumps(_plain(cfg.mm_processor_kwargs), separators=(",", ":"))
        args += ["--mm-processor-kwargs", kwargs]
    if cfg.media_io_kwargs:
        media = {k: dict(v) for k, v in cfg.media_io_kwargs.items()}
        args += ["--media-io-kwargs", json.dumps(media, separators=(",", ":"))]
    if cfg.trust_request_mm_kwargs:
        args.append("--trust-request-mm-kwargs")
    if cfg.enforce_eager:
        args.append("--enforce-eager")
    if cfg.host is not None:
        args += ["--host", cfg.host]
    if cfg.port is not None:
        args += ["--port", str(cfg.port)]
    # The API key is not an argument: argv is visible to every user in `ps`. vLLM reads
    # VLLM_API_KEY from its environment the same way (see server_env).
    args += cfg.frontend_args
    args += cfg.extra_args
    return args


def _plain(value: object) -> object:
    """``value`` with every mapping a dict (``json.dumps`` refuses ``MappingProxyType``)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def server_env(cfg: ServerConfig) -> dict[str, str]:
    """Environment variables the server process needs for ``cfg`` (the API key, if any)."""
    return {"VLLM_API_KEY": cfg.api_key} if cfg.api_key else {}


GPU_FRONTEND_ARGS: Final[tuple[str, ...]] = (
    "--api-server-count",
    "8",
    "--mm-processor-cache-gb",
    "1",
)
"""The GPU profile's front end: several API processes, so that image decoding, the HF
processor and JSON run beside each other and the engine never waits on one process
(measured on an H200: ``benchmarks/results/2026-12-05-h200-vllm0.26.md``). Needs ``vllm serve``;
``python -m vllm.entrypoints.openai.api_server`` has no multi-process front end.

Each API process keeps its own multimodal processor cache (vLLM's default 4 GiB): on an H100 the
server's host RSS grew from 43.7 to 57.8 GB between two benchmark rounds with it, and levelled
off near 24 GB with 1 GiB each (21.5, 23.4, 24.1 GB over three rounds;
``benchmarks/results/2026-12-07-h100-issue36.md``). 1 GiB still holds dozens of processed
camera photos per process, what re-embedding one image under several instructions needs."""


def production_config(model: str = DEFAULT_MODEL, **changes: object) -> ServerConfig:
    """GPU defaults: Qwen3-VL-Embedding-2B, 8192 tokens, Matryoshka, instructions, our template,
    and the GPU front end (``GPU_FRONTEND_ARGS``)."""
    base = ServerConfig(model=model, max_model_len=8192, frontend_args=GPU_FRONTEND_ARGS)
    return replace(base, **changes)  # type: ignore[arg-type]


def cpu_production_config(model: str = DEFAULT_MODEL, **changes: object) -> ServerConfig:
    """A real model on the CPU: production flags with the CPU test server's float32 and eager,
    one API process (the CPU image runs the ``api_server`` module)."""
    cpu = cpu_test_config(model)
    cpu_flags = {"dtype": cpu.dtype, "enforce_eager": cpu.enforce_eager, "frontend_args": ()}
    return production_config(model, **(cpu_flags | changes))


def cpu_test_config(model: str, **changes: object) -> ServerConfig:
    """CPU test defaults: float32 (CPU kernels), eager (no compile wait), 2048 tokens."""
    base = ServerConfig(
        model=model,
        served_model_name="tiny-qwen3-vl-embedding",
        max_model_len=2048,
        dtype="float32",
        enforce_eager=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# --- Qwen3-VL-Reranker -------------------------------------------------------------------------
# vLLM 0.32 serves the published reranker (a Qwen3VLForConditionalGeneration checkpoint) as a
# sequence classifier: the hf-overrides below route it to Qwen3VLForSequenceClassification, whose
# one-logit head is lm_head["yes"] - lm_head["no"] ("from_2_way_softmax"), so the /rerank and
# /score scores are sigmoid of that logit: the official recipe's P(yes). The score prompt comes
# from a chat template given with --chat-template: vLLM applies one to score pairs only when it
# is passed explicitly (messages with roles "query" and "document", no generation prompt).

DEFAULT_RERANKER_MODEL: Final = "Qwen/Qwen3-VL-Reranker-2B"
"""The published reranker that pairs with ``DEFAULT_MODEL``."""

RERANKER_DEFAULT_INSTRUCTION: Final = (
    "Given a search query, retrieve relevant candidates that answer the query."
)
"""The official reranker's default instruction; the score template falls back to it."""

RERANKER_CHAT_TEMPLATE_PATH: Final = Path(__file__).with_name("qwen3_vl_reranker.jinja")
"""The packaged score template that renders the official judge prompt."""

RERANKER_HF_OVERRIDES: Final[Mapping[str, object]] = MappingProxyType(
    {
        "architectures": ["Qwen3VLForSequenceClassification"],
        "classifier_from_token": ["no", "yes"],
        "is_original_qwen3_reranker": True,
    }
)
"""``--hf-overrides`` that turn the generation checkpoint into a yes/no classifier."""


@dataclass(frozen=True)
class RerankerServerConfig(ServerConfig):
    """How to run vLLM for Qwen3-VL-Reranker (``/rerank``, ``/score``).

    The embedder-only fields (``matryoshka``, ``task_instructions``) play no part: the
    ``--hf-overrides`` are ``RERANKER_HF_OVERRIDES``.
    """

    matryoshka: bool = False
    task_instructions: Mapping[str, str] = field(default_factory=dict)
    trust_request_mm_kwargs: bool = False
    """The reranker client sends no per-request video fields: no reason to trust them."""
    chat_template: Path | None = RERANKER_CHAT_TEMPLATE_PATH
    """``None`` scores raw ``query + document`` text, without the judge prompt."""

    def hf_overrides(self) -> dict[str, object]:
        """The ``--hf-overrides`` object: the sequence-classification conversion."""
        # Fresh lists: a caller that edits the result must not change the shared constant.
        return {k: list(v) if isinstance(v, list) else v for k, v in RERANKER_HF_OVERRIDES.items()}


def reranker_config(model: str = DEFAULT_RERANKER_MODEL, **changes: object) -> RerankerServerConfig:
    """GPU defaults for the reranker: Qwen3-VL-Reranker-2B, 8192 tokens, the judge template."""
    return replace(RerankerServerConfig(model=model, max_model_len=8192), **changes)  # type: ignore[arg-type]


def cpu_reranker_test_config(model: str, **changes: object) -> RerankerServerConfig:
    """The CPU test server on the tiny reranker: ``cpu_test_config``'s float32, eager, length."""
    cpu = cpu_test_config(model)
    base = RerankerServerConfig(
        model=model,
        served_model_name="tiny-qwen3-vl-reranker",
        max_model_len=cpu.max_model_len,
        dtype=cpu.dtype,
        enforce_eager=cpu.enforce_eager,
    )
    return replace(base, **changes)  # type: ignore[arg-type]
