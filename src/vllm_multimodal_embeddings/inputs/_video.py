"""Video headers and the official embedder's frame count and pixel bounds for one video.

The server's flags (``server/flags.py``) reproduce the official sampling for most videos. The
rest (an odd official frame count; frames under 131,072 pixels in a video of other than 4
frames) need the request to carry ``media_io_kwargs`` and ``mm_processor_kwargs`` computed here
from the video's header. Reading the header needs PyAV (the ``video`` extra).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from .._constants import (
    VIDEO_FPS,
    VIDEO_FRAME_MAX_PIXELS,
    VIDEO_FRAME_MIN_PIXELS,
    VIDEO_MAX_FRAMES,
    VIDEO_MIN_FRAMES,
)
from .._exceptions import ImageLoadError, InputError

__all__ = [
    "VideoHeader",
    "VideoKwargs",
    "encode_frames",
    "frame_size",
    "frames_to_keep",
    "frames_video_kwargs",
    "official_frame_count",
    "official_video_kwargs",
    "parse_video_data_uri",
    "read_video_header",
    "video_data_uri",
]

_FACTOR = 32  # patch 16 x spatial merge 2


@dataclass(frozen=True, slots=True)
class VideoHeader:
    """What a video's container says about it: frame count, frames per second, frame size."""

    frames: int
    fps: float
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class VideoKwargs:
    """Per-request fields that make vLLM sample and size one video like the official embedder.

    Attributes:
        media_io_kwargs: the request's ``media_io_kwargs`` (frame sampling).
        mm_processor_kwargs: the request's ``mm_processor_kwargs`` (per-frame pixel bounds).
    """

    media_io_kwargs: dict[str, dict[str, Any]]
    mm_processor_kwargs: dict[str, Any]


def read_video_header(data: bytes | io.IOBase, *, index: int, source: str) -> VideoHeader:
    """The header of an encoded video (its bytes, or a seekable file such as a remote one
    read in ranges); a typed error naming the input when it cannot be read."""
    try:
        import av
    except ImportError as exc:
        raise InputError(
            "reading a video's frame count needs PyAV: pip install "
            "'vllm-multimodal-embeddings[video]' "
            f"(video {source!r})",
            index=index,
        ) from exc
    try:
        file = io.BytesIO(data) if isinstance(data, bytes) else data
        with av.open(file, mode="r") as container:
            if not container.streams.video:
                raise ImageLoadError("no video stream in the file", index=index, source=source)
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = int(stream.frames or 0)
            if frames <= 0 and stream.duration is not None and stream.time_base is not None:
                # Containers without a frame count (some WebM, MKV): duration x rate, as
                # OpenCV (vLLM's decoder) estimates it.
                frames = round(float(stream.duration * stream.time_base) * fps)
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    except ImageLoadError:
        raise
    except Exception as exc:  # PyAV raises its own error types for every kind of bad input
        raise ImageLoadError(f"cannot read video: {exc}", index=index, source=source) from exc
    if frames <= 0 or fps <= 0 or width <= 0 or height <= 0:
        raise ImageLoadError(
            f"video header gives {frames} frames at {fps} fps, {width}x{height}",
            index=index,
            source=source,
        )
    return VideoHeader(frames=frames, fps=fps, width=width, height=height)


def official_frame_count(frames: int, fps: float) -> int:
    """Frames the official embedder samples (qwen_vl_utils ``smart_nframes``, 1/s, 4..64, even)."""
    wanted = min(max(frames / fps * VIDEO_FPS, VIDEO_MIN_FRAMES), VIDEO_MAX_FRAMES, frames)
    return max(2, math.floor(wanted / 2) * 2)


def _server_frame_count(frames: int, fps: float) -> int:
    """Frames vLLM 0.32's Qwen3-VL loader samples under the project's ``--media-io-kwargs``."""
    return min(max(int(frames / fps * VIDEO_FPS), VIDEO_MIN_FRAMES), VIDEO_MAX_FRAMES, frames)


def official_video_kwargs(header: VideoHeader) -> VideoKwargs | None:
    """Per-request fields for one video, or ``None`` when the server's flags already match.

    The flags bound the whole video to at least 4 x 131,072 pixels; the official embedder bounds
    each frame to 131,072. They agree for 4 frames, and for any count when no frame is upscaled.
    The request's minimum stays at the flags' value unless frames are upscaled: transformers
    also floors each frame's MAXIMUM at 1.05 x the video's minimum, which ``count`` x 131,072
    would push over the official 786,432 from 6 frames on.
    """
    count = official_frame_count(header.frames, header.fps)
    h = max(_FACTOR, round(header.height / _FACTOR) * _FACTOR)
    w = max(_FACTOR, round(header.width / _FACTOR) * _FACTOR)
    upscaled = h * w < VIDEO_FRAME_MIN_PIXELS
    flags_min = VIDEO_MIN_FRAMES * VIDEO_FRAME_MIN_PIXELS
    min_pixels = (count if upscaled else min(count, VIDEO_MIN_FRAMES)) * VIDEO_FRAME_MIN_PIXELS
    if count == _server_frame_count(header.frames, header.fps) and min_pixels == flags_min:
        return None
    return VideoKwargs(
        media_io_kwargs={"video": {"fps": VIDEO_FPS, "max_frames": count}},
        mm_processor_kwargs={
            "videos_kwargs": {
                "min_pixels": min_pixels,
                "max_pixels": VIDEO_MAX_FRAMES * VIDEO_FRAME_MAX_PIXELS,
                "cap_pixels_per_frame": True,
            }
        },
    )


