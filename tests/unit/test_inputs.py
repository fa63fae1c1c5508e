"""Unit tests for the inputs layer: every accepted form, normalization, and every error path."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from vllm_multimodal_embeddings._constants import DEFAULT_MAX_PIXELS
from vllm_multimodal_embeddings._exceptions import ImageLoadError, InputError
from vllm_multimodal_embeddings._types import Content
from vllm_multimodal_embeddings.inputs._images import smart_resize
from vllm_multimodal_embeddings.inputs._prepared import PreparedInput, PreparedPart
from vllm_multimodal_embeddings.inputs._read import (
    ImageSettings,
    prepare_image,
    prepare_input,
    prepare_inputs,
)

OPTS = ImageSettings()


# --- helpers ---


def gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A deterministic image with structure (so rotation and scaling are observable)."""
    w, h = size
    im = Image.new("RGB", size)
    im.putdata(
        [
            ((x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1), 128)
            for y in range(h)
            for x in range(w)
        ]
    )
    return im if mode == "RGB" else im.convert(mode)


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def decode_uri(uri: str) -> tuple[str, bytes, Image.Image]:
    header, _, payload = uri.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64")
    raw = base64.b64decode(payload)
    im = Image.open(io.BytesIO(raw))
    im.load()
    return header[len("data:") : -len(";base64")], raw, im


def prep(source: object, **opts: object) -> str:
    return prepare_image(source, index=0, options=ImageSettings(**opts))  # type: ignore[arg-type]


@pytest.fixture
def png_bytes() -> bytes:
    return encode(gradient((64, 48)), "PNG")


@pytest.fixture
def png_file(tmp_path: Path, png_bytes: bytes) -> Path:
    path = tmp_path / "pic ture.png"  # a space, to exercise percent-decoding of file URIs
    path.write_bytes(png_bytes)
    return path


# --- accepted forms, identical output ---


def test_all_forms_of_one_image_give_identical_uri(png_file: Path, png_bytes: bytes) -> None:
    expected = data_uri(png_bytes)
    stream = io.BytesIO(b"skip" + png_bytes)
    stream.seek(4)  # read from the current position
    forms: list[object] = [
        png_file,
        str(png_file),
        png_file.as_uri(),
        png_bytes,
        bytearray(png_bytes),
        io.BytesIO(png_bytes),
        stream,
        data_uri(png_bytes),
        data_uri(png_bytes, "image/jpg"),  # a wrong label is corrected from the bytes
    ]
    assert [prep(f) for f in forms] == [expected] * len(forms)


def test_opened_binary_file_is_an_image(png_file: Path, png_bytes: bytes) -> None:
    with png_file.open("rb") as fh:
        assert prep(fh) == data_uri(png_bytes)


def test_tilde_path_is_expanded(
    png_file: Path, png_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(png_file.parent))
    assert prep(f"~/{png_file.name}") == data_uri(png_bytes)


