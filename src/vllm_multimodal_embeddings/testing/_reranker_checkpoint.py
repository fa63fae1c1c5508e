"""Build the tiny Qwen3-VL-Reranker checkpoint for the CPU reranker test server."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from ._launch import CACHE_DIR, ServerStartError

__all__ = ["ensure_tiny_reranker"]

_HERE = Path(__file__).parent
_BUILDER = _HERE / "tiny_reranker.py"
# The reranker builder imports the embedder's: a change to either must rebuild.
_SOURCES = (_BUILDER, _HERE / "tiny_checkpoint.py")
_STAMP = ".vmme-builder-sha256"


def ensure_tiny_reranker(python: Path, out: Path | None = None) -> Path:
    """Build the tiny reranker checkpoint unless one built by these exact builders is there."""
    out = out or CACHE_DIR / "tiny-qwen3-vl-reranker"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in _SOURCES)).hexdigest()
    stamp = out / _STAMP
    if stamp.exists() and stamp.read_text() == digest:
        return out
    proc = subprocess.run(
        [str(python), str(_BUILDER), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ServerStartError(
            f"building the tiny reranker checkpoint failed ({proc.returncode}):\n"
            f"{proc.stderr[-4000:]}"
        )
    stamp.write_text(digest)
    return out
