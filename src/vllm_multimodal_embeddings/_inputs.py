"""Turn what a caller hands us into validated content items ready for the wire.

Dispatch over input forms lives here; the pixel work lives in :mod:`._images`. Everything
is synchronous and CPU-bound: the async client runs it in a worker thread.
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

from PIL import Image

from ._constants import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SOURCE_PIXELS,
    DEFAULT_REMOTE_IMAGE_MAX_BYTES,
    DEFAULT_REMOTE_IMAGE_TIMEOUT_S,
)
from ._exceptions import ImageLoadError, InputError
from ._images import (
    build_data_uri,
    describe_source,
    encode_bytes,
    encode_pil_image,
    parse_data_uri,
)
from ._pdf import is_pdf_path, parse_page_ref, render_page
from ._types import Content, ContentPart, EmbedInput, ImageInput, PdfPage

__all__ = [
    "Fetcher",
    "ImageOptions",
    "PreparedInput",
    "PreparedPart",
    "prepare_image",
    "prepare_input",
    "prepare_inputs",
]

#: Given an ``http(s)`` URL, return its bytes; raise on any failure.
Fetcher = Callable[[str], bytes]

# A scheme followed by "//" marks a URL; "C:\\x" and "notes:v2.png" stay filesystem paths.
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")
# Rough JSON framing per content part ({"type": ..., "image_url": {"url": ...}}), for batching.
_PART_OVERHEAD = 48


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """How images are prepared before sending.

    Attributes:
        max_pixels: images with more pixels are downscaled (aspect ratio kept) to fit.
        fetch_remote: ``False`` sends ``http(s)`` URLs for the server to fetch; ``True``
            fetches them here and sends the bytes inline.
        remote_max_bytes: largest remote image accepted when fetching.
        remote_timeout: seconds allowed for one whole remote fetch, redirects included.
        max_source_pixels: images whose header declares more pixels are refused before
            any decoding (a decompression bomb costs nothing then).
        max_image_bytes: largest encoded image read from a file, a stream or a ``data:`` URI.
        remote_allowed_hosts: host names, addresses or networks that client-side fetching
            may reach although they are loopback, private or link-local.
        allow_private_networks: let client-side fetching reach any address.
        page_max_pixels: the budget PDF pages are rendered to fill; ``None``: ``max_pixels``.
            (The reranker lifts ``max_pixels`` to keep photos' original pixels for its own
            resize; a page has none, so it is rendered at the recipe's budget instead.)
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    fetch_remote: bool = False
    remote_max_bytes: int = DEFAULT_REMOTE_IMAGE_MAX_BYTES
    remote_timeout: float = DEFAULT_REMOTE_IMAGE_TIMEOUT_S
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    remote_allowed_hosts: tuple[str, ...] = ()
    allow_private_networks: bool = False
    page_max_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.page_max_pixels is not None and self.page_max_pixels < 1:
            raise ValueError(f"page_max_pixels must be >= 1, got {self.page_max_pixels}")
        if self.max_source_pixels < self.max_pixels:
            raise ValueError(
                f"max_source_pixels ({self.max_source_pixels}) must be >= max_pixels "
                f"({self.max_pixels})"
            )
        if self.max_image_bytes < 1:
            raise ValueError(f"max_image_bytes must be >= 1, got {self.max_image_bytes}")
        hosts = self.remote_allowed_hosts
        # A bare string would be read as one-letter host names; a list would be unhashable.
        hosts = (hosts,) if isinstance(hosts, str) else tuple(hosts)
        object.__setattr__(self, "remote_allowed_hosts", hosts)
        if self.remote_max_bytes < 1:
            raise ValueError(f"remote_max_bytes must be >= 1, got {self.remote_max_bytes}")
        if self.remote_timeout <= 0:
            raise ValueError(f"remote_timeout must be > 0, got {self.remote_timeout}")


PartKind = Literal["text", "image", "video"]
_KINDS: tuple[PartKind, ...] = ("text", "image", "video")


@dataclass(frozen=True, slots=True)
class PreparedPart:
    """One part of an interleaved item.

    Attributes:
        kind: ``text``, ``image`` or ``video``.
        value: the text, the image's ``data:`` URI or URL, or the video URL.
    """

    kind: PartKind
    value: str


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """One item ready for the wire.

    Attributes:
        text: the text part.
        image_url: a ``data:`` URI (inlined image) or an ``http(s)`` URL passed through.
        video_url: a video URL, passed through as given.
        parts: for ``Content.of(...)`` items, every part in the caller's order (empty
            otherwise). ``text``, ``image_url`` and ``video_url`` then hold the FIRST part of
            each kind only: code that builds requests must send ``parts`` when it is set.
    """

    text: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    parts: tuple[PreparedPart, ...] = ()

    @property
    def interleaved(self) -> bool:
        """Whether this item carries ordered ``parts`` (possibly several of one kind)."""
        return bool(self.parts)

    @property
    def nbytes(self) -> int:
        """Approximate JSON payload size of this item, for batching by bytes."""
        if self.parts:
            values: list[str | None] = [p.value for p in self.parts]
        else:
            values = [self.text, self.image_url, self.video_url]
        return sum(len(v.encode("utf-8")) + _PART_OVERHEAD for v in values if v is not None)


def prepare_inputs(
    items: Sequence[EmbedInput],
    *,
    options: ImageOptions,
    str_as: Literal["text", "image"] = "text",
    fetch: Fetcher | None = None,
) -> list[PreparedInput]:
    """Prepare every item, in order; the first invalid one raises with its index.

    Nothing is returned (so nothing is sent) unless all items are valid.
    """
    if isinstance(items, (str, bytes, bytearray)):
        # A bare string is a Sequence too; iterating it would embed one character at a time.
        raise InputError(
            f"expected a list of inputs, got a single {type(items).__name__}; wrap it in a list"
        )
    return [
        prepare_input(item, index=i, options=options, str_as=str_as, fetch=fetch)
        for i, item in enumerate(items)
    ]


def prepare_input(
    item: EmbedInput,
    *,
    index: int,
    options: ImageOptions,
    str_as: Literal["text", "image"] = "text",
    fetch: Fetcher | None = None,
) -> PreparedInput:
    """Prepare one item: a ``str`` is text (or an image reference with ``str_as="image"``),
    a :class:`Content` is prepared part by part, anything image-like becomes an image."""
    if isinstance(item, str):
        if str_as == "image":
            return PreparedInput(
                image_url=prepare_image(item, index=index, options=options, fetch=fetch)
            )
        return PreparedInput(text=_check_text(item, index=index))
    if isinstance(item, Content):
        return _prepare_content(item, index=index, options=options, fetch=fetch)
    return PreparedInput(image_url=prepare_image(item, index=index, options=options, fetch=fetch))


def prepare_image(
    source: ImageInput,
    *,
    index: int,
    options: ImageOptions,
    fetch: Fetcher | None = None,
) -> str:
    """Return the ``image_url`` to send for one image: a ``data:`` URI or an ``http(s)`` URL."""
    if isinstance(source, str):
        return _prepare_image_ref(source, index=index, options=options, fetch=fetch)
    if isinstance(source, PdfPage):
        return _encode_pdf_page(source, index=index, options=options)
    if isinstance(source, os.PathLike):
        return _encode_file(Path(os.fsdecode(source)), index=index, options=options)
    if isinstance(source, (bytes, bytearray)):
        return _encode(bytes(source), index=index, options=options, source=type(source).__name__)
    if isinstance(source, Image.Image):
        return encode_pil_image(
            source, max_pixels=options.max_pixels, index=index, source="PIL image"
        )
    if isinstance(source, io.IOBase):
        data = _read_stream(source, index=index, max_bytes=options.max_image_bytes)
        return _encode(data, index=index, options=options, source=type(source).__name__)
    raise InputError(f"unsupported input type {type(source).__name__!r}", index=index)


def _encode_pdf_page(page: PdfPage, *, index: int, options: ImageOptions) -> str:
    # Rendered RGB at the budget already (sides multiples of 32): nothing left to normalize.
    # PNG keeps text edges exact; level 1 measured 2x faster than Pillow's default (6) on
    # text pages, and no larger (benchmarks/pdf_pages.py).
    budget = options.page_max_pixels or options.max_pixels
    image = render_page(page, max_pixels=budget, index=index)
    with image:
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
    return build_data_uri(buf.getvalue(), "png")


def _encode(data: bytes, *, index: int, options: ImageOptions, source: str) -> str:
    return encode_bytes(
        data,
        max_pixels=options.max_pixels,
        max_source_pixels=options.max_source_pixels,
        index=index,
        source=source,
    )


def _prepare_content(
    item: Content, *, index: int, options: ImageOptions, fetch: Fetcher | None
) -> PreparedInput:
    if item.parts:
        return _prepare_parts(item.parts, index=index, options=options, fetch=fetch)
    text = None
    if item.text is not None:
        text = _check_content_text(item.text, index=index)
    image_url = None
    if item.image is not None:
        image_url = prepare_image(item.image, index=index, options=options, fetch=fetch)
    video_url = None
    if item.video is not None:
        video_url = _check_video(item.video, index=index)
    if text is None and image_url is None and video_url is None:
        raise InputError("empty Content: give text, image or video", index=index)
    return PreparedInput(text=text, image_url=image_url, video_url=video_url)


def _prepare_parts(
    parts: Sequence[ContentPart], *, index: int, options: ImageOptions, fetch: Fetcher | None
) -> PreparedInput:
    prepared: list[PreparedPart] = []
    for number, part in enumerate(parts):
        try:
            prepared.append(_prepare_part(part, index=index, options=options, fetch=fetch))
        except InputError as exc:
            # Name the part as well as the item: "input 3: part 1: image file not found (...)".
            exc.message = f"part {number}: {exc.message}"
            exc.args = (exc.message,)
            raise
    first = {kind: next((p.value for p in prepared if p.kind == kind), None) for kind in _KINDS}
    return PreparedInput(
        text=first["text"],
        image_url=first["image"],
        video_url=first["video"],
        parts=tuple(prepared),
    )


def _prepare_part(
    part: ContentPart, *, index: int, options: ImageOptions, fetch: Fetcher | None
) -> PreparedPart:
    if isinstance(part, str):
        return PreparedPart("text", _check_text(part, index=index))
    if isinstance(part, Content):
        if part.text is not None:
            return PreparedPart("text", _check_content_text(part.text, index=index))
        if part.video is not None:
            return PreparedPart("video", _check_video(part.video, index=index))
        if part.image is not None:
            return PreparedPart(
                "image", prepare_image(part.image, index=index, options=options, fetch=fetch)
            )
        raise InputError("empty Content part", index=index)
    return PreparedPart("image", prepare_image(part, index=index, options=options, fetch=fetch))


def _check_content_text(text: object, *, index: int) -> str:
    if not isinstance(text, str):
        raise InputError(f"Content.text must be str, got {type(text).__name__!r}", index=index)
    return _check_text(text, index=index)


def _check_text(text: str, *, index: int) -> str:
    if not text.strip():
        raise InputError("empty text", index=index)
    return text


def _check_video(video: object, *, index: int) -> str:
    if not isinstance(video, str):
        raise InputError(
            f"Content.video must be a URL string, got {type(video).__name__!r}", index=index
        )
    if video[:5].lower() == "data:":
        return video
    match = _URL_SCHEME.match(video)
    if match is None:
        raise InputError(
            "Content.video must be an http(s)://, data: or file:// URL "
            f"(for a local file use Path(...).resolve().as_uri()): {describe_source(video)!r}",
            index=index,
        )
    scheme = match.group(1).lower()
    if scheme not in ("http", "https", "file"):
        raise InputError(f"unsupported URL scheme {scheme!r}", index=index)
    return video


def _prepare_image_ref(
    ref: str, *, index: int, options: ImageOptions, fetch: Fetcher | None
) -> str:
    if not ref.strip():
        raise InputError("empty image reference", index=index)
    if ref[:5].lower() == "data:":
        data = parse_data_uri(ref, index=index, max_bytes=options.max_image_bytes)
        return _encode(data, index=index, options=options, source=describe_source(ref))
    page = parse_page_ref(ref, index=index)
    if page is not None:
        return _encode_pdf_page(page, index=index, options=options)
    match = _URL_SCHEME.match(ref)
    if match is None:
        path = Path(ref).expanduser()
        return _encode_file(path, index=index, options=options)
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        if is_pdf_path(urlsplit(ref).path):
            # The server cannot render a PDF and we do not download documents for it.
            raise InputError(
                "remote PDFs are not rendered; download the file and embed its pages "
                f"(PdfPage or 'doc.pdf#page=N'): {describe_source(ref)!r}",
                index=index,
            )
        if not options.fetch_remote:
            return ref
        return _fetch_remote(ref, index=index, options=options, fetch=fetch)
    if scheme == "file":
        return _encode_file(_file_uri_to_path(ref, index=index), index=index, options=options)
    raise InputError(f"unsupported URL scheme {scheme!r}", index=index)


def _fetch_remote(url: str, *, index: int, options: ImageOptions, fetch: Fetcher | None) -> str:
    if fetch is None:
        # The client always supplies one with fetch_remote=True; reaching here is a bug.
        raise ValueError("ImageOptions.fetch_remote=True needs a fetch function")
    source = describe_source(url)
    try:
        data = fetch(url)
    except Exception as exc:  # the fetcher is pluggable: any failure means "could not load"
        # httpx and others quote the URL in their messages: keep it (and its signature) out.
        reason = str(exc).replace(url, "<url>")
        raise ImageLoadError(f"cannot fetch image: {reason}", index=index, source=source) from exc
    if not isinstance(data, (bytes, bytearray)):
        raise ImageLoadError(
            f"fetcher returned {type(data).__name__!r}, expected bytes", index=index, source=source
        )
    if len(data) > options.remote_max_bytes:
        raise ImageLoadError(
            f"remote image is {len(data)} bytes, over the limit of {options.remote_max_bytes}",
            index=index,
            source=source,
        )
    return _encode(bytes(data), index=index, options=options, source=source)


def _file_uri_to_path(uri: str, *, index: int) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InputError(
            f"file:// URI names a remote host {parts.netloc!r}; use file:///absolute/path",
            index=index,
        )
    # url2pathname percent-decodes and maps "/C:/x" to "C:\\x" on Windows.
    return Path(url2pathname(parts.path))


def _encode_file(path: Path, *, index: int, options: ImageOptions) -> str:
    source = str(path)
    if is_pdf_path(path):
        raise InputError(
            f"{source!r} is a PDF: name one page as PdfPage(path, n) or '{source}#page=n' "
            "(pages count from 1), or embed every page with pdf_pages(path)",
            index=index,
        )
    data = _read_file(path, index=index, max_bytes=options.max_image_bytes)
    return _encode(data, index=index, options=options, source=source)


def _read_file(path: Path, *, index: int, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    FIFOs, sockets and devices (``/dev/zero``, a terminal) are refused from ``stat`` alone:
    opening a FIFO for reading blocks until a writer appears, and a device never ends.
    """
    source = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise ImageLoadError("image file not found", index=index, source=source) from exc
    except OSError as exc:
        raise ImageLoadError(f"cannot read image file: {exc}", index=index, source=source) from exc
    _check_regular(info, index=index, source=source, max_bytes=max_bytes)
    # O_NONBLOCK: if the path was swapped for a FIFO after stat, open returns at once and
    # fstat below refuses it. Regular files ignore the flag.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError as exc:
        raise ImageLoadError("image path is a directory", index=index, source=source) from exc
    except OSError as exc:
        # Windows reports directories as PermissionError; name the real cause where we can.
        reason = "image path is a directory" if path.is_dir() else f"cannot read image file: {exc}"
        raise ImageLoadError(reason, index=index, source=source) from exc
    with os.fdopen(fd, "rb") as f:
        _check_regular(os.fstat(fd), index=index, source=source, max_bytes=max_bytes)
        try:
            # One byte over the cap tells a file that grew since fstat.
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise ImageLoadError(
                f"cannot read image file: {exc}", index=index, source=source
            ) from exc
    if len(data) > max_bytes:
        raise ImageLoadError(
            f"image file over the limit of {max_bytes} bytes (max_image_bytes)",
            index=index,
            source=source,
        )
    return data


def _check_regular(info: os.stat_result, *, index: int, source: str, max_bytes: int) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise ImageLoadError("image path is a directory", index=index, source=source)
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise ImageLoadError(
            f"image path is {kind}; only regular files are read", index=index, source=source
        )
    if info.st_size > max_bytes:
        raise ImageLoadError(
            f"image file is {info.st_size} bytes, over the limit of {max_bytes} (max_image_bytes)",
            index=index,
            source=source,
        )


def _read_stream(stream: io.IOBase, *, index: int, max_bytes: int) -> bytes:
    """At most ``max_bytes`` from a binary stream; an endless stream is cut, not drained."""
    source = type(stream).__name__
    if isinstance(stream, io.TextIOBase):
        raise InputError(
            f"{source} is a text stream; open the file in binary mode ('rb')", index=index
        )
    chunks: list[bytes] = []
    total = 0
    try:
        if not stream.readable():
            raise InputError(f"{source} is not readable", index=index)
        while total <= max_bytes:
            # read(n) may return less than n (raw streams, pipes); loop until EOF.
            chunk = stream.read(min(max_bytes + 1 - total, 1 << 20))
            if chunk is None:  # a non-blocking raw stream with nothing ready
                raise ImageLoadError(
                    "stream is non-blocking and had no data", index=index, source=source
                )
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise InputError(
                    f"{source}.read() returned {type(chunk).__name__!r}, expected bytes",
                    index=index,
                )
            if not chunk:
                break
            chunks.append(bytes(chunk))
            total += len(chunk)
    except (OSError, ValueError) as exc:  # closed or unsupported streams raise either
        if isinstance(exc, InputError):
            raise
        raise ImageLoadError(f"cannot read stream: {exc}", index=index, source=source) from exc
    if total > max_bytes:
        raise ImageLoadError(
            f"stream holds more than {max_bytes} bytes (max_image_bytes)",
            index=index,
            source=source,
        )
    return b"".join(chunks)
