"""Bounded resources for local inputs: regular files only, byte caps, a header pixel cap."""

from __future__ import annotations

import base64
import io
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vllm_multimodal_embeddings._exceptions import ImageLoadError
from vllm_multimodal_embeddings.inputs import _images
from vllm_multimodal_embeddings.inputs._read import prepare_image
from vllm_multimodal_embeddings.inputs._settings import ImageSettings


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _claiming(width: int, height: int) -> bytes:
    """A 1x1 grayscale PNG whose header claims ``width`` x ``height``."""
    data = bytearray(_png(Image.new("L", (1, 1))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def _prep(source: object, index: int = 2, **options: object) -> str:
    return prepare_image(source, index=index, options=ImageSettings(**options))  # type: ignore[arg-type]


def _error(source: object, **options: object) -> str:
    started = time.monotonic()
    with pytest.raises(ImageLoadError) as info:
        _prep(source, **options)
    # Refusals come from stat or a header: nothing may block or read much.
    assert time.monotonic() - started < 2.0
    assert info.value.index == 2
    return str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # no writer: opening it for reading would block forever
    for source in (fifo, str(fifo), fifo.as_uri()):
        text = _error(source)
        assert "FIFO" in text and str(fifo) in text


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_is_refused_at_once() -> None:
    text = _error("/dev/zero")
    assert text.startswith("input 2:") and "device" in text and "/dev/zero" in text


def test_directory_is_refused(tmp_path: Path) -> None:
    assert "directory" in _error(tmp_path)


def test_file_over_the_byte_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_png(Image.new("RGB", (64, 64), (1, 2, 3))) + b"\0" * 5000)
    text = _error(path, max_image_bytes=4096)
    assert "over the limit of 4096" in text and str(path) in text
    assert _prep(path, max_image_bytes=10_000).startswith("data:image/")


class _Endless(io.RawIOBase):
    """A stream that never ends, handing out at most 7 bytes a read."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), 7)
        buffer[:n] = b"\0" * n
        return n


def test_endless_stream_is_cut_at_the_cap() -> None:
    assert "more than 1000 bytes" in _error(_Endless(), max_image_bytes=1000)


class _Trickle(io.RawIOBase):
    """A finite stream answering every read with one byte (as pipes may)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= len(self._data) or not len(buffer):
            return 0
        buffer[0] = self._data[self._pos]
        self._pos += 1
        return 1


def test_short_reads_are_collected_until_eof() -> None:
    png = _png(Image.new("RGB", (8, 8), (9, 8, 7)))
    assert _prep(_Trickle(png)) == _prep(png)


def test_huge_data_uri_is_refused_before_decoding() -> None:
    png = _png(Image.new("RGB", (64, 64), (1, 2, 3)))
    uri = "data:image/png;base64," + base64.b64encode(png + b"\0" * 3000).decode()
    text = _error(uri, max_image_bytes=2048)
    assert "over the limit of 2048 bytes" in text
    assert len(text) < 300  # the URI itself is cut in the message
    percent = "data:image/png," + "%00" * 3000
    assert "over the limit of 2048 bytes" in _error(percent, max_image_bytes=2048)


def test_pixel_cap_is_checked_from_the_header() -> None:
    # 144 MP declared in a ~70-byte file: refused by our cap, nothing decoded.
    text = _error(_claiming(12_000, 12_000), max_source_pixels=100_000_000)
    assert "12000x12000 = 144,000,000 pixels, over the limit of 100,000,000" in text
    # 3.6 gigapixels: Pillow's own limit trips first, reported the same way.
    text = _error(_claiming(60_000, 60_000))
    assert "image too large to decode" in text and "3600000000 pixels" in text
    text = _error(_claiming(60_000, 60_000), max_source_pixels=4_000_000_000)
    assert "also needs PIL.Image.MAX_IMAGE_PIXELS raised" in text
    small = _png(Image.new("RGB", (100, 100)))
    assert "10,000 pixels, over the limit of 5,000" in _error(
        small, max_image_pixels=5000, max_source_pixels=5000
    )


def test_pillow_warning_zone_is_handled_by_our_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # Between 1x and 2x MAX_IMAGE_PIXELS Pillow warns (an error under filterwarnings=error);
    # our own cap decides instead, and the image is simply downscaled.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    png = _png(Image.new("RGB", (40, 40), (5, 6, 7)))
    assert _prep(png, max_image_pixels=400).startswith("data:image/png;base64,")


def test_high_depth_is_converted_after_downscaling(monkeypatch: pytest.MonkeyPatch) -> None:
    ramp = (np.linspace(0, 65535, 600, dtype=np.float64)[None, :] * np.ones((400, 1))).astype(
        np.uint16
    )
    png = _png(Image.fromarray(ramp))
    seen: list[tuple[int, int]] = []
    real = _images._high_depth_to_rgb

    def spy(im: Image.Image) -> Image.Image:
        seen.append(im.size)
        return real(im)

    monkeypatch.setattr(_images, "_high_depth_to_rgb", spy)
    uri = _prep(png, max_image_pixels=96 * 64)
    target = _images.smart_resize(600, 400, max_pixels=96 * 64)  # the official target
    assert seen == [target] == [(96, 64)]
    out = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert out.mode == "RGB" and out.size == target
    row = np.asarray(out)[32, :, 0].astype(int)
    # The ramp survives: dark on the left, bright on the right, not clipped to white.
    assert row[0] < 20 and row[-1] > 235 and 100 < row[48] < 155


def test_options_validate_caps() -> None:
    with pytest.raises(ValueError, match="max_image_bytes"):
        ImageSettings(max_image_bytes=0)
    with pytest.raises(ValueError, match="max_source_pixels"):
        ImageSettings(max_image_pixels=1000, max_source_pixels=999)
    assert ImageSettings(remote_allowed_hosts="10.0.0.0/8").remote_allowed_hosts == (  # type: ignore[arg-type]
        "10.0.0.0/8",
    )


def _stale_fstat(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """``os.stat`` and ``os.fstat`` report ``size`` bytes: the file grew after it was measured."""
    from vllm_multimodal_embeddings.inputs import _read as _inputs

    def stale(real: Any) -> Any:
        def measure(target: Any) -> os.stat_result:
            info = list(real(target))
            info[6] = size  # st_size
            return os.stat_result(info)

        return measure

    monkeypatch.setattr(_inputs.os, "stat", stale(os.stat))
    monkeypatch.setattr(_inputs.os, "fstat", stale(os.fstat))


def test_a_file_that_grew_after_fstat_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vllm_multimodal_embeddings.inputs._read import _read_file

    path = tmp_path / "grows.bin"
    path.write_bytes(bytes(range(256)) * 40)  # 10240 bytes
    _stale_fstat(monkeypatch, 100)
    assert _read_file(path, index=0, max_bytes=1 << 20) == path.read_bytes()
    with pytest.raises(ImageLoadError, match="file over the limit of 5000 bytes") as info:
        _read_file(path, index=3, max_bytes=5000)
    assert info.value.index == 3


@pytest.mark.parametrize("reported", [0, 20000], ids=["size-0-like-proc", "cut-short"])
def test_a_file_whose_size_fstat_misreports_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reported: int
) -> None:
    """fstat's size only sizes the first read: a file it calls empty (as /proc reports) or
    larger than it is (cut since) is read to its end, and the cap still holds."""
    from vllm_multimodal_embeddings.inputs._read import _read_file

    path = tmp_path / "odd.bin"
    path.write_bytes(bytes(range(256)) * 40)  # 10240 bytes
    _stale_fstat(monkeypatch, reported)
    assert _read_file(path, index=0, max_bytes=1 << 20) == path.read_bytes()
    if reported == 0:
        with pytest.raises(ImageLoadError, match="file over the limit of 5000 bytes"):
            _read_file(path, index=1, max_bytes=5000)
