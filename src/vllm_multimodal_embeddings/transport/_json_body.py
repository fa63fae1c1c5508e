"""Request bodies as JSON bytes, with the client's base64 ``data:`` URIs spliced in unscanned.

``json.dumps`` looks at every character of every string for something to escape: ~150 us for
the 24 KB URI of one 224 px JPEG, as much as the rest of its preparation (the request of a
hand-written client pays the same). A base64 ``data:`` URI holds nothing JSON escapes, so the
body is serialized with a placeholder in each such URI's place and the URIs are joined in
between as bytes. The result is byte for byte what httpx's ``json=`` sends (compact, UTF-8).

Such a body is a :class:`JsonBody`: its pieces, the URIs among them as the very strings the
prepared inputs hold, written to the socket in blocks of at least 64 KiB (small pieces joined,
a large URI alone). Joined, a request of 16 camera photos
was a second 9 MB copy of its payload for as long as it was in flight; on the 2-core machine
(200 photos, CPU server, 8 requests in flight) the joined bodies were ~90 MiB of a ~250 MB
peak.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

__all__ = ["JsonBody", "encode_json", "json_body"]

# Shorter strings are not worth a placeholder.
_MIN_SPLICE = 1024
#: Bytes a streamed body is written in at least (but its last block), pieces joined up to it.
WRITE_BLOCK = 64 * 1024
# The ASCII JSON writes as it is: printable, but neither a quote nor a backslash.
_VERBATIM = bytes(range(0x20, 0x7F)).replace(b'"', b"").replace(b"\\", b"")


class JsonBody:
    """A JSON body of text pieces and ``data:`` URIs, streamed: iterable once per attempt,
    ``len()`` bytes long (sent as its ``Content-Length``, not chunked)."""

    __slots__ = ("_length", "_pieces")

    def __init__(self, pieces: list[bytes | str]) -> None:
        self._pieces = pieces
        # The URIs are ASCII: as many bytes as characters.
        self._length = sum(len(piece) for piece in pieces)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        # Small pieces go out joined in blocks of WRITE_BLOCK bytes: each piece its own write
        # was 3 socket writes per small image, each letting another thread take the GIL. 128
        # 224 px JPEGs a request x 16 in flight (a loopback stand-in of vLLM's front end):
        # 3,000 images/s at ~350 us of client CPU each, against 4,000 at ~250 us joined, as
        # fast as a hand-written client sending one bytes object. A large URI (a photo) still
        # goes as its own piece, so a request is never copied whole.
        block: list[bytes] = []
        size = 0
        for piece in self._pieces:
            data = piece if isinstance(piece, bytes) else piece.encode("ascii")
            if len(data) >= WRITE_BLOCK:
                if block:
                    yield b"".join(block)
                    block, size = [], 0
                yield data  # one URI's bytes at a time, dropped once written
                continue
            block.append(data)
            size += len(data)
            if size >= WRITE_BLOCK:
                yield b"".join(block)
                block, size = [], 0
        if block:
            yield b"".join(block)

    def __bytes__(self) -> bytes:
        return b"".join(self)

    def aiter(self) -> _AsyncPieces:
        """The same pieces for ``httpx.AsyncClient`` (which wants an async iterable)."""
        return _AsyncPieces(self)


class _AsyncPieces:
    __slots__ = ("_body",)

    def __init__(self, body: JsonBody) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._body:
            yield piece


def json_body(body: Any, *, splice: bool = False) -> bytes | JsonBody:
    """``body`` as compact UTF-8 JSON, as httpx encodes ``json=``: bytes, or a
    :class:`JsonBody` when ``data:`` URIs were spliced.

    ``splice``: look for ``data:`` URIs to splice (a request with images or videos); a
    text-only body would pay ~3 us per text for the search and find none.
    """
    if not splice:
        return _dumps(body).encode()
    uris: list[str] = []
    token = f"vmme-splice-{secrets.token_hex(8)}"
    text = _dumps(_swap(body, uris, token))
    if not uris:
        return text.encode()
    segments = text.split(f'"{token}"')
    if len(segments) != len(uris) + 1:  # the token in the caller's own text (odds 2**-64)
        return _dumps(body).encode()
    pieces: list[bytes | str] = [segments[0].encode()]
    for uri, segment in zip(uris, segments[1:], strict=True):
        pieces += (b'"', uri, b'"' + segment.encode())
    return JsonBody(pieces)


def encode_json(body: Any, *, splice: bool = False) -> bytes:
    """:func:`json_body` joined into bytes."""
    encoded = json_body(body, splice=splice)
    return encoded if isinstance(encoded, bytes) else bytes(encoded)


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _swap(node: Any, uris: list[str], token: str) -> Any:
    """A copy of ``node`` with each long, escape-free ``data:`` URI replaced by ``token``
    (and appended to ``uris``), in the order ``json.dumps`` writes them."""
    if isinstance(node, str):
        if (
            len(node) >= _MIN_SPLICE
            and node.startswith("data:")
            and node.isascii()
            and not node.encode("ascii").translate(None, _VERBATIM)  # nothing to escape
        ):
            uris.append(node)
            return token
        return node
    if isinstance(node, dict):
        return {key: _swap(value, uris, token) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_swap(value, uris, token) for value in node]
    return node
