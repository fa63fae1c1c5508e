"""A progress display for bulk runs: tqdm when installed, else one plain line now and then."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Items done, items/s and ETA; call with (done now, done before), close at the end."""

    def __init__(
        self,
        total: int | None,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        every_s: float = 2.0,
    ) -> None:
        self._total = total
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._every = every_s
        self._bar: Any = None
        self._start = time.perf_counter()
        self._last = 0.0
        self._done = 0
        self._before = 0
        if enabled:
            try:
                from tqdm import tqdm  # type: ignore[import-untyped]
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, unit="item", file=self._stream, smoothing=0.1)

    def __call__(self, done: int, before: int) -> None:
        if not self._enabled:
            return
        if self._bar is not None:
            if before != self._before:
                self._bar.total = None if self._total is None else self._total - before
            self._bar.update(done - self._done)
        self._done, self._before = done, before
        now = time.perf_counter()
        if self._bar is None and now - self._last >= self._every:
            self._last = now
            print(self.line(now), file=self._stream, flush=True)

    def line(self, now: float | None = None) -> str:
        """``done/total items, rate items/s, ETA``."""
        elapsed = (now or time.perf_counter()) - self._start
        rate = self._done / elapsed if elapsed > 0 else 0.0
        total = None if self._total is None else self._total - self._before
        text = f"{self._done}/{total if total is not None else '?'} items, {rate:.1f} items/s"
        if total is not None and rate > 0:
            text += f", ETA {max(total - self._done, 0) / rate:.0f} s"
        return text

    def close(self) -> None:
        """Finish the bar (or print the last line)."""
        if self._bar is not None:
            self._bar.close()
        elif self._enabled:
            print(self.line(), file=self._stream, flush=True)
