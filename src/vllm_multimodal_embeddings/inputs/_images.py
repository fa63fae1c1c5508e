"""Pillow work: decode, orient, convert to RGB, fit the pixel budget, encode as a data URI.

Every image form ends up here as encoded bytes or a ``PIL.Image.Image``. Encoded bytes that
need no change are sent untouched, so one image always yields the same data URI whatever form
it came in, and the server's content-hash cache sees the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
import zlib
from urllib.parse import unquote_to_bytes

import numpy as np
from PIL import Image, UnidentifiedImageError

from .._constants import DEFAULT_MAX_SOURCE_PIXELS, DEFAULT_MIN_PIXELS
from .._exceptions import ImageLoadError
from .._redact import redact_url

__all__ = [
    "build_data_uri",
    "describe_source",
    "encode_bytes",
    "encode_pil_image",
    "parse_data_uri",
    "smart_resize",
]

# Formats the server decodes natively; when nothing else must change their bytes go as is.
_PASSTHROUGH_MIME = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp"}
# Lossy sources are re-encoded as JPEG after downscaling; PNG would inflate a photo several-fold.
_LOSSY_FORMATS = frozenset({"JPEG", "MPO"})
_JPEG_QUALITY = 95
# Qwen-VL's vision tokens cover 32x32 pixels (patch 16 x spatial merge 2).
_RESIZE_BLOCK = 32
# The official embedder resizes with PIL's default filter for RGB images (bicubic).
_RESAMPLE = Image.Resampling.BICUBIC
_EXIF_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_WHITE = (255, 255, 255)
# Single-channel high-depth modes Pillow resamples as they are (16-bit ints, 32-bit ints, float).
_NATIVE_RESIZE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
# Modes Image.reduce (the cheap box pre-pass of reducing_gap) accepts among those.
_REDUCIBLE_MODES = frozenset({"I", "F"})
_MAX_SOURCE_CHARS = 40


def describe_source(source: str) -> str:
    """Shorten a source for messages: data URIs (and absurdly long URLs) are cut, and URL
    credentials and query strings (signatures of pre-signed URLs) are redacted."""
    if source[:5].lower() == "data:":
        limit = _MAX_SOURCE_CHARS
    else:
        source = redact_url(source)
        limit = 200
    if len(source) <= limit:
        return source
    return f"{source[:limit]}... ({len(source)} chars)"


def build_data_uri(data: bytes, subtype: str) -> str:
    """``data:image/<subtype>;base64,...`` for encoded image bytes."""
    return f"data:image/{subtype};base64,{base64.b64encode(data).decode('ascii')}"


def parse_data_uri(uri: str, *, index: int, max_bytes: int | None = None) -> bytes:
    """Decode the payload of a ``data:`` URI (base64 or percent-encoded).

    With ``max_bytes``, a payload that must decode to more is refused before decoding.
    """
    source = describe_source(uri)
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ImageLoadError("malformed data URI: no ',' separator", index=index, source=source)
    too_big = ImageLoadError(
        f"data URI payload over the limit of {max_bytes} bytes", index=index, source=source
    )
    params = header[5:].split(";")
    mime = params[0].strip().lower()
    if mime and not mime.startswith("image/"):
        raise ImageLoadError(f"data URI is not an image ({mime})", index=index, source=source)
    if "base64" not in (p.strip().lower() for p in params[1:]):
        data = unquote_to_bytes(payload)  # never longer than the payload already in memory
        if max_bytes is not None and len(data) > max_bytes:
            raise too_big
        return data
    # Line breaks and padding slips are common in hand-built URIs; anything else is corruption.
    compact = "".join(payload.split())
    # Checked before decoding: base64 packs 3 bytes in 4 characters.
    if max_bytes is not None and len(compact) // 4 * 3 > max_bytes:
        raise too_big
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageLoadError(
            f"invalid base64 in data URI: {exc}", index=index, source=source
        ) from exc


def encode_bytes(
    data: bytes,
    *,
    max_pixels: int,
    index: int,
    source: str,
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
) -> str:
    """Validate encoded image bytes and return the data URI to send.

    The original bytes are kept when the format is JPEG/PNG/WEBP, the mode RGB, no EXIF
    rotation is pending and the pixel count is within ``max_pixels``; otherwise the image is
    re-encoded (JPEG q95 for a downscaled JPEG, lossless PNG for everything else). Images
    whose header declares more than ``max_source_pixels`` are refused before decoding.
    """
    if not data:
        raise ImageLoadError("empty image data", index=index, source=source)
    size = _plain_jpeg_size(data)
    if size is not None and size[0] * size[1] <= min(max_source_pixels, max_pixels):
        return build_data_uri(data, "jpeg")
    try:
        im = _open(data)
    except UnidentifiedImageError as exc:
        raise ImageLoadError("not a recognized image", index=index, source=source) from exc
    # Pillow refuses images over 2 * Image.MAX_IMAGE_PIXELS from the header alone (a global
    # we must not flip per call: other threads decode too). Our cap defaults to that limit.
    except Image.DecompressionBombError as exc:
        pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        hint = (
            f"; max_source_pixels={max_source_pixels:,} also needs PIL.Image.MAX_IMAGE_PIXELS "
            "raised"
            if max_source_pixels > pillow_limit
            else ""
        )
        raise ImageLoadError(
            f"image too large to decode: {exc}{hint}", index=index, source=source
        ) from exc
    # Pillow's decoders raise a zoo of types on malformed headers (OSError, SyntaxError,
    # struct.error, ...); all mean the same thing to the caller.
    except Exception as exc:
        raise ImageLoadError(f"cannot open image: {exc}", index=index, source=source) from exc
    width, height = im.size
    if width * height > max_source_pixels:
        im.close()
        raise ImageLoadError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_source_pixels:,} (max_source_pixels)",
            index=index,
            source=source,
        )
    with im:
        fmt = im.format or ""
        target = _fit(im.size, max_pixels)
        if target is None and _sendable_as_is(im, data, fmt, index=index, source=source):
            return build_data_uri(data, _PASSTHROUGH_MIME[fmt])
        if target is not None and fmt in _LOSSY_FORMATS:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the target): a 12 MP
            # photo is then decoded once, at a fraction of the cost, before the bicubic pass.
            im.draft(None, target)
        try:
            im.load()
            # After load: PNG may keep its eXIf chunk behind the pixel data.
            orientation = _orientation(im)
        except Exception as exc:  # truncated or corrupt pixel data; see above for why broad
            raise ImageLoadError(f"cannot decode image: {exc}", index=index, source=source) from exc
        animated = getattr(im, "n_frames", 1) > 1
        if (
            fmt in _PASSTHROUGH_MIME
            and im.mode == "RGB"
            and "transparency" not in im.info
            and orientation == 1
            and target is None
            and not animated
        ):
            return build_data_uri(data, _PASSTHROUGH_MIME[fmt])
        # Encode before the with-block closes ``im``: ``out`` may be ``im`` itself.
        out = _normalize(im, orientation, target, index=index, source=source)
        if target is not None and fmt in _LOSSY_FORMATS:
            return build_data_uri(_save(out, "JPEG"), "jpeg")
        return build_data_uri(_save(out, "PNG"), "png")


def _sendable_as_is(im: Image.Image, data: bytes, fmt: str, *, index: int, source: str) -> bool:
    """Whether an in-budget image's bytes can go as they are, decided without a full decode.

    The header gives format, mode, transparency, frames and (JPEG) the EXIF orientation; the
    data is only checked to be structurally intact, since the server decodes it anyway. A
    baseline JPEG must end with its EOI marker and have no other marker in its entropy-coded
    data (what truncation and overwritten bytes leave); any other JPEG (progressive, restart
    markers, bytes after EOI, a failed check) is entropy-decoded at 1/8 scale, which reads every
    Huffman code at a fraction of a full decode's cost. A PNG has every chunk's CRC checked and
    must end with IEND. ``False`` sends the image down the full path (decode, convert,
    re-encode), which also names what is wrong with a file that only looked sendable; WEBP
    always goes that way.
    """
    if (
        fmt not in _PASSTHROUGH_MIME
        or im.mode != "RGB"
        or "transparency" in im.info
        or getattr(im, "n_frames", 1) > 1
    ):
        return False
    if fmt in _LOSSY_FORMATS:
        if _orientation(im) != 1:
            return False
        if _jpeg_intact(data):
            return True
        # draft(None, (1, 1)) asks libjpeg for its smallest scale (1/8): DCT blocks are
        # reduced to their DC value, but the whole bitstream is still Huffman-decoded.
        im.draft(None, (1, 1))
        try:
            im.load()
        except Exception as exc:  # corrupt entropy data; see encode_bytes for why broad
            raise ImageLoadError(f"cannot decode image: {exc}", index=index, source=source) from exc
        return True
    if fmt == "PNG":
        # PNG's getexif() decodes the pixels (an eXIf chunk may follow them): any eXIf chunk
        # takes the full path, where the orientation is read after decoding.
        return _png_intact(data)
    return False


# JPEG segments after which the header walk gives up and Pillow decides: any APP1 (EXIF, and
# XMP, where Pillow also reads an orientation), MPF (a multi-picture file, MPO to Pillow) and
# Adobe (colour transforms).
_APP1 = 0xE1
_NEEDS_PILLOW = (b"MPF\x00", b"Adobe")
# SOF0 and SOF1: baseline and extended sequential Huffman, the frames _jpeg_intact can vouch for.
_SEQUENTIAL_SOF = frozenset({0xC0, 0xC1})


def _plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG that can go as it is, read from its segments alone.

    What Pillow's header parse decides for ``_sendable_as_is`` costs ~150 us per image in
    Python (most of a small JPEG's preparation, against ~40 us here): 8-bit, three
    components (RGB to Pillow), sequential, structurally intact (:func:`_scan_intact`), and
    no APP1 (EXIF, XMP), MPF or Adobe segment. ``None`` when anything else is found: the caller then
    opens the image with Pillow, which decides (and names what is wrong).
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    size = None
    pos, end = 2, len(data)
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body = pos + 4
        if marker == 0xDA:  # start of scan: the header is over
            return size if size is not None and _scan_intact(data, pos) else None
        if marker == _APP1 or (0xE0 <= marker <= 0xEF and data.startswith(_NEEDS_PILLOW, body)):
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header
            if marker not in _SEQUENTIAL_SOF or size is not None or body + 6 > end:
                return None
            precision, components = data[body], data[body + 5]
            height = int.from_bytes(data[body + 1 : body + 3], "big")
            width = int.from_bytes(data[body + 3 : body + 5], "big")
            if precision != 8 or components != 3 or not width or not height:
                return None
            size = (width, height)
        pos += 2 + length
    return None


def _jpeg_intact(data: bytes) -> bool:
    """A baseline JPEG: one scan whose data holds no marker but the final EOI.

    In entropy-coded data a 0xFF byte is always followed by a stuffed 0x00; every other 0xFF
    starts a marker. Counting both (in C, two passes) finds the markers without a Python loop.
    Restart markers, progressive scans and fill bytes make this ``False``: not proof of damage.
    """
    # Walk the header's segments by their lengths to the first scan (SOS): an EXIF thumbnail
    # inside APP1 holds a scan of its own, which a plain search would find first.
    pos, end = 2, len(data)
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xDA:
            return _scan_intact(data, pos)
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return False


def _scan_intact(data: bytes, sos: int) -> bool:
    """From the SOS marker at ``sos``: no marker in the data but the EOI that ends it."""
    if not data.endswith(b"\xff\xd9") or sos + 2 > len(data) - 2:
        return False
    # Every 0xFF before the EOI must be a stuffed 0xFF 0x00. numpy finds them in ~6 us for a
    # 20 kB JPEG; bytes.count of 0xFF and of 0xFF 0x00 took ~21 us, a fifth of its preparation.
    scan = np.frombuffer(data, dtype=np.uint8)[sos + 2 :]
    marks = np.flatnonzero(scan[:-2] == 0xFF)
    return not scan[marks + 1].any()


def _png_intact(data: bytes) -> bool:
    """Every chunk's CRC matches, the last chunk is IEND at the very end, and no eXIf chunk."""
    view = memoryview(data)
    pos = 8  # past the signature, which Image.open has checked
    end = len(data)
    while pos + 12 <= end:
        length = int.from_bytes(view[pos : pos + 4], "big")
        body_end = pos + 8 + length
        if body_end + 4 > end:
            return False
        kind = bytes(view[pos + 4 : pos + 8])
        crc = int.from_bytes(view[body_end : body_end + 4], "big")
        if zlib.crc32(view[pos + 4 : body_end]) != crc or kind == b"eXIf":
            return False
        pos = body_end + 4
        if kind == b"IEND":
            return pos == end
    return False


