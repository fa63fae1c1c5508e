"""The GPU profile's front end: several API processes, which only `vllm serve` starts."""

from __future__ import annotations

from pathlib import Path

import yaml

from vllm_multimodal_embeddings.server.flags import (
    GPU_FRONTEND_ARGS,
    cpu_production_config,
    cpu_test_config,
    production_config,
    reranker_config,
    vllm_args,
)

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


def test_gpu_profile_runs_several_api_processes() -> None:
    args = vllm_args(production_config())
    i = args.index("--api-server-count")
    assert int(args[i + 1]) > 1
    assert tuple(args[i : i + len(GPU_FRONTEND_ARGS)]) == GPU_FRONTEND_ARGS


def test_cpu_and_reranker_configs_keep_one_api_process() -> None:
    # The CPU image and the test server run the api_server module, which has no such flag.
    for cfg in (cpu_production_config(), cpu_test_config("/ckpt"), reranker_config()):
        assert "--api-server-count" not in vllm_args(cfg)
        assert "--renderer-num-workers" not in vllm_args(cfg)
    # Explicit changes still win over the profile's.
    assert cpu_production_config(frontend_args=("--api-server-count", "2")).frontend_args == (
        "--api-server-count",
        "2",
    )


def test_compose_gpu_service_uses_vllm_serve() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    # No entrypoint override: the image's own `vllm serve`, which --api-server-count needs.
    assert "entrypoint" not in services["vllm"]
    assert "--api-server-count" in services["vllm"]["command"]
    assert "--api-server-count" not in services["vllm-cpu"]["command"]
