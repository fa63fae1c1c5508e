"""Turn what a caller hands us into validated content items ready for the wire.

Dispatch over input forms lives here; the pixel work lives in :mod:`._images`. Everything
is synchronous and CPU-bound: the async client runs it in a worker thread.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

from PIL import Image

from .._exceptions import ImageLoadError, InputError, RemoteUnavailableError
from .._types import Content, ContentPart, EmbedInput, ImageInput, PdfPage, VideoInput
from ._fetch import RemoteFetcher, RemoteFetchError
from ._images import build_data_uri, describe_source, encode_bytes, encode_pil_image, parse_data_uri
from ._pdf import is_pdf_path, parse_page_ref, render_page
from ._prepared import Fetcher, PartKind, PreparedInput, PreparedPart
from ._settings import ImageSettings
from ._video import (
    VideoHeader,
    encode_frames,
    frame_size,
    frames_to_keep,
    frames_video_kwargs,
    official_video_kwargs,
    parse_video_data_uri,
    read_video_header,
    video_data_uri,
)

__all__ = [
    "check_not_bare",
    "prepare_image",
    "prepare_input",
    "prepare_inputs",
]

# A scheme followed by "//" marks a URL; "C:\\x" and "notes:v2.png" stay filesystem paths.
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")

_KINDS: tuple[PartKind, ...] = ("text", "image", "video")


def prepare_inputs(
    items: Sequence[EmbedInput],
    *,
    options: ImageSettings,
    str_as: Literal["text", "image"] = "text",
    fetch: Fetcher | None = None,
) -> list[PreparedInput]:
    """Prepare every item, in order; the first invalid one raises with its index.

    Nothing is returned (so nothing is sent) unless all items are valid.
    """
    check_not_bare(items)
    return [
        prepare_input(item, index=i, options=options, str_as=str_as, fetch=fetch)
        for i, item in enumerate(items)
    ]


def prepare_input(
    item: EmbedInput,
    *,
    index: int,
    options: ImageSettings,
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
    options: ImageSettings,
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
            source, max_pixels=options.max_image_pixels, index=index, source="PIL image"
        )
    if isinstance(source, io.IOBase):
        data = _read_stream(source, index=index, max_bytes=options.max_image_bytes)
        return _encode(data, index=index, options=options, source=type(source).__name__)
    raise InputError(f"unsupported input type {type(source).__name__!r}", index=index)


def _encode_pdf_page(page: PdfPage, *, index: int, options: ImageSettings) -> str:
    # Rendered RGB at the budget already (sides multiples of 32): nothing left to normalize.
    # PNG keeps text edges exact; level 1 measured 2x faster than Pillow's default (6) on
    # text pages, and no larger (benchmarks/pdf_pages.py).
    budget = options.page_max_pixels or options.max_image_pixels
    if page.password is None and options.pdf_passwords is not None:
        # A page reference string carries no password: the settings hold it, by file.
        page = dataclasses.replace(page, password=options.pdf_passwords.for_path(page.path))
    image = render_page(page, max_pixels=budget, index=index)
    with image:
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
    return build_data_uri(buf.getvalue(), "png")


def _encode(data: bytes, *, index: int, options: ImageSettings, source: str) -> str:
    return encode_bytes(
        data,
        max_pixels=options.max_image_pixels,
        max_source_pixels=options.max_source_pixels,
        index=index,
        source=source,
    )


def _prepare_content(
    item: Content, *, index: int, options: ImageSettings, fetch: Fetcher | None
) -> PreparedInput:
    if item.parts:
        return _prepare_parts(item.parts, index=index, options=options, fetch=fetch)
    text = None
    if item.text is not None:
        text = _check_content_text(item.text, index=index)
    image_url = None
    if item.image is not None:
        image_url = prepare_image(item.image, index=index, options=options, fetch=fetch)
    video = None
    if item.video is not None:
        video = prepare_video(item.video, index=index, options=options, fetch=fetch)
    if text is None and image_url is None and video is None:
        raise InputError("empty Content: give text, image or video", index=index)
    return PreparedInput(
        text=text,
        image_url=image_url,
        video_url=None if video is None else video.value,
        video_kwargs=None if video is None else video.video_kwargs,
    )


def _prepare_parts(
    parts: Sequence[ContentPart], *, index: int, options: ImageSettings, fetch: Fetcher | None
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
    videos = [p for p in prepared if p.kind == "video"]
    # One request carries one set of video fields, and they reach every video in it.
    if any(p.video_kwargs != videos[0].video_kwargs for p in videos):
        raise InputError(
            "its videos need different frame counts or pixel bounds, which one request cannot "
            "carry; embed them as separate inputs",
            index=index,
        )
    return PreparedInput(
        text=first["text"],
        image_url=first["image"],
        video_url=first["video"],
        parts=tuple(prepared),
        video_kwargs=videos[0].video_kwargs if videos else None,
    )


def _prepare_part(
    part: ContentPart, *, index: int, options: ImageSettings, fetch: Fetcher | None
) -> PreparedPart:
    if isinstance(part, str):
        return PreparedPart("text", _check_text(part, index=index))
    if isinstance(part, Content):
        if part.text is not None:
            return PreparedPart("text", _check_content_text(part.text, index=index))
        if part.video is not None:
            return prepare_video(part.video, index=index, options=options, fetch=fetch)
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
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: no request body can carry it
        raise InputError(
            f"text is not valid Unicode: lone surrogate {text[exc.start]!r} at position "
            f"{exc.start}",
            index=index,
        ) from None
    return text


def prepare_video(
    video: VideoInput, *, index: int, options: ImageSettings, fetch: Fetcher | None = None
) -> PreparedPart:
    """One video as a part to send, with the request fields it needs for the official sampling.

    Paths, ``file://`` URIs and bytes are read here and sent inline (the server need not see
    the client's files); ``data:`` URIs are sent as given; ``http(s)`` URLs are passed to the
    server to fetch unless ``options.fetch_remote_images``. Reading a video's header needs PyAV (the
    ``video`` extra): without it a local video is an :class:`InputError` naming the extra.
    """
    if isinstance(video, (bytes, bytearray)):
        data = bytes(video)
        if len(data) > options.max_image_bytes:
            raise ImageLoadError(
                f"video is {len(data)} bytes, over the limit of {options.max_image_bytes} "
                "(max_image_bytes)",
                index=index,
                source=type(video).__name__,
            )
        return _video_part(data, None, index=index, source=type(video).__name__)
    if isinstance(video, os.PathLike):
        return _video_file(Path(os.fsdecode(video)), index=index, options=options)
    if isinstance(video, (list, tuple)):
        return _video_frames(video, index=index, options=options, fetch=fetch)
    if not isinstance(video, str):
        raise InputError(
            "Content.video must be a path, a URL (http(s)://, data:, file://), bytes or a list "
            "of frames, "
            f"got {type(video).__name__!r}",
            index=index,
        )
    if not video.strip():
        raise InputError("empty video reference", index=index)
    source = describe_source(video)
    if video[:5].lower() == "data:":
        data = parse_video_data_uri(video, index=index, max_bytes=options.max_image_bytes)
        return _video_part(data, video, index=index, source=source)
    match = _URL_SCHEME.match(video)
    if match is None:
        return _video_file(Path(video).expanduser(), index=index, options=options)
    scheme = match.group(1).lower()
    if scheme == "file":
        path = _file_uri_to_path(video, index=index)
        return _video_file(path, index=index, options=options)
    if scheme not in ("http", "https"):
        raise InputError(f"unsupported URL scheme {scheme!r}", index=index)
    if not options.fetch_remote_images:
        if not options.remote_video_headers:
            # The server fetches it and samples it with its flags alone (no per-request fields).
            return PreparedPart("video", video)
        # The server fetches it; its header, read here in ranges, gives the request fields.
        header = _remote_video_header(video, index=index, options=options, fetch=fetch)
        return PreparedPart("video", video, official_video_kwargs(header))
    if fetch is None:
        raise ValueError("fetch_remote_images=True needs a fetch function")
    try:
        data = fetch(video)
    except Exception as exc:  # the fetcher is pluggable: any failure means "could not load"
        raise _fetch_error("video", video, exc, index=index, source=source) from exc
    if not isinstance(data, (bytes, bytearray)) or len(data) > options.remote_image_max_bytes:
        raise ImageLoadError(
            "fetched video is not bytes or is over remote_image_max_bytes",
            index=index,
            source=source,
        )
    return _video_part(bytes(data), None, index=index, source=source)


def _remote_video_header(
    url: str, *, index: int, options: ImageSettings, fetch: Fetcher | None
) -> VideoHeader:
    """The header of the video at ``url``, read through ranged requests under the remote-fetch
    guards (a full read where the host ignores ranges)."""
    source = describe_source(url)
    # The client's fetcher, else one for this video (a caller preparing inputs itself).
    fetcher = fetch if isinstance(fetch, RemoteFetcher) else RemoteFetcher.from_options(options)
    try:
        with fetcher.open(url) as file:
            return read_video_header(file, index=index, source=source)
    except RemoteFetchError as exc:
        reason = str(exc.message).replace(url, "<url>")
        if exc.transient:
            raise RemoteUnavailableError(
                f"cannot read the video's header now ({reason}); its host may serve it later",
                index=index,
                source=source,
            ) from exc
        raise ImageLoadError(
            f"cannot read the video's header here ({reason}); the request needs it to sample "
            "the video like the official embedder. Allow the host (remote_allowed_hosts), or "
            "let the server sample it by its flags alone (remote_video_headers=False)",
            index=index,
            source=source,
        ) from exc
    finally:
        if fetcher is not fetch:
            fetcher.close()


def _video_frames(
    frames: Sequence[ImageInput], *, index: int, options: ImageSettings, fetch: Fetcher | None
) -> PreparedPart:
    """A video given as frames, prepared as the official embedder prepares one, and sent as a
    lossless video with the fields that make vLLM take every frame as it is."""
    if not frames:
        raise InputError("Content.video is an empty list of frames", index=index)
    images: list[Image.Image] = []
    for number in frames_to_keep(len(frames)):
        try:
            images.append(_frame_image(frames[number], index=index, options=options, fetch=fetch))
        except InputError as exc:
            exc.message = f"video frame {number}: {exc.message}"
            exc.args = (exc.message,)
            raise
    sizes = sorted({im.size for im in images})
    if len(sizes) > 1:
        raise InputError(
            f"video frames differ in size after resizing ({sizes[0]} and {sizes[-1]}); "
            "give frames of one size",
            index=index,
        )
    images += images[-1:] * (len(images) % 2)  # an even count: the last frame again
    width, height = sizes[0]
    data = encode_frames(images, index=index)
    kwargs = frames_video_kwargs(len(images), width, height)
    return PreparedPart("video", video_data_uri(data), kwargs)


def _frame_image(
    frame: ImageInput, *, index: int, options: ImageSettings, fetch: Fetcher | None
) -> Image.Image:
    """One frame as RGB (transparency over white) at its first, image-like size."""
    if isinstance(frame, Image.Image):
        im = frame
    else:
        # The image path's own reading and checks, then decoded back: a frame needs pixels.
        uri = prepare_image(
            frame,
            index=index,
            options=dataclasses.replace(options, max_image_pixels=options.max_source_pixels),
            fetch=fetch,
        )
        if not uri.startswith("data:"):
            raise InputError(
                "a frame given as an http(s) URL needs fetch_remote_images=True "
                "(frames are read here)",
                index=index,
            )
        im = Image.open(io.BytesIO(parse_data_uri(uri, index=index)))
        im.load()
    if im.mode == "RGBA":
        rgb = Image.new("RGB", im.size, (255, 255, 255))
        rgb.paste(im, mask=im.getchannel("A"))
    else:
        rgb = im.convert("RGB")
    return rgb.resize(frame_size(*rgb.size))


def _video_file(path: Path, *, index: int, options: ImageSettings) -> PreparedPart:
    try:
        data = _read_file(path, index=index, max_bytes=options.max_image_bytes)
    except ImageLoadError as exc:
        # The file checks are shared with images; their messages say "image".
        exc.message = exc.message.replace("image", "video", 1)
        exc.args = (exc.message,)
        raise
    return _video_part(data, None, index=index, source=str(path))


def _video_part(data: bytes, uri: str | None, *, index: int, source: str) -> PreparedPart:
    """The part for encoded video bytes: ``uri`` (or a new ``data:`` URI) and its fields."""
    header = read_video_header(data, index=index, source=source)
    kwargs = official_video_kwargs(header)
    return PreparedPart("video", uri if uri is not None else video_data_uri(data), kwargs)


def _prepare_image_ref(
    ref: str, *, index: int, options: ImageSettings, fetch: Fetcher | None
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
        try:
            path = Path(ref).expanduser()
        except RuntimeError as exc:  # "~nobody/x.png": no such user or no home directory
            raise ImageLoadError(
                f"cannot expand '~' in image path: {exc}", index=index, source=ref
            ) from None
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
        if not options.fetch_remote_images:
            return ref
        return _fetch_remote(ref, index=index, options=options, fetch=fetch)
    if scheme == "file":
        return _encode_file(_file_uri_to_path(ref, index=index), index=index, options=options)
    raise InputError(f"unsupported URL scheme {scheme!r}", index=index)


def _fetch_error(kind: str, url: str, exc: Exception, *, index: int, source: str) -> ImageLoadError:
    """The error of a failed fetch of ``url``: :class:`RemoteUnavailableError` where the host
    failed for now (worth a retry), else :class:`ImageLoadError`."""
    # httpx and others quote the URL in their messages: keep it (and its signature) out.
    reason = str(exc).replace(url, "<url>")
    if isinstance(exc, RemoteFetchError) and exc.transient:
        return RemoteUnavailableError(
            f"cannot fetch {kind} now: {reason}; its host may serve it later",
            index=index,
            source=source,
        )
    return ImageLoadError(f"cannot fetch {kind}: {reason}", index=index, source=source)


def _fetch_remote(url: str, *, index: int, options: ImageSettings, fetch: Fetcher | None) -> str:
    if fetch is None:
        # The client always supplies one with fetch_remote_images=True; reaching here is a bug.
        raise ValueError("fetch_remote_images=True needs a fetch function")
    source = describe_source(url)
    try:
        data = fetch(url)
    except Exception as exc:  # the fetcher is pluggable: any failure means "could not load"
        raise _fetch_error("image", url, exc, index=index, source=source) from exc
    if not isinstance(data, (bytes, bytearray)):
        raise ImageLoadError(
            f"fetcher returned {type(data).__name__!r}, expected bytes", index=index, source=source
        )
    if len(data) > options.remote_image_max_bytes:
        raise ImageLoadError(
            f"remote image is {len(data)} bytes, "
            f"over the limit of {options.remote_image_max_bytes}",
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


def _encode_file(path: Path, *, index: int, options: ImageSettings) -> str:
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
    except ValueError:  # os.stat refuses a NUL byte in a path: no file can have that name
        raise ImageLoadError(
            "image path holds a NUL byte", index=index, source=source.replace("\0", "\\0")
        ) from None
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
    # Raw os calls, not a file object: a buffered reader adds an fstat, an ioctl, an lseek
    # and a read that finds EOF. Each call lets another thread take the GIL and hand it back
    # (futex calls, context switches): ~80 us of system CPU per small image while another
    # chunk's request was built (5 calls now, 10 before).
    try:
        opened = os.fstat(fd)
        _check_regular(opened, index=index, source=source, max_bytes=max_bytes)
        try:
            data = _read_fd(fd, opened.st_size, max_bytes)
        except OSError as exc:
            raise ImageLoadError(
                f"cannot read image file: {exc}", index=index, source=source
            ) from exc
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ImageLoadError(
            f"image file over the limit of {max_bytes} bytes (max_image_bytes)",
            index=index,
            source=source,
        )
    return data


def _read_fd(fd: int, size: int, max_bytes: int) -> bytes:
    """The bytes of an open regular file that fstat gave ``size``, to one byte over the cap.

    One read asks for ``size`` plus one byte: exactly ``size`` back is the whole file (a
    regular file reads short only at its end). One byte more means it grew since fstat: it is
    read on to one byte over the cap. Fewer (a file cut short, a network file system's short
    read) reads on to the end.
    """
    data = os.read(fd, size + 1)
    if len(data) == size and size:
        return data
    pieces = [data]
    got = len(data)
    while got <= max_bytes:
        piece = os.read(fd, min(max_bytes + 1 - got, 1 << 20))
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


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


def check_not_bare(inputs: object) -> None:
    """A bare string is iterable too; iterating it would embed one character at a time."""
    if isinstance(inputs, (str, bytes, bytearray)):
        raise InputError(
            f"expected a list of inputs, got a single {type(inputs).__name__}; wrap it in a list"
        )
