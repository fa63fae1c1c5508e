"""The vLLM server side: flags (one source of truth), chat template, local CPU test server."""

from vllm_multimodal_embeddings.server._launch import (
    LocalServer,
    ServerStartError,
    ensure_tiny_checkpoint,
    server_python,
)
from vllm_multimodal_embeddings.server.flags import (
    CHAT_TEMPLATE_PATH,
    CPU_PRODUCTION_ENV,
    CPU_SERVER_ENV,
    DEFAULT_TASK_INSTRUCTIONS,
    OFFICIAL_PROCESSOR_KWARGS,
    ServerConfig,
    cpu_production_config,
    cpu_test_config,
    production_config,
    server_env,
    vllm_args,
)

__all__ = [
    "CHAT_TEMPLATE_PATH",
    "CPU_PRODUCTION_ENV",
    "CPU_SERVER_ENV",
    "DEFAULT_TASK_INSTRUCTIONS",
    "OFFICIAL_PROCESSOR_KWARGS",
    "LocalServer",
    "ServerConfig",
    "ServerStartError",
    "cpu_production_config",
    "cpu_test_config",
    "ensure_tiny_checkpoint",
    "production_config",
    "server_env",
    "server_python",
    "vllm_args",
]
