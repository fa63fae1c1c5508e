"""Error bodies: vLLM's nested shape, the older flat shape, and the bare auth error.

The transport reads them to put the server's message in every status error.
"""

from __future__ import annotations

from typing import Any

__all__ = ["parse_error_message"]


def parse_error_message(body: Any, fallback: str) -> str:
    """The server's message from any error body vLLM has sent.

    Shapes seen: ``{"error": {"message": ...}}`` (current), ``{"message": ..., "type": ...}``
    (older servers), ``{"error": "Unauthorized"}`` (``--api-key`` middleware),
    ``{"detail": ...}`` (FastAPI validation).
    """
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(body.get("message"), str):
            return str(body["message"])
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list) and detail:
            return "; ".join(
                str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail
            )
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return fallback
