"""``vllm-mm-embed doctor``: check that a running vLLM server gives right results for this package.

* :mod:`._checks` - a check's result, the table, the exit code, reachability (shared);
* :mod:`._embedder` - the embedding server's checks (their table is that module's docstring);
* :mod:`._reranker` - the Qwen3-VL-Reranker server's checks (``--reranker``);
* :mod:`._cli` - the command line.

Each check has a severity. A failed ``error`` check means the server would give wrong or failing
results (exit code 1); a failed ``warning`` check means slower or fewer features (exit code 0).
"""

from ._checks import CheckResult, exit_code, gradient_png, probe_image_png, render_table
from ._cli import add_doctor_parser, run_doctor
from ._embedder import (
    FIX_CHAT_TEMPLATE,
    FIX_MATRYOSHKA,
    FIX_PROCESSOR,
    FIX_TASK_INSTRUCTIONS,
    FIX_VERSION_BATCH,
    FIX_VERSION_V2,
    FIX_VIDEO,
    FIX_VIDEO_TRUST,
    NORM_TOLERANCE,
    PARITY_MIN_COSINE,
    PREPROCESSING_PROBES,
    VIDEO_PROBES,
    official_image_tokens,
    official_video_tokens,
    probe_video,
    run_checks,
    video_preprocessing_check,
)
from ._reranker import FIX_RUNNER, FIX_TEMPLATE, FIX_VL_MODEL, run_reranker_checks

__all__ = [
    "FIX_CHAT_TEMPLATE",
    "FIX_MATRYOSHKA",
    "FIX_PROCESSOR",
    "FIX_RUNNER",
    "FIX_TASK_INSTRUCTIONS",
    "FIX_TEMPLATE",
    "FIX_VERSION_BATCH",
    "FIX_VERSION_V2",
    "FIX_VIDEO",
    "FIX_VIDEO_TRUST",
    "FIX_VL_MODEL",
    "NORM_TOLERANCE",
    "PARITY_MIN_COSINE",
    "PREPROCESSING_PROBES",
    "VIDEO_PROBES",
    "CheckResult",
    "add_doctor_parser",
    "exit_code",
    "gradient_png",
    "official_image_tokens",
    "official_video_tokens",
    "probe_image_png",
    "probe_video",
    "render_table",
    "run_checks",
    "run_doctor",
    "run_reranker_checks",
    "video_preprocessing_check",
]