def encode_pil_image(im: Image.Image, *, max_pixels: int, index: int, source: str) -> str:
    """RGB, EXIF orientation and pixel budget applied to an in-memory image; PNG data URI.

    PNG is lossless and byte-deterministic, so the same pixels always give the same URI.
    """
    try:
        im.load()
    except Exception as exc:  # a lazily opened image whose file is broken or closed
        raise ImageLoadError(f"cannot decode image: {exc}", index=index, source=source) from exc
    out = _normalize(im, _orientation(im), _fit(im.size, max_pixels), index=index, source=source)
    return build_data_uri(_save(out, "PNG"), "png")


def _open(data: bytes) -> Image.Image:
    # Image.open reads only the header; pixels are decoded once, later, by load(). Pillow
    # warns between 1x and 2x MAX_IMAGE_PIXELS; the caller's own cap replaces that warning
    # (which would be an exception wherever warnings are errors).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def _orientation(im: Image.Image) -> int:
    value = im.getexif().get(_EXIF_ORIENTATION, 1)
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _fit(size: tuple[int, int], max_pixels: int) -> tuple[int, int] | None:
    """Where an image over ``max_pixels`` is resized to; ``None`` when it is within budget.

    The target is Qwen3-VL-Embedding's own smart resize (sides multiples of 32, area within
    ``DEFAULT_MIN_PIXELS..max_pixels``), so the server finds nothing left to resize: one
    resampling, as in the official embedder, instead of ours and then the server's.
    """
    w, h = size
    if w * h <= max_pixels:
        return None
    return smart_resize(w, h, max_pixels=max_pixels)


