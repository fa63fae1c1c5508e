"""``serve-cpu``: run the CPU vLLM test server on the tiny checkpoint until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from ..server.flags import CPU_PRODUCTION_ENV, cpu_production_config, cpu_test_config
from ..transport._keys import CLIKeyError, add_api_key_arguments, resolve_api_key
from ._launch import (
    SERVER_VENV,
    LocalServer,
    ServerStartError,
    ensure_tiny_checkpoint,
    server_python,
)

__all__ = ["add_serve_parser", "main_serve", "run_serve"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    parser.add_argument(
        "--venv", type=Path, default=SERVER_VENV, help=f"server venv (default: {SERVER_VENV})"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="checkpoint dir (default: build the tiny one)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="serve this Hugging Face model instead (e.g. Qwen/Qwen3-VL-Embedding-2B; downloads "
        "it; 8192 tokens, float32, 4 GiB of KV cache)",
    )
    add_api_key_arguments(parser, purpose="the API key the server will require")
    parser.add_argument(
        "--no-matryoshka", action="store_true", help="serve without is_matryoshka (no dimensions)"
    )
    parser.add_argument(
        "--no-chat-template", action="store_true", help="keep the checkpoint's own chat template"
    )
    parser.add_argument("--log", type=Path, default=None, help="server log file")


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve-cpu`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve-cpu",
        help="run a CPU vLLM server on a tiny random-weight Qwen3-VL checkpoint (for tests)",
        description=__doc__,
    )
    _configure(parser)
    parser.set_defaults(func=run_serve)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    """Build the checkpoint if needed, start the server, print its URL, block until Ctrl-C.

    The server requires a key when ``$VLLM_API_KEY`` is set or ``--ask-api-key`` is given;
    vLLM then reads it from its own environment, never from its command line.
    """
    try:
        api_key = resolve_api_key(args, prompt="API key the server will require: ")
    except CLIKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        python = server_python(args.venv)
        env: dict[str, str] = {}
        if args.model:
            # The flags docker/compose.yaml's CPU service runs, and room for the KV cache.
            config = cpu_production_config(args.model)
            env.update(CPU_PRODUCTION_ENV)
        else:
            checkpoint = args.checkpoint or ensure_tiny_checkpoint(python)
            config = cpu_test_config(str(checkpoint))
        config = config.with_(
            host=args.host, port=args.port, api_key=api_key, matryoshka=not args.no_matryoshka
        )
        if args.no_chat_template:
            config = config.with_(chat_template=None)
        server = LocalServer(
            config,
            python=python,
            env=env,
            log_path=args.log,
            # A first start of a real model includes its download.
            startup_timeout_s=1800.0 if args.model else 300.0,
        )
        print(f"starting vLLM (log: {server.log_path}) ...", file=sys.stderr, flush=True)
        server.start()
    except ServerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        print(f"VLLM_BASE_URL={server.base_url}", flush=True)
        print(f"VLLM_EMBEDDING_MODEL={server.model}", flush=True)
        print(f"ready in {server.startup_s:.0f} s; Ctrl-C to stop", file=sys.stderr, flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main_serve(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``serve-cpu`` alone."""
    parser = argparse.ArgumentParser(prog="serve-cpu", description=__doc__)
    _configure(parser)
    return run_serve(parser.parse_args(argv))