def video_mime(data: bytes) -> str:
    """A MIME type for the ``data:`` URI of an encoded video (``video/mp4`` unless told)."""
    if data[4:8] == b"ftyp":
        return "video/quicktime" if data[8:10] == b"qt" else "video/mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video/x-msvideo"
    return "video/mp4"


def video_data_uri(data: bytes) -> str:
    """``data:video/...;base64,...`` for encoded video bytes."""
    return f"data:{video_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def parse_video_data_uri(uri: str, *, index: int, max_bytes: int) -> bytes:
    """The payload of a ``data:`` URI holding a video (base64 or percent-encoded)."""
    from ._images import describe_source

    source = describe_source(uri)
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ImageLoadError("malformed data URI: no ',' separator", index=index, source=source)
    params = [p.strip().lower() for p in header[5:].split(";")]
    if params[0] and not params[0].startswith("video/"):
        raise ImageLoadError(f"data URI is not a video ({params[0]})", index=index, source=source)
    if "base64" in params[1:]:
        compact = "".join(payload.split())
        if len(compact) // 4 * 3 > max_bytes:
            raise ImageLoadError(
                f"data URI payload over the limit of {max_bytes} bytes", index=index, source=source
            )
        try:
            data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageLoadError(
                "data URI is not valid base64", index=index, source=source
            ) from exc
    else:
        data = unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise ImageLoadError(
            f"data URI payload over the limit of {max_bytes} bytes", index=index, source=source
        )
    return data


# A video given as a list of frames (the official embedder's other video form): thinned to 64
# frames, each resized as an image, padded to an even count, each frame then bounded by a total
# of 10 frames at the maximum, and described to the processor as sampled at 2 frames per second.
FRAMES_FPS = 2
FRAMES_TOTAL_PIXELS = 10 * VIDEO_FRAME_MAX_PIXELS
_IMAGE_MAX_PIXELS = 16384 * _FACTOR * _FACTOR  # qwen_vl_utils' image default for frames


def frames_to_keep(count: int) -> list[int]:
    """Indices of the frames the official embedder keeps of ``count`` (floored linspace)."""
    import numpy as np

    if count <= VIDEO_MAX_FRAMES:
        return list(range(count))
    return [int(i) for i in np.linspace(0, count - 1, VIDEO_MAX_FRAMES, dtype=int)]


def frame_size(width: int, height: int) -> tuple[int, int]:
    """The size a frame of a frame list is resized to first, as an image (sides of 32)."""
    from ._images import smart_resize

    return smart_resize(width, height, max_pixels=_IMAGE_MAX_PIXELS)


def frames_video_kwargs(count: int, width: int, height: int) -> VideoKwargs:
    """Request fields for ``count`` (even) frames of ``width`` x ``height`` sent as a video."""
    per_frame_max = max(
        min(VIDEO_FRAME_MAX_PIXELS, FRAMES_TOTAL_PIXELS / count * 2),
        int(VIDEO_FRAME_MIN_PIXELS * 1.05),
    )
    upscaled = width * height < VIDEO_FRAME_MIN_PIXELS
    # transformers floors each frame's maximum at 1.05 x the video's minimum: keep the minimum
    # tiny unless the frames are upscaled (then the maximum plays no part).
    min_pixels = count * VIDEO_FRAME_MIN_PIXELS if upscaled else VIDEO_FRAME_MIN_PIXELS
    return VideoKwargs(
        media_io_kwargs={"video": {"fps": FRAMES_FPS, "max_frames": count}},
        mm_processor_kwargs={
            "videos_kwargs": {
                "min_pixels": min_pixels,
                "max_pixels": math.floor(per_frame_max * count),
                "cap_pixels_per_frame": True,
            }
        },
    )


def encode_frames(frames: list[Any], *, index: int) -> bytes:
    """Equal-size RGB PIL frames as a lossless video at ``FRAMES_FPS`` (PNG frames in MOV)."""
    import numpy as np

    try:
        import av
    except ImportError as exc:
        raise InputError(
            "a video given as frames is sent as a lossless video made with PyAV: pip install "
            "'vllm-multimodal-embeddings[video]'",
            index=index,
        ) from exc
    buf = io.BytesIO()
    width, height = frames[0].size
    with av.open(buf, "w", format="mov") as out:
        stream = out.add_stream("png", rate=FRAMES_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        for frame in frames:
            rgb = np.asarray(frame, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    return buf.getvalue()
