"""Doctor for a Qwen3-VL-Reranker server: is it configured the way the reranking client needs?

Usage: ``python -m vllm_multimodal_embeddings.reranking.doctor --base-url URL [--json]``
(``VLLM_RERANKER_BASE_URL`` / ``VLLM_RERANKER_MODEL`` / ``VLLM_API_KEY`` as defaults). Each
failed check names the server flag that fixes it; the exit code is 1 when an error check fails.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import httpx

from .._constants import ENV_API_KEY, ENV_BASE_URL
from .._exceptions import APIStatusError, ConfigurationError, VLLMEmbeddingError
from .._settings import resolve_base_url
from .._types import Content
from ..doctor import CheckResult, _result, exit_code, probe_image_png, render_table
from ..server.flags import RERANKER_CHAT_TEMPLATE_PATH, RERANKER_HF_OVERRIDES
from ._client import RerankClient
from ._core import ENV_RERANKER_BASE_URL, ENV_RERANKER_MODEL

__all__ = ["main", "run_reranker_checks"]

_OVERRIDES_JSON = json.dumps(dict(RERANKER_HF_OVERRIDES), separators=(",", ":"))
FIX_RUNNER = f"--runner pooling --hf-overrides '{_OVERRIDES_JSON}'"
FIX_TEMPLATE = (
    f"--chat-template .../{RERANKER_CHAT_TEMPLATE_PATH.name} (packaged at "
    "vllm_multimodal_embeddings.server.RERANKER_CHAT_TEMPLATE_PATH; compose mounts it); or "
    "this is an embedding server: vLLM answers /rerank there too, with cosine similarities"
)
FIX_VL_MODEL = "serve Qwen3-VL-Reranker (a vision-language model), not a text-only reranker"

_QUERY = "vllm-mm-embed doctor: which document fits?"
_DOCS = ["A short probe document.", "Another, rather different, probe text."]


def run_reranker_checks(
    base_url: str,
    *,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float = 60.0,
) -> list[CheckResult]:
    """Probe the reranker at ``base_url`` and return every check, in table order."""
    try:
        base_url = resolve_base_url(base_url)
    except ConfigurationError as exc:
        return [_result("reachable", False, "error", str(exc), "check --base-url")]
    try:
        health = httpx.get(f"{base_url}/health", timeout=timeout)
        reachable = _result(
            "reachable",
            health.status_code == 200,
            "error",
            f"GET /health -> {health.status_code}",
            "start the server, or check --base-url",
        )
    except httpx.HTTPError as exc:
        reachable = _result(
            "reachable",
            False,
            "error",
            f"{base_url}: {exc}",
            "start the server, or check --base-url",
        )
    if reachable.status != "ok":
        return [reachable]
    checks = [reachable]
    options: dict[str, Any] = {
        "base_url": base_url,
        "api_key": api_key,
        "timeout": timeout,
        "max_retries": 0,
    }
    with RerankClient(model=model, **options) as client:
        try:
            scores = client.score(_QUERY, _DOCS)
        except APIStatusError as exc:
            unknown_model = exc.status_code == 404 and "does not exist" in str(exc)
            checks.append(
                _result(
                    "rerank endpoint",
                    False,
                    "error",
                    str(exc),
                    "check --model against GET /v1/models" if unknown_model else FIX_RUNNER,
                )
            )
            return checks
        except VLLMEmbeddingError as exc:
            checks.append(_result("rerank endpoint", False, "error", str(exc), FIX_RUNNER))
            return checks
        checks.append(
            _result(
                "rerank endpoint",
                True,
                "error",
                f"POST /rerank with {client.model!r}: {len(scores)} scores",
            )
        )
        in_range = all(0.0 <= s <= 1.0 for s in scores)
        checks.append(
            _result(
                "scores are P(yes)",
                in_range,
                "error",
                f"scores {', '.join(f'{s:.4f}' for s in scores)}",
                FIX_RUNNER,
            )
        )
        # With the judge-prompt template the instruction reaches the model; without any
        # template vLLM scores raw "query + document" text and ignores it.
        other = client.score(_QUERY, _DOCS, instruction="Judge by length only.")
        moved = max(abs(a - b) for a, b in zip(scores, other, strict=True))
        checks.append(
            _result(
                "judge-prompt template",
                moved > 1e-6,
                "error",
                f"a different instruction moves the scores by {moved:.2e}",
                FIX_TEMPLATE,
                value=moved,
            )
        )
        try:
            image = client.score(_QUERY, [Content(image=probe_image_png())])
            checks.append(
                _result("image documents", True, "error", f"an image scores {image[0]:.4f}")
            )
        except APIStatusError as exc:
            checks.append(_result("image documents", False, "error", str(exc), FIX_VL_MODEL))
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the checks, print them, return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m vllm_multimodal_embeddings.reranking.doctor")
    parser.add_argument(
        "--base-url",
        default=None,
        help=f"reranker root (default: ${ENV_RERANKER_BASE_URL}, else ${ENV_BASE_URL})",
    )
    parser.add_argument("--api-key", default=None, help=f"bearer token (default: ${ENV_API_KEY})")
    parser.add_argument(
        "--model", default=None, help=f"served reranker (default: ${ENV_RERANKER_MODEL})"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    args = parser.parse_args(argv)
    base_url = (
        args.base_url or os.environ.get(ENV_RERANKER_BASE_URL) or os.environ.get(ENV_BASE_URL)
    )
    if not base_url:
        print(f"error: pass --base-url or set {ENV_RERANKER_BASE_URL}", flush=True)
        return 2
    checks = run_reranker_checks(
        base_url,
        api_key=args.api_key or os.environ.get(ENV_API_KEY) or None,
        model=args.model,
        timeout=args.timeout,
    )
    code = exit_code(checks)
    if args.json:
        out = {
            "base_url": base_url,
            "exit_code": code,
            "checks": [{**asdict(c), "is_error": c.is_error} for c in checks],
        }
        print(json.dumps(out, indent=2))
    else:
        print(render_table(checks, base_url))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
