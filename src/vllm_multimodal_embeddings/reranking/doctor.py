"""The reranker's doctor checks; they live in :mod:`vllm_multimodal_embeddings.doctor` now.

Kept for its import path and for ``python -m vllm_multimodal_embeddings.reranking.doctor``, the
entry point before ``vllm-mm-embed doctor --reranker`` (deprecated: it says so, then runs that).
"""

from __future__ import annotations

from ..doctor._reranker import FIX_RUNNER, FIX_TEMPLATE, FIX_VL_MODEL, run_reranker_checks

__all__ = ["FIX_RUNNER", "FIX_TEMPLATE", "FIX_VL_MODEL", "run_reranker_checks"]

if __name__ == "__main__":
    import sys

    from ..__main__ import main

    print(
        "python -m vllm_multimodal_embeddings.reranking.doctor is deprecated: "
        "use `vllm-mm-embed doctor --reranker`",
        file=sys.stderr,
    )
    raise SystemExit(main(["doctor", "--reranker", *sys.argv[1:]]))
