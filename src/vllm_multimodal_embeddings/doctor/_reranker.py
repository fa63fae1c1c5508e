"""With ``--reranker``, ``doctor`` checks a Qwen3-VL-Reranker server instead:

==========================  ========  ====================================================
check                       severity  fails when
==========================  ========  ====================================================
reachable                   error     ``GET /health`` does not answer 200
rerank endpoint             error     ``POST /rerank`` fails (not a pooling runner, model)
scores are P(yes)           error     a score lies outside [0, 1] (no yes/no classifier)
judge-prompt template       error     another instruction leaves the scores unchanged (no
                                      score template, or an embedding server)
image documents             error     an image document is refused (a text-only reranker)
==========================  ========  ====================================================

The server is ``--base-url``, else ``$VLLM_RERANKER_BASE_URL``, else ``$VLLM_BASE_URL``; the
model ``--model``, else ``$VLLM_RERANKER_MODEL``, else the server's first.
"""

from __future__ import annotations

import json

from .._exceptions import APIStatusError, VLLMEmbeddingError
from .._types import Content
from ..reranking._client import RerankClient
from ..server.flags import RERANKER_CHAT_TEMPLATE_PATH, RERANKER_HF_OVERRIDES
from ._checks import CheckResult, client_options, probe_image_png, reachable, result

__all__ = ["FIX_RUNNER", "FIX_TEMPLATE", "FIX_VL_MODEL", "run_reranker_checks"]

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
    timeout: float | None = None,
) -> list[CheckResult]:
    """Probe the reranker at ``base_url`` and return every check, in table order."""
    options = client_options(base_url, api_key, timeout)
    if isinstance(options, CheckResult):
        return [options]
    base_url = options["base_url"]
    with RerankClient(model=model, **options) as client:
        checks = [reachable(client._transport, base_url)]
        if checks[0].status != "ok":
            return checks
        try:
            scores = client.score(_QUERY, _DOCS)
        except APIStatusError as exc:
            unknown_model = exc.status_code == 404 and "does not exist" in str(exc)
            checks.append(
                result(
                    "rerank endpoint",
                    False,
                    "error",
                    str(exc),
                    "check --model against GET /v1/models" if unknown_model else FIX_RUNNER,
                )
            )
            return checks
        except VLLMEmbeddingError as exc:
            checks.append(result("rerank endpoint", False, "error", str(exc), FIX_RUNNER))
            return checks
        checks.append(
            result(
                "rerank endpoint",
                True,
                "error",
                f"POST /rerank with {client.model!r}: {len(scores)} scores",
            )
        )
        in_range = all(0.0 <= s <= 1.0 for s in scores)
        checks.append(
            result(
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
            result(
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
                result("image documents", True, "error", f"an image scores {image[0]:.4f}")
            )
        except APIStatusError as exc:
            checks.append(result("image documents", False, "error", str(exc), FIX_VL_MODEL))
    return checks
