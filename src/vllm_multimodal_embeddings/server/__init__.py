"""The vLLM server side: flags (one source of truth), chat template, local CPU test server."""

from vllm_multimodal_embeddings.server._launch import (
    LocalServer,
    ServerStartError,
    ensure_tiny_checkpoint,
    server_python,
)
from vllm_multimodal_embeddings.server._reranker_checkpoint import ensure_tiny_reranker
from vllm_multimodal_embeddings.server.flags import (
    CHAT_TEMPLATE_PATH,
    CPU_PRODUCTION_ENV,
    CPU_SERVER_ENV,
    DEFAULT_RERANKER_MODEL,
    DEFAULT_TASK_INSTRUCTIONS,
    RERANKER_CHAT_TEMPLATE_PATH,
    RERANKER_DEFAULT_INSTRUCTION,
    RERANKER_HF_OVERRIDES,
    RerankerServerConfig,
    ServerConfig,
    cpu_production_config,
    cpu_reranker_test_config,
    cpu_test_config,
    production_config,
    reranker_config,
    server_env,
    vllm_args,
)

__all__ = [
    "CHAT_TEMPLATE_PATH",
    "CPU_PRODUCTION_ENV",
    "CPU_SERVER_ENV",
    "DEFAULT_RERANKER_MODEL",
    "DEFAULT_TASK_INSTRUCTIONS",
    "RERANKER_CHAT_TEMPLATE_PATH",
    "RERANKER_DEFAULT_INSTRUCTION",
    "RERANKER_HF_OVERRIDES",
    "LocalServer",
    "RerankerServerConfig",
    "ServerConfig",
    "ServerStartError",
    "cpu_production_config",
    "cpu_reranker_test_config",
    "cpu_test_config",
    "ensure_tiny_checkpoint",
    "ensure_tiny_reranker",
    "production_config",
    "reranker_config",
    "server_env",
    "server_python",
    "vllm_args",
]
