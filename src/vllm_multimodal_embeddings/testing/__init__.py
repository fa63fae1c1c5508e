"""Test tooling: a real vLLM server on the CPU, on tiny random-weight checkpoints built here.

For test suites (this package's, and yours if you test against a real server without a GPU),
benchmarks and ``vllm-mm-embed serve-cpu``; not needed to use the package. The vectors and
scores of the tiny checkpoints are deterministic but meaningless. The server's production flags
and chat templates are :mod:`vllm_multimodal_embeddings.server`'s.
"""

from ._launch import (
    CACHE_DIR,
    SERVER_VENV,
    LocalServer,
    ServerStartError,
    ensure_tiny_checkpoint,
    server_python,
)
from ._reranker_checkpoint import ensure_tiny_reranker

__all__ = [
    "CACHE_DIR",
    "SERVER_VENV",
    "LocalServer",
    "ServerStartError",
    "ensure_tiny_checkpoint",
    "ensure_tiny_reranker",
    "server_python",
]
