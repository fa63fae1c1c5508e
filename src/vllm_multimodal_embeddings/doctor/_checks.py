"""What every doctor shares: a check's result, the table, the exit code, the reachability check.

The embedder's checks (:mod:`._embedder`) and the reranker's (:mod:`._reranker`) build on these;
every request goes through the package's own transport, so key handling, timeouts, error
mapping and redaction apply to the doctor as to the clients.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from .._exceptions import ConfigurationError, VLLMEmbeddingError
from .._redact import redact_url
from ..protocol._endpoints import SERVER
from ..transport._http import Call, SyncTransport
from ..transport._settings import resolve_base_url

__all__ = [
    "CheckResult",
    "Severity",
    "Status",
    "client_options",
    "exit_code",
    "gradient_png",
    "probe_image_png",
    "reachable",
    "render_table",
    "result",
    "skip",
]

Severity = Literal["error", "warning"]
Status = Literal["ok", "warn", "fail", "skip"]

FIX_REACHABLE = "start the server, or check --base-url"


@dataclass(frozen=True)
class CheckResult:
    """One line of the doctor's table."""

    name: str
    status: Status
    severity: Severity
    detail: str
    fix: str | None = None
    """The server flag (or step) that makes a failed check pass."""
    value: float | None = None
    """The measured number, where there is one (parity cosine)."""

    @property
    def is_error(self) -> bool:
        """A failed ``error`` check: the server would give wrong or failing results."""
        return self.status == "fail"


def result(
    name: str,
    ok: bool,
    severity: Severity,
    detail: str,
    fix: str | None = None,
    value: float | None = None,
) -> CheckResult:
    if ok:
        return CheckResult(name, "ok", severity, detail, value=value)
    status: Status = "fail" if severity == "error" else "warn"
    return CheckResult(name, status, severity, detail, fix, value)


def skip(name: str, severity: Severity, why: str) -> CheckResult:
    return CheckResult(name, "skip", severity, why)


def probe_image_png() -> bytes:
    """A small deterministic RGB PNG (a colour gradient), sent unchanged by the client."""
    return gradient_png(96, 64)


def gradient_png(width: int, height: int) -> bytes:
    """A deterministic RGB gradient PNG of the given size."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    xx, yy = np.meshgrid(x, y)
    rgb = np.stack([xx, yy, 255 - (xx + yy) / 2], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def client_options(
    base_url: str, api_key: str | None, timeout: float | None
) -> dict[str, Any] | CheckResult:
    """A doctor's client options (no retries: a check reports what the server does), or the
    failed ``reachable`` check of a ``base_url`` the clients would refuse."""
    try:
        # The client's own rule, so the health check probes the URL the client will use.
        options: dict[str, Any] = {"base_url": resolve_base_url(base_url), "max_retries": 0}
    except ConfigurationError as exc:
        return result("reachable", False, "error", str(exc), "check --base-url")
    options["api_key"] = api_key
    if timeout is not None:  # else the setting's declared default
        options["timeout"] = timeout
    return options


def reachable(transport: SyncTransport, base_url: str) -> CheckResult:
    """``GET /health`` through ``transport``: the first check of every doctor."""
    try:
        health = transport.send(Call("GET", SERVER.health, raise_for_status=False))
    except VLLMEmbeddingError as exc:
        return result("reachable", False, "error", f"{redact_url(base_url)}: {exc}", FIX_REACHABLE)
    ok = health.status_code == 200
    return result("reachable", ok, "error", f"GET /health -> {health.status_code}", FIX_REACHABLE)


_MARKS = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def render_table(checks: Sequence[CheckResult], base_url: str) -> str:
    """A plain-text table, then a fix line under every failed or warned check."""
    width = max(len(c.name) for c in checks)
    lines = [f"vLLM server {base_url}", ""]
    for c in checks:
        lines.append(f"  {_MARKS[c.status]:<4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in ("fail", "warn"):
            lines.append(f"  {'':<4}  {'':<{width}}  fix: {c.fix}")
    errors = sum(c.is_error for c in checks)
    warnings = sum(c.status == "warn" for c in checks)
    lines.append("")
    if errors:
        lines.append(
            f"{errors} error(s), {warnings} warning(s): this server gives wrong or failing results"
        )
    else:
        lines.append(f"no errors, {warnings} warning(s)")
    return "\n".join(lines)


def exit_code(checks: Sequence[CheckResult]) -> int:
    """1 when any ``error`` check failed, else 0."""
    return 1 if any(c.is_error for c in checks) else 0
