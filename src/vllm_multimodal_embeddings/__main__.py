"""``vllm-mm-embed``: check a server (``doctor [--reranker]``), print its flags
(``server-args --profile gpu|cpu|reranker``), run a CPU test server (``serve-cpu``), embed a
corpus (``embed``).

``python -m vllm_multimodal_embeddings <command>`` does the same.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__
from .bulk.cli import add_embed_parser
from .doctor import add_doctor_parser
from .server._args import (
    COMPOSE_VARS,
    CONTAINER_TEMPLATE,
    PROFILES,
    RERANKER_CONTAINER_TEMPLATE,
    add_server_args_parser,
    docker_config,
    server_args,
)
from .testing._cli import add_serve_parser

__all__ = [
    "COMPOSE_VARS",
    "CONTAINER_TEMPLATE",
    "PROFILES",
    "RERANKER_CONTAINER_TEMPLATE",
    "build_parser",
    "docker_config",
    "main",
    "server_args",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``vllm-mm-embed`` argument parser."""
    parser = argparse.ArgumentParser(prog="vllm-mm-embed", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_doctor_parser(subparsers)
    add_server_args_parser(subparsers)
    add_serve_parser(subparsers)
    add_embed_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
