"""``vllm-mm-embed server-args``: the vLLM flags of each profile, as a shell line, JSON or the
command list of docker/compose.yaml (:mod:`.flags` holds the flags themselves)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import PurePosixPath
from typing import Any

from .._constants import DEFAULT_MODEL
from .flags import (
    CHAT_TEMPLATE_PATH,
    DEFAULT_RERANKER_MODEL,
    RERANKER_CHAT_TEMPLATE_PATH,
    ServerConfig,
    cpu_production_config,
    production_config,
    reranker_config,
    vllm_args,
)

__all__ = [
    "COMPOSE_VARS",
    "CONTAINER_TEMPLATE",
    "HOST_NOTES",
    "PROFILES",
    "RERANKER_CONTAINER_TEMPLATE",
    "add_server_args_parser",
    "docker_config",
    "server_args",
]

CONTAINER_TEMPLATE = PurePosixPath("/templates") / CHAT_TEMPLATE_PATH.name
"""Where docker/compose.yaml mounts the packaged chat template inside the container."""
RERANKER_CONTAINER_TEMPLATE = PurePosixPath("/templates") / RERANKER_CHAT_TEMPLATE_PATH.name
"""Where docker/compose.yaml mounts the packaged reranker score template."""

PROFILES = ("gpu", "cpu", "reranker")
"""``server-args`` profiles: the embedder on a GPU or the CPU, the reranker on a GPU."""

# compose.yaml substitutes these; server-args --format compose prints the placeholders.
COMPOSE_VARS = {"model": "MODEL", "max_model_len": "MAX_MODEL_LEN"}
_COMPOSE_MODEL_VAR = {"gpu": "MODEL", "cpu": "MODEL", "reranker": "RERANKER_MODEL"}


# What each profile needs beyond the flags, printed to stderr (``$(vllm-mm-embed server-args)``
# keeps only the flags). Host RAM: benchmarks/results/2026-12-07-h100-issue36.md.
HOST_NOTES = {
    "gpu": (
        "host RAM: ~24 GB for the server once warm (8 API processes with a 1 GiB processor "
        "cache each, the engine and its workers; measured with a 2B-shaped model): give it "
        "32 GB. Short of RAM: --api-server-count 4 (~4 GB less) or --mm-processor-cache-gb 0."
    ),
}


def docker_config(profile: str, model: str | None = None) -> ServerConfig:
    """The flags docker/compose.yaml runs: ``gpu`` production, ``cpu`` the same on the CPU,
    ``reranker`` Qwen3-VL-Reranker (service ``vllm-reranker``)."""
    if profile == "cpu":
        return cpu_production_config() if model is None else cpu_production_config(model)
    if profile == "reranker":
        return reranker_config() if model is None else reranker_config(model)
    if profile != "gpu":
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    return production_config() if model is None else production_config(model)


def server_args(
    profile: str, *, model: str | None = None, template: str | None = None
) -> list[str]:
    """The vLLM arguments for ``profile``; ``template`` replaces the chat template path."""
    cfg = docker_config(profile, model)
    if template is not None:
        cfg = cfg.with_(chat_template=PurePosixPath(template))
    return vllm_args(cfg)


def _compose_args(profile: str) -> list[str]:
    """Arguments with compose's ``${VAR:-default}`` placeholders where compose.yaml has them."""
    cfg = docker_config(profile)
    mounted = RERANKER_CONTAINER_TEMPLATE if profile == "reranker" else CONTAINER_TEMPLATE
    args = server_args(profile, template=str(mounted))
    defaults = {"model": cfg.model, "max_model_len": str(cfg.max_model_len)}
    names = {**COMPOSE_VARS, "model": _COMPOSE_MODEL_VAR[profile]}
    flag_of = {"model": "--model", "max_model_len": "--max-model-len"}
    for key, var in names.items():
        i = args.index(flag_of[key]) + 1
        args[i] = f"${{{var}:-{defaults[key]}}}"
    return args


def _run_server_args(args: argparse.Namespace) -> int:
    if args.format == "compose":
        out = _compose_args(args.profile)
        # JSON strings are valid YAML flow scalars, and compose.yaml is written in this form.
        print("command:")
        for a in out:
            print(f"  - {json.dumps(a)}")
        return 0
    out = server_args(args.profile, model=args.model, template=args.chat_template)
    if args.profile in HOST_NOTES:
        print(f"# {HOST_NOTES[args.profile]}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(out))
    else:
        print(shlex.join(out))
    return 0


def add_server_args_parser(subparsers: Any) -> None:
    """Add the ``server-args`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "server-args",
        help="print the vLLM flags this package needs (the ones docker/compose.yaml runs)",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="gpu",
        help="gpu: the embedder (default); cpu: the embedder on the CPU; reranker: "
        "Qwen3-VL-Reranker",
    )
    parser.add_argument(
        "--format",
        choices=("shell", "json", "compose"),
        default="shell",
        help="shell: one quoted line; json: a list; compose: compose.yaml's command list",
    )
    parser.add_argument(
        "--model",
        default=None,
        help=f"model (default: {DEFAULT_MODEL}; reranker: {DEFAULT_RERANKER_MODEL})",
    )
    parser.add_argument(
        "--chat-template",
        default=None,
        help=f"template path as the server sees it (default: {CHAT_TEMPLATE_PATH}; "
        f"reranker: {RERANKER_CHAT_TEMPLATE_PATH})",
    )
    parser.set_defaults(func=_run_server_args)
