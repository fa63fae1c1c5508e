"""The batching group: how a call's inputs are cut into requests and prepared, any endpoint."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _constants as C
from .._settings import POSITIVE, Group, default_workers, optional, setting

__all__ = ["BatchSettings"]


@dataclass(frozen=True)
class BatchSettings(Group):
    """How many inputs go in one request, how large it may be, and who prepares them."""

    batch_size: int | None = setting(None, optional(POSITIVE))
    """Most inputs per request; ``None``: the embedding client adapts it to what the server
    sustains (starting at 16), the reranker sends 16."""
    max_batch_bytes: int = setting(C.DEFAULT_MAX_BATCH_BYTES, POSITIVE)
    """Most encoded bytes per request (images dominate)."""
    prepare_workers: int | None = setting(None, optional(POSITIVE))
    """Threads that decode, resize and encode images; ``None``: the CPU cores available."""

    def __post_init__(self) -> None:
        self._fill_batches()
        self._check_fields()

    def _fill_batches(self) -> None:
        if self.prepare_workers is None:
            object.__setattr__(self, "prepare_workers", default_workers())

    def fixed_batch_size(self) -> int:
        """``batch_size`` when set, else the fixed default (clients that do not tune)."""
        return self.batch_size or C.DEFAULT_BATCH_SIZE
