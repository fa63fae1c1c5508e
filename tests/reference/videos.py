"""Small deterministic test videos, made with PyAV (the ``video`` extra) in the test process.

Smooth gradients with a moving red block: every frame differs, so a frame sampled at another
index gives another vector. MPEG-4 part 2 at a high bit rate: FFmpeg's own encoder (in every
PyAV wheel), readable by OpenCV (vLLM's decoder and the reference's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class VideoSpec:
    """``seconds`` at ``fps`` frames per second, ``width`` x ``height`` (even sides)."""

    seconds: float
    fps: int
    width: int
    height: int

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)


def make_video(path: Path, spec: VideoSpec) -> Path:
    """Write ``spec`` as an MP4 at ``path`` (a few hundred KB at most for test sizes)."""
    import av

    w, h = spec.width, spec.height
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 8_000_000
        last = max(1, spec.frames - 1)
        for i in range(spec.frames):
            t = i / last
            img = np.empty((h, w, 3), np.float32)
            img[..., 0] = 255 * (xx / w) * (1 - t)
            img[..., 1] = 255 * (yy / h) * t
            img[..., 2] = 128 + 100 * np.sin(xx / 17 + i / 3)
            x0 = int((w - w // 5) * t)
            y0 = int((h - h // 4) * (0.5 + 0.5 * np.sin(i / 5)))
            img[y0 : y0 + h // 4, x0 : x0 + w // 5] = (255, 40, 40)
            rgb = np.clip(img, 0, 255).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    return path