@pytest.mark.parametrize("fmt,mime", [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp")])
def test_passthrough_keeps_original_bytes(fmt: str, mime: str) -> None:
    raw = encode(gradient((224, 224)), fmt)
    assert prep(raw) == f"data:image/{mime};base64,{base64.b64encode(raw).decode()}"


def test_pil_image_is_encoded_as_deterministic_png() -> None:
    im = gradient((40, 30), "RGBA")
    first, second = prep(im), prep(im.copy())
    assert first == second
    mime, _, out = decode_uri(first)
    assert (mime, out.mode, out.size) == ("image/png", "RGB", (40, 30))


def test_pil_image_is_downscaled() -> None:
    _, _, out = decode_uri(prep(gradient((400, 300)), max_image_pixels=10_000))
    assert out.width * out.height <= 10_000
    # Qwen-VL's smart resize: sides multiples of 32, so the server resizes nothing again.
    assert out.size == (96, 64)


# --- normalization ---


def test_exif_orientation_6_is_applied() -> None:
    src = gradient((80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    raw = encode(src, "JPEG", exif=exif.tobytes(), quality=95)
    mime, _, out = decode_uri(prep(raw))
    assert mime == "image/png"  # only the orientation changed: lossless
    assert out.size == (40, 80)
    assert out.getexif().get(0x0112) is None
    # Displayed top-left is the source's bottom-left (red 0, green high).
    r, g, _ = out.getpixel((0, 0))  # type: ignore[misc]
    assert r < 40 and g > 200


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "LA", "CMYK", "1"])
def test_modes_become_rgb(mode: str) -> None:
    im = gradient((32, 32), mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    mime, _, out = decode_uri(prep(encode(im, fmt)))
    assert out.mode == "RGB"
    assert out.size == (32, 32)
    assert mime == "image/png"


def test_alpha_is_composited_on_white() -> None:
    im = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    _, _, out = decode_uri(prep(encode(im, "PNG")))
    assert out.getpixel((3, 3)) == (255, 255, 255)


def test_16_bit_grayscale_is_rescaled_not_clipped() -> None:
    im = Image.new("I;16", (4, 4), 32768)
    _, _, out = decode_uri(prep(encode(im, "PNG")))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (128, 128, 128)


def test_animated_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    mime, _, out = decode_uri(prep(buf.getvalue()))
    assert mime == "image/png"
    assert out.getpixel((0, 0)) == (255, 0, 0)


def test_large_jpeg_is_downscaled_to_the_official_smart_resize() -> None:
    raw = encode(gradient((400, 300)).resize((4000, 3000)), "JPEG", quality=90)
    mime, _, out = decode_uri(prep(raw))
    assert mime == "image/jpeg"  # a downscaled photo stays JPEG
    # What the official embedder resizes a 4000x3000 photo to: 48 x 36 blocks of 32 pixels.
    assert out.size == (1536, 1152)
    assert out.width * out.height <= DEFAULT_MAX_PIXELS


@pytest.mark.parametrize(
    ("size", "max_pixels", "expected"),
    [
        ((4000, 3000), DEFAULT_MAX_PIXELS, (1536, 1152)),
        ((2400, 1600), DEFAULT_MAX_PIXELS, (1632, 1088)),
        ((1920, 1080), DEFAULT_MAX_PIXELS, (1792, 992)),
        ((640, 480), DEFAULT_MAX_PIXELS, (640, 480)),  # within budget: nearest multiples
        ((333, 177), DEFAULT_MAX_PIXELS, (320, 192)),
        ((40, 30), DEFAULT_MAX_PIXELS, (96, 64)),  # under 4,096 px: scaled up
        ((300, 100), 3_000, (64, 32)),
    ],
)
def test_smart_resize_matches_the_official_recipe(size, max_pixels, expected) -> None:
    got = smart_resize(*size, max_pixels=max_pixels)
    assert got == expected
    assert got[0] % 32 == 0 and got[1] % 32 == 0
    assert got[0] * got[1] <= max_pixels


def test_custom_max_pixels_is_honoured_for_png() -> None:
    raw = encode(gradient((300, 100)), "PNG")
    mime, _, out = decode_uri(prep(raw, max_image_pixels=3_000))
    assert mime == "image/png"
    assert out.width * out.height <= 3_000
    assert out.size == (64, 32)


def test_image_exactly_at_budget_is_passed_through() -> None:
    raw = encode(gradient((50, 40)), "PNG")
    assert prep(raw, max_image_pixels=2_000) == data_uri(raw)


# --- errors ---


def _raises(exc: type[Exception], item: object, *, index: int = 3, **kw: object) -> Exception:
    with pytest.raises(exc) as info:
        prepare_input(item, index=index, options=kw.pop("options", OPTS), **kw)  # type: ignore[arg-type]
    assert info.type is exc
    assert getattr(info.value, "index", None) == index
    assert str(info.value).startswith(f"input {index}: ")
    return info.value


def test_corrupt_bytes() -> None:
    err = _raises(ImageLoadError, b"definitely not an image")
    assert "not a recognized image" in str(err)


def test_empty_bytes() -> None:
    _raises(ImageLoadError, b"")


def test_truncated_file_names_path(tmp_path: Path) -> None:
    raw = encode(gradient((200, 200)), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(raw[: len(raw) // 2])
    err = _raises(ImageLoadError, path)
    assert str(path) in str(err)
    assert "cannot decode" in str(err)


def test_truncated_png(png_bytes: bytes) -> None:
    _raises(ImageLoadError, png_bytes[:-30])


def test_missing_path_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    err = _raises(ImageLoadError, str(missing), str_as="image")
    assert "not found" in str(err) and str(missing) in str(err)


def test_directory(tmp_path: Path) -> None:
    err = _raises(ImageLoadError, tmp_path)
    assert "directory" in str(err) and str(tmp_path) in str(err)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    err = _raises(ImageLoadError, path)
    assert "not a recognized image" in str(err) and str(path) in str(err)


@pytest.mark.parametrize(
    "uri",
    [
        "data:image/png;base64,@@@not-base64@@@",
        "data:image/png;base64,aGVsbG8gd29ybGQ=",  # valid base64, not an image
        "data:image/png;base64",  # no comma
        "data:text/plain;base64,aGVsbG8=",
    ],
)
def test_bad_data_uri(uri: str) -> None:
    _raises(ImageLoadError, uri, str_as="image")


def test_data_uri_is_truncated_in_messages() -> None:
    uri = "data:image/png;base64," + "A" * 1_000_000
    err = _raises(ImageLoadError, uri, str_as="image")
    assert len(str(err)) < 300


@pytest.mark.parametrize(
    "url,scheme", [("ftp://h/x.png", "ftp"), ("s3://b/k.jpg", "s3"), ("GS://b/k", "gs")]
)
def test_unsupported_scheme(url: str, scheme: str) -> None:
    err = _raises(InputError, url, str_as="image")
    assert f"unsupported URL scheme {scheme!r}" in str(err)


def test_file_uri_with_remote_host() -> None:
    _raises(InputError, "file://server/share/x.png", str_as="image")


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text(text: str) -> None:
    assert "empty text" in str(_raises(InputError, text))
    assert "empty text" in str(_raises(InputError, Content(text=text)))


@pytest.mark.parametrize(
    "item,name", [(42, "int"), (None, "NoneType"), ({}, "dict"), (1.5, "float")]
)
def test_unsupported_type(item: object, name: str) -> None:
    assert f"unsupported input type {name!r}" in str(_raises(InputError, item))


def test_text_stream_is_refused() -> None:
    _raises(InputError, io.StringIO("x"))


def test_decompression_bomb_is_refused() -> None:
    # A valid PNG header claiming 30000x30000 pixels: refused from the header, nothing decoded.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 2, 0, 0, 0)
    raw = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    assert "too large" in str(_raises(ImageLoadError, raw))


def test_prepare_inputs_names_the_bad_index(png_bytes: bytes) -> None:
    items: list[object] = ["a cat", png_bytes, 7, "never reached"]
    with pytest.raises(InputError) as info:
        prepare_inputs(items, options=OPTS)  # type: ignore[arg-type]
    assert info.value.index == 2


def test_prepare_inputs_refuses_a_bare_string() -> None:
    with pytest.raises(InputError, match="wrap it in a list"):
        prepare_inputs("a cat", options=OPTS)


# --- dispatch ---


def test_prepare_inputs_mixed(png_bytes: bytes, png_file: Path) -> None:
    uri = data_uri(png_bytes)
    out = prepare_inputs(
        [
            "a cat",
            png_file,
            Content(text="a cat", image=str(png_file)),
            Content(video="https://example.com/v.mp4"),
        ],
        options=ImageSettings(remote_video_headers=False),
    )
    assert out == [
        PreparedInput(text="a cat"),
        PreparedInput(image_url=uri),
        PreparedInput(text="a cat", image_url=uri),
        PreparedInput(video_url="https://example.com/v.mp4"),
    ]
    assert out[2].nbytes > len(uri) + len("a cat")


def test_str_as_image(png_file: Path, png_bytes: bytes) -> None:
    out = prepare_inputs([str(png_file)], options=OPTS, str_as="image")
    assert out == [PreparedInput(image_url=data_uri(png_bytes))]


@pytest.mark.parametrize("video", ["http://h/v.mp4", "https://h/v.mp4"])
def test_remote_video_urls_pass_through(video: str) -> None:
    # Local forms are read and inlined: tests/unit/test_video_inputs.py; headers read in
    # ranges: tests/unit/test_remote_video.py.
    options = ImageSettings(remote_video_headers=False)
    assert prepare_input(Content(video=video), index=0, options=options).video_url == video


@pytest.mark.parametrize("video", ["/tmp/no-such-v.mp4", "file:///tmp/no-such-v.mp4"])
def test_missing_local_video(video: str) -> None:
    _raises(ImageLoadError, Content(video=video))


def test_bad_video_scheme_and_type() -> None:
    _raises(InputError, Content(video="ftp://h/v.mp4"))
    _raises(InputError, Content(video=3.5))  # type: ignore[arg-type]


# --- remote images ---


URL = "https://example.com/cat.png"


def test_http_url_passes_through_without_fetching() -> None:
    def fetch(url: str) -> bytes:
        raise AssertionError("must not fetch")

    for url in (URL, "http://example.com/a.jpg?x=1"):
        out = prepare_input(url, index=0, options=OPTS, str_as="image", fetch=fetch)
        assert out.image_url == url


def test_fetch_remote_inlines_bytes(png_bytes: bytes) -> None:
    seen: list[str] = []

    def fetch(url: str) -> bytes:
        seen.append(url)
        return png_bytes

    opts = ImageSettings(fetch_remote_images=True)
    out = prepare_input(Content(image=URL), index=0, options=opts, fetch=fetch)
    assert out.image_url == data_uri(png_bytes)
    assert seen == [URL]


def test_fetch_failure_names_url() -> None:
    def fetch(url: str) -> bytes:
        raise ConnectionError("boom")

    opts = ImageSettings(fetch_remote_images=True)
    err = _raises(ImageLoadError, URL, str_as="image", options=opts, fetch=fetch)
    assert URL in str(err) and "boom" in str(err)
    assert isinstance(err, ImageLoadError) and err.source == URL


def test_remote_size_limit(png_bytes: bytes) -> None:
    opts = ImageSettings(fetch_remote_images=True, remote_image_max_bytes=len(png_bytes) - 1)
    err = _raises(ImageLoadError, URL, str_as="image", options=opts, fetch=lambda _: png_bytes)
    assert "over the limit" in str(err)


def test_fetched_garbage_is_an_image_error() -> None:
    opts = ImageSettings(fetch_remote_images=True)
    _raises(ImageLoadError, URL, str_as="image", options=opts, fetch=lambda _: b"<html>")


def test_fetch_remote_without_fetcher_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="fetch") as info:
        prepare_image(URL, index=0, options=ImageSettings(fetch_remote_images=True))
    assert not isinstance(info.value, InputError)


def test_image_options_validate() -> None:
    with pytest.raises(ValueError):
        ImageSettings(max_image_pixels=0)


def test_unreadable_file(png_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 0 does not stop root (CI runs as root), so the read itself is made to fail.
    def refuse(path: object, flags: int, *args: object) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", refuse)
    err = _raises(ImageLoadError, png_file)
    assert "cannot read" in str(err)
    assert str(png_file) in str(err)


def test_file_uri_with_localhost(png_file: Path, png_bytes: bytes) -> None:
    uri = png_file.as_uri().replace("file://", "file://localhost", 1)
    assert prep(uri) == data_uri(png_bytes)


def test_pil_image_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    opened = Image.open(io.BytesIO(encode(gradient((60, 20)), "JPEG", exif=exif.tobytes())))
    _, _, out = decode_uri(prep(opened))
    assert out.size == (20, 60)


def test_nbytes_tracks_payload(png_bytes: bytes) -> None:
    small = prepare_input("hi", index=0, options=OPTS)
    big = prepare_input(Content(text="hi", image=png_bytes), index=0, options=OPTS)
    assert 0 < small.nbytes < 100
    assert big.nbytes - small.nbytes >= len(data_uri(png_bytes))


# --- interleaved content (Content.of) ---


def test_content_of_keeps_every_part_in_order(png_bytes: bytes, png_file: Path) -> None:
    item = Content.of("Compare", png_bytes, Content(image=str(png_file)), "and", png_file)
    out = prepare_input(item, index=0, options=OPTS)
    assert [p.kind for p in out.parts] == ["text", "image", "image", "text", "image"]
    assert [p.value for p in out.parts if p.kind == "text"] == ["Compare", "and"]
    assert out.parts[1].value == out.parts[2].value == data_uri(png_bytes)
    # The single-value fields hold the first part of each kind, and say it is interleaved.
    assert (out.text, out.image_url, out.video_url) == ("Compare", data_uri(png_bytes), None)
    assert out.interleaved
    assert out.nbytes >= 3 * len(data_uri(png_bytes))


def test_content_of_takes_videos_and_lists(png_bytes: bytes) -> None:
    video = "https://example.com/v.mp4"
    item = Content(parts=[Content(video=video), png_bytes])  # type: ignore[arg-type]
    out = prepare_input(item, index=0, options=ImageSettings(remote_video_headers=False))
    assert out.parts == (PreparedPart("video", video), PreparedPart("image", data_uri(png_bytes)))
    assert hash(item)  # a list given as parts is stored as a tuple


def test_plain_content_has_no_parts(png_bytes: bytes) -> None:
    out = prepare_input(Content(text="a", image=png_bytes), index=0, options=OPTS)
    assert out.parts == () and not out.interleaved


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Content.of(), "at least one part"),
        (lambda: Content(text="a", parts=("b",)), "either parts"),
        (lambda: Content.of(Content(text="a", image=b"x")), "part 0 must hold exactly one"),
        (lambda: Content.of("a", Content.of("b")), "part 1 must hold exactly one"),
    ],
)
def test_content_of_refuses_ambiguous_parts(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_a_bad_part_is_named_by_item_and_part(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    items = ["ok", Content.of("fine", missing)]
    err = _raises_list(ImageLoadError, items)
    assert err.index == 1
    assert "part 1" in str(err) and "nope.png" in str(err)
    err = _raises_list(InputError, [Content.of("x", "  ")])
    assert err.index == 0 and "part 1: empty text" in str(err)


def _raises_list(exc_type: type[InputError], items: list) -> InputError:
    with pytest.raises(exc_type) as info:
        prepare_inputs(items, options=OPTS)
    return info.value
