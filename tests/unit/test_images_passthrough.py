"""In-budget images go as they are after a cheap check: header, orientation, intact data."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vllm_multimodal_embeddings._exceptions import ImageLoadError
from vllm_multimodal_embeddings.inputs import _images
from vllm_multimodal_embeddings.inputs._images import (
    _jpeg_intact,
    _plain_jpeg_size,
    _png_intact,
    _sendable_as_is,
    encode_bytes,
)

BUDGET = 1_843_200


def photo(size: tuple[int, int] = (640, 480), seed: int = 0) -> Image.Image:
    """Noisy gradients: compresses like a photo, unlike a flat colour."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 200, y / h * 200, (x + y) / (w + h) * 200], axis=-1)
    noise = rng.normal(0, 20, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def sent(data: bytes, **kw: object) -> tuple[str, bytes]:
    uri = encode_bytes(data, max_pixels=BUDGET, index=5, source="bytes", **kw)  # type: ignore[arg-type]
    header, _, payload = uri.partition(",")
    return header, base64.b64decode(payload)


def decision(data: bytes) -> bool:
    im = Image.open(io.BytesIO(data))
    return _sendable_as_is(im, data, im.format or "", index=0, source="x")


def corrupt_middle(data: bytes) -> bytes:
    """The middle third overwritten with 0xFF: the header and the end marker stay valid."""
    n = len(data)
    return data[: n // 3] + b"\xff" * (n // 3) + data[2 * n // 3 :]


def test_in_budget_jpeg_is_sent_byte_for_byte() -> None:
    data = save(photo(), "JPEG", quality=90)
    assert decision(data) is True
    assert sent(data) == ("data:image/jpeg;base64", data)


def test_in_budget_png_is_sent_byte_for_byte() -> None:
    data = save(photo((320, 240)), "PNG")
    assert decision(data) is True
    assert sent(data) == ("data:image/png;base64", data)


def random_middle(data: bytes, seed: int) -> bytes:
    n = len(data)
    return data[: n // 3] + np.random.default_rng(seed).bytes(n // 3) + data[2 * n // 3 :]


@pytest.mark.parametrize(
    "damage",
    [lambda d: corrupt_middle(d), lambda d: random_middle(d, 0)],
    ids=["0xFF-filled", "random bytes"],
)
def test_corrupt_jpeg_with_valid_header_and_end_is_refused_here(damage: object) -> None:
    data = damage(save(photo(seed=1), "JPEG", quality=90))  # type: ignore[operator]
    full = Image.open(io.BytesIO(data))  # the header alone is fine
    assert data.endswith(b"\xff\xd9")
    assert not _jpeg_intact(data)
    with pytest.raises(OSError):
        full.load()  # what a full decode finds
    with pytest.raises(ImageLoadError) as info:
        sent(data)
    assert info.value.index == 5
    assert "cannot decode image" in str(info.value)


def test_jpeg_structure_check() -> None:
    data = save(photo(), "JPEG", quality=90)
    assert _jpeg_intact(data)
    assert not _jpeg_intact(data[:-2])  # no EOI
    assert not _jpeg_intact(data + b"\x00")  # bytes after EOI
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    assert _jpeg_intact(save(photo(), "JPEG", exif=exif.tobytes()))
    # Several scans: not provably intact by structure, so decoded at 1/8, then sent as is.
    progressive = save(photo(), "JPEG", progressive=True)
    assert not _jpeg_intact(progressive)
    assert sent(progressive) == ("data:image/jpeg;base64", progressive)
    with pytest.raises(ImageLoadError):
        sent(random_middle(progressive, 3))


def test_truncated_jpeg_is_refused_here() -> None:
    data = save(photo(), "JPEG", quality=90)
    with pytest.raises(ImageLoadError, match="cannot decode image") as info:
        sent(data[: len(data) // 2])
    assert info.value.index == 5


def test_exif_rotated_jpeg_takes_the_full_path_and_is_turned() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = save(photo((64, 48)), "JPEG", exif=exif.tobytes())
    assert decision(data) is False
    header, out = sent(data)
    assert header == "data:image/png;base64"
    assert Image.open(io.BytesIO(out)).size == (48, 64)


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_non_rgb_jpeg_takes_the_full_path(mode: str) -> None:
    data = save(photo((64, 48)).convert(mode), "JPEG")
    assert decision(data) is False
    header, out = sent(data)
    assert header == "data:image/png;base64"
    assert Image.open(io.BytesIO(out)).mode == "RGB"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_png_check_walks_chunks_and_crcs() -> None:
    data = save(photo((32, 24)), "PNG")
    assert _png_intact(data)
    # One flipped bit inside the pixel data: its chunk's CRC no longer matches.
    idat = data.index(b"IDAT") + 10
    assert not _png_intact(data[:idat] + bytes([data[idat] ^ 1]) + data[idat + 1 :])
    assert not _png_intact(data[:-5])  # cut inside IEND
    assert not _png_intact(data + b"junk")  # bytes after IEND
    # An eXIf chunk, wherever it sits, leaves the orientation to the full path.
    iend = len(data) - 12
    exif = _chunk(b"eXIf", Image.Exif().tobytes())
    assert not _png_intact(data[:iend] + exif + data[iend:])


def test_png_with_exif_after_the_pixels_is_still_turned() -> None:
    data = save(photo((64, 48)), "PNG")
    exif = Image.Exif()
    exif[0x0112] = 8
    iend = len(data) - 12
    rotated = data[:iend] + _chunk(b"eXIf", exif.tobytes()) + data[iend:]
    _, out = sent(rotated)
    assert Image.open(io.BytesIO(out)).size == (48, 64)


def test_png_with_a_bad_crc_still_goes_when_it_decodes() -> None:
    # The cheap check fails, the full decode (which ignores pixel CRCs, as the server's does)
    # succeeds: the original bytes still go, as before this check existed.
    data = save(photo((32, 24)), "PNG")
    idat = data.index(b"IDAT") + 4
    crc_at = idat + int.from_bytes(data[idat - 8 : idat - 4], "big")
    broken = data[:crc_at] + b"\x00\x00\x00\x00" + data[crc_at + 4 :]
    assert decision(broken) is False
    assert sent(broken) == ("data:image/png;base64", broken)


@pytest.mark.parametrize("fmt", ["WEBP", "GIF"])
def test_other_formats_take_the_full_path(fmt: str) -> None:
    data = save(photo((32, 24)), fmt)
    assert decision(data) is False
    sent(data)  # and still succeed


def test_transparent_png_takes_the_full_path() -> None:
    data = save(photo((32, 24)).convert("RGBA"), "PNG")
    assert decision(data) is False
    _, out = sent(data)
    assert Image.open(io.BytesIO(out)).mode == "RGB"


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf'
    b'-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
)
JPEG_VARIANTS = {
    "baseline": lambda: save(photo(), "JPEG", quality=90),
    "4:4:4, optimized": lambda: save(photo(), "JPEG", quality=95, subsampling=0, optimize=True),
    "tiny": lambda: save(photo((8, 8)), "JPEG"),
    "icc profile": lambda: save(photo(), "JPEG", icc_profile=b"\0" * 300),
    "progressive": lambda: save(photo(), "JPEG", progressive=True),
    "grayscale": lambda: save(photo().convert("L"), "JPEG"),
    "cmyk": lambda: save(photo().convert("CMYK"), "JPEG"),
    "exif rotated": lambda: save(photo(), "JPEG", exif=_exif(6)),
    "exif upright": lambda: save(photo(), "JPEG", exif=_exif(1)),
    "xmp rotated": lambda: save(photo(), "JPEG", xmp=_XMP),
    "over budget": lambda: save(photo((2000, 1500)), "JPEG"),
    "bytes after the end": lambda: save(photo(), "JPEG") + b"trailing",
    "truncated": lambda: save(photo(), "JPEG")[:-500],
    "corrupt middle": lambda: corrupt_middle(save(photo(), "JPEG")),
}
# The variants the header walk sends by itself; every other one goes to Pillow (an image over
# the budget is measured by the walk, then resized by Pillow).
PLAIN = {"baseline", "4:4:4, optimized", "tiny", "icc profile"}
SIZED = PLAIN | {"over budget"}


@pytest.mark.parametrize("name", sorted(JPEG_VARIANTS))
def test_the_header_walk_decides_as_pillow_does(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = JPEG_VARIANTS[name]()
    size = _plain_jpeg_size(data)
    assert (size is not None) == (name in SIZED)
    if size is not None:
        assert size == Image.open(io.BytesIO(data)).size
    try:
        fast: object = sent(data)
    except ImageLoadError as exc:
        fast = str(exc)
    monkeypatch.setattr(_images, "_plain_jpeg_size", lambda data: None)  # Pillow decides
    try:
        slow: object = sent(data)
    except ImageLoadError as exc:
        slow = str(exc)
    assert fast == slow
    if name in PLAIN:
        assert fast == ("data:image/jpeg;base64", data)  # byte for byte


def test_the_header_walk_respects_the_source_pixel_cap() -> None:
    data = save(photo((640, 480)), "JPEG")
    with pytest.raises(ImageLoadError, match="max_source_pixels"):
        sent(data, max_source_pixels=1000)
