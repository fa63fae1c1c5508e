"""``vllm-mm-embed doctor``: the command line of both doctors (``--reranker`` picks the second)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from typing import Any

import httpx

from .._constants import ENV_BASE_URL, ENV_MODEL
from .._exceptions import VLLMEmbeddingError
from .._redact import redact_url
from .._settings import add_options
from ..reranking._settings import ENV_RERANKER_BASE_URL, ENV_RERANKER_MODEL
from ..transport._keys import CLIKeyError, add_api_key_arguments, resolve_api_key
from ..transport._settings import ConnectionSettings
from . import _embedder, _reranker
from ._checks import exit_code, render_table
from ._embedder import run_checks
from ._reranker import run_reranker_checks

__all__ = ["add_doctor_parser", "run_doctor"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reranker",
        action="store_true",
        help="check a Qwen3-VL-Reranker server (POST /rerank) instead of an embedding server",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help=f"server root (default: ${ENV_BASE_URL}; with --reranker "
        f"${ENV_RERANKER_BASE_URL}, else ${ENV_BASE_URL})",
    )
    add_api_key_arguments(parser)
    parser.add_argument(
        "--model",
        default=None,
        help=f"served model name (default: ${ENV_MODEL}; with --reranker "
        f"${ENV_RERANKER_MODEL}; else the server's first)",
    )
    add_options(parser, ConnectionSettings, ["timeout"])
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def add_doctor_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``doctor`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="check that a vLLM server (embedder, or --reranker) is configured right",
        description=_embedder.__doc__,
        epilog=_reranker.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(parser)
    parser.set_defaults(func=run_doctor)
    return parser


def run_doctor(args: argparse.Namespace) -> int:
    """Run the checks for parsed arguments, print them, return the exit code.

    Usage errors and anything the checks could not turn into a result (a malformed URL, a
    body that is HTML or invalid JSON) print one ``error:`` line and return 2, no traceback.
    """
    try:
        api_key = resolve_api_key(args)
    except CLIKeyError as exc:
        print(f"error: {exc}", flush=True)
        return 2
    url_vars: tuple[str, ...] = (ENV_BASE_URL,)
    model_var, run = ENV_MODEL, run_checks
    if args.reranker:
        # The reranker usually has its own server: its variables first.
        url_vars = (ENV_RERANKER_BASE_URL, ENV_BASE_URL)
        model_var, run = ENV_RERANKER_MODEL, run_reranker_checks
    base_url = args.base_url or next((v for k in url_vars if (v := os.environ.get(k))), None)
    if not base_url:
        print(f"error: pass --base-url or set {' or '.join(url_vars)}", flush=True)
        return 2
    shown_url = redact_url(base_url)
    try:
        checks = run(
            base_url,
            api_key=api_key,
            model=args.model or os.environ.get(model_var) or None,
            timeout=args.timeout,
        )
    # The CLI boundary: ValueError covers invalid JSON and pydantic's ValidationError,
    # httpx.InvalidURL a URL like "http://[::1". Each becomes one line, never a traceback.
    except (VLLMEmbeddingError, httpx.InvalidURL, ValueError) as exc:
        print(f"error: {shown_url}: {_one_line(exc, api_key)}", flush=True)
        return 2
    code = exit_code(checks)
    if args.json:
        out = {
            "base_url": shown_url,
            "exit_code": code,
            "checks": [{**asdict(c), "is_error": c.is_error} for c in checks],
        }
        print(json.dumps(out, indent=2))
    else:
        print(render_table(checks, shown_url))
    return code


def _one_line(exc: BaseException, api_key: str | None) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if api_key:
        first = first.replace(api_key, "<redacted>")
    return f"{type(exc).__name__}: {first[:300]}"
