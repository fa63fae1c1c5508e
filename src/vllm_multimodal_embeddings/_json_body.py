"""Request bodies as JSON bytes, with the client's base64 ``data:`` URIs spliced in unscanned.

``json.dumps`` looks at every character of every string for something to escape: ~150 us for
the 24 KB URI of one 224 px JPEG, as much as the rest of its preparation (the request of a
hand-written client pays the same). A base64 ``data:`` URI holds nothing JSON escapes, so the
body is serialized with a placeholder in each such URI's place and the URIs are joined in
between as bytes. The result is byte for byte what httpx's ``json=`` sends (compact, UTF-8).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

__all__ = ["encode_json"]

# Shorter strings are not worth a placeholder.
_MIN_SPLICE = 1024
# The ASCII JSON writes as it is: printable, but neither a quote nor a backslash.
_VERBATIM = bytes(range(0x20, 0x7F)).replace(b'"', b"").replace(b"\\", b"")


def encode_json(body: Any, *, splice: bool = False) -> bytes:
    """``body`` as compact UTF-8 JSON, as httpx encodes ``json=``.

    ``splice``: look for ``data:`` URIs to splice (a request with images or videos); a
    text-only body would pay ~3 us per text for the search and find none.
    """
    if not splice:
        return _dumps(body).encode()
    uris: list[bytes] = []
    token = f"vmme-splice-{secrets.token_hex(8)}"
    text = _dumps(_swap(body, uris, token))
    if not uris:
        return text.encode()
    pieces = text.split(f'"{token}"')
    if len(pieces) != len(uris) + 1:  # the token in the caller's own text (odds 2**-64)
        return _dumps(body).encode()
    out = [pieces[0].encode()]
    for uri, piece in zip(uris, pieces[1:], strict=True):
        out += (b'"', uri, b'"', piece.encode())
    return b"".join(out)


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _swap(node: Any, uris: list[bytes], token: str) -> Any:
    """A copy of ``node`` with each long, escape-free ``data:`` URI replaced by ``token``
    (and its bytes appended to ``uris``), in the order ``json.dumps`` writes them."""
    if isinstance(node, str):
        if len(node) >= _MIN_SPLICE and node.startswith("data:") and node.isascii():
            raw = node.encode("ascii")
            if not raw.translate(None, _VERBATIM):  # nothing left: nothing to escape
                uris.append(raw)
                return token
        return node
    if isinstance(node, dict):
        return {key: _swap(value, uris, token) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_swap(value, uris, token) for value in node]
    return node