def smart_resize(
    width: int, height: int, *, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int
) -> tuple[int, int]:
    """The (width, height) Qwen-VL's smart resize gives: multiples of 32 within the budget.

    Each side goes to its nearest multiple of 32; when that leaves the budget, both are scaled
    by the area ratio and floored (too many pixels) or ceiled (too few) to multiples of 32.
    """
    block = _RESIZE_BLOCK
    w = max(block, round(width / block) * block)
    h = max(block, round(height / block) * block)
    if w * h > max_pixels:
        scale = math.sqrt(width * height / max_pixels)
        w = max(block, math.floor(width / scale / block) * block)
        h = max(block, math.floor(height / scale / block) * block)
    elif w * h < min_pixels:
        scale = math.sqrt(min_pixels / (width * height))
        w = math.ceil(width * scale / block) * block
        h = math.ceil(height * scale / block) * block
    return w, h


def _normalize(
    im: Image.Image,
    orientation: int,
    target: tuple[int, int] | None,
    *,
    index: int,
    source: str,
) -> Image.Image:
    if target is not None and im.mode in _NATIVE_RESIZE_MODES and im.size != target:
        # Downscale high-depth pixels before converting them: converting an 88 MP 16-bit
        # scan first costs gigabytes (float64 per pixel) for pixels thrown away next.
        # reducing_gap box-averages down to 3x the target first, then the resampler finishes;
        # Pillow cannot box-reduce 16-bit modes, which it resamples directly.
        gap = 3.0 if im.mode in _REDUCIBLE_MODES else None
        im = im.resize(target, _RESAMPLE, reducing_gap=gap)
    out = _to_rgb(im, index=index, source=source)
    if target is not None and out.size != target:
        out = out.resize(target, _RESAMPLE)
    # Transposing after the resize moves fewer pixels; the budget is symmetric in w and h.
    if orientation != 1:
        out = out.transpose(_TRANSPOSE[orientation])
    return out


def _to_rgb(im: Image.Image, *, index: int, source: str) -> Image.Image:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        # Transparent pixels become white, as a viewer would show them on a page.
        rgba = im.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(im)
    try:
        return im.convert("RGB")
    except ValueError as exc:  # modes Pillow cannot map to RGB (e.g. LAB without a profile)
        raise ImageLoadError(
            f"unsupported image mode {mode!r}", index=index, source=source
        ) from exc


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    # convert("RGB") clips 16-bit samples at 255, turning most scans white; rescale instead.
    import numpy as np

    arr = np.asarray(im, dtype=np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if im.mode == "F" and peak <= 1.0:
        arr = arr * 255.0
    elif im.mode.startswith("I;16") or peak > 255.0:
        arr = arr / (65535.0 / 255.0) if peak <= 65535.0 else arr * (255.0 / peak)
    gray = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    return gray.convert("RGB")


def _save(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, format="JPEG", quality=_JPEG_QUALITY)
    else:
        im.save(buf, format="PNG")
    return buf.getvalue()
