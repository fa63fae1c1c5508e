"""Drive ``qwen3_vl_reference.py`` in the server venv from the tests (JSON lines over a pipe).

The reference loads torch and the checkpoint once (seconds), then answers many requests: a
session-scoped fixture keeps one process for every parity test.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCRIPT = Path(__file__).with_name("qwen3_vl_reference.py")


@dataclass(frozen=True)
class Part:
    """One part of a reference input: ``kind`` ``text`` (the text), ``image`` or ``video`` (a
    file path), or ``frames`` (a video as image files, ``paths``)."""

    kind: str
    value: str
    paths: tuple[str, ...] = ()

    @classmethod
    def text(cls, text: str) -> Part:
        return cls("text", text)

    @classmethod
    def image(cls, path: Path) -> Part:
        return cls("image", str(path))

    @classmethod
    def video(cls, path: Path) -> Part:
        return cls("video", str(path))

    @classmethod
    def frames(cls, paths: list[Path]) -> Part:
        return cls("frames", "", tuple(str(p) for p in paths))

    def to_json(self) -> dict[str, object]:
        if self.kind == "text":
            return {"type": "text", "text": self.value}
        if self.kind == "frames":
            return {"type": "frames", "paths": list(self.paths)}
        return {"type": self.kind, "path": self.value}


@dataclass(frozen=True)
class Reference:
    """The reference's answer for one input."""

    vector: np.ndarray
    prompt_tokens: int
    image_tokens: int
    sizes: list[tuple[int, int]]
    video_tokens: int = 0
    frames: tuple[int, ...] = ()
    """Frames the processor got, per video."""
    frame_sizes: tuple[tuple[int, int], ...] = ()
    """(width, height) of each video's frames after the recipe's resize."""


class ReferenceEmbedder:
    """A running reference process; ``embed`` blocks until it answers."""

    def __init__(self, python: Path, checkpoint: Path, log_path: Path) -> None:
        self._log = log_path.open("w")
        self._proc = subprocess.Popen(
            [str(python), str(SCRIPT), "--checkpoint", str(checkpoint)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.log_path = log_path
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"reference embedder did not start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._log.flush()
            raise RuntimeError(
                f"reference embedder exited; log {self.log_path}:\n"
                + self.log_path.read_text()[-3000:]
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    def embed(self, items: list[tuple[str, list[Part]]]) -> list[Reference]:
        """``items`` are ``(instruction, parts)``; one :class:`Reference` per item, in order."""
        assert self._proc.stdin is not None
        request = {
            "items": [
                {
                    "instruction": instruction,
                    "parts": [p.to_json() for p in parts],
                }
                for instruction, parts in items
            ]
        }
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"reference embedder failed: {reply['error']}")
        return [
            Reference(
                np.asarray(v, dtype=np.float64),
                p,
                i,
                [tuple(s) for s in sizes],
                video_tokens=vt,
                frames=tuple(frames),
                frame_sizes=tuple((w, h) for w, h in frame_sizes),
            )
            for v, p, i, sizes, vt, frames, frame_sizes in zip(
                reply["vectors"],
                reply["prompt_tokens"],
                reply["image_tokens"],
                reply["sizes"],
                reply["video_tokens"],
                reply["frames"],
                reply["frame_sizes"],
                strict=True,
            )
        ]

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log.close()
